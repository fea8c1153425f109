//! Tests for the IPAM core: full and tiny pools, release and reuse, blocks per host, borrowing, explicit
//! addresses in other hosts' blocks, selectors, JSON, and a property test for uniqueness.

use std::{collections::HashSet, net::IpAddr};

use ipnet::IpNet;
use proptest::prelude::*;

use super::*;
use crate::model::IpPool;

fn pool(s: &str) -> IpPool {
    IpPool::new(s.parse().unwrap())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

const V4: PoolSelector = PoolSelector::Family(IpVersion::V4);
const V6: PoolSelector = PoolSelector::Family(IpVersion::V6);

/// Assign automatically and apply; panics on error.
fn auto(
    st: &mut IpamState,
    pools: &[IpPool],
    sel: PoolSelector,
    host: &str,
    handle: &str,
) -> Assignment {
    let a = st
        .auto_assign(pools, &sel, Owner::new(handle, host))
        .unwrap();
    assert_eq!(
        a.change.before.as_ref(),
        st.blocks.get(&a.change.cidr),
        "before is the current block"
    );
    st.apply(&a.change);
    a
}

#[test]
fn tiny_v4_pool_is_one_clipped_block() {
    let pools = [pool("10.0.0.0/30")];
    let mut st = IpamState::default();
    let got: Vec<IpAddr> = (0..3)
        .map(|i| auto(&mut st, &pools, V4, "h1", &format!("c{i}")).ip)
        .collect();
    assert_eq!(
        got,
        [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")],
        ".0 is never handed out"
    );
    assert_eq!(st.blocks.keys().collect::<Vec<_>>(), [&net("10.0.0.0/30")]);
    let e = st
        .auto_assign(&pools, &V4, Owner::new("c9", "h1"))
        .unwrap_err();
    assert_eq!(
        e,
        IpamError::PoolsFull {
            pools: vec![net("10.0.0.0/30")],
            used: 3,
            capacity: 3
        }
    );
    assert!(
        e.to_string().contains("pool 10.0.0.0/30 is full (3 of 3"),
        "{e}"
    );
    assert_eq!(
        st.usage(&pools[0]),
        PoolUsage {
            capacity: 3,
            used: 3,
            blocks: 1
        }
    );
}

#[test]
fn tiny_v6_pool_and_slash31() {
    let pools = [pool("fd00::/126"), pool("10.9.9.0/31")];
    let mut st = IpamState::default();
    let got: Vec<IpAddr> = (0..3)
        .map(|i| auto(&mut st, &pools, V6, "h1", &format!("c{i}")).ip)
        .collect();
    assert_eq!(got, [ip("fd00::1"), ip("fd00::2"), ip("fd00::3")]);
    assert!(matches!(
        st.auto_assign(&pools, &V6, Owner::new("x", "h1")),
        Err(IpamError::PoolsFull { .. })
    ));
    assert_eq!(auto(&mut st, &pools, V4, "h1", "y").ip, ip("10.9.9.1"));
    assert!(matches!(
        st.auto_assign(&pools, &V4, Owner::new("z", "h1")),
        Err(IpamError::PoolsFull { .. })
    ));
}

#[test]
fn full_pool_of_many_blocks_and_multiple_pools() {
    let pools = [pool("10.0.0.0/24"), pool("10.1.0.0/30")];
    let mut st = IpamState::default();
    let mut seen = HashSet::new();
    for i in 0..(255 + 3) {
        let a = auto(
            &mut st,
            &pools,
            V4,
            ["h1", "h2", "h3"][i % 3],
            &format!("c{i}"),
        );
        assert!(seen.insert(a.ip), "duplicate {}", a.ip);
    }
    assert!(!seen.contains(&ip("10.0.0.0")) && !seen.contains(&ip("10.1.0.0")));
    assert_eq!(st.blocks.len(), 5, "four /26 blocks and the /30");
    let e = st
        .auto_assign(&pools, &V4, Owner::new("c", "h4"))
        .unwrap_err();
    assert_eq!(
        e,
        IpamError::PoolsFull {
            pools: vec![net("10.0.0.0/24"), net("10.1.0.0/30")],
            used: 258,
            capacity: 258
        }
    );
}

#[test]
fn blocks_are_per_host() {
    let pools = [pool("10.0.0.0/16")];
    let mut st = IpamState::default();
    let a1 = auto(&mut st, &pools, V4, "h1", "a1");
    let b1 = auto(&mut st, &pools, V4, "h2", "b1");
    let a2 = auto(&mut st, &pools, V4, "h1", "a2");
    assert_eq!(
        (a1.ip, a1.block, a1.host_route),
        (ip("10.0.0.1"), net("10.0.0.0/26"), false)
    );
    assert_eq!(
        (b1.ip, b1.block, b1.host_route),
        (ip("10.0.0.64"), net("10.0.0.64/26"), false)
    );
    assert_eq!(a2.ip, ip("10.0.0.2"));
    assert_eq!(
        a1.change.before, None,
        "a new block is created, not updated"
    );
    for i in 3..64 {
        assert_eq!(
            auto(&mut st, &pools, V4, "h1", &format!("a{i}")).block,
            net("10.0.0.0/26")
        );
    }
    let next = auto(&mut st, &pools, V4, "h1", "a64");
    assert_eq!(
        (next.ip, next.block),
        (ip("10.0.0.128"), net("10.0.0.128/26")),
        "full block → claim a new one"
    );
    let r = st.routes_for_host("h1");
    assert_eq!(r.blocks, [net("10.0.0.0/26"), net("10.0.0.128/26")]);
    assert!(r.host_routes.is_empty());
    assert_eq!(st.routes_for_host("h2").blocks, [net("10.0.0.64/26")]);
    let v6 = [pool("fd80:24e2:f998:72d6::/64")];
    let mut st6 = IpamState::default();
    assert_eq!(
        auto(&mut st6, &v6, V6, "h1", "x").block,
        net("fd80:24e2:f998:72d6::/122")
    );
    assert_eq!(
        auto(&mut st6, &v6, V6, "h2", "y").block,
        net("fd80:24e2:f998:72d6::40/122")
    );
}

#[test]
fn borrowing_when_every_block_is_claimed() {
    let pools = [pool("10.0.0.0/30")];
    let mut st = IpamState::default();
    auto(&mut st, &pools, V4, "h1", "a");
    let b = auto(&mut st, &pools, V4, "h2", "b");
    assert_eq!((b.ip, b.host_route), (ip("10.0.0.2"), true));
    let r = st.routes_for_host("h2");
    assert!(r.blocks.is_empty());
    assert_eq!(r.host_routes, [ip("10.0.0.2")]);
}

#[test]
fn release_and_reuse() {
    let pools = [pool("10.0.0.0/29")];
    let mut st = IpamState::default();
    for i in 0..7 {
        auto(&mut st, &pools, V4, "h1", &format!("c{i}"));
    }
    let r = st.release(ip("10.0.0.3")).unwrap();
    assert_eq!(r.owner, Owner::new("c2", "h1"));
    st.apply(&r.change);
    assert_eq!(st.holder(ip("10.0.0.3")), None);
    assert_eq!(
        st.release(ip("10.0.0.3")).unwrap_err(),
        IpamError::NotAssigned(ip("10.0.0.3"))
    );
    assert_eq!(
        st.release(ip("192.0.2.1")).unwrap_err(),
        IpamError::NotAssigned(ip("192.0.2.1"))
    );
    assert_eq!(
        auto(&mut st, &pools, V4, "h1", "new").ip,
        ip("10.0.0.3"),
        "the freed address is reused"
    );
    // Releasing everything keeps the host's block (its affinity), with no stale owners.
    for a in 1..8 {
        let r = st.release(ip(&format!("10.0.0.{a}"))).unwrap();
        st.apply(&r.change);
    }
    let b = &st.blocks[&net("10.0.0.0/29")];
    assert_eq!(
        (b.used(), b.attributes.len(), b.affinity.as_deref()),
        (0, 0, Some("h1"))
    );
}

#[test]
fn explicit_assignment() {
    let mut pools = vec![pool("10.65.0.0/16"), pool("10.66.0.0/16")];
    let mut st = IpamState::default();
    auto(&mut st, &pools, V4, "h1", "a");
    // In another host's block: borrowed, announced as a host route.
    let e = st
        .assign_ip(&pools, ip("10.65.0.7"), Owner::new("x", "h2"))
        .unwrap();
    assert!(e.host_route);
    st.apply(&e.change);
    assert_eq!(st.routes_for_host("h2").host_routes, [ip("10.65.0.7")]);
    let h = st.holder(ip("10.65.0.7")).unwrap();
    assert_eq!(
        (h.owner.handle_id.as_str(), h.block_affinity),
        ("x", Some("h1"))
    );
    // In no block yet: the block is claimed for the requesting host.
    let e = st
        .assign_ip(&pools, ip("10.65.1.7"), Owner::new("y", "h2"))
        .unwrap();
    assert_eq!(
        (e.block, e.host_route, e.change.before.is_none()),
        (net("10.65.1.0/26"), false, true)
    );
    st.apply(&e.change);
    // Auto-assignment for h1 skips addresses taken explicitly.
    for i in 0..10 {
        let a = auto(&mut st, &pools, V4, "h1", &format!("b{i}"));
        assert_ne!(a.ip, ip("10.65.0.7"));
    }
    // Errors.
    let err = st
        .assign_ip(&pools, ip("10.65.0.7"), Owner::new("z", "h3"))
        .unwrap_err();
    assert_eq!(
        err,
        IpamError::InUse {
            ip: ip("10.65.0.7"),
            handle_id: "x".into(),
            host: "h2".into()
        }
    );
    assert_eq!(
        st.assign_ip(&pools, ip("192.0.2.1"), Owner::new("z", "h3"))
            .unwrap_err(),
        IpamError::NotInPool(ip("192.0.2.1"))
    );
    assert_eq!(
        st.assign_ip(&pools, ip("10.65.0.0"), Owner::new("z", "h3"))
            .unwrap_err(),
        IpamError::NetworkAddress {
            ip: ip("10.65.0.0"),
            pool: net("10.65.0.0/16")
        }
    );
    assert!(
        st.assign_ip(&pools, ip("10.65.0.64"), Owner::new("z", "h3"))
            .is_ok(),
        "only the pool's .0 is reserved"
    );
    pools[1].disabled = true;
    assert_eq!(
        st.assign_ip(&pools, ip("10.66.0.5"), Owner::new("z", "h3"))
            .unwrap_err(),
        IpamError::PoolDisabled(net("10.66.0.0/16"))
    );
    // Nothing was changed by the failures.
    assert_eq!(st.holder(ip("10.65.0.7")).unwrap().owner.handle_id, "x");
}

#[test]
fn selectors_and_requests() {
    let mut pools = vec![pool("10.0.0.0/24"), pool("10.1.0.0/24"), pool("fd00::/64")];
    let st = IpamState::default();
    let o = || Owner::new("c", "h");
    assert_eq!("auto".parse::<PoolSelector>(), Ok(V4));
    assert_eq!("IPv4".parse::<PoolSelector>(), Ok(V4));
    assert_eq!("ipv6".parse::<PoolSelector>(), Ok(V6));
    assert_eq!(
        "10.1.0.0/24".parse::<IpRequest>(),
        Ok(IpRequest::Auto(PoolSelector::Pool(net("10.1.0.0/24"))))
    );
    assert_eq!(
        "10.1.0.9".parse::<IpRequest>(),
        Ok(IpRequest::Explicit(ip("10.1.0.9")))
    );
    assert!(matches!(
        "bogus".parse::<IpRequest>(),
        Err(IpamError::BadRequest(_))
    ));
    let a = st
        .assign(&pools, &"10.1.0.0/24".parse().unwrap(), o())
        .unwrap();
    assert_eq!(a.ip, ip("10.1.0.1"));
    assert_eq!(
        st.assign(&pools, &"ipv6".parse().unwrap(), o()).unwrap().ip,
        ip("fd00::1")
    );
    assert_eq!(
        st.assign(&pools, &"10.1.0.9".parse().unwrap(), o())
            .unwrap()
            .ip,
        ip("10.1.0.9")
    );
    assert_eq!(
        st.auto_assign(&pools, &PoolSelector::Pool(net("10.2.0.0/24")), o())
            .unwrap_err(),
        IpamError::UnknownPool(net("10.2.0.0/24"))
    );
    pools[0].disabled = true;
    assert_eq!(
        st.auto_assign(&pools, &V4, o()).unwrap().ip,
        ip("10.1.0.1"),
        "disabled pools are skipped"
    );
    assert_eq!(
        st.auto_assign(&pools, &PoolSelector::Pool(net("10.0.0.0/24")), o())
            .unwrap_err(),
        IpamError::PoolDisabled(net("10.0.0.0/24"))
    );
    pools.pop();
    assert_eq!(
        st.auto_assign(&pools, &V6, o()).unwrap_err(),
        IpamError::NoPool(IpVersion::V6)
    );
}

#[test]
fn release_handle_and_host_affinity() {
    let pools = [pool("10.0.0.0/24"), pool("fd00::/120")];
    let mut st = IpamState::default();
    auto(&mut st, &pools, V4, "h1", "c1");
    auto(&mut st, &pools, V4, "h1", "c2");
    auto(&mut st, &pools, V4, "h1", "c1");
    auto(&mut st, &pools, V6, "h1", "c1");
    let e = st
        .assign_ip(&pools, ip("10.0.0.200"), Owner::new("c1", "h2"))
        .unwrap();
    st.apply(&e.change);
    let mut ips = st.ips_of_handle("c1");
    ips.sort();
    assert_eq!(
        ips,
        [
            ip("10.0.0.1"),
            ip("10.0.0.3"),
            ip("10.0.0.200"),
            ip("fd00::1")
        ]
    );
    let (released, changes) = st.release_handle("c1");
    assert_eq!(released.len(), 4);
    assert_eq!(changes.len(), 3, "one change per touched block");
    for c in &changes {
        st.apply(c);
    }
    assert!(st.ips_of_handle("c1").is_empty());
    assert_eq!(st.holder(ip("10.0.0.2")).unwrap().owner.handle_id, "c2");
    let changes = st.release_host_affinity("h1");
    for c in &changes {
        st.apply(c);
    }
    assert_eq!(
        st.blocks.len(),
        2,
        "the emptied v6 block is gone; the v4 block keeps c2 without affinity"
    );
    assert_eq!(st.blocks[&net("10.0.0.0/26")].affinity, None);
    assert_eq!(st.routes_for_host("h1").host_routes, [ip("10.0.0.2")]);
    // Releasing the last address of a block without affinity deletes it.
    let r = st.release(ip("10.0.0.2")).unwrap();
    assert_eq!(r.change.after, None);
}

#[test]
fn state_json_round_trip() {
    let pools = [pool("10.0.0.0/24"), pool("fd00::/64")];
    let mut st = IpamState::default();
    auto(&mut st, &pools, V4, "h1", "c1");
    auto(&mut st, &pools, V6, "h2", "c2");
    let v = serde_json::to_value(&st).unwrap();
    assert_eq!(v["blocks"]["10.0.0.0/26"]["affinity"], "host:h1");
    assert_eq!(v["blocks"]["fd00::/122"]["allocations"][1], 0);
    assert_eq!(serde_json::from_value::<IpamState>(v).unwrap(), st);
}

#[test]
fn stale_blocks_are_skipped_or_reported() {
    // A block left from an earlier, smaller pool inside a new larger pool.
    let mut st = IpamState::default();
    let small = [pool("10.0.0.0/30")];
    auto(&mut st, &small, V4, "h1", "old");
    let big = [pool("10.0.0.0/24")];
    let a = auto(&mut st, &big, V4, "h2", "new");
    assert_eq!(
        a.block,
        net("10.0.0.64/26"),
        "the first /26 overlaps the old /30 and is skipped"
    );
    let err = st
        .assign_ip(&big, ip("10.0.0.9"), Owner::new("x", "h3"))
        .unwrap_err();
    assert_eq!(
        err,
        IpamError::BlockConflict {
            existing: net("10.0.0.0/30"),
            wanted: net("10.0.0.0/26"),
            pool: net("10.0.0.0/24")
        }
    );
}

#[derive(Debug, Clone)]
enum Op {
    Auto(usize),
    Explicit(usize, u8),
    Release(usize),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn no_duplicates_under_many_operations(ops in prop::collection::vec(prop_oneof![
        4 => (0..4usize).prop_map(Op::Auto),
        1 => (0..4usize, any::<u8>()).prop_map(|(h, b)| Op::Explicit(h, b)),
        2 => any::<usize>().prop_map(Op::Release),
    ], 1..300)) {
        let pools = [pool("10.0.0.0/25"), pool("10.0.1.0/30")];
        let mut st = IpamState::default();
        let mut held: Vec<IpAddr> = Vec::new();
        for (n, op) in ops.iter().enumerate() {
            let host = |h: usize| format!("h{h}");
            let res = match op {
                Op::Auto(h) => st.auto_assign(&pools, &V4, Owner::new(format!("c{n}"), host(*h))),
                Op::Explicit(h, b) => st.assign_ip(&pools, ip(&format!("10.0.0.{}", b & 127)), Owner::new(format!("c{n}"), host(*h))),
                Op::Release(i) if !held.is_empty() => {
                    let ip = held.swap_remove(i % held.len());
                    let r = st.release(ip).unwrap();
                    st.apply(&r.change);
                    continue;
                }
                Op::Release(_) => continue,
            };
            match res {
                Ok(a) => {
                    prop_assert!(!held.contains(&a.ip), "{} handed out twice", a.ip);
                    prop_assert!(a.ip != ip("10.0.0.0") && a.ip != ip("10.0.1.0"));
                    prop_assert!(pools.iter().any(|p| p.cidr.contains(&a.ip)));
                    st.apply(&a.change);
                    held.push(a.ip);
                }
                Err(IpamError::PoolsFull { used, capacity, .. }) => {
                    prop_assert_eq!((used, capacity), (held.len() as u128, 130));
                }
                Err(IpamError::InUse { ip, .. }) => prop_assert!(held.contains(&ip)),
                Err(IpamError::NetworkAddress { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
            let total: usize = st.blocks.values().map(Block::used).sum();
            prop_assert_eq!(total, held.len());
        }
    }
}

#[test]
fn endpoint_addresses_must_be_held_by_the_workload() {
    let pools = [pool("10.0.0.0/24"), pool("fd00::/64")];
    let mut st = IpamState::default();
    let a = auto(&mut st, &pools, V4, "h1", "wl1");
    let b = auto(&mut st, &pools, V6, "h1", "wl1");
    let other = auto(&mut st, &pools, V4, "h2", "wl2");
    let mut ep = crate::model::Endpoint {
        hostname: "h1".into(),
        orchestrator: "docker".into(),
        workload_id: "wl1".into(),
        endpoint_id: "e1".into(),
        state: crate::model::EndpointState::Active,
        name: "cali0123456789a".into(),
        mac: None,
        if_name: None,
        profile_ids: vec![],
        ipv4_nets: vec![ipnet::Ipv4Net::from(match a.ip {
            IpAddr::V4(v) => v,
            _ => unreachable!(),
        })],
        ipv6_nets: vec![ipnet::Ipv6Net::from(match b.ip {
            IpAddr::V6(v) => v,
            _ => unreachable!(),
        })],
        ipv4_gateway: None,
        ipv6_gateway: None,
    };
    assert_eq!(st.check_endpoint_addresses(&ep), Ok(()));
    ep.ipv4_nets.push(match other.ip {
        IpAddr::V4(v) => v.into(),
        _ => unreachable!(),
    });
    let e = st.check_endpoint_addresses(&ep).unwrap_err();
    assert_eq!(e.field, "ipv4_nets");
    assert!(e.reason.contains("in use by wl2 on host h2"), "{e}");
    ep.ipv4_nets.pop();
    ep.ipv6_nets.push("fd00::99/128".parse().unwrap());
    let e = st.check_endpoint_addresses(&ep).unwrap_err();
    assert_eq!(e.field, "ipv6_nets");
    assert!(e.reason.contains("not assigned"), "{e}");
}
