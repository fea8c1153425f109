//! Property test: for random sequences of store writes (endpoints added, removed, their profile lists
//! changed, also two endpoints sharing an id and malformed values; profiles' tags and rules; pools;
//! hosts, their peers, AS and route-reflector role (also malformed); the global BGP settings; IPAM assignments and releases; several writes
//! in one transaction), the deltas two subscribed nodes receive fold to exactly the state a fresh
//! snapshot gives, after every step, and the hub's snapshot equals both the oracle's and a newly
//! loaded hub's.

use std::{net::IpAddr, sync::Arc};

use ipnet::IpNet;
use proptest::prelude::*;
use serde_json::json;

use super::{
    oracle::{endpoint, expected, fold},
    NodeState, SyncConfig, SyncHub, SyncMessage,
};
use crate::{
    ipam::{Block, IpamState, Owner},
    model::{Action, IpPool, IpVersion, Rule},
    store::{
        keys::{block_prefix, Key},
        EmbeddedOptions, EmbeddedStore, Op, Store, Txn,
    },
};

const HOSTS: [&str; 3] = ["a", "b", "c"];
const PROFILES: [&str; 3] = ["p0", "p1", "p2"];
const TAGS: [&str; 3] = ["t0", "t1", "p0"];
const POOLS: [&str; 3] = ["10.65.0.0/24", "10.66.0.0/24", "fd00::/120"];
const ADDRS: [&str; 10] = [
    "10.65.0.1",
    "10.65.0.2",
    "10.65.0.65",
    "10.65.0.66",
    "10.65.0.130",
    "10.66.0.5",
    "fd00::5",
    "fd00::45",
    "10.65.0.3",
    "fd00::6",
];

/// A rule: allow (else deny), source tag, destination tag (indexes into [`TAGS`]).
type RuleSpec = (bool, Option<usize>, Option<usize>);

#[derive(Debug, Clone)]
enum Write {
    PutEndpoint {
        host: usize,
        id: usize,
        workload: usize,
        profiles: Vec<usize>,
        addrs: Vec<usize>,
    },
    DeleteEndpoint {
        host: usize,
        id: usize,
        workload: usize,
    },
    MalformedEndpoint {
        host: usize,
        id: usize,
    },
    ProfileTags {
        p: usize,
        tags: Option<Vec<usize>>,
    },
    ProfileRules {
        p: usize,
        rules: Option<Vec<RuleSpec>>,
    },
    Pool {
        i: usize,
        on: bool,
        nat: bool,
    },
    HostIp {
        host: usize,
        ip: Option<u8>,
    },
    HostAs {
        host: usize,
        asn: Option<u32>,
    },
    HostPeer {
        host: usize,
        peer: u8,
        on: bool,
    },
    /// `None`: not a reflector; `Some(None)`: a malformed value; `Some(Some(n))`: `n` clients.
    HostRr {
        host: usize,
        rr: Option<Option<u8>>,
    },
    GlobalAs(Option<u32>),
    Mesh(Option<bool>),
    GlobalPeer {
        peer: u8,
        on: bool,
    },
    Assign {
        addr: usize,
        host: usize,
    },
    Release {
        addr: usize,
    },
    /// A Felix setting (index into [`CONFIG_KEYS`]), cluster-wide (`host: None`) or for a host;
    /// `value: None` deletes it.
    Config {
        host: Option<usize>,
        key: usize,
        value: Option<u8>,
    },
    Batch(Vec<Write>),
}

const CONFIG_KEYS: [&str; 2] = ["DefaultEndpointToHostAction", "LogSeverityScreen"];

fn single() -> impl Strategy<Value = Write> {
    let h = 0..HOSTS.len();
    let id = 0..5usize;
    prop_oneof![
        4 => (h.clone(), id.clone(), 0..2usize, prop::collection::vec(0..PROFILES.len(), 0..3), prop::collection::vec(0..ADDRS.len(), 0..3))
            .prop_map(|(host, id, workload, profiles, addrs)| Write::PutEndpoint { host, id, workload, profiles, addrs }),
        2 => (h.clone(), id.clone(), 0..2usize).prop_map(|(host, id, workload)| Write::DeleteEndpoint { host, id, workload }),
        1 => (h.clone(), id).prop_map(|(host, id)| Write::MalformedEndpoint { host, id }),
        2 => (0..PROFILES.len(), prop::option::weighted(0.8, prop::collection::vec(0..TAGS.len(), 0..3)))
            .prop_map(|(p, tags)| Write::ProfileTags { p, tags }),
        2 => (0..PROFILES.len(), prop::option::weighted(0.8, prop::collection::vec(
                (any::<bool>(), prop::option::of(0..TAGS.len()), prop::option::of(0..TAGS.len())), 0..3)))
            .prop_map(|(p, rules)| Write::ProfileRules { p, rules }),
        1 => (0..POOLS.len(), any::<bool>(), any::<bool>()).prop_map(|(i, on, nat)| Write::Pool { i, on, nat }),
        1 => (h.clone(), prop::option::of(1..4u8)).prop_map(|(host, ip)| Write::HostIp { host, ip }),
        1 => (h.clone(), prop::option::of(64512..64515u32)).prop_map(|(host, asn)| Write::HostAs { host, asn }),
        1 => (h.clone(), 1..3u8, any::<bool>()).prop_map(|(host, peer, on)| Write::HostPeer { host, peer, on }),
        1 => (h.clone(), prop::option::of(prop::option::weighted(0.8, 0..3u8)))
            .prop_map(|(host, rr)| Write::HostRr { host, rr }),
        1 => prop::option::of(64512..64515u32).prop_map(Write::GlobalAs),
        1 => prop::option::of(any::<bool>()).prop_map(Write::Mesh),
        1 => (1..3u8, any::<bool>()).prop_map(|(peer, on)| Write::GlobalPeer { peer, on }),
        3 => (0..ADDRS.len(), h.clone()).prop_map(|(addr, host)| Write::Assign { addr, host }),
        2 => (0..ADDRS.len()).prop_map(|addr| Write::Release { addr }),
        2 => (prop::option::of(h.clone()), 0..CONFIG_KEYS.len(), prop::option::weighted(0.7, 0..3u8))
            .prop_map(|(host, key, value)| Write::Config { host, key, value }),
    ]
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        8 => single(),
        1 => prop::collection::vec(single(), 2..4).prop_map(Write::Batch),
    ]
}

fn addr(i: usize) -> IpAddr {
    ADDRS[i].parse().unwrap()
}

fn ipam(store: &dyn Store) -> IpamState {
    let mut s = IpamState::default();
    for v in [IpVersion::V4, IpVersion::V6] {
        for kv in store.list(&block_prefix(v)).unwrap().kvs {
            let b: Block = serde_json::from_slice(&kv.value).unwrap();
            s.blocks.insert(b.cidr, b);
        }
    }
    s
}

fn block_op(b: Option<Block>, cidr: IpNet) -> Op {
    match b {
        Some(b) => Op::put(b.etcd_key(), serde_json::to_vec(&b).unwrap()),
        None => Op::delete(Block::etcd_key_for(&cidr)),
    }
}

/// The ops of one write (empty when it is a no-op, e.g. assigning a taken address).
fn ops(store: &dyn Store, w: &Write) -> Vec<Op> {
    let ep_key = |host: usize, id: usize, workload: usize| {
        let mut e = endpoint(HOSTS[host], &format!("e{id}"), &[], &[]);
        e.workload_id = format!("w{workload}");
        e
    };
    match w {
        Write::PutEndpoint {
            host,
            id,
            workload,
            profiles,
            addrs,
        } => {
            let mut e = ep_key(*host, *id, *workload);
            let ips: Vec<IpAddr> = addrs.iter().map(|i| addr(*i)).collect();
            let full = endpoint(HOSTS[*host], &e.endpoint_id, &[], &ips);
            e.ipv4_nets = full.ipv4_nets;
            e.ipv6_nets = full.ipv6_nets;
            e.ipv4_nets.sort();
            e.ipv4_nets.dedup();
            e.ipv6_nets.sort();
            e.ipv6_nets.dedup();
            e.profile_ids = profiles.iter().map(|p| PROFILES[*p].to_owned()).collect();
            vec![Op::put(
                Key::endpoint(&e).path(),
                e.etcd_value().to_string(),
            )]
        }
        Write::DeleteEndpoint { host, id, workload } => {
            vec![Op::delete(
                Key::endpoint(&ep_key(*host, *id, *workload)).path(),
            )]
        }
        Write::MalformedEndpoint { host, id } => {
            vec![Op::put(
                Key::endpoint(&ep_key(*host, *id, 0)).path(),
                "{not json",
            )]
        }
        Write::ProfileTags { p, tags } => {
            let key = Key::ProfileTags {
                profile: PROFILES[*p].into(),
            }
            .path();
            match tags {
                None => vec![Op::delete(key)],
                Some(t) => {
                    let mut names: Vec<&str> = t.iter().map(|i| TAGS[*i]).collect();
                    names.dedup();
                    vec![Op::put(key, json!(names).to_string())]
                }
            }
        }
        Write::ProfileRules { p, rules } => {
            let key = Key::ProfileRules {
                profile: PROFILES[*p].into(),
            }
            .path();
            match rules {
                None => vec![Op::delete(key)],
                Some(rs) => {
                    let list: Vec<Rule> = rs
                        .iter()
                        .map(|(allow, src, dst)| {
                            let mut r =
                                Rule::new(if *allow { Action::Allow } else { Action::Deny });
                            r.src_tag = src.map(|i| TAGS[i].to_owned());
                            r.dst_tag = dst.map(|i| TAGS[i].to_owned());
                            r
                        })
                        .collect();
                    let v = json!({"id": PROFILES[*p], "inbound_rules": list, "outbound_rules": list.iter().rev().collect::<Vec<_>>()});
                    vec![Op::put(key, v.to_string())]
                }
            }
        }
        Write::Pool { i, on, nat } => {
            let mut pool = IpPool::new(POOLS[*i].parse().unwrap());
            pool.nat_outgoing = *nat;
            if *on {
                vec![Op::put(pool.etcd_key(), serde_json::to_vec(&pool).unwrap())]
            } else {
                vec![Op::delete(pool.etcd_key())]
            }
        }
        Write::HostIp { host, ip } => {
            let key = Key::HostIp {
                host: HOSTS[*host].into(),
                version: IpVersion::V4,
            }
            .path();
            match ip {
                Some(n) => vec![Op::put(key, format!("172.17.8.{n}"))],
                None => vec![Op::delete(key)],
            }
        }
        Write::HostAs { host, asn } => {
            let key = Key::HostAsNum {
                host: HOSTS[*host].into(),
            }
            .path();
            match asn {
                Some(n) => vec![Op::put(key, n.to_string())],
                None => vec![Op::delete(key)],
            }
        }
        Write::HostPeer { host, peer, on } => {
            let ip: IpAddr = format!("192.0.2.{peer}").parse().unwrap();
            let key = Key::HostPeer {
                host: HOSTS[*host].into(),
                ip,
            }
            .path();
            if *on {
                vec![Op::put(
                    key,
                    json!({"ip": ip, "as_num": 65000 + u32::from(*peer)}).to_string(),
                )]
            } else {
                vec![Op::delete(key)]
            }
        }
        Write::HostRr { host, rr } => {
            let key = Key::HostRouteReflector {
                host: HOSTS[*host].into(),
            }
            .path();
            match rr {
                None => vec![Op::delete(key)],
                Some(None) => vec![Op::put(key, "{\"cluster_id\": 7")],
                Some(Some(n)) => {
                    let clients: Vec<String> = (1..=*n).map(|i| format!("172.17.8.{i}")).collect();
                    let v =
                        json!({"cluster_id": format!("172.17.8.{}", host + 1), "clients": clients});
                    vec![Op::put(key, v.to_string())]
                }
            }
        }
        Write::GlobalAs(asn) => match asn {
            Some(n) => vec![Op::put(Key::GlobalAsNum.path(), n.to_string())],
            None => vec![Op::delete(Key::GlobalAsNum.path())],
        },
        Write::Mesh(m) => match m {
            Some(on) => vec![Op::put(
                Key::GlobalNodeMesh.path(),
                json!({ "enabled": on }).to_string(),
            )],
            None => vec![Op::delete(Key::GlobalNodeMesh.path())],
        },
        Write::GlobalPeer { peer, on } => {
            let ip: IpAddr = format!("2001:db8::{peer}").parse().unwrap();
            let key = Key::GlobalPeer { ip }.path();
            if *on {
                vec![Op::put(key, json!({"ip": ip, "as_num": 65100}).to_string())]
            } else {
                vec![Op::delete(key)]
            }
        }
        Write::Assign { addr: a, host } => {
            let pools: Vec<IpPool> = POOLS
                .iter()
                .map(|p| IpPool::new(p.parse().unwrap()))
                .collect();
            match ipam(store).assign_ip(&pools, addr(*a), Owner::new("h", HOSTS[*host])) {
                Ok(x) => vec![block_op(x.change.after, x.change.cidr)],
                Err(_) => vec![],
            }
        }
        Write::Release { addr: a } => match ipam(store).release(addr(*a)) {
            Ok(r) => vec![block_op(r.change.after, r.change.cidr)],
            Err(_) => vec![],
        },
        Write::Config { host, key, value } => {
            let name = CONFIG_KEYS[*key].to_owned();
            let key = match host {
                Some(h) => Key::HostConfig {
                    host: HOSTS[*h].to_owned(),
                    name,
                },
                None => Key::Config { name },
            }
            .path();
            vec![match value {
                Some(v) => Op::put(key, format!("v{v}")),
                None => Op::delete(key),
            }]
        }
        Write::Batch(ws) => ws.iter().flat_map(|w| ops(store, w)).collect(),
    }
}

fn run(writes: &[Write]) -> Result<(), TestCaseError> {
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::in_memory(EmbeddedOptions::default()).unwrap());
    let hub = SyncHub::new(store.clone(), SyncConfig::default()).unwrap();
    let nodes = ["a", "b"];
    let mut subs: Vec<_> = nodes.iter().map(|n| hub.subscribe(n, None)).collect();
    let mut states = vec![NodeState::default(); nodes.len()];
    for (step, w) in writes.iter().enumerate() {
        let ops = ops(store.as_ref(), w);
        if !ops.is_empty() {
            let mut txn = Txn::new();
            txn.success = ops;
            if txn.check().is_ok() {
                store.txn(txn).unwrap();
            }
        }
        hub.catch_up().unwrap();
        let fresh = SyncHub::new(store.clone(), SyncConfig::default()).unwrap();
        for ((sub, st), node) in subs.iter_mut().zip(&mut states).zip(nodes) {
            let msgs: Vec<SyncMessage> = std::iter::from_fn(|| sub.try_next()).collect();
            fold(st, &msgs);
            let want = expected(store.as_ref(), node);
            prop_assert_eq!(
                &hub.snapshot(node),
                &want,
                "hub snapshot, step {} {:?}",
                step,
                w
            );
            prop_assert_eq!(
                &fresh.snapshot(node),
                &want,
                "fresh hub, step {} {:?}",
                step,
                w
            );
            prop_assert!(st.revision <= want.revision);
            let mut folded = st.clone();
            folded.revision = want.revision;
            prop_assert_eq!(
                &folded,
                &want,
                "folded deltas, node {}, step {} {:?}",
                node,
                step,
                w
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn deltas_fold_to_a_fresh_snapshot(writes in prop::collection::vec(write(), 1..40)) {
        run(&writes)?;
    }
}
