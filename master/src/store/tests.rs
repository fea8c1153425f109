//! Tests of the store's semantics, run on every backend: the embedded store (a file and in memory) and
//! a real etcd (one server per test, see [`super::etcd_server`]). Each shared test is a function of a
//! `&dyn Store`; [`every_backend!`] makes one `#[test]` per backend of it (`embedded_file::NAME`,
//! `in_memory::NAME`, `etcd::NAME`). Revisions are checked relative to the store's revision at the start
//! (0 on the embedded store, 1 on a fresh etcd). Embedded-only tests (reopening, locking, its bounded
//! history, corruption) follow; etcd-only ones are in `etcd_tests.rs`.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use super::*;

fn opts(history: u64) -> EmbeddedOptions {
    EmbeddedOptions {
        history,
        ..EmbeddedOptions::default()
    }
}

fn open(path: &Path, history: u64) -> EmbeddedStore {
    EmbeddedStore::open(path, opts(history)).unwrap()
}

fn value(store: &dyn Store, key: &str) -> Option<String> {
    store
        .get(key)
        .unwrap()
        .map(|kv| String::from_utf8(kv.value).unwrap())
}

fn keys(store: &dyn Store, prefix: &str) -> Vec<String> {
    store
        .list(prefix)
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect()
}

/// A store under test with what keeps it alive (a temp dir, an etcd server).
pub(super) struct Fixture {
    pub(super) store: Box<dyn Store>,
    _keep: Box<dyn std::any::Any>,
}

pub(super) fn embedded_file() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        store: Box::new(open(&dir.path().join("store.db"), 10_000)),
        _keep: Box::new(dir),
    }
}

pub(super) fn in_memory() -> Fixture {
    Fixture {
        store: Box::new(EmbeddedStore::in_memory(opts(10_000)).unwrap()),
        _keep: Box::new(()),
    }
}

pub(super) fn etcd() -> Fixture {
    let server = super::etcd_server::EtcdServer::start();
    Fixture {
        store: Box::new(server.store()),
        _keep: Box::new(server),
    }
}

/// One `#[test]` per backend for each shared test function.
macro_rules! every_backend {
    ($($test:ident),* $(,)?) => {
        every_backend!(@backend embedded_file: $($test),*);
        every_backend!(@backend in_memory: $($test),*);
        every_backend!(@backend etcd: $($test),*);
    };
    (@backend $backend:ident: $($test:ident),*) => {
        mod $backend {
            $(
                #[test]
                fn $test() {
                    let f = super::$backend();
                    super::$test(f.store.as_ref());
                }
            )*
        }
    };
}

every_backend!(
    revisions_are_monotonic_and_per_key_revisions_follow_etcd,
    failed_compares_change_nothing,
    txn_results_and_events_share_one_revision_in_op_order,
    list_is_by_prefix_in_key_order_with_its_revision,
    concurrent_compare_and_swap_loses_no_update,
    changes_since_gives_exactly_the_missed_events,
    replaying_missed_events_on_an_old_listing_gives_the_current_state,
    waiters_and_subscribers_hear_of_commits_only,
);

fn revisions_are_monotonic_and_per_key_revisions_follow_etcd(s: &dyn Store) {
    let r0 = s.revision().unwrap();
    assert_eq!(s.put("/calico/a", b"1").unwrap(), r0 + 1);
    assert_eq!(s.put("/calico/b", b"2").unwrap(), r0 + 2);
    assert_eq!(s.put("/calico/a", b"3").unwrap(), r0 + 3);
    let a = s.get("/calico/a").unwrap().unwrap();
    assert_eq!(
        (
            a.create_revision,
            a.mod_revision,
            a.version,
            a.value.as_slice()
        ),
        (r0 + 1, r0 + 3, 2, &b"3"[..])
    );
    // A put of the same value is still a write.
    assert_eq!(s.put("/calico/a", b"3").unwrap(), r0 + 4);
    assert_eq!(s.delete("/calico/a").unwrap().unwrap().mod_revision, r0 + 4);
    assert_eq!(s.revision().unwrap(), r0 + 5);
    // Deleting an absent key writes nothing and does not bump the revision.
    assert_eq!(s.delete("/calico/a").unwrap(), None);
    assert_eq!(s.revision().unwrap(), r0 + 5);
    // Re-creating starts a new life: create_revision and version restart.
    assert_eq!(s.put("/calico/a", b"x").unwrap(), r0 + 6);
    let a = s.get("/calico/a").unwrap().unwrap();
    assert_eq!(
        (a.create_revision, a.mod_revision, a.version),
        (r0 + 6, r0 + 6, 1)
    );
}

#[test]
fn revision_survives_reopen_and_keeps_counting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/master.db");
    {
        let s = open(&path, 100);
        assert_eq!(s.path(), Some(path.as_path()));
        for i in 0..5 {
            s.put(&format!("/k/{i}"), b"v").unwrap();
        }
        assert_eq!(s.revision().unwrap(), 5);
    }
    let s = open(&path, 100);
    assert_eq!(s.revision().unwrap(), 5);
    assert_eq!(s.wait_for_revision(0, Duration::ZERO).unwrap(), 5);
    assert_eq!(s.put("/k/5", b"v").unwrap(), 6);
    assert_eq!(s.changes_since(4).unwrap().len(), 2);
}

fn failed_compares_change_nothing(s: &dyn Store) {
    let r0 = s.revision().unwrap();
    {
        s.put("/b/1", b"one").unwrap();
        s.put("/b/2", b"two").unwrap();
        let before = s.list("").unwrap();
        let log_before = s.changes_since(0).unwrap();
        let writes = || {
            vec![
                Op::put("/b/1", "changed"),
                Op::put("/b/3", "new"),
                Op::delete("/b/2"),
            ]
        };
        for cmp in [
            Compare::mod_revision("/b/1", r0 + 2),
            Compare::mod_revision("/b/3", r0 + 1),
            Compare::exists("/b/3"),
            Compare::absent("/b/1"),
            Compare::value("/b/1", "uno"),
            Compare::value("/b/3", ""),
        ] {
            let txn = Txn {
                compares: vec![Compare::exists("/b/2"), cmp.clone()],
                success: writes(),
                failure: vec![Op::get("/b/1")],
            };
            let r = s.txn(txn).unwrap();
            assert!(!r.succeeded, "{cmp:?}");
            assert_eq!(r.revision, r0 + 2);
            assert_eq!(
                r.results,
                vec![OpResult::Get {
                    kv: before.kvs.first().cloned()
                }]
            );
        }
        // A malformed transaction is refused whatever its compares say.
        let bad = Txn::new()
            .and_then(Op::put("/b/9", "x"))
            .and_then(Op::put("/b/9", "y"));
        assert!(matches!(s.txn(bad), Err(StoreError::InvalidTxn(_))));
        let bad = Txn::new()
            .and_then(Op::delete_prefix("/b/"))
            .and_then(Op::put("/b/9", "y"));
        assert!(matches!(s.txn(bad), Err(StoreError::InvalidTxn(_))));
        assert_eq!(s.list("").unwrap(), before);
        assert_eq!(s.changes_since(0).unwrap(), log_before);
        // The same writes go through when the compares hold.
        let txn = Txn {
            compares: vec![
                Compare::mod_revision("/b/1", r0 + 1),
                Compare::mod_revision("/b/3", 0),
                Compare::absent("/b/3"),
                Compare::value("/b/1", "one"),
            ],
            success: writes(),
            failure: vec![],
        };
        let r = s.txn(txn).unwrap();
        assert!(r.succeeded);
        assert_eq!(r.revision, r0 + 3);
        assert_eq!(keys(s, "/b/"), ["/b/1", "/b/3"]);
        assert_eq!(value(s, "/b/1").as_deref(), Some("changed"));
    }
}

fn txn_results_and_events_share_one_revision_in_op_order(s: &dyn Store) {
    let r0 = s.revision().unwrap();
    {
        s.put("/p/a", b"1").unwrap();
        s.put("/p/b", b"2").unwrap();
        s.put("/q/c", b"3").unwrap();
        let r = s
            .txn(
                Txn::new()
                    .and_then(Op::put("/q/c", "30"))
                    .and_then(Op::delete_prefix("/p/"))
                    .and_then(Op::get("/q/c"))
                    .and_then(Op::put("/r/d", "4")),
            )
            .unwrap();
        assert!(r.succeeded);
        assert_eq!(r.revision, r0 + 4);
        let OpResult::Put { prev: Some(prev) } = &r.results[0] else {
            panic!("{:?}", r.results)
        };
        assert_eq!(
            (prev.value.as_slice(), prev.mod_revision),
            (&b"3"[..], r0 + 3)
        );
        let OpResult::Delete { deleted } = &r.results[1] else {
            panic!("{:?}", r.results)
        };
        assert_eq!(
            deleted.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(),
            ["/p/a", "/p/b"]
        );
        let OpResult::Get { kv: Some(c) } = &r.results[2] else {
            panic!("{:?}", r.results)
        };
        assert_eq!((c.value.as_slice(), c.mod_revision), (&b"30"[..], r0 + 4));
        assert_eq!(r.results[3], OpResult::Put { prev: None });
        let ev = s.changes_since(r0 + 3).unwrap();
        let summary: Vec<_> = ev
            .iter()
            .map(|e| (e.kind, e.key.as_str(), e.value.as_slice(), e.mod_revision))
            .collect();
        assert_eq!(
            summary,
            [
                (EventKind::Put, "/q/c", &b"30"[..], r0 + 4),
                (EventKind::Delete, "/p/a", &b""[..], r0 + 4),
                (EventKind::Delete, "/p/b", &b""[..], r0 + 4),
                (EventKind::Put, "/r/d", &b"4"[..], r0 + 4),
            ]
        );
        // Convenience helpers: create-if-absent and compare-and-swap.
        assert_eq!(s.create("/r/e", b"5").unwrap(), None);
        assert_eq!(s.create("/r/e", b"6").unwrap().unwrap().value, b"5");
        assert_eq!(
            s.compare_and_swap("/r/e", r0 + 5, Some(b"7")).unwrap(),
            Swap::Done(r0 + 6)
        );
        let Swap::Conflict(Some(current)) = s.compare_and_swap("/r/e", r0 + 5, Some(b"8")).unwrap()
        else {
            panic!("a stale compare-and-swap must conflict")
        };
        assert_eq!(
            (current.mod_revision, current.value),
            (r0 + 6, b"7".to_vec())
        );
        assert_eq!(
            s.compare_and_swap("/r/e", r0 + 6, None).unwrap(),
            Swap::Done(r0 + 7)
        );
        assert_eq!(
            s.compare_and_swap("/r/e", r0 + 6, None).unwrap(),
            Swap::Conflict(None)
        );
        assert_eq!(s.revision().unwrap(), r0 + 7);
    }
}

fn list_is_by_prefix_in_key_order_with_its_revision(s: &dyn Store) {
    let r0 = s.revision().unwrap();
    {
        for k in [
            "/calico/v1/b",
            "/calico/v1/a",
            "/calico/v10",
            "/calico/bgp/x",
            "/other",
        ] {
            s.put(k, b"{}").unwrap();
        }
        let l = s.list("/calico/v1/").unwrap();
        assert_eq!(l.revision, r0 + 5);
        assert_eq!(
            l.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(),
            ["/calico/v1/a", "/calico/v1/b"]
        );
        assert_eq!(keys(s, "/calico/").len(), 4);
        assert_eq!(keys(s, "").len(), 5);
        assert!(keys(s, "/nothing/").is_empty());
    }
}

/// One IPAM-style increment: read the counter, write counter + 1 if nobody wrote in between.
fn increment(s: &dyn Store, key: &str) -> u32 {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let kv = s.get(key).unwrap();
        let (n, rev) = kv.map_or((0, 0), |kv| {
            let v: serde_json::Value = serde_json::from_slice(&kv.value).unwrap();
            (v["n"].as_u64().unwrap(), kv.mod_revision)
        });
        let next = serde_json::json!({ "n": n + 1 }).to_string();
        if let Swap::Done(_) = s.compare_and_swap(key, rev, Some(next.as_bytes())).unwrap() {
            return attempts;
        }
    }
}

fn concurrent_compare_and_swap_loses_no_update(s: &dyn Store) {
    const THREADS: u64 = 8;
    const EACH: u64 = 100;
    let r0 = s.revision().unwrap();
    let key = "/calico/ipam/v2/assignment/ipv4/block/10.65.0.0-26";
    let retries = AtomicU64::new(0);
    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..EACH {
                    let attempts = increment(s, key);
                    retries.fetch_add(u64::from(attempts - 1), Ordering::Relaxed);
                }
            });
        }
    });
    let kv = s.get(key).unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&kv.value).unwrap();
    assert_eq!(v["n"], THREADS * EACH);
    // Exactly one committed write per increment, each seeing the previous one.
    assert_eq!(s.revision().unwrap(), r0 + THREADS * EACH);
    assert_eq!(kv.version, THREADS * EACH);
    let ev = s.changes_since(r0).unwrap();
    assert_eq!(ev.len() as u64, THREADS * EACH);
    for (i, e) in ev.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_slice(&e.value).unwrap();
        assert_eq!(v["n"], i as u64 + 1);
        assert_eq!(e.mod_revision, r0 + i as u64 + 1);
    }
    eprintln!(
        "{} increments from {THREADS} threads in {:?}, {} failed compare-and-swaps retried",
        THREADS * EACH,
        started.elapsed(),
        retries.load(Ordering::Relaxed)
    );
}

fn changes_since_gives_exactly_the_missed_events(s: &dyn Store) {
    let r0 = s.revision().unwrap();
    for i in 1..=30u64 {
        if i % 7 == 0 {
            s.delete(&format!("/k/{}", i - 1)).unwrap();
        } else {
            s.put(&format!("/k/{i}"), i.to_string().as_bytes()).unwrap();
        }
    }
    // A subscriber that saw revision r0 + 10 gets the 20 after it, in order, each as written.
    let ev = s.changes_since(r0 + 10).unwrap();
    assert_eq!(
        ev.iter().map(|e| e.mod_revision - r0).collect::<Vec<_>>(),
        (11..=30).collect::<Vec<_>>()
    );
    for e in &ev {
        let i = e.mod_revision - r0;
        if i % 7 == 0 {
            assert_eq!(
                (e.kind, e.key.clone()),
                (EventKind::Delete, format!("/k/{}", i - 1))
            );
            assert!(e.value.is_empty());
        } else {
            assert_eq!(e.kind, EventKind::Put);
            assert_eq!(
                (e.key.clone(), e.value.clone()),
                (format!("/k/{i}"), i.to_string().into_bytes())
            );
        }
    }
    assert_eq!(s.changes_since(r0).unwrap().len(), 30);
    assert!(s.changes_since(r0 + 30).unwrap().is_empty());
    assert!(s.changes_since(r0 + 1_000).unwrap().is_empty());
    assert!(s.changes_since(u64::MAX).unwrap().is_empty());
}

#[test]
fn changes_since_gives_exactly_the_missed_events_then_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.db");
    let s = open(&path, 50);
    for i in 1..=30u64 {
        if i % 7 == 0 {
            s.delete(&format!("/k/{}", i - 1)).unwrap();
        } else {
            s.put(&format!("/k/{i}"), i.to_string().as_bytes()).unwrap();
        }
    }
    // A subscriber that saw revision 10 gets 11..=30, in order, each as written.
    let ev = s.changes_since(10).unwrap();
    assert_eq!(
        ev.iter().map(|e| e.mod_revision).collect::<Vec<_>>(),
        (11..=30).collect::<Vec<_>>()
    );
    for e in &ev {
        let i = e.mod_revision;
        if i % 7 == 0 {
            assert_eq!(
                (e.kind, e.key.clone()),
                (EventKind::Delete, format!("/k/{}", i - 1))
            );
            assert!(e.value.is_empty());
        } else {
            assert_eq!(e.kind, EventKind::Put);
            assert_eq!(
                (e.key.clone(), e.value.clone()),
                (format!("/k/{i}"), i.to_string().into_bytes())
            );
        }
    }
    // Replaying the feed on the listing at 10 gives the listing now.
    assert!(s.changes_since(30).unwrap().is_empty());
    assert!(s.changes_since(1_000).unwrap().is_empty());
    assert!(s.changes_since(u64::MAX).unwrap().is_empty());
    assert_eq!(s.compacted_revision().unwrap(), 0);
    for i in 31..=120u64 {
        s.put(&format!("/k/{i}"), b"x").unwrap();
    }
    // 50 revisions are kept: 71..=120.
    assert_eq!(s.compacted_revision().unwrap(), 70);
    match s.changes_since(69) {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (69, 70)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.changes_since(10),
        Err(StoreError::Compacted { .. })
    ));
    let ev = s.changes_since(70).unwrap();
    assert_eq!(ev.len(), 50);
    assert_eq!(ev[0].mod_revision, 71);
    // Compaction state and history survive a reopen.
    let listing = s.list("").unwrap();
    drop(s);
    let s = open(&path, 50);
    assert_eq!(s.compacted_revision().unwrap(), 70);
    assert!(matches!(
        s.changes_since(69),
        Err(StoreError::Compacted { .. })
    ));
    assert_eq!(s.changes_since(70).unwrap(), ev);
    assert_eq!(s.list("").unwrap(), listing);
}

fn replaying_missed_events_on_an_old_listing_gives_the_current_state(s: &dyn Store) {
    for i in 0..20 {
        s.put(&format!("/k/{}", i % 6), format!("{i}").as_bytes())
            .unwrap();
    }
    let old = s.list("/k/").unwrap();
    s.delete("/k/2").unwrap();
    s.txn(
        Txn::new()
            .and_then(Op::delete_prefix("/k/4"))
            .and_then(Op::put("/k/9", "new")),
    )
    .unwrap();
    s.put("/k/0", b"last").unwrap();
    let mut state: std::collections::BTreeMap<String, Vec<u8>> =
        old.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    for e in s.changes_since(old.revision).unwrap() {
        match e.kind {
            EventKind::Put => state.insert(e.key, e.value),
            EventKind::Delete => state.remove(&e.key),
        };
    }
    let now: std::collections::BTreeMap<_, _> = s
        .list("/k/")
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect();
    assert_eq!(state, now);
}

#[test]
fn reopen_after_drop_recovers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.db");
    let (listing, log) = {
        let s = open(&path, 10_000);
        for i in 0..50 {
            s.put(
                &format!("/calico/v1/config/K{i}"),
                format!("\"{i}\"").as_bytes(),
            )
            .unwrap();
        }
        s.delete("/calico/v1/config/K7").unwrap();
        s.txn(Txn::new().and_then(Op::delete_prefix("/calico/v1/config/K4")))
            .unwrap();
        s.put("/calico/v1/config/K1", b"\"again\"").unwrap();
        (s.list("").unwrap(), s.changes_since(0).unwrap())
    };
    assert_eq!(listing.revision, 53);
    assert_eq!(listing.kvs.len(), 50 - 1 - 11);
    let s = open(&path, 10_000);
    assert_eq!(s.list("").unwrap(), listing);
    assert_eq!(s.changes_since(0).unwrap(), log);
    assert_eq!(s.revision().unwrap(), 53);
    assert_eq!(
        value(&s, "/calico/v1/config/K1").as_deref(),
        Some("\"again\"")
    );
}

fn waiters_and_subscribers_hear_of_commits_only(s: &dyn Store) {
    let r0 = s.revision().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let seen2 = seen.clone();
    let sub = s.subscribe(Box::new(move |r| {
        seen2.store(r, Ordering::SeqCst);
    }));
    thread::scope(|scope| {
        let waiter = scope.spawn(|| s.wait_for_revision(r0, Duration::from_secs(20)).unwrap());
        thread::sleep(Duration::from_millis(20));
        assert_eq!(s.put("/a", b"1").unwrap(), r0 + 1);
        assert_eq!(waiter.join().unwrap(), r0 + 1);
    });
    assert_eq!(seen.load(Ordering::SeqCst), r0 + 1);
    // A transaction that writes nothing wakes nobody.
    s.txn(
        Txn::new()
            .when(Compare::absent("/a"))
            .and_then(Op::put("/b", "x")),
    )
    .unwrap();
    let t = Instant::now();
    assert_eq!(
        s.wait_for_revision(r0 + 1, Duration::from_millis(50))
            .unwrap(),
        r0 + 1
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
    drop(sub);
    s.put("/a", b"2").unwrap();
    // Give a backend's watch task time to deliver the revision (it must not reach the dropped one).
    thread::sleep(Duration::from_millis(100));
    assert_eq!(seen.load(Ordering::SeqCst), r0 + 1);
    assert_eq!(
        s.wait_for_revision(r0 + 1, Duration::from_secs(5)).unwrap(),
        r0 + 2
    );
}

#[test]
fn a_second_open_of_the_file_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let first = open(&path, 10);
    first.put("/a", b"1").unwrap();
    let err = EmbeddedStore::open(&path, opts(10)).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("locked.db"), "{err}");
    drop(first);
    assert_eq!(value(&open(&path, 10), "/a").as_deref(), Some("1"));
}

#[test]
fn a_file_that_is_not_a_store_or_is_damaged_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    let err = EmbeddedStore::open(&path, opts(10)).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(err.to_string().contains("garbage.db"), "{err}");
    // A real store damaged outside redb: the integrity check on open reports it.
    let path = dir.path().join("damaged.db");
    let s = open(&path, 10);
    for i in 0..200 {
        s.put(&format!("/k/{i:04}"), &[b'v'; 200]).unwrap();
    }
    drop(s);
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    assert!(len > 8192);
    for b in bytes[4096..].iter_mut().step_by(1024) {
        *b ^= 0xff;
    }
    std::fs::write(&path, bytes).unwrap();
    let err = EmbeddedStore::open(&path, opts(10)).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(err.to_string().contains("damaged.db"), "{err}");
    let err = EmbeddedStore::open(dir.path(), opts(10)).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
}

#[test]
fn thousand_sequential_durable_puts() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("seq.db"), 10_000);
    let value = serde_json::json!({"state":"active","name":"cali0123456789a","mac":"ee:ee:ee:ee:ee:ee",
        "container:if_name":"eth1","profile_ids":["P"],"ipv4_nets":["192.168.1.1/32"],"ipv6_nets":[],
        "ipv4_gateway":"172.17.8.101","ipv6_gateway":null})
    .to_string();
    let mut times = Vec::with_capacity(1000);
    for i in 0..1000u64 {
        let t = Instant::now();
        let rev = s
            .put(
                &format!("/calico/v1/host/h/workload/docker/w{i}/endpoint/e{i}"),
                value.as_bytes(),
            )
            .unwrap();
        times.push(t.elapsed());
        assert_eq!(rev, i + 1);
    }
    times.sort();
    eprintln!(
        "1000 sequential puts: median {:?}, p90 {:?}, max {:?}, total {:?}",
        times[500],
        times[900],
        times[999],
        times.iter().sum::<Duration>()
    );
    assert_eq!(s.list("/calico/v1/host/h/").unwrap().kvs.len(), 1000);
}
