//! Graceful restart (RFC 4724, helper side), enhanced route refresh markers, session loss and counters.

use super::*;
use crate::wire::AfiSafi;

const V4: AfiSafi = AfiSafi::IPV4_UNICAST;

fn setup() -> Rib {
    let mut rib = new_rib(1);
    add_up(&mut rib, 2, 65001, false);
    add_up(&mut rib, 3, 65002, false);
    rib.update(
        ip(2),
        &update(
            &["198.51.100.0/24", "203.0.113.0/24"],
            attrs(&[65001], v4(2)),
        ),
    )
    .unwrap();
    rib
}

#[test]
fn graceful_down_keeps_routes_stale_until_end_of_rib() {
    let mut rib = setup();
    let c = rib.peer_down(ip(2), Some(&[V4])).unwrap();
    assert!(c.fib.is_empty(), "forwarding kept");
    assert!(c.peer(ip(3)).is_none(), "nothing withdrawn from others");
    let r = rib.route(&pfx("198.51.100.0/24")).unwrap();
    assert!(r.paths[0].stale && r.paths[0].best);
    assert_eq!(rib.counters(ip(2)).unwrap().stale, 2);
    // Back up: it re-sends one of the two, then End-of-RIB sweeps the other.
    rib.peer_up(
        ip(2),
        PeerSession::new(std::net::Ipv4Addr::new(10, 0, 1, 2)),
    )
    .unwrap();
    let c = rib
        .update(ip(2), &update(&["198.51.100.0/24"], attrs(&[65001], v4(2))))
        .unwrap();
    assert!(c.fib.is_empty(), "same route: no change");
    assert!(!rib.route(&pfx("198.51.100.0/24")).unwrap().paths[0].stale);
    let c = rib.end_of_rib(ip(2), V4).unwrap();
    assert_eq!(
        c.fib,
        vec![FibChange::Remove {
            prefix: pfx("203.0.113.0/24")
        }]
    );
    assert_eq!(sent(&c, ip(3)).1, vec![pfx("203.0.113.0/24")]);
    assert_eq!(rib.counters(ip(2)).unwrap().stale, 0);
}

#[test]
fn restart_timer_expiry_sweeps_and_hard_down_flushes() {
    let mut rib = setup();
    rib.peer_down(ip(2), Some(&[V4])).unwrap();
    let c = rib.restart_timer_expired(ip(2)).unwrap();
    assert_eq!(c.fib.len(), 2);
    assert!(rib.is_empty());
    let mut rib = setup();
    // A family not preserved goes at once.
    let c = rib
        .peer_down(ip(2), Some(&[AfiSafi::IPV6_UNICAST]))
        .unwrap();
    assert_eq!(c.fib.len(), 2);
    let mut rib = setup();
    rib.peer_down(ip(2), Some(&[V4])).unwrap();
    let c = rib.peer_down(ip(2), None).unwrap();
    assert_eq!(
        c.fib.len(),
        2,
        "a non-graceful loss while stale removes them"
    );
}

#[test]
fn stale_routes_lose_to_nothing_but_better_routes() {
    let mut rib = setup();
    rib.peer_down(ip(2), Some(&[V4])).unwrap();
    // A worse route from .3 does not displace the stale best.
    let c = rib
        .update(
            ip(3),
            &update(&["198.51.100.0/24"], attrs(&[65002, 65009], v4(3))),
        )
        .unwrap();
    assert!(c.fib.is_empty());
    assert_eq!(best(&rib, "198.51.100.0/24"), Some(Source::Peer(ip(2))));
}

#[test]
fn enhanced_refresh_markers_sweep_what_was_not_resent() {
    let mut rib = setup();
    rib.refresh_marker(ip(2), V4, true).unwrap();
    rib.update(ip(2), &update(&["203.0.113.0/24"], attrs(&[65001], v4(2))))
        .unwrap();
    let c = rib.refresh_marker(ip(2), V4, false).unwrap();
    assert_eq!(
        c.fib,
        vec![FibChange::Remove {
            prefix: pfx("198.51.100.0/24")
        }]
    );
}

#[test]
fn counters_and_errors() {
    let mut rib = setup();
    let c = rib.counters(ip(2)).unwrap();
    assert_eq!(
        (c.received, c.accepted, c.advertised, c.stale),
        (2, 2, 0, 0)
    );
    assert_eq!(rib.counters(ip(3)).unwrap().advertised, 2);
    assert_eq!(rib.counters(ip(9)), Err(RibError::UnknownPeer(ip(9))));
    assert!(matches!(
        rib.update(ip(9), &Update::default()),
        Err(RibError::UnknownPeer(_))
    ));
    assert_eq!(
        rib.add_peer(PeerConfig::new(ip(2), 1, ip(1))),
        Err(RibError::DuplicatePeer(ip(2)))
    );
    assert_eq!(
        rib.reconfigure_peer(PeerConfig::new(ip(3), 65009, ip(1))),
        Err(RibError::AsChanged(ip(3)))
    );
    rib.peer_down(ip(3), None).unwrap();
    assert_eq!(rib.route_refresh(ip(3), V4), Err(RibError::PeerDown(ip(3))));
    let c = rib.remove_peer(ip(2)).unwrap();
    assert_eq!(c.fib.len(), 2);
    assert!(rib.is_empty());
    assert_eq!(rib.routes(), vec![]);
    // A treat-as-withdraw list.
    add_up(&mut rib, 4, 65004, false);
    rib.update(ip(4), &update(&["198.51.100.0/24"], attrs(&[65004], v4(4))))
        .unwrap();
    let c = rib
        .withdraw(ip(4), &[Nlri::new(pfx("198.51.100.0/24"))])
        .unwrap();
    assert_eq!(
        c.fib,
        vec![FibChange::Remove {
            prefix: pfx("198.51.100.0/24")
        }]
    );
}
