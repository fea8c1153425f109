//! Decision process: every RFC 4271 §9.1.2.2 step deciding alone, MED within one neighbour AS, ECMP sets,
//! import defaults and loop detection.

use std::net::Ipv4Addr;

use super::*;
use crate::rib::decision::{select, Candidate, PathKind};
use crate::wire::Origin;

const STEPS: usize = 9;

/// A pair of candidates equal before `step`, the winner better at `step`, the loser better at every later one.
fn pair(step: usize) -> (Candidate, Candidate) {
    let make = |good: &dyn Fn(usize) -> bool| Candidate {
        local_pref: if good(0) { 200 } else { 100 },
        as_path_len: if good(1) { 1 } else { 3 },
        origin: if good(2) {
            Origin::Igp
        } else {
            Origin::Incomplete
        },
        med: if good(3) { 10 } else { 20 },
        neighbour_as: 65001,
        kind: if good(4) {
            PathKind::Ebgp
        } else {
            PathKind::Ibgp
        },
        router_id: if good(5) {
            Ipv4Addr::new(10, 0, 1, 1)
        } else {
            Ipv4Addr::new(10, 0, 1, 9)
        },
        cluster_len: if good(6) { 0 } else { 2 },
        peer: Some(if good(7) { ip(1) } else { ip(9) }),
        path_id: if good(8) { 1 } else { 2 },
    };
    let winner = make(&|s| s <= step);
    let loser = make(&|s| s != step);
    (winner, loser)
}

#[test]
fn every_step_decides_alone() {
    for step in 0..STEPS {
        let (w, l) = pair(step);
        assert_eq!(select(&[l, w], 1, false).best(), Some(1), "step {step}");
        assert_eq!(select(&[w, l], 1, false).best(), Some(0), "step {step}");
    }
}

#[test]
fn local_routes_win_step_e() {
    let (mut w, l) = pair(4);
    w.kind = PathKind::Local;
    w.peer = None;
    assert_eq!(select(&[l, w], 4, false).multipath, vec![1]);
}

fn cand(neighbour_as: u32, med: u32, router: u8) -> Candidate {
    Candidate {
        local_pref: 100,
        as_path_len: 2,
        origin: Origin::Igp,
        med,
        neighbour_as,
        kind: PathKind::Ebgp,
        router_id: Ipv4Addr::new(10, 0, 1, router),
        cluster_len: 0,
        peer: Some(ip(router)),
        path_id: 0,
    }
}

#[test]
fn med_is_compared_only_within_the_same_neighbour_as() {
    // Different neighbour ASes: MED ignored, the router id decides.
    let a = cand(65001, 100, 1);
    let b = cand(65002, 0, 2);
    assert_eq!(select(&[b, a], 1, false).best(), Some(1));
    // Same neighbour AS: the lower MED wins over the lower router id.
    let c = cand(65001, 0, 3);
    assert_eq!(select(&[a, c], 1, false).best(), Some(1));
    // The classic case: A(65001, MED 100, id 1) is eliminated by C(65001, MED 0, id 3), leaving B (id 2).
    assert_eq!(select(&[a, b, c], 1, false).best(), Some(1));
}

#[test]
fn missing_med_counts_as_zero() {
    let mut rib = new_rib(1);
    add_up(&mut rib, 2, 65001, false);
    add_up(&mut rib, 3, 65001, false);
    let with_med = PathAttributes {
        med: Some(5),
        ..attrs(&[65001], v4(2))
    };
    rib.update(ip(2), &update(&["198.51.100.0/24"], with_med))
        .unwrap();
    rib.update(ip(3), &update(&["198.51.100.0/24"], attrs(&[65001], v4(3))))
        .unwrap();
    assert_eq!(best(&rib, "198.51.100.0/24"), Some(Source::Peer(ip(3))));
}

#[test]
fn ebgp_routes_get_local_pref_100_and_lose_to_higher_ibgp_preference() {
    let mut rib = new_rib(1);
    add_up(&mut rib, 2, 65001, false);
    add_up(&mut rib, 3, LOCAL_AS, false);
    let ebgp = PathAttributes {
        local_pref: Some(500),
        ..attrs(&[65001], v4(2))
    };
    rib.update(ip(2), &update(&["198.51.100.0/24"], ebgp))
        .unwrap();
    let r = rib.route(&pfx("198.51.100.0/24")).unwrap();
    assert_eq!(r.paths[0].attrs.attrs.local_pref, Some(100));
    let ibgp = PathAttributes {
        local_pref: Some(150),
        ..attrs(&[65010, 65011], v4(3))
    };
    rib.update(ip(3), &update(&["198.51.100.0/24"], ibgp))
        .unwrap();
    assert_eq!(best(&rib, "198.51.100.0/24"), Some(Source::Peer(ip(3))));
}

#[test]
fn originator_id_replaces_the_router_id_and_cluster_list_length_counts() {
    let mut rib = new_rib(1);
    add_up(&mut rib, 2, LOCAL_AS, false);
    add_up(&mut rib, 3, LOCAL_AS, false);
    // Peer .2 has the lower BGP id, but its route carries ORIGINATOR_ID 10.9.9.9.
    let reflected = PathAttributes {
        originator_id: Some(Ipv4Addr::new(10, 9, 9, 9)),
        cluster_list: vec![Ipv4Addr::new(10, 0, 0, 99)],
        ..attrs(&[], v4(2))
    };
    rib.update(ip(2), &update(&["198.51.100.0/24"], reflected))
        .unwrap();
    rib.update(ip(3), &update(&["198.51.100.0/24"], attrs(&[], v4(3))))
        .unwrap();
    assert_eq!(best(&rib, "198.51.100.0/24"), Some(Source::Peer(ip(3))));
    // Same originator on both: the shorter cluster list wins.
    let two = PathAttributes {
        originator_id: Some(Ipv4Addr::new(10, 9, 9, 9)),
        cluster_list: vec![Ipv4Addr::new(10, 0, 0, 98), Ipv4Addr::new(10, 0, 0, 99)],
        ..attrs(&[], v4(3))
    };
    rib.update(ip(3), &update(&["198.51.100.0/24"], two))
        .unwrap();
    assert_eq!(best(&rib, "198.51.100.0/24"), Some(Source::Peer(ip(2))));
}

#[test]
fn ecmp_sets_follow_the_neighbour_as_rule_and_the_count() {
    let mut rib = new_rib(4);
    for (last, asn) in [(2, 65001), (3, 65001), (4, 65001), (5, 65002)] {
        add_up(&mut rib, last, asn, false);
    }
    let mut fib = Vec::new();
    for (last, asn) in [(5, 65002), (4, 65001), (3, 65001), (2, 65001)] {
        let c = rib
            .update(
                ip(last),
                &update(&["198.51.100.0/24"], attrs(&[asn, 64999], v4(last))),
            )
            .unwrap();
        fib.extend(c.fib);
    }
    // .2 has the lowest BGP id; the set is the paths from 65001's, not .5 (65002) though equal.
    let r = rib.route(&pfx("198.51.100.0/24")).unwrap();
    assert_eq!(r.best().unwrap().source, Source::Peer(ip(2)));
    let want = vec![NextHop::V4(v4(2)), NextHop::V4(v4(3)), NextHop::V4(v4(4))];
    assert_eq!(r.next_hops(), want);
    assert_eq!(
        fib.last(),
        Some(&FibChange::Install {
            prefix: pfx("198.51.100.0/24"),
            next_hops: want
        })
    );
    assert!(!r
        .paths
        .iter()
        .any(|p| p.source == Source::Peer(ip(5)) && p.multipath));
    // A longer path is not equal: it leaves the set.
    let c = rib
        .update(
            ip(3),
            &update(&["198.51.100.0/24"], attrs(&[65001, 64998, 64999], v4(3))),
        )
        .unwrap();
    assert_eq!(
        c.fib,
        vec![FibChange::Install {
            prefix: pfx("198.51.100.0/24"),
            next_hops: vec![NextHop::V4(v4(2)), NextHop::V4(v4(4))]
        }]
    );
    // The count caps the set.
    let mut two = new_rib(2);
    for last in [2, 3, 4] {
        add_up(&mut two, last, LOCAL_AS, false);
        two.update(
            ip(last),
            &update(&["198.51.100.0/24"], attrs(&[65001], v4(last))),
        )
        .unwrap();
    }
    assert_eq!(
        two.route(&pfx("198.51.100.0/24"))
            .unwrap()
            .next_hops()
            .len(),
        2
    );
}

#[test]
fn loops_are_rejected_on_import() {
    let mut rib = new_rib(1);
    add_up(&mut rib, 2, 65001, false);
    add_up(&mut rib, 3, LOCAL_AS, false);
    let c = rib
        .update(
            ip(2),
            &update(
                &["198.51.100.0/24"],
                attrs(&[65001, LOCAL_AS, 65005], v4(2)),
            ),
        )
        .unwrap();
    assert!(c.fib.is_empty());
    assert!(rib.route(&pfx("198.51.100.0/24")).is_none());
    let counters = rib.counters(ip(2)).unwrap();
    assert_eq!((counters.received, counters.accepted), (1, 0));
    let own_originator = PathAttributes {
        originator_id: Some(ROUTER_ID),
        ..attrs(&[], v4(3))
    };
    rib.update(ip(3), &update(&["198.51.100.1/32"], own_originator))
        .unwrap();
    let own_cluster = PathAttributes {
        cluster_list: vec![Ipv4Addr::new(10, 0, 0, 7), ROUTER_ID],
        ..attrs(&[], v4(3))
    };
    rib.update(ip(3), &update(&["198.51.100.2/32"], own_cluster))
        .unwrap();
    let other_cluster = PathAttributes {
        cluster_list: vec![Ipv4Addr::new(10, 0, 0, 7)],
        ..attrs(&[], v4(3))
    };
    rib.update(ip(3), &update(&["198.51.100.3/32"], other_cluster))
        .unwrap();
    assert_eq!(rib.len(), 1);
    assert!(rib.route(&pfx("198.51.100.3/32")).is_some());
    // A looped re-announcement withdraws the earlier good route.
    rib.update(ip(2), &update(&["198.51.100.9/32"], attrs(&[65001], v4(2))))
        .unwrap();
    let c = rib
        .update(
            ip(2),
            &update(&["198.51.100.9/32"], attrs(&[65001, LOCAL_AS], v4(2))),
        )
        .unwrap();
    assert_eq!(
        c.fib,
        vec![FibChange::Remove {
            prefix: pfx("198.51.100.9/32")
        }]
    );
}

#[test]
fn add_path_ids_keep_paths_apart() {
    let mut rib = new_rib(2);
    add_up(&mut rib, 2, LOCAL_AS, false);
    let mut u = update(&[], attrs(&[65001], v4(10)));
    u.nlri = vec![Nlri {
        path_id: Some(1),
        prefix: pfx("198.51.100.0/24"),
    }];
    rib.update(ip(2), &u).unwrap();
    let mut u2 = update(&[], attrs(&[65001], v4(11)));
    u2.nlri = vec![Nlri {
        path_id: Some(2),
        prefix: pfx("198.51.100.0/24"),
    }];
    rib.update(ip(2), &u2).unwrap();
    let r = rib.route(&pfx("198.51.100.0/24")).unwrap();
    assert_eq!(r.paths.len(), 2);
    assert_eq!(r.paths[0].path_id, 1);
    assert_eq!(
        r.next_hops(),
        vec![NextHop::V4(v4(10)), NextHop::V4(v4(11))]
    );
    let w = Update {
        withdrawn: vec![Nlri {
            path_id: Some(1),
            prefix: pfx("198.51.100.0/24"),
        }],
        ..Update::default()
    };
    rib.update(ip(2), &w).unwrap();
    let r = rib.route(&pfx("198.51.100.0/24")).unwrap();
    assert_eq!((r.paths.len(), r.paths[0].path_id), (1, 2));
}

#[test]
fn ecmp_relax_lets_different_neighbour_ases_share_the_set() {
    let a = cand(65001, 0, 1);
    let b = cand(65002, 0, 2);
    let mut ibgp = cand(65003, 0, 3);
    ibgp.kind = PathKind::Ibgp;
    assert_eq!(select(&[b, a, ibgp], 4, false).multipath, vec![1]);
    assert_eq!(select(&[b, a, ibgp], 4, true).multipath, vec![1, 0]);
    // iBGP paths from different neighbour ASes are combined without relax.
    let mut c = cand(65001, 0, 4);
    c.kind = PathKind::Ibgp;
    assert_eq!(select(&[c, ibgp], 4, false).multipath, vec![1, 0]);
}
