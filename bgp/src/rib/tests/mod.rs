//! Tests of the RIB: fixtures shared by the scenario files.
//!
//! Our speaker is AS 65000, router id 10.0.0.1, at 192.0.2.1 on the lab subnet; peers live at 192.0.2.x.

mod decision;
mod export;
mod gr;
mod layout;
mod policy;
mod prop;
mod steps;
mod throughput;

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::wire::{AsPath, NextHop, Nlri, Origin, PathAttributes, Prefix, Update};

pub(super) const LOCAL_AS: u32 = 65000;
pub(super) const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub(super) const LOCAL_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

pub(super) fn pfx(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
}

pub(super) fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

pub(super) fn v4(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, last)
}

pub(super) fn new_rib(ecmp: usize) -> Rib {
    Rib::new(RibConfig {
        ecmp,
        ..RibConfig::new(LOCAL_AS, ROUTER_ID)
    })
}

/// Add a peer at 192.0.2.`last` with BGP id 10.0.1.`last` and bring its session up.
pub(super) fn add_up(rib: &mut Rib, last: u8, asn: u32, rr_client: bool) -> Changes {
    add_up_with(rib, last, asn, |c| {
        c.rr_client = rr_client;
    })
}

pub(super) fn add_up_with(
    rib: &mut Rib,
    last: u8,
    asn: u32,
    f: impl FnOnce(&mut PeerConfig),
) -> Changes {
    let mut cfg = PeerConfig::new(ip(last), asn, IpAddr::V4(LOCAL_ADDR));
    f(&mut cfg);
    rib.add_peer(cfg).unwrap();
    rib.peer_up(ip(last), PeerSession::new(Ipv4Addr::new(10, 0, 1, last)))
        .unwrap()
}

/// Attributes as a peer sends them: ORIGIN IGP, this AS path, next hop.
pub(super) fn attrs(path: &[u32], next_hop: Ipv4Addr) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(path.to_vec())),
        next_hop: Some(next_hop),
        ..PathAttributes::default()
    }
}

pub(super) fn update(prefixes: &[&str], attributes: PathAttributes) -> Update {
    Update {
        attributes,
        nlri: prefixes.iter().map(|p| Nlri::new(pfx(p))).collect(),
        ..Update::default()
    }
}

pub(super) fn withdrawal(prefixes: &[&str]) -> Update {
    Update {
        withdrawn: prefixes.iter().map(|p| Nlri::new(pfx(p))).collect(),
        ..Update::default()
    }
}

/// The source of the best path of a prefix.
pub(super) fn best(rib: &Rib, prefix: &str) -> Option<Source> {
    rib.route(&pfx(prefix))
        .and_then(|r| r.best().map(|p| p.source))
}

/// What one peer was sent for IPv4: (announced prefixes with their attributes, withdrawn prefixes).
pub(super) fn sent(changes: &Changes, peer: IpAddr) -> (Vec<(Prefix, RouteAttrs)>, Vec<Prefix>) {
    let Some(f) = changes
        .peer(peer)
        .and_then(|u| u.families.get(&crate::wire::AfiSafi::IPV4_UNICAST))
    else {
        return (Vec::new(), Vec::new());
    };
    let mut ann: Vec<(Prefix, RouteAttrs)> = f
        .announce
        .iter()
        .flat_map(|(a, n)| n.iter().map(|n| (n.prefix, (**a).clone())))
        .collect();
    ann.sort_by_key(|(p, _)| *p);
    (ann, f.withdraw.iter().map(|n| n.prefix).collect())
}

pub(super) fn nh(a: Ipv4Addr) -> Option<NextHop> {
    Some(NextHop::V4(a))
}

#[test]
fn fib_state_is_what_the_kernel_should_hold_now() {
    let mut rib = new_rib(4);
    add_up(&mut rib, 1, 65010, false);
    add_up(&mut rib, 2, 65010, false);
    let p = pfx("10.96.0.1/32");
    assert_eq!(rib.fib_state(&p), FibChange::Remove { prefix: p });
    rib.update(ip(1), &update(&["10.96.0.1/32"], attrs(&[65010], v4(1))))
        .unwrap();
    rib.update(ip(2), &update(&["10.96.0.1/32"], attrs(&[65010], v4(2))))
        .unwrap();
    let FibChange::Install { next_hops, .. } = rib.fib_state(&p) else {
        panic!("no route for {p:?}");
    };
    let mut got: Vec<NextHop> = next_hops;
    got.sort_by_key(|n| format!("{n:?}"));
    assert_eq!(got, vec![NextHop::V4(v4(1)), NextHop::V4(v4(2))]);
    rib.update(ip(1), &withdrawal(&["10.96.0.1/32"])).unwrap();
    rib.update(ip(2), &withdrawal(&["10.96.0.1/32"])).unwrap();
    assert_eq!(rib.fib_state(&p), FibChange::Remove { prefix: p });
}
