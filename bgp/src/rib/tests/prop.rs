//! Property test: after any sequence of announcements, withdrawals, local originations, session losses
//! (graceful or not), session ups and End-of-RIBs, the Loc-RIB equals the decision process run from scratch on
//! the final Adj-RIBs-In; the FIB changes emitted, replayed, equal the Loc-RIB's next hops; and the updates
//! emitted to each peer, replayed, equal its Adj-RIB-Out and what a RIB rebuilt from scratch would send.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;
use crate::rib::decision::select;
use crate::wire::{community, AfiSafi};

const PEERS: [(u8, u32, bool); 4] = [
    (2, 65001, false),
    (3, 65002, false),
    (4, LOCAL_AS, true),
    (5, LOCAL_AS, false),
];
const PREFIXES: [&str; 5] = [
    "198.51.100.0/24",
    "198.51.100.0/25",
    "203.0.113.0/24",
    "203.0.113.7/32",
    "10.65.0.0/26",
];

#[derive(Debug, Clone)]
enum Op {
    Announce {
        peer: usize,
        prefix: usize,
        variant: u8,
    },
    Withdraw {
        peer: usize,
        prefix: usize,
    },
    Originate {
        prefix: usize,
        variant: u8,
    },
    WithdrawLocal {
        prefix: usize,
    },
    Down {
        peer: usize,
        graceful: bool,
    },
    Up {
        peer: usize,
    },
    EndOfRib {
        peer: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, 0..5usize, any::<u8>()).prop_map(|(peer, prefix, variant)| Op::Announce { peer, prefix, variant }),
        3 => (0..4usize, 0..5usize).prop_map(|(peer, prefix)| Op::Withdraw { peer, prefix }),
        1 => (0..5usize, any::<u8>()).prop_map(|(prefix, variant)| Op::Originate { prefix, variant }),
        1 => (0..5usize).prop_map(|prefix| Op::WithdrawLocal { prefix }),
        1 => (0..4usize, any::<bool>()).prop_map(|(peer, graceful)| Op::Down { peer, graceful }),
        1 => (0..4usize).prop_map(|peer| Op::Up { peer }),
        1 => (0..4usize).prop_map(|peer| Op::EndOfRib { peer }),
    ]
}

/// Attributes a peer could send, from a small space so that ties and ECMP happen.
fn variant_attrs(peer_as: u32, v: u8, next_hop: Ipv4Addr) -> PathAttributes {
    let first = if peer_as == LOCAL_AS {
        65010 + u32::from(v & 1)
    } else {
        peer_as
    };
    let mut path = vec![first];
    path.extend((0..(v >> 1) % 3).map(|i| 64900 + u32::from(i)));
    PathAttributes {
        med: [None, Some(0), Some(10)][usize::from(v >> 3) % 3],
        local_pref: if v & 0x20 != 0 { Some(200) } else { None },
        origin: Some(if v & 0x40 != 0 {
            Origin::Incomplete
        } else {
            Origin::Igp
        }),
        communities: if v & 0x80 != 0 {
            vec![community::NO_EXPORT]
        } else {
            vec![]
        },
        ..attrs(&path, next_hop)
    }
}

fn build() -> Rib {
    let mut rib = new_rib(2);
    for (last, asn, client) in PEERS {
        let mut cfg = PeerConfig::new(ip(last), asn, IpAddr::V4(LOCAL_ADDR));
        cfg.rr_client = client;
        rib.add_peer(cfg).unwrap();
    }
    rib
}

fn session(last: u8) -> PeerSession {
    PeerSession::new(Ipv4Addr::new(10, 0, 1, last))
}

/// What a peer holds from us, replayed from the updates we emitted.
type Sent = HashMap<IpAddr, BTreeMap<Prefix, RouteAttrs>>;

fn replay(c: &Changes, fib: &mut BTreeMap<Prefix, Vec<NextHop>>, sent: &mut Sent) {
    for f in &c.fib {
        match f {
            FibChange::Install { prefix, next_hops } => {
                fib.insert(*prefix, next_hops.clone());
            }
            FibChange::Remove { prefix } => {
                fib.remove(prefix);
            }
        }
    }
    for (peer, u) in &c.peers {
        let table = sent.entry(*peer).or_default();
        for f in u.families.values() {
            for n in &f.withdraw {
                assert!(
                    table.remove(&n.prefix).is_some(),
                    "withdrawal of something not sent"
                );
            }
            for (a, nlri) in &f.announce {
                for n in nlri {
                    table.insert(n.prefix, (**a).clone());
                }
            }
        }
    }
}

fn out_table(rib: &Rib, peer: IpAddr) -> BTreeMap<Prefix, RouteAttrs> {
    rib.adj_rib_out(peer)
        .unwrap()
        .into_iter()
        .map(|e| (e.prefix, (*e.attrs).clone()))
        .collect()
}

fn run(ops: &[Op]) {
    let mut rib = build();
    let mut up = [false; 4];
    let mut local: BTreeMap<Prefix, PathAttributes> = BTreeMap::new();
    let mut fib = BTreeMap::new();
    let mut sent: Sent = HashMap::new();
    for op in ops {
        let c = match *op {
            Op::Announce {
                peer,
                prefix,
                variant,
            } if up[peer] => {
                let (last, asn, _) = PEERS[peer];
                let nh = if variant & 0x10 != 0 {
                    v4(last)
                } else {
                    v4(100 + last)
                };
                rib.update(
                    ip(last),
                    &update(&[PREFIXES[prefix]], variant_attrs(asn, variant, nh)),
                )
                .unwrap()
            }
            Op::Withdraw { peer, prefix } if up[peer] => rib
                .update(ip(PEERS[peer].0), &withdrawal(&[PREFIXES[prefix]]))
                .unwrap(),
            Op::Announce { .. } | Op::Withdraw { .. } => continue,
            Op::Originate { prefix, variant } => {
                let a = PathAttributes {
                    communities: vec![u32::from(variant & 3)],
                    ..PathAttributes::default()
                };
                local.insert(pfx(PREFIXES[prefix]), a.clone());
                rib.originate(pfx(PREFIXES[prefix]), a)
            }
            Op::WithdrawLocal { prefix } => {
                local.remove(&pfx(PREFIXES[prefix]));
                rib.withdraw_local(pfx(PREFIXES[prefix]))
            }
            Op::Down { peer, graceful } => {
                up[peer] = false;
                sent.remove(&ip(PEERS[peer].0));
                let fams = [AfiSafi::IPV4_UNICAST];
                rib.peer_down(ip(PEERS[peer].0), graceful.then_some(&fams[..]))
                    .unwrap()
            }
            Op::Up { peer } => {
                up[peer] = true;
                sent.remove(&ip(PEERS[peer].0));
                rib.peer_up(ip(PEERS[peer].0), session(PEERS[peer].0))
                    .unwrap()
            }
            Op::EndOfRib { peer } => rib
                .end_of_rib(ip(PEERS[peer].0), AfiSafi::IPV4_UNICAST)
                .unwrap(),
        };
        replay(&c, &mut fib, &mut sent);
    }

    // 1. The Loc-RIB's selection equals the decision process from scratch on the Adj-RIBs-In.
    let mut candidates: BTreeMap<Prefix, Vec<(Source, u32, Arc<RouteAttrs>)>> = BTreeMap::new();
    for (last, _, _) in PEERS {
        // The per-peer counters agree with its paths in the Loc-RIB.
        let adj_in = rib.adj_rib_in(ip(last)).unwrap();
        let c = rib.counters(ip(last)).unwrap();
        assert_eq!(c.accepted, adj_in.len());
        assert_eq!(c.stale, adj_in.iter().filter(|e| e.stale).count());
        for e in adj_in {
            let (p, id, a) = (e.prefix, e.path_id, e.attrs);
            candidates
                .entry(p)
                .or_default()
                .push((Source::Peer(ip(last)), id, a));
        }
    }
    for (p, a) in &local {
        let ra = rib
            .route(p)
            .unwrap()
            .paths
            .iter()
            .find(|x| x.source == Source::Local)
            .unwrap()
            .attrs
            .clone();
        assert_eq!(ra.attrs.communities, a.communities);
        candidates
            .entry(*p)
            .or_default()
            .push((Source::Local, 0, ra));
    }
    let routes = rib.routes();
    assert_eq!(
        routes.iter().map(|r| r.prefix).collect::<Vec<_>>(),
        candidates.keys().copied().collect::<Vec<_>>()
    );
    for r in &routes {
        let cands = &candidates[&r.prefix];
        let cs: Vec<_> = cands
            .iter()
            .map(|(s, id, a)| rib.candidate(*s, *id, a))
            .collect();
        let want: Vec<(Source, u32)> = select(&cs, 2, false)
            .multipath
            .iter()
            .map(|&i| (cands[i].0, cands[i].1))
            .collect();
        let got: Vec<(Source, u32)> = r
            .paths
            .iter()
            .filter(|p| p.multipath)
            .map(|p| (p.source, p.path_id))
            .collect();
        assert_eq!(got, want, "{}", r.prefix);
        let all: BTreeSet<(Source, u32)> = r.paths.iter().map(|p| (p.source, p.path_id)).collect();
        assert_eq!(all, cands.iter().map(|(s, id, _)| (*s, *id)).collect());
    }

    // 2. The FIB changes, replayed, give the Loc-RIB's next hops.
    let want_fib: BTreeMap<Prefix, Vec<NextHop>> = routes
        .iter()
        .filter(|r| r.best().is_some_and(|b| b.source != Source::Local))
        .map(|r| {
            let mut nhs: Vec<NextHop> = Vec::new();
            for nh in r.next_hops() {
                if !nhs.contains(&nh) {
                    nhs.push(nh);
                }
            }
            (r.prefix, nhs)
        })
        .collect();
    assert_eq!(fib, want_fib);

    // 3. The updates, replayed, give each up peer's Adj-RIB-Out, and a RIB rebuilt from the final state
    //    advertises the same.
    let mut fresh = build();
    for (i, (last, _, _)) in PEERS.iter().enumerate() {
        fresh.peer_up(ip(*last), session(*last)).unwrap();
        for e in rib.adj_rib_in(ip(*last)).unwrap() {
            let (p, id, a) = (e.prefix, e.path_id, e.attrs);
            let mut u = Update {
                attributes: a.attrs.clone(),
                ..Update::default()
            };
            if let Some(NextHop::V4(nh)) = a.next_hop {
                u.attributes.next_hop = Some(nh);
            }
            u.nlri = vec![Nlri {
                path_id: (id != 0).then_some(id),
                prefix: p,
            }];
            fresh.update(ip(*last), &u).unwrap();
        }
        if !up[i] {
            fresh
                .peer_down(ip(*last), Some(&[AfiSafi::IPV4_UNICAST]))
                .unwrap();
        }
    }
    for (p, a) in &local {
        fresh.originate(*p, a.clone());
    }
    for (i, (last, _, _)) in PEERS.iter().enumerate() {
        let out = out_table(&rib, ip(*last));
        if up[i] {
            assert_eq!(
                sent.get(&ip(*last)).cloned().unwrap_or_default(),
                out,
                "peer {last}"
            );
        } else {
            assert!(out.is_empty());
        }
        assert_eq!(
            out,
            out_table(&fresh, ip(*last)),
            "fresh export to peer {last}"
        );
    }
    let sel = |r: &Rib| -> Vec<(Prefix, Vec<(Source, u32)>)> {
        r.routes()
            .into_iter()
            .map(|v| {
                (
                    v.prefix,
                    v.paths
                        .iter()
                        .filter(|p| p.multipath)
                        .map(|p| (p.source, p.path_id))
                        .collect(),
                )
            })
            .collect()
    };
    assert_eq!(sel(&rib), sel(&fresh));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn loc_rib_equals_decision_from_scratch(
        ups in proptest::collection::vec(any::<bool>(), 4),
        ops in proptest::collection::vec(op(), 0..60),
    ) {
        // Start with some sessions up so that announcements happen from the first op.
        let mut all: Vec<Op> = ups.iter().enumerate().filter(|(_, u)| **u).map(|(peer, _)| Op::Up { peer }).collect();
        all.extend(ops);
        run(&all);
    }
}
