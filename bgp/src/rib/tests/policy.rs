//! Per-peer policy through the RIB: import and export filters by prefix range and community, actions, and
//! the max-prefix limit.

use std::net::Ipv4Addr;

use super::*;
use crate::wire::LargeCommunity;

fn range(s: &str) -> PrefixRange {
    s.parse().unwrap()
}

#[test]
fn import_filters_and_actions() {
    let mut rib = new_rib(1);
    let lc = LargeCommunity {
        global_admin: 65001,
        local1: 1,
        local2: 2,
    };
    let policy = Policy {
        import: vec![
            Rule::reject(Match {
                communities: vec![0xfde9_0666],
                ..Match::default()
            }),
            Rule::accept(
                Match {
                    prefixes: vec![range("10.65.0.0/16 le 32")],
                    ..Match::default()
                },
                vec![
                    Modify::SetLocalPref(300),
                    Modify::AddCommunity(0xfde8_0001),
                    Modify::RemoveCommunity(0xfde9_0002),
                ],
            ),
            Rule::accept(
                Match {
                    large_communities: vec![lc],
                    ..Match::default()
                },
                vec![Modify::RemoveLargeCommunity(lc), Modify::NextHopSelf],
            ),
            Rule::reject(Match {
                prefixes: vec![range("0.0.0.0/0 ge 25")],
                ..Match::default()
            }),
        ],
        ..Policy::default()
    };
    add_up_with(&mut rib, 2, LOCAL_AS, |c| c.policy = policy);
    let a = PathAttributes {
        communities: vec![0xfde9_0002],
        ..attrs(&[], v4(20))
    };
    rib.update(
        ip(2),
        &update(&["10.65.1.0/26", "198.51.100.0/24", "198.51.100.1/32"], a),
    )
    .unwrap();
    let r = rib.route(&pfx("10.65.1.0/26")).unwrap();
    assert_eq!(r.paths[0].attrs.attrs.local_pref, Some(300));
    assert_eq!(r.paths[0].attrs.attrs.communities, vec![0xfde8_0001]);
    let other = rib.route(&pfx("198.51.100.0/24")).unwrap();
    assert_eq!(
        other.paths[0].attrs.attrs.local_pref, None,
        "no rule: unchanged"
    );
    assert!(
        rib.route(&pfx("198.51.100.1/32")).is_none(),
        "ge 25 rejected"
    );
    // Community reject wins (first rule) even inside the accepted range.
    let bad = PathAttributes {
        communities: vec![0xfde9_0666],
        ..attrs(&[], v4(20))
    };
    rib.update(ip(2), &update(&["10.65.1.0/26"], bad)).unwrap();
    assert!(rib.route(&pfx("10.65.1.0/26")).is_none());
    // Large community match: removed, next hop set to the peer's address.
    let tagged = PathAttributes {
        large_communities: vec![lc],
        ..attrs(&[], v4(20))
    };
    rib.update(ip(2), &update(&["203.0.113.0/24"], tagged))
        .unwrap();
    let r = rib.route(&pfx("203.0.113.0/24")).unwrap();
    assert!(r.paths[0].attrs.attrs.large_communities.is_empty());
    assert_eq!(r.paths[0].attrs.next_hop, nh(v4(2)));
    let c = rib.counters(ip(2)).unwrap();
    // 10.65.1.0/26 and 198.51.100.1/32 filtered; 198.51.100.0/24 and 203.0.113.0/24 accepted.
    assert_eq!((c.received, c.accepted), (4, 2));
}

#[test]
fn export_filters_and_actions() {
    let mut rib = new_rib(1);
    add_up(&mut rib, 6, 65001, false);
    let policy = Policy {
        export: vec![
            Rule::accept(
                Match {
                    prefixes: vec![range("10.65.0.0/16 le 26")],
                    ..Match::default()
                },
                vec![
                    Modify::AddCommunity(0xfde8_0042),
                    Modify::SetLocalPref(250),
                    Modify::NextHopSelf,
                ],
            ),
            Rule::reject(Match::default()),
        ],
        ..Policy::default()
    };
    add_up_with(&mut rib, 4, LOCAL_AS, |c| c.policy = policy);
    let c = rib
        .update(
            ip(6),
            &update(
                &["10.65.2.0/26", "10.65.2.7/32", "198.51.100.0/24"],
                attrs(&[65001], v4(6)),
            ),
        )
        .unwrap();
    let (ann, _) = sent(&c, ip(4));
    assert_eq!(ann.len(), 1);
    let (p, a) = &ann[0];
    assert_eq!(*p, pfx("10.65.2.0/26"));
    assert_eq!(a.attrs.communities, vec![0xfde8_0042]);
    assert_eq!(a.attrs.local_pref, Some(250));
    assert_eq!(a.next_hop, nh(LOCAL_ADDR));
    // Changing the export policy (reconfigure) takes effect at once: accept all now.
    let mut cfg = PeerConfig::new(ip(4), LOCAL_AS, IpAddr::V4(LOCAL_ADDR));
    cfg.next_hop_self = true;
    let c = rib.reconfigure_peer(cfg).unwrap();
    let (ann, _) = sent(&c, ip(4));
    assert_eq!(ann.len(), 3);
    assert!(
        ann.iter().all(|(_, a)| a.next_hop == nh(LOCAL_ADDR)),
        "next-hop-self"
    );
    assert!(ann.iter().all(|(_, a)| a.attrs.communities.is_empty()));
}

#[test]
fn max_prefix_warns_once_and_reports_teardown() {
    let mut rib = new_rib(1);
    add_up_with(&mut rib, 2, 65001, |c| {
        c.policy.max_prefix = Some(MaxPrefix {
            limit: 2,
            action: MaxPrefixAction::Warn,
        })
    });
    let c = rib
        .update(
            ip(2),
            &update(
                &["198.51.100.0/26", "198.51.100.64/26"],
                attrs(&[65001], v4(2)),
            ),
        )
        .unwrap();
    assert!(c.events.is_empty());
    let c = rib
        .update(
            ip(2),
            &update(&["198.51.100.128/26"], attrs(&[65001], v4(2))),
        )
        .unwrap();
    assert_eq!(
        c.events,
        vec![RibEvent::MaxPrefixExceeded {
            peer: ip(2),
            limit: 2,
            count: 3,
            action: MaxPrefixAction::Warn
        }]
    );
    assert_eq!(rib.len(), 3, "warn keeps the routes");
    let c = rib
        .update(
            ip(2),
            &update(&["198.51.100.192/26"], attrs(&[65001], v4(2))),
        )
        .unwrap();
    assert!(c.events.is_empty(), "reported once per crossing");
    rib.update(
        ip(2),
        &withdrawal(&["198.51.100.192/26", "198.51.100.128/26"]),
    )
    .unwrap();
    let c = rib
        .update(
            ip(2),
            &update(&["198.51.100.128/26"], attrs(&[65001], v4(2))),
        )
        .unwrap();
    assert_eq!(
        c.events.len(),
        1,
        "reported again after falling back under the limit"
    );

    let mut rib = new_rib(1);
    add_up_with(&mut rib, 3, 65001, |c| {
        c.policy.max_prefix = Some(MaxPrefix {
            limit: 1,
            action: MaxPrefixAction::TearDown,
        })
    });
    let c = rib
        .update(
            ip(3),
            &update(
                &["198.51.100.0/26", "198.51.100.64/26"],
                attrs(&[65001], v4(3)),
            ),
        )
        .unwrap();
    assert!(matches!(
        c.events[..],
        [RibEvent::MaxPrefixExceeded {
            action: MaxPrefixAction::TearDown,
            count: 2,
            ..
        }]
    ));
    // The owner stops the session: the routes go.
    let c = rib.peer_down(ip(3), None).unwrap();
    assert_eq!(c.fib.len(), 2);
    assert!(rib.is_empty());
    let _ = Ipv4Addr::UNSPECIFIED;
}
