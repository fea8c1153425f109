//! Export: route reflection, split horizon, well-known communities, eBGP rewriting, AS4 towards 2-byte
//! peers, locally originated routes, ADD-PATH send and grouping by attribute set.

use std::net::Ipv4Addr;

use super::*;
use crate::wire::{community, AfiSafi, AS_TRANS};

const PREFIX: &str = "198.51.100.0/24";

/// Clients .2 .3, non-clients .4 .5 (iBGP), eBGP .6 (AS 65001) and .7 (AS 65002).
fn reflector() -> Rib {
    let mut rib = new_rib(1);
    add_up(&mut rib, 2, LOCAL_AS, true);
    add_up(&mut rib, 3, LOCAL_AS, true);
    add_up(&mut rib, 4, LOCAL_AS, false);
    add_up(&mut rib, 5, LOCAL_AS, false);
    add_up(&mut rib, 6, 65001, false);
    add_up(&mut rib, 7, 65002, false);
    rib
}

fn receivers(c: &Changes) -> Vec<u8> {
    let mut v: Vec<u8> = c
        .peers
        .iter()
        .filter(|(_, u)| u.families.values().any(|f| f.announced() > 0))
        .map(|(a, _)| match a {
            IpAddr::V4(a) => a.octets()[3],
            IpAddr::V6(_) => 0,
        })
        .collect();
    v.sort();
    v
}

#[test]
fn client_routes_are_reflected_to_everyone_but_the_sender() {
    let mut rib = reflector();
    let c = rib
        .update(ip(2), &update(&[PREFIX], attrs(&[], v4(2))))
        .unwrap();
    assert_eq!(receivers(&c), vec![3, 4, 5, 6, 7]);
    let (ann, _) = sent(&c, ip(3));
    let a = &ann[0].1;
    assert_eq!(a.attrs.originator_id, Some(Ipv4Addr::new(10, 0, 1, 2)));
    assert_eq!(a.attrs.cluster_list, vec![ROUTER_ID]);
    assert_eq!(a.next_hop, nh(v4(2)));
    assert_eq!(a.attrs.local_pref, Some(100));
    // To eBGP the RR attributes are stripped.
    let (ann, _) = sent(&c, ip(6));
    assert_eq!(ann[0].1.attrs.originator_id, None);
    assert!(ann[0].1.attrs.cluster_list.is_empty());
}

#[test]
fn non_client_routes_are_reflected_to_clients_only() {
    let mut rib = reflector();
    let c = rib
        .update(ip(4), &update(&[PREFIX], attrs(&[], v4(4))))
        .unwrap();
    assert_eq!(receivers(&c), vec![2, 3, 6, 7]);
    // An existing ORIGINATOR_ID is kept; our cluster id is prepended.
    let pre = PathAttributes {
        originator_id: Some(Ipv4Addr::new(10, 7, 7, 7)),
        cluster_list: vec![Ipv4Addr::new(10, 0, 0, 50)],
        ..attrs(&[], v4(4))
    };
    let c = rib.update(ip(4), &update(&[PREFIX], pre)).unwrap();
    let (ann, _) = sent(&c, ip(2));
    assert_eq!(
        ann[0].1.attrs.originator_id,
        Some(Ipv4Addr::new(10, 7, 7, 7))
    );
    assert_eq!(
        ann[0].1.attrs.cluster_list,
        vec![ROUTER_ID, Ipv4Addr::new(10, 0, 0, 50)]
    );
}

#[test]
fn without_clients_ibgp_routes_go_to_ebgp_only() {
    let mut rib = new_rib(1);
    add_up(&mut rib, 4, LOCAL_AS, false);
    add_up(&mut rib, 5, LOCAL_AS, false);
    add_up(&mut rib, 6, 65001, false);
    let c = rib
        .update(ip(4), &update(&[PREFIX], attrs(&[], v4(4))))
        .unwrap();
    assert_eq!(receivers(&c), vec![6]);
    // eBGP-learned routes go to every iBGP peer, next hop unchanged.
    let c = rib
        .update(ip(6), &update(&["203.0.113.0/24"], attrs(&[65001], v4(6))))
        .unwrap();
    assert_eq!(receivers(&c), vec![4, 5]);
    assert_eq!(sent(&c, ip(4)).0[0].1.next_hop, nh(v4(6)));
}

#[test]
fn split_horizon_and_withdrawal_when_the_best_moves_to_the_peer() {
    let mut rib = new_rib(1);
    add_up(&mut rib, 6, 65001, false);
    add_up(&mut rib, 7, 65002, false);
    let c = rib
        .update(ip(6), &update(&[PREFIX], attrs(&[65001, 65009], v4(6))))
        .unwrap();
    assert_eq!(receivers(&c), vec![7]);
    // .7 now has the better (shorter) path: .7 must not get its own route back; ours to it is withdrawn.
    let c = rib
        .update(ip(7), &update(&[PREFIX], attrs(&[65002], v4(7))))
        .unwrap();
    assert_eq!(sent(&c, ip(7)), (vec![], vec![pfx(PREFIX)]));
    assert_eq!(
        sent(&c, ip(6)).0[0].1.attrs.as_path,
        Some(AsPath::sequence(vec![LOCAL_AS, 65002]))
    );
    assert_eq!(rib.counters(ip(7)).unwrap().advertised, 0);
    assert_eq!(rib.counters(ip(6)).unwrap().advertised, 1);
}

#[test]
fn no_export_and_no_advertise() {
    let mut rib = reflector();
    let no_export = PathAttributes {
        communities: vec![community::NO_EXPORT],
        ..attrs(&[65001], v4(6))
    };
    let c = rib.update(ip(6), &update(&[PREFIX], no_export)).unwrap();
    assert_eq!(receivers(&c), vec![2, 3, 4, 5]);
    let no_adv = PathAttributes {
        communities: vec![community::NO_ADVERTISE],
        ..attrs(&[65001], v4(6))
    };
    let c = rib.update(ip(6), &update(&[PREFIX], no_adv)).unwrap();
    assert_eq!(receivers(&c), Vec::<u8>::new());
    // The earlier advertisements are withdrawn; the route itself is still used.
    assert_eq!(sent(&c, ip(2)).1, vec![pfx(PREFIX)]);
    assert_eq!(best(&rib, PREFIX), Some(Source::Peer(ip(6))));
}

#[test]
fn ebgp_export_prepends_sets_next_hop_and_strips_med_and_local_pref() {
    let mut rib = reflector();
    let a = PathAttributes {
        med: Some(50),
        local_pref: Some(200),
        communities: vec![0xfde8_0001],
        ..attrs(&[65010], v4(2))
    };
    let c = rib.update(ip(2), &update(&[PREFIX], a)).unwrap();
    let (ann, _) = sent(&c, ip(7));
    let e = &ann[0].1;
    assert_eq!(
        e.attrs.as_path,
        Some(AsPath::sequence(vec![LOCAL_AS, 65010]))
    );
    assert_eq!(e.next_hop, nh(LOCAL_ADDR));
    assert_eq!((e.attrs.med, e.attrs.local_pref), (None, None));
    assert_eq!(e.attrs.communities, vec![0xfde8_0001]);
    // iBGP keeps MED and LOCAL_PREF.
    let (ann, _) = sent(&c, ip(3));
    assert_eq!(
        (ann[0].1.attrs.med, ann[0].1.attrs.local_pref),
        (Some(50), Some(200))
    );
    // The wire form carries the next hop in NEXT_HOP.
    let ups = c.peer(ip(7)).unwrap().to_updates();
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].attributes.next_hop, Some(LOCAL_ADDR));
    assert_eq!(ups[0].nlri, vec![Nlri::new(pfx(PREFIX))]);
}

#[test]
fn as4_towards_and_from_a_two_byte_peer() {
    let trans = u32::from(AS_TRANS);
    let mut rib = Rib::new(RibConfig::new(4_200_000_000, ROUTER_ID));
    add_up(&mut rib, 6, 65001, false);
    let mut cfg = PeerConfig::new(ip(8), 65008, IpAddr::V4(LOCAL_ADDR));
    cfg.rr_client = false;
    rib.add_peer(cfg).unwrap();
    let old = PeerSession {
        four_byte_as: false,
        ..PeerSession::new(Ipv4Addr::new(10, 0, 1, 8))
    };
    rib.peer_up(ip(8), old).unwrap();
    let c = rib
        .update(
            ip(6),
            &update(&[PREFIX], attrs(&[65001, 4_200_000_001], v4(6))),
        )
        .unwrap();
    let (ann, _) = sent(&c, ip(8));
    let a = &ann[0].1.attrs;
    assert_eq!(a.as_path, Some(AsPath::sequence(vec![trans, 65001, trans])));
    assert_eq!(
        a.as4_path,
        Some(AsPath::sequence(vec![4_200_000_000, 65001, 4_200_000_001]))
    );
    // Towards the 4-byte peer: no AS4_PATH, the real path.
    let c = rib
        .update(
            ip(8),
            &update(
                &["203.0.113.0/24"],
                PathAttributes {
                    as4_path: Some(AsPath::sequence(vec![4_200_000_005])),
                    ..attrs(&[65008, trans], v4(8))
                },
            ),
        )
        .unwrap();
    let r = rib.route(&pfx("203.0.113.0/24")).unwrap();
    assert_eq!(
        r.paths[0].attrs.attrs.as_path,
        Some(AsPath::sequence(vec![65008, 4_200_000_005]))
    );
    let (ann, _) = sent(&c, ip(6));
    assert_eq!(
        ann[0].1.attrs.as_path,
        Some(AsPath::sequence(vec![4_200_000_000, 65008, 4_200_000_005]))
    );
    assert_eq!(ann[0].1.attrs.as4_path, None);
}

#[test]
fn locally_originated_routes() {
    let mut rib = reflector();
    let c = rib.originate(
        pfx("10.65.0.0/26"),
        PathAttributes {
            origin: Some(crate::wire::Origin::Incomplete),
            communities: vec![0xfde8_0064],
            ..PathAttributes::default()
        },
    );
    assert!(c.fib.is_empty(), "local routes are not programmed");
    assert_eq!(receivers(&c), vec![2, 3, 4, 5, 6, 7]);
    let (ann, _) = sent(&c, ip(4));
    let i = &ann[0].1;
    assert_eq!(i.attrs.origin, Some(crate::wire::Origin::Igp));
    assert_eq!(i.attrs.as_path, Some(AsPath::default()));
    assert_eq!(
        (i.attrs.local_pref, i.next_hop),
        (Some(100), nh(LOCAL_ADDR))
    );
    assert_eq!(i.attrs.originator_id, None);
    let (ann, _) = sent(&c, ip(6));
    assert_eq!(
        ann[0].1.attrs.as_path,
        Some(AsPath::sequence(vec![LOCAL_AS]))
    );
    // A learned route for the same prefix loses to the local one (step e) and is not installed.
    let c = rib
        .update(ip(6), &update(&["10.65.0.0/26"], attrs(&[65001], v4(6))))
        .unwrap();
    assert!(c.fib.is_empty());
    assert_eq!(best(&rib, "10.65.0.0/26"), Some(Source::Local));
    // Withdrawing the local route: the learned one takes over, is installed and replaces ours at the peers.
    let c = rib.withdraw_local(pfx("10.65.0.0/26"));
    assert_eq!(
        c.fib,
        vec![FibChange::Install {
            prefix: pfx("10.65.0.0/26"),
            next_hops: vec![NextHop::V4(v4(6))]
        }]
    );
    assert_eq!(sent(&c, ip(6)), (vec![], vec![pfx("10.65.0.0/26")]));
    assert_eq!(sent(&c, ip(2)).0[0].1.next_hop, nh(v4(6)));
    // A peer coming up later gets the whole export.
    rib.originate(pfx("10.65.1.0/26"), PathAttributes::default());
    let c = add_up(&mut rib, 9, 65009, false);
    assert_eq!(
        sent(&c, ip(9))
            .0
            .iter()
            .map(|(p, _)| *p)
            .collect::<Vec<_>>(),
        vec![pfx("10.65.0.0/26"), pfx("10.65.1.0/26")]
    );
}

#[test]
fn add_path_send_advertises_every_path_and_groups_by_attributes() {
    let mut rib = new_rib(1);
    add_up(&mut rib, 6, 65001, false);
    add_up(&mut rib, 7, 65002, false);
    rib.add_peer(PeerConfig::new(ip(4), LOCAL_AS, IpAddr::V4(LOCAL_ADDR)))
        .unwrap();
    rib.peer_up(
        ip(4),
        PeerSession {
            add_path_send: vec![AfiSafi::IPV4_UNICAST],
            ..PeerSession::new(Ipv4Addr::new(10, 0, 1, 4))
        },
    )
    .unwrap();
    let c = rib
        .update(
            ip(6),
            &update(
                &[PREFIX, "203.0.113.0/24", "203.0.113.128/25"],
                attrs(&[65001], v4(6)),
            ),
        )
        .unwrap();
    // One group of three prefixes for .7.
    let f = &c.peer(ip(7)).unwrap().families[&AfiSafi::IPV4_UNICAST];
    assert_eq!((f.announce.len(), f.announced()), (1, 3));
    let c = rib
        .update(ip(7), &update(&[PREFIX], attrs(&[65002, 65003], v4(7))))
        .unwrap();
    let f = &c.peer(ip(4)).unwrap().families[&AfiSafi::IPV4_UNICAST];
    assert_eq!(f.announced(), 1);
    assert!(f.announce[0].1[0].path_id.is_some());
    let out = rib.adj_rib_out(ip(4)).unwrap();
    assert_eq!(out.iter().filter(|e| e.prefix == pfx(PREFIX)).count(), 2);
    // Route refresh re-sends everything, with the path ids.
    let c = rib.route_refresh(ip(4), AfiSafi::IPV4_UNICAST).unwrap();
    assert_eq!(
        c.peer(ip(4)).unwrap().families[&AfiSafi::IPV4_UNICAST].announced(),
        4
    );
}

#[test]
fn ipv6_routes_over_mp_bgp() {
    use crate::wire::{MpReach, MpUnreach};
    use std::net::Ipv6Addr;
    let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    let mut rib = new_rib(1);
    add_up(&mut rib, 6, 65001, false);
    add_up_with(&mut rib, 7, 65002, |c| c.local_v6 = Some(v6("2001:db8::1")));
    add_up(&mut rib, 8, 65003, false); // no IPv6 address towards it: no IPv6 routes
    let p6 = pfx("2001:db8:100::/48");
    let peer_nh = NextHop::V6 {
        global: v6("2001:db8::6"),
        link_local: Some(v6("fe80::6")),
    };
    let u = Update {
        attributes: PathAttributes {
            next_hop: None,
            ..attrs(&[65001], v4(6))
        },
        mp_reach: Some(MpReach {
            afi_safi: AfiSafi::IPV6_UNICAST,
            next_hop: peer_nh,
            nlri: vec![Nlri::new(p6)],
        }),
        ..Update::default()
    };
    let c = rib.update(ip(6), &u).unwrap();
    assert_eq!(
        c.fib,
        vec![FibChange::Install {
            prefix: p6,
            next_hops: vec![peer_nh]
        }]
    );
    assert!(c.peer(ip(8)).is_none());
    let ups = c.peer(ip(7)).unwrap().to_updates();
    assert_eq!(ups.len(), 1);
    let reach = ups[0].mp_reach.as_ref().unwrap();
    assert_eq!(
        reach.next_hop,
        NextHop::V6 {
            global: v6("2001:db8::1"),
            link_local: None
        }
    );
    assert_eq!(reach.nlri, vec![Nlri::new(p6)]);
    assert_eq!(ups[0].attributes.next_hop, None);
    assert!(ups[0].nlri.is_empty());
    let w = Update {
        mp_unreach: Some(MpUnreach {
            afi_safi: AfiSafi::IPV6_UNICAST,
            withdrawn: vec![Nlri::new(p6)],
        }),
        ..Update::default()
    };
    let c = rib.update(ip(6), &w).unwrap();
    assert_eq!(c.fib, vec![FibChange::Remove { prefix: p6 }]);
    let ups = c.peer(ip(7)).unwrap().to_updates();
    assert_eq!(
        ups[0].mp_unreach.as_ref().map(|u| u.withdrawn.clone()),
        Some(vec![Nlri::new(p6)])
    );
}

#[test]
fn unknown_attributes_travel_with_the_partial_bit() {
    use crate::wire::RawAttribute;
    let mut rib = new_rib(1);
    add_up(&mut rib, 6, 65001, false);
    add_up(&mut rib, 7, 65002, false);
    let a = PathAttributes {
        unknown: vec![
            RawAttribute {
                flags: 0xc0,
                type_code: 99,
                value: vec![1, 2],
            },
            RawAttribute {
                flags: 0x80,
                type_code: 98,
                value: vec![3],
            },
        ],
        ..attrs(&[65001], v4(6))
    };
    let c = rib.update(ip(6), &update(&[PREFIX], a)).unwrap();
    let (ann, _) = sent(&c, ip(7));
    assert_eq!(
        ann[0].1.attrs.unknown,
        vec![RawAttribute {
            flags: 0xe0,
            type_code: 99,
            value: vec![1, 2]
        }]
    );
}
