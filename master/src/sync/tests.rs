//! Hub tests on an in-memory embedded store: snapshots against the oracle, deltas that fold to the
//! snapshot, resuming (exactly the missed deltas, or a snapshot when the log cannot cover the
//! revision, also after a master restart), stalled subscribers (bounded queue, then a resync), a
//! compacted change feed, heartbeats, and the follower thread with shutdown.

use std::{net::IpAddr, sync::Arc, time::Duration};

use super::{
    oracle::{
        assign, delete_endpoint, endpoint, expected, fold, put_endpoint, put_host, put_pool,
        put_profile,
    },
    Change, NodeState, SyncConfig, SyncHub, SyncMessage,
};
use crate::{
    model::{Action, Profile, Rule, Rules},
    store::{EmbeddedOptions, EmbeddedStore, Store},
};

fn store() -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::in_memory(EmbeddedOptions::default()).unwrap())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn profile(name: &str, tags: &[&str], allow_from: &[&str]) -> Profile {
    let mut inbound: Vec<Rule> = allow_from
        .iter()
        .map(|t| {
            let mut r = Rule::new(Action::Allow);
            r.src_tag = Some((*t).to_owned());
            r
        })
        .collect();
    inbound.push(Rule::new(Action::Deny));
    Profile {
        name: name.into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        rules: Rules {
            inbound_rules: inbound,
            outbound_rules: vec![Rule::new(Action::Allow)],
        },
    }
}

const POOL: &str = "10.65.0.0/16";

/// Two registered hosts with endpoints, a borrowed address, BGP settings and a profile.
fn populate(s: &dyn Store) {
    put_pool(s, POOL);
    put_pool(s, "fd80:24e2::/64");
    put_host(s, "a", "172.17.8.101");
    put_host(s, "b", "172.17.8.102");
    s.put("/calico/bgp/v1/global/as_num", b"64512").unwrap();
    s.put(
        "/calico/bgp/v1/host/b/peer_v4/172.17.8.200",
        br#"{"ip":"172.17.8.200","as_num":64513}"#,
    )
    .unwrap();
    put_profile(s, &profile("web", &["web"], &["web", "db"]));
    put_profile(s, &profile("db", &["db"], &["web"]));
    for (host, id, addr, prof) in [
        ("a", "e1", "10.65.0.1", "web"),
        ("a", "e2", "10.65.0.2", "db"),
        ("b", "e3", "10.65.0.70", "web"),
    ] {
        assign(s, &[POOL, "fd80:24e2::/64"], addr, host);
        put_endpoint(s, &endpoint(host, id, &[prof], &[ip(addr)]));
    }
    // b borrows an address in a's block.
    assign(s, &[POOL], "10.65.0.3", "b");
    put_endpoint(s, &endpoint("b", "e4", &["db"], &[ip("10.65.0.3")]));
}

fn drain(sub: &mut super::Subscription) -> Vec<SyncMessage> {
    std::iter::from_fn(|| sub.try_next()).collect()
}

fn snapshot_of(m: &SyncMessage) -> &NodeState {
    match m {
        SyncMessage::Snapshot { state, .. } => state,
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

#[test]
fn snapshots_match_the_oracle() {
    let s = store();
    populate(s.as_ref());
    let hub = SyncHub::new(s.clone(), SyncConfig::default()).unwrap();
    assert_eq!(hub.revision(), s.revision().unwrap());
    for node in ["a", "b", "unregistered"] {
        let snap = hub.snapshot(node);
        assert_eq!(snap, expected(s.as_ref(), node), "{node}");
    }
    let a = hub.snapshot("a");
    assert_eq!(a.endpoints.len(), 2);
    assert_eq!(a.routes.blocks, vec!["10.65.0.0/26".parse().unwrap()]);
    assert!(a.routes.host_routes.is_empty());
    let b = hub.snapshot("b");
    assert_eq!(b.routes.host_routes, vec![ip("10.65.0.3")]);
    assert_eq!(b.host().map(|h| h.peers.len()), Some(1));
    assert_eq!(b.bgp.config.as_num.get(), 64512);
    assert_eq!(b.pools.len(), 2);
    assert!(b.profile("web").is_some() && b.profile("db").is_some());
    // An unknown node gets pools and BGP only.
    let u = hub.snapshot("unregistered");
    assert!(u.endpoints.is_empty() && u.acl.profiles.is_empty() && u.host().is_none());
    assert_eq!(u.bgp.nodes.len(), 2);
}

#[test]
fn messages_survive_json() {
    let s = store();
    populate(s.as_ref());
    let hub = SyncHub::new(s.clone(), SyncConfig::default()).unwrap();
    let mut sub = hub.subscribe("a", None);
    let mut msgs = drain(&mut sub);
    put_profile(s.as_ref(), &profile("web", &["web", "y"], &["y"]));
    delete_endpoint(s.as_ref(), &endpoint("a", "e2", &[], &[]));
    hub.catch_up().unwrap();
    msgs.extend(drain(&mut sub));
    msgs.push(SyncMessage::Heartbeat { revision: 7 });
    assert!(msgs.len() >= 4);
    assert!(!snapshot_of(&msgs[0]).acl.endpoints.is_empty());
    for m in &msgs {
        let line = serde_json::to_string(m).unwrap();
        assert!(!line.contains('\n'));
        let back: SyncMessage = serde_json::from_str(&line).unwrap();
        assert_eq!(&back, m, "{line}");
    }
    let hb = serde_json::to_value(&msgs[msgs.len() - 1]).unwrap();
    assert_eq!(hb, serde_json::json!({"kind": "heartbeat", "revision": 7}));
}

#[test]
fn deltas_fold_to_the_snapshot() {
    let s = store();
    populate(s.as_ref());
    let hub = SyncHub::new(s.clone(), SyncConfig::default()).unwrap();
    let mut subs: Vec<_> = ["a", "b"].iter().map(|n| hub.subscribe(n, None)).collect();
    let mut states = vec![NodeState::default(), NodeState::default()];
    for (sub, st) in subs.iter_mut().zip(&mut states) {
        let msgs = drain(sub);
        assert_eq!(msgs.len(), 1);
        snapshot_of(&msgs[0]);
        fold(st, &msgs);
    }
    type Step = Box<dyn Fn(&dyn Store)>;
    let steps: Vec<Step> = vec![
        Box::new(|s| put_profile(s, &profile("web", &["web", "x"], &["db"]))),
        Box::new(|s| {
            assign(s, &[POOL], "10.65.0.4", "a");
            put_endpoint(s, &endpoint("a", "e5", &["db", "web"], &[ip("10.65.0.4")]));
        }),
        Box::new(|s| delete_endpoint(s, &endpoint("a", "e1", &["web"], &[]))),
        Box::new(|s| {
            s.delete("/calico/v1/policy/profile/db/tags").unwrap();
        }),
        Box::new(|s| put_pool(s, "10.66.0.0/16")),
        Box::new(|s| put_host(s, "c", "172.17.8.103")),
        Box::new(|s| {
            s.put("/calico/bgp/v1/global/node_mesh", br#"{"enabled": false}"#)
                .unwrap();
        }),
        Box::new(|s| {
            assign(s, &[POOL], "10.65.0.71", "a");
        }),
        Box::new(|s| {
            s.delete_prefix_for_test("/calico/ipam/v2/");
        }),
    ];
    for (i, step) in steps.iter().enumerate() {
        step(s.as_ref());
        hub.catch_up().unwrap();
        for ((sub, st), node) in subs.iter_mut().zip(&mut states).zip(["a", "b"]) {
            let msgs = drain(sub);
            assert!(
                msgs.iter().all(|m| matches!(m, SyncMessage::Delta { .. })),
                "step {i}: {msgs:?}"
            );
            fold(st, &msgs);
            let want = expected(s.as_ref(), node);
            // Deltas only come for revisions that changed the node; compare content at the
            // hub's revision.
            st.revision = want.revision;
            assert_eq!(*st, want, "step {i}, node {node}");
        }
    }
}

/// Delete every key under a prefix (a helper the trait object lacks).
trait DeletePrefix {
    fn delete_prefix_for_test(&self, prefix: &str);
}

impl DeletePrefix for dyn Store + '_ {
    fn delete_prefix_for_test(&self, prefix: &str) {
        self.txn(crate::store::Txn::new().and_then(crate::store::Op::delete_prefix(prefix)))
            .unwrap();
    }
}

#[test]
fn resume_gets_exactly_the_missed_deltas() {
    let s = store();
    populate(s.as_ref());
    let hub = SyncHub::new(s.clone(), SyncConfig::default()).unwrap();
    let mut sub = hub.subscribe("a", None);
    let mut st = NodeState::default();
    fold(&mut st, &drain(&mut sub));
    // A change while connected.
    put_endpoint(
        s.as_ref(),
        &endpoint("a", "e9", &["web"], &[ip("10.65.0.9")]),
    );
    hub.catch_up().unwrap();
    fold(&mut st, &drain(&mut sub));
    let seen = st.revision;
    assert_eq!(seen, hub.revision());
    drop(sub);
    assert_eq!(hub.stats().subscribers, 0);

    // Missed while away: three changes for a, one for b only.
    put_profile(s.as_ref(), &profile("web", &["web"], &["db", "x"]));
    let r1 = s.revision().unwrap();
    put_endpoint(s.as_ref(), &endpoint("b", "e10", &[], &[]));
    put_pool(s.as_ref(), "10.70.0.0/16");
    let r3 = s.revision().unwrap();
    delete_endpoint(s.as_ref(), &endpoint("a", "e9", &[], &[]));
    let r4 = s.revision().unwrap();
    hub.catch_up().unwrap();

    let mut sub = hub.subscribe("a", Some(seen));
    let msgs = drain(&mut sub);
    let revs: Vec<u64> = msgs.iter().map(SyncMessage::revision).collect();
    assert_eq!(revs, vec![r1, r3, r4], "{msgs:?}");
    assert!(msgs.iter().all(|m| matches!(m, SyncMessage::Delta { .. })));
    fold(&mut st, &msgs);
    assert_eq!(st, expected(s.as_ref(), "a"));
    assert!(
        sub.try_next().is_none(),
        "nothing more than what was missed"
    );

    // Resuming at the current revision brings nothing; one change later brings exactly it.
    drop(sub);
    let mut sub = hub.subscribe("a", Some(r4));
    assert!(sub.try_next().is_none());
    put_pool(s.as_ref(), "10.71.0.0/16");
    hub.catch_up().unwrap();
    let msgs = drain(&mut sub);
    assert_eq!(msgs.len(), 1);
    assert!(
        matches!(&msgs[0], SyncMessage::Delta { changes, .. } if matches!(changes[..], [Change::Pools { .. }]))
    );
    fold(&mut st, &msgs);
    assert_eq!(st, expected(s.as_ref(), "a"));
    let now = st.revision;
    drop(sub);

    // A master restart: the new hub's log starts at the revision it loaded.
    drop(hub);
    let hub = SyncHub::new(s.clone(), SyncConfig::default()).unwrap();
    let mut same = hub.subscribe("a", Some(now));
    assert!(same.try_next().is_none(), "nothing changed since {now}");
    let mut older = hub.subscribe("a", Some(seen));
    let msgs = drain(&mut older);
    assert_eq!(msgs.len(), 1);
    assert_eq!(*snapshot_of(&msgs[0]), expected(s.as_ref(), "a"));
    // A revision from the future (another master ahead of this one) also gets a snapshot.
    let mut ahead = hub.subscribe("a", Some(now + 100));
    assert!(matches!(
        ahead.try_next(),
        Some(SyncMessage::Snapshot { .. })
    ));
}

#[test]
fn resume_older_than_the_log_gets_a_snapshot() {
    let s = store();
    populate(s.as_ref());
    let cfg = SyncConfig {
        log_entries: 3,
        ..SyncConfig::default()
    };
    let hub = SyncHub::new(s.clone(), cfg).unwrap();
    let start = hub.revision();
    let mut revs = Vec::new();
    for i in 0..5 {
        put_endpoint(
            s.as_ref(),
            &endpoint(
                "a",
                &format!("n{i}"),
                &["web"],
                &[ip(&format!("10.65.1.{i}"))],
            ),
        );
        revs.push(s.revision().unwrap());
    }
    hub.catch_up().unwrap();
    let (floor, len) = hub.log_extent("a").unwrap();
    assert_eq!(len, 3);
    assert_eq!(floor, revs[1]);
    // Covered: exactly the deltas after revs[1].
    let mut sub = hub.subscribe("a", Some(revs[1]));
    let got: Vec<u64> = drain(&mut sub).iter().map(SyncMessage::revision).collect();
    assert_eq!(got, revs[2..].to_vec());
    // Not covered any more.
    for r in [start, revs[0]] {
        let mut sub = hub.subscribe("a", Some(r));
        let msgs = drain(&mut sub);
        assert_eq!(msgs.len(), 1, "{r}");
        assert_eq!(*snapshot_of(&msgs[0]), expected(s.as_ref(), "a"));
    }
}

#[test]
fn a_stalled_subscriber_is_resynced_and_holds_up_nobody() {
    let s = store();
    populate(s.as_ref());
    let cfg = SyncConfig {
        queue_messages: 8,
        queue_bytes: 1 << 20,
        ..SyncConfig::default()
    };
    let hub = SyncHub::new(s.clone(), cfg).unwrap();
    let mut stalled = hub.subscribe("a", None);
    let mut live = hub.subscribe("a", None);
    let mut other = hub.subscribe("b", None);
    let (mut st_live, mut st_other) = (NodeState::default(), NodeState::default());
    fold(&mut st_live, &drain(&mut live));
    fold(&mut st_other, &drain(&mut other));
    let mut st_stalled = NodeState::default();
    fold(&mut st_stalled, &drain(&mut stalled));
    for i in 0..50u32 {
        // Each write changes a's and b's tag set "web" (both use profile web).
        put_endpoint(
            s.as_ref(),
            &endpoint(
                "a",
                &format!("s{i}"),
                &["web"],
                &[ip(&format!("10.65.2.{i}"))],
            ),
        );
        hub.catch_up().unwrap();
        assert!(stalled.queued() <= 8, "queue bounded: {}", stalled.queued());
        fold(&mut st_live, &drain(&mut live));
        fold(&mut st_other, &drain(&mut other));
        assert_eq!(
            st_live,
            expected(s.as_ref(), "a"),
            "live subscriber, step {i}"
        );
    }
    let mut want_other = expected(s.as_ref(), "b");
    want_other.revision = st_other.revision;
    assert_eq!(st_other, want_other);
    assert!(stalled.resync_pending());
    assert_eq!(stalled.queued(), 0, "the stalled queue was dropped");
    let stats = hub.stats();
    assert_eq!(stats.resyncs_total, 1, "one resync, however long the stall");
    assert_eq!(stats.subscribers, 3);
    // Once it reads again: a snapshot, then live deltas.
    let m = stalled.try_next().unwrap();
    assert_eq!(*snapshot_of(&m), expected(s.as_ref(), "a"));
    fold(&mut st_stalled, [&m]);
    assert!(stalled.try_next().is_none());
    delete_endpoint(s.as_ref(), &endpoint("a", "s3", &[], &[]));
    hub.catch_up().unwrap();
    let msgs = drain(&mut stalled);
    assert!(matches!(msgs[..], [SyncMessage::Delta { .. }]));
    fold(&mut st_stalled, &msgs);
    assert_eq!(st_stalled, expected(s.as_ref(), "a"));
}

#[test]
fn a_compacted_feed_reloads_and_resyncs() {
    let s: Arc<dyn Store> = Arc::new(
        EmbeddedStore::in_memory(EmbeddedOptions {
            history: 2,
            ..EmbeddedOptions::default()
        })
        .unwrap(),
    );
    populate(s.as_ref());
    let hub = SyncHub::new(s.clone(), SyncConfig::default()).unwrap();
    let mut sub = hub.subscribe("a", None);
    let mut st = NodeState::default();
    fold(&mut st, &drain(&mut sub));
    for i in 0..6 {
        put_endpoint(
            s.as_ref(),
            &endpoint(
                "a",
                &format!("c{i}"),
                &["db"],
                &[ip(&format!("10.65.3.{i}"))],
            ),
        );
    }
    hub.catch_up().unwrap();
    assert_eq!(hub.revision(), s.revision().unwrap());
    assert_eq!(hub.stats().resyncs_total, 1);
    let msgs = drain(&mut sub);
    assert_eq!(msgs.len(), 1);
    fold(&mut st, &msgs);
    assert_eq!(st, expected(s.as_ref(), "a"));
}

async fn next(sub: &mut super::Subscription) -> Option<SyncMessage> {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a message within 5 s")
}

#[tokio::test]
async fn the_follower_streams_changes_sends_heartbeats_and_stops() {
    let s = store();
    populate(s.as_ref());
    let cfg = SyncConfig {
        heartbeat: Duration::from_millis(100),
        poll: Duration::from_millis(20),
        ..SyncConfig::default()
    };
    let hub = SyncHub::start(s.clone(), cfg).unwrap();
    let mut sub = hub.subscribe("b", None);
    let mut st = NodeState::default();
    st.apply(&next(&mut sub).await.unwrap());
    assert_eq!(st, expected(s.as_ref(), "b"));
    // Idle: a heartbeat at the current revision.
    let t = tokio::time::Instant::now();
    let hb = next(&mut sub).await.unwrap();
    assert_eq!(
        hb,
        SyncMessage::Heartbeat {
            revision: s.revision().unwrap()
        }
    );
    assert!(
        t.elapsed() >= Duration::from_millis(80),
        "{:?}",
        t.elapsed()
    );
    // A change arrives as a delta without polling by the test.
    let s2 = s.clone();
    tokio::task::spawn_blocking(move || put_host(s2.as_ref(), "b", "172.17.8.112"))
        .await
        .unwrap();
    let m = next(&mut sub).await.unwrap();
    assert!(
        matches!(&m, SyncMessage::Delta { changes, .. } if matches!(changes[..], [Change::Bgp { .. }])),
        "{m:?}"
    );
    st.apply(&m);
    assert_eq!(st, expected(s.as_ref(), "b"));
    assert_eq!(
        st.host().and_then(|h| h.ipv4),
        Some("172.17.8.112".parse().unwrap())
    );
    // Shutdown ends the stream.
    hub.shutdown();
    assert_eq!(next(&mut sub).await, None);
}
