//! etcd-only store tests, each against its own real etcd ([`EtcdServer`]): failing fast with
//! [`StoreError::Unavailable`] when etcd is down, resuming after an etcd restart (the change feed and
//! the long-lived watch), compaction reported as [`StoreError::Compacted`] (and skipped by the
//! long-lived watch), kill -9 of etcd losing no acknowledged write, TLS with client certificates, and
//! the option checks (endpoints, TLS files).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use super::{
    etcd::Conn, etcd_server::EtcdServer, etcd_watch, Compare, EtcdOptions, EtcdStore, EtcdTls,
    EventKind, Op, RevisionWatch, Store, StoreError, Txn,
};

/// Retry `f` until etcd answers again (after a restart), for at most 20 s.
fn until_available<T>(mut f: impl FnMut() -> Result<T, StoreError>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match f() {
            Ok(v) => return v,
            Err(StoreError::Unavailable(m)) if Instant::now() < deadline => {
                eprintln!("waiting for etcd: {m}");
                thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// A named store call, for running each against a dead etcd.
type Call<'a> = (&'a str, Box<dyn Fn() -> Result<(), StoreError> + 'a>);

#[test]
fn an_unreachable_etcd_fails_fast_naming_the_endpoints() {
    // Two ports nobody listens on.
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        })
        .collect();
    let eps: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let t = Instant::now();
    let err = EtcdStore::connect(EtcdOptions::new(eps.clone())).unwrap_err();
    let took = t.elapsed();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    for e in &eps {
        assert!(err.to_string().contains(e), "{err}");
    }
    assert!(took < Duration::from_secs(5), "took {took:?}");
    eprintln!("connect to a dead etcd failed in {took:?}: {err}");

    // A store whose etcd dies: every call fails fast, then works again after a restart.
    let mut server = EtcdServer::start();
    let s = server.store();
    s.put("/calico/v1/Ready", b"true").unwrap();
    server.kill();
    let calls: [Call<'_>; 5] = [
        ("get", Box::new(|| s.get("/calico/v1/Ready").map(drop))),
        ("list", Box::new(|| s.list("/calico/").map(drop))),
        ("put", Box::new(|| s.put("/calico/v1/x", b"1").map(drop))),
        ("txn", Box::new(|| s.create("/calico/v1/y", b"1").map(drop))),
        ("changes", Box::new(|| s.changes_since(1).map(drop))),
    ];
    for (name, call) in &calls {
        let t = Instant::now();
        let err = call().unwrap_err();
        let took = t.elapsed();
        assert!(matches!(err, StoreError::Unavailable(_)), "{name}: {err:?}");
        assert!(err.to_string().contains(&server.endpoint()), "{err}");
        assert!(took < Duration::from_secs(5), "{name} took {took:?}");
        eprintln!("{name} on a dead etcd failed in {took:?}");
    }
    server.restart();
    let kv = until_available(|| s.get("/calico/v1/Ready")).unwrap();
    assert_eq!(kv.value, b"true");
}

#[test]
fn after_an_etcd_restart_the_feed_and_the_watch_resume_with_exactly_the_missed_events() {
    let mut server = EtcdServer::start();
    let a = server.store();
    let seen = Arc::new(AtomicU64::new(0));
    let seen2 = seen.clone();
    let _sub = a.subscribe(Box::new(move |r| seen2.store(r, Ordering::SeqCst)));
    for i in 0..10 {
        a.put(&format!("/calico/v1/host/h{i}/config/X"), b"1")
            .unwrap();
    }
    a.delete("/calico/v1/host/h3/config/X").unwrap();
    let before = a.revision().unwrap();
    server.restart();
    // Writes by another master after the restart: `a` hears of them only through its own watch,
    // which must have reconnected and resumed.
    let b = server.store();
    let mut expected = Vec::new();
    for i in 0..10 {
        let key = format!("/calico/v1/host/h{i}/config/Y");
        let rev = until_available(|| b.put(&key, i.to_string().as_bytes()));
        expected.push((EventKind::Put, key, i.to_string().into_bytes(), rev));
    }
    let r = b
        .txn(Txn::new().and_then(Op::delete_prefix("/calico/v1/host/h5/")))
        .unwrap();
    expected.push((
        EventKind::Delete,
        "/calico/v1/host/h5/config/X".into(),
        vec![],
        r.revision,
    ));
    expected.push((
        EventKind::Delete,
        "/calico/v1/host/h5/config/Y".into(),
        vec![],
        r.revision,
    ));
    let last = r.revision;
    assert_eq!(last, before + 11);
    let got: Vec<_> = until_available(|| a.changes_since(before))
        .into_iter()
        .map(|e| (e.kind, e.key, e.value, e.mod_revision))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        a.wait_for_revision(last - 1, Duration::from_secs(20))
            .unwrap(),
        last
    );
    let t = Instant::now();
    while seen.load(Ordering::SeqCst) < last && t.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        last,
        "a's subscriber heard b's writes"
    );
    // And the watch keeps following after the resume.
    let next = b.put("/calico/v1/Ready", b"true").unwrap();
    assert_eq!(
        a.wait_for_revision(last, Duration::from_secs(10)).unwrap(),
        next
    );
}

#[test]
fn compaction_gives_compacted_and_the_history_after_it_stays() {
    let server = EtcdServer::start();
    let s = server.store();
    let r0 = s.revision().unwrap();
    for i in 1..=20u64 {
        if i % 5 == 0 {
            s.delete(&format!("/k/{}", i - 1)).unwrap();
        } else {
            s.put(&format!("/k/{i}"), b"v").unwrap();
        }
    }
    let listing = s.list("/k/").unwrap();
    s.compact(r0 + 10).unwrap();
    for asked in [0, r0, r0 + 9] {
        match s.changes_since(asked) {
            Err(StoreError::Compacted {
                requested,
                compacted,
            }) => assert_eq!((requested, compacted), (asked, r0 + 10)),
            other => panic!("changes_since({asked}): {other:?}"),
        }
    }
    // After the compact revision everything is still there (revision r0 + 10 was a delete).
    let ev = s.changes_since(r0 + 10).unwrap();
    assert_eq!(
        ev.iter().map(|e| e.mod_revision).collect::<Vec<_>>(),
        (r0 + 11..=r0 + 20).collect::<Vec<_>>()
    );
    assert_eq!(ev.last().map(|e| e.kind), Some(EventKind::Delete));
    // The relist a subscriber then does still reads the current state.
    assert_eq!(s.list("/k/").unwrap(), listing);
    assert!(s.changes_since(r0 + 20).unwrap().is_empty());
    // The compaction is etcd's: another client sees it too.
    assert!(matches!(
        server.store().changes_since(r0 + 5),
        Err(StoreError::Compacted { .. })
    ));
}

#[test]
fn the_watch_task_resuming_into_compacted_history_publishes_the_current_revision() {
    let server = EtcdServer::start();
    let s = server.store();
    for i in 0..10 {
        s.put(&format!("/k/{i}"), b"v").unwrap();
    }
    let now = s.revision().unwrap();
    s.compact(now - 2).unwrap();
    // A watch task that last saw revision 1: its history is gone. It must not retry it forever but
    // move to the current revision (subscribers then relist) and follow from there.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = rt
        .block_on(etcd_client::Client::connect([server.endpoint()], None))
        .unwrap();
    let conn = std::sync::Arc::new(Conn::new(
        vec![server.endpoint()],
        vec![client],
        Duration::from_secs(3),
    ));
    let watch = RevisionWatch::new(1);
    let task = rt.spawn(etcd_watch::run(conn, watch.clone(), 1));
    assert_eq!(watch.wait_for(1, Duration::from_secs(10)), now);
    let next = s.put("/k/after", b"v").unwrap();
    assert_eq!(watch.wait_for(now, Duration::from_secs(10)), next);
    task.abort();
}

#[test]
fn kill_9_of_etcd_loses_no_acknowledged_write() {
    let mut server = EtcdServer::start();
    let mut next = 0u64;
    for round in 0..3 {
        let store = Arc::new(server.store());
        let acked = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let store = store.clone();
            let acked = acked.clone();
            let start = next;
            thread::spawn(move || {
                let mut n = start;
                loop {
                    let key = format!("/crash/data/{n:08}");
                    let txn = Txn::new()
                        .when(Compare::absent(key.clone()))
                        .and_then(Op::put(key, format!("{{\"n\":{n}}}")))
                        .and_then(Op::put("/crash/last", n.to_string()));
                    match store.txn(txn) {
                        Ok(r) if r.succeeded => acked.lock().unwrap().push(n),
                        Ok(r) => panic!("write {n} conflicted: {r:?}"),
                        Err(e) => return e,
                    }
                    n += 1;
                }
            })
        };
        let t = Instant::now();
        while acked.lock().unwrap().len() < 150 + round * 50 {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the writer is too slow"
            );
            thread::sleep(Duration::from_millis(5));
        }
        server.kill();
        let err = writer.join().unwrap();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        let acked = acked.lock().unwrap().clone();
        let last_ack = *acked.last().unwrap();
        drop(store);
        server.restart();
        let s = server.store();
        let data = s.list("/crash/data/").unwrap();
        let on_disk = data.kvs.len() as u64;
        // Every acknowledged write is there; at most the one in flight at the kill is there too.
        assert!(
            on_disk > last_ack,
            "write {last_ack} was acknowledged but is lost"
        );
        assert!(
            on_disk <= last_ack + 2,
            "{on_disk} writes for {last_ack} acks"
        );
        for (i, kv) in data.kvs.iter().enumerate() {
            assert_eq!(kv.key, format!("/crash/data/{i:08}"));
            assert_eq!(kv.value, format!("{{\"n\":{i}}}").into_bytes());
        }
        let last = s.get("/crash/last").unwrap().unwrap();
        assert_eq!(last.value, (on_disk - 1).to_string().into_bytes());
        eprintln!(
            "round {round}: {} acks this round, last ack {last_ack}, {on_disk} writes on disk after kill -9",
            acked.len()
        );
        next = on_disk;
    }
}

#[test]
fn options_are_checked_before_connecting() {
    assert_eq!(
        EtcdOptions::parse_endpoints("http://a:2379, https://b:2379,").unwrap(),
        ["http://a:2379", "https://b:2379"]
    );
    assert!(EtcdOptions::parse_endpoints(" , ").is_err());
    assert!(EtcdOptions::parse_endpoints("a:2379").is_err());
    assert!(EtcdStore::connect(EtcdOptions::new(Vec::<String>::new())).is_err());
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, "not a certificate").unwrap();
    // A certificate without its key.
    let mut o = EtcdOptions::new(["https://127.0.0.1:1"]);
    o.tls = Some(EtcdTls {
        ca: Some(pem.clone()),
        cert: Some(pem.clone()),
        key: None,
    });
    let err = EtcdStore::connect(o.clone()).unwrap_err();
    assert!(err.to_string().contains("--etcd-key"), "{err}");
    // A missing file is named.
    o.tls = Some(EtcdTls {
        ca: Some(dir.path().join("missing.pem")),
        ..EtcdTls::default()
    });
    let err = EtcdStore::connect(o.clone()).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    // TLS files with a plain-http endpoint.
    o.endpoints = vec!["http://127.0.0.1:1".into()];
    o.tls = Some(EtcdTls {
        ca: Some(pem),
        ..EtcdTls::default()
    });
    let err = EtcdStore::connect(o).unwrap_err();
    assert!(err.to_string().contains("use https://"), "{err}");
}

#[test]
fn tls_with_a_client_certificate_works_and_without_one_is_refused() {
    let server = EtcdServer::start_tls();
    assert!(server.endpoint().starts_with("https://"));
    let s = server.store();
    let rev = s.put("/calico/v1/Ready", b"true").unwrap();
    assert_eq!(
        s.get("/calico/v1/Ready").unwrap().unwrap().mod_revision,
        rev
    );
    // The watch works over TLS too: another client's write wakes this one.
    let other = server.store();
    let next = other.put("/calico/v1/Ready", b"false").unwrap();
    assert_eq!(
        s.wait_for_revision(rev, Duration::from_secs(10)).unwrap(),
        next
    );
    let files = server.client_tls().unwrap().clone();
    // Without the client certificate etcd refuses the connection.
    let mut o = EtcdOptions::new([server.endpoint()]);
    o.tls = Some(EtcdTls {
        ca: files.ca.clone(),
        ..EtcdTls::default()
    });
    let err = EtcdStore::connect(o).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    // Without trusting the CA the server's certificate is refused.
    let mut o = EtcdOptions::new([server.endpoint()]);
    o.tls = Some(EtcdTls { ca: None, ..files });
    assert!(EtcdStore::connect(o).is_err());
}

#[test]
fn a_dead_endpoint_in_the_list_is_passed_over() {
    let server = EtcdServer::start();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let s = EtcdStore::connect(EtcdOptions::new([dead.clone(), server.endpoint()])).unwrap();
    assert_eq!(s.endpoints(), [dead, server.endpoint()]);
    let t = Instant::now();
    for i in 0..50 {
        let key = format!("/calico/v1/config/K{i}");
        let rev = s.put(&key, b"1").unwrap();
        assert_eq!(s.get(&key).unwrap().unwrap().mod_revision, rev);
    }
    assert_eq!(s.list("/calico/v1/config/").unwrap().kvs.len(), 50);
    // The long-lived watch found the live endpoint too: another client's write wakes `s`.
    let rev = s.revision().unwrap();
    let next = server.store().put("/calico/v1/Ready", b"true").unwrap();
    assert_eq!(
        s.wait_for_revision(rev, Duration::from_secs(10)).unwrap(),
        next
    );
    eprintln!(
        "100 requests with one dead endpoint of two: {:?}",
        t.elapsed()
    );
}
