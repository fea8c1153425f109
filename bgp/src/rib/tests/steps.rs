//! Reconfiguration without export work, and the initial export done in steps
//! ([`Rib::peer_up_in_steps`], [`Rib::export_step`]).

use std::collections::HashMap;

use super::*;

/// Apply what `peer` is sent in `c` to `seen` as the peer would (withdrawals, then announcements).
fn replay(seen: &mut HashMap<Prefix, RouteAttrs>, c: &Changes, peer: IpAddr) -> usize {
    let Some(u) = c.peer(peer) else {
        return 0;
    };
    let mut announced = 0;
    for f in u.families.values() {
        for n in &f.withdraw {
            assert!(
                seen.remove(&n.prefix).is_some(),
                "{} withdrawn unsent",
                n.prefix
            );
        }
        for (a, nlri) in &f.announce {
            for n in nlri {
                seen.insert(n.prefix, (**a).clone());
                announced += 1;
            }
        }
    }
    announced
}

fn nth(i: u32) -> Prefix {
    Prefix::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(), 24).unwrap()
}

fn med(m: u32) -> PathAttributes {
    PathAttributes {
        med: Some(m),
        ..PathAttributes::default()
    }
}

#[test]
fn reconfiguring_without_an_up_peer_or_an_export_change_emits_nothing() {
    let mut rib = new_rib(1);
    for i in 0..100 {
        rib.originate(nth(i), med(1));
    }
    let mut cfg = PeerConfig::new(ip(7), 65002, IpAddr::V4(LOCAL_ADDR));
    rib.add_peer(cfg.clone()).unwrap();
    // No session: whatever changes, nothing to send.
    cfg.next_hop_self = true;
    cfg.rr_client = true;
    assert_eq!(
        rib.reconfigure_peer(cfg.clone()).unwrap(),
        Changes::default()
    );
    add_up(&mut rib, 6, 65001, false);
    rib.peer_up(ip(7), PeerSession::new(Ipv4Addr::new(10, 0, 1, 7)))
        .unwrap();
    // Up, the same settings, or only import-side ones: nothing either.
    assert_eq!(
        rib.reconfigure_peer(cfg.clone()).unwrap(),
        Changes::default()
    );
    cfg.policy.import = vec![Rule::reject(Match::default())];
    assert_eq!(
        rib.reconfigure_peer(cfg.clone()).unwrap(),
        Changes::default()
    );
    // An export change re-exports to that peer only.
    cfg.policy.export = vec![Rule::reject(Match::default())];
    let c = rib.reconfigure_peer(cfg).unwrap();
    let (ann, wd) = sent(&c, ip(7));
    assert_eq!((ann.len(), wd.len()), (0, 100));
    assert!(c.peer(ip(6)).is_none());
}

#[test]
fn the_export_in_steps_sends_each_route_once() {
    let mut rib = new_rib(1);
    for i in 0..5000 {
        rib.originate(nth(i), med(1));
    }
    rib.add_peer(PeerConfig::new(ip(7), 65002, IpAddr::V4(LOCAL_ADDR)))
        .unwrap();
    let c = rib
        .peer_up_in_steps(ip(7), PeerSession::new(Ipv4Addr::new(10, 0, 1, 7)))
        .unwrap();
    assert!(c.peer(ip(7)).is_none());
    assert!(rib.exporting(ip(7)));
    let mut seen = HashMap::new();
    let (mut steps, mut announced) = (0, 0);
    loop {
        let (c, done) = rib.export_step(ip(7), 1000).unwrap();
        announced += replay(&mut seen, &c, ip(7));
        steps += 1;
        if done {
            break;
        }
    }
    assert_eq!((steps, announced, seen.len()), (5, 5000, 5000));
    assert!(!rib.exporting(ip(7)));
    assert!(rib.export_step(ip(7), 1000).is_none());
    assert_eq!(rib.counters(ip(7)).unwrap().advertised, 5000);
}

#[test]
fn changes_during_the_export_in_steps_are_never_overtaken() {
    let mut rib = new_rib(1);
    for i in 0..3000 {
        rib.originate(nth(i), med(1));
    }
    rib.add_peer(PeerConfig::new(ip(7), 65002, IpAddr::V4(LOCAL_ADDR)))
        .unwrap();
    let mut seen = HashMap::new();
    let c = rib
        .peer_up_in_steps(ip(7), PeerSession::new(Ipv4Addr::new(10, 0, 1, 7)))
        .unwrap();
    replay(&mut seen, &c, ip(7));
    let mut step = 0;
    loop {
        let (c, done) = rib.export_step(ip(7), 400).unwrap();
        replay(&mut seen, &c, ip(7));
        step += 1;
        if step == 2 {
            // Meanwhile: withdrawals, changed attributes and new prefixes, sent at once, whether their
            // prefixes were exported already or not.
            for i in (0..3000).step_by(29) {
                let c = rib.withdraw_local(nth(i));
                replay(&mut seen, &c, ip(7));
            }
            for i in (5..3000).step_by(31) {
                let c = rib.originate(nth(i), med(2));
                replay(&mut seen, &c, ip(7));
            }
            for i in 3000..3010 {
                let c = rib.originate(nth(i), med(3));
                replay(&mut seen, &c, ip(7));
            }
        }
        if done {
            break;
        }
    }
    // What the peer ends with is what a synchronous export gives a peer of the same kind now.
    let fresh = add_up(&mut rib, 8, 65002, false);
    let mut want = HashMap::new();
    replay(&mut want, &fresh, ip(8));
    assert_eq!(seen.len(), want.len());
    assert_eq!(seen, want);
    assert!(seen.values().any(|a| a.attrs.med.is_none()));
    // A session going down ends an export in progress.
    rib.peer_down(ip(8), None).unwrap();
    rib.peer_up_in_steps(ip(8), PeerSession::new(Ipv4Addr::new(10, 0, 1, 8)))
        .unwrap();
    assert!(rib.exporting(ip(8)));
    rib.export_step(ip(8), 10).unwrap();
    rib.peer_down(ip(8), None).unwrap();
    assert!(!rib.exporting(ip(8)));
    assert!(rib.export_step(ip(8), 10).is_none());
}
