//! The memory layout: a regression bound on bytes per route, no heap allocation per prefix for one path, and
//! peer slots (what Loc-RIB paths name their peer by) reused safely after a peer's removal.

use std::mem::size_of;
use std::net::Ipv4Addr;

use super::*;
use crate::rib::dest::{Dest, Paths};

#[test]
fn hundred_thousand_slash_32s_from_one_peer_stay_compact() {
    const N: u32 = 100_000;
    assert!(size_of::<(Prefix, Dest)>() <= 56);
    let mut rib = new_rib(1);
    add_up(&mut rib, 6, 65001, false);
    let empty = rib.memory_estimate();
    for from in (0..N).step_by(1000) {
        let nlri = (from..from + 1000)
            .map(|i| {
                let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + i);
                Nlri::new(Prefix::new(IpAddr::V4(a), 32).unwrap())
            })
            .collect();
        let u = Update {
            nlri,
            ..update(&[], attrs(&[65001], v4(6)))
        };
        rib.update(ip(6), &u).unwrap();
    }
    assert_eq!(rib.len(), N as usize);
    assert_eq!(rib.counters(ip(6)).unwrap().accepted, N as usize);
    // One path per prefix: held inline in the hash table entry.
    let heap: usize = rib.loc.values().map(|d| Paths::heap_bytes(&d.paths)).sum();
    assert_eq!(heap, 0);
    // 131,072 buckets of a 32-byte entry (its key inside) and a control byte: 43.3 bytes per route. With the
    // key beside the entry it was 53.7; the old layout (separate Adj-RIB-In, a Vec per prefix, 18-byte keys)
    // was about 170.
    let per_route = (rib.memory_estimate() - empty) as f64 / f64::from(N);
    assert!(per_route <= 45.0, "{per_route:.1} bytes/route");
}

#[test]
fn the_adj_rib_out_holds_one_path_inline() {
    // A prefix advertised with one path costs its hash table entry only: no heap allocation.
    let mut rib = new_rib(1);
    for i in 0..1000u32 {
        let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + i);
        rib.originate(
            Prefix::new(IpAddr::V4(a), 32).unwrap(),
            PathAttributes::default(),
        );
    }
    add_up(&mut rib, 6, 65001, false);
    let p = &rib.peers[&ip(6)];
    assert_eq!(p.adj_out.len(), 1000);
    assert!(p.adj_out.iter().all(|(_, s)| s.len() == 1));
    // 17 bytes a bucket (16 for the entry): 35 KB for these 1,000 in 16 tables of 128 buckets, where a
    // `HashMap<Prefix, Sent>` took 2,048 buckets of 49 bytes (100 KB).
    assert!(
        p.adj_out.heap_bytes() <= 1000 * 36,
        "{}",
        p.adj_out.heap_bytes()
    );
}

#[test]
fn a_removed_peers_slot_is_reused_without_confusion() {
    let mut rib = new_rib(2);
    add_up(&mut rib, 2, 65002, false);
    add_up(&mut rib, 3, 65003, false);
    rib.update(
        ip(2),
        &update(
            &["198.51.100.0/24", "203.0.113.0/24"],
            attrs(&[65002], v4(2)),
        ),
    )
    .unwrap();
    rib.update(
        ip(3),
        &update(&["198.51.100.0/24"], attrs(&[65003, 64999], v4(3))),
    )
    .unwrap();
    let old_slot = rib.peers[&ip(2)].slot;
    let c = rib.remove_peer(ip(2)).unwrap();
    assert_eq!(c.fib.len(), 2);
    assert_eq!(best(&rib, "198.51.100.0/24"), Some(Source::Peer(ip(3))));
    assert!(rib.route(&pfx("203.0.113.0/24")).is_none());

    // The new peer takes the freed slot and owns none of the old peer's routes.
    add_up(&mut rib, 4, 65004, false);
    assert_eq!(rib.peers[&ip(4)].slot, old_slot);
    assert_eq!(rib.adj_rib_in(ip(4)).unwrap(), vec![]);
    assert_eq!(rib.counters(ip(4)).unwrap().accepted, 0);
    assert_eq!(rib.route(&pfx("198.51.100.0/24")).unwrap().paths.len(), 1);

    rib.update(
        ip(4),
        &update(
            &["198.51.100.0/24", "203.0.113.0/24"],
            attrs(&[65004], v4(4)),
        ),
    )
    .unwrap();
    assert_eq!(best(&rib, "203.0.113.0/24"), Some(Source::Peer(ip(4))));
    let r = rib.route(&pfx("198.51.100.0/24")).unwrap();
    let sources: Vec<Source> = r.paths.iter().map(|p| p.source).collect();
    assert_eq!(sources, [Source::Peer(ip(4)), Source::Peer(ip(3))]);
    assert_eq!(rib.adj_rib_in(ip(4)).unwrap().len(), 2);
    assert_eq!(rib.adj_rib_in(ip(3)).unwrap().len(), 1);
    assert_eq!(rib.counters(ip(3)).unwrap().accepted, 1);
    assert_eq!(rib.counters(ip(4)).unwrap().accepted, 2);

    // A third peer gets a new slot.
    add_up(&mut rib, 5, 65005, false);
    assert!(![old_slot, rib.peers[&ip(3)].slot].contains(&rib.peers[&ip(5)].slot));
}
