//! The datastore unreachable: a master with a sync hub answers reads from its cache and refuses
//! writes with a 503 (quickly, changing nothing), then works again when the store is back. Once with
//! the test switch on the embedded store, once with a real etcd frozen by SIGSTOP.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use super::{
    api_err,
    endpoints::{ep, setup, EP1},
    Backend, TestServer,
};
use crate::{client::Client, store::Store};

/// Every read route the cache must answer, with a cluster to show: pools, profiles, an endpoint, a
/// node, a global BGP peer.
const READS: [&str; 11] = [
    "/v1/pools",
    "/v1/profiles",
    "/v1/profiles?detailed=true",
    "/v1/profiles/WEB",
    "/v1/profiles/WEB/rules",
    "/v1/endpoints",
    "/v1/endpoints/0123456789abcdef0123456789abcdef",
    "/v1/nodes",
    "/v1/nodes/h1",
    "/v1/bgp/config",
    "/v1/ipam/ips/10.65.0.1",
];

async fn populate(c: &Client) {
    setup(c).await;
    c.post(
        "/v1/endpoints",
        &ep("h1", "w1", EP1, &["10.65.0.1"], &["WEB"]),
    )
    .await
    .expect("endpoint");
    c.put("/v1/nodes/h1", Some(&json!({"ip_addr_v4": "172.17.8.101"})))
        .await
        .expect("node");
    c.post(
        "/v1/bgp/peers",
        &json!({"ip": "172.17.8.200", "as_num": 64512}),
    )
    .await
    .expect("peer");
}

async fn read_all(c: &Client) -> Vec<Value> {
    let mut out = Vec::new();
    for path in READS {
        out.push(
            c.get(path)
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}")),
        );
    }
    out
}

/// Wait until the hub has every change the store has (so the cache is current).
async fn hub_caught_up(srv: &TestServer) {
    let store = srv.store.clone();
    let rev = tokio::task::spawn_blocking(move || store.revision())
        .await
        .expect("join")
        .expect("revision");
    let hub = srv.hub.as_ref().expect("hub");
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.revision() < rev {
        assert!(Instant::now() < deadline, "the hub did not catch up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Retry `POST /v1/profiles {name}` until it succeeds (the store is back), within `limit`.
async fn write_works_again(c: &Client, name: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        match c.post("/v1/profiles", &json!({"name": name})).await {
            Ok(v) => {
                assert_eq!(v["changed"], true, "{v}");
                return;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "writes still fail {limit:?} after the store came back: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_come_from_the_cache_while_the_store_is_down() {
    let srv =
        TestServer::start_with_hub(Arc::new(TestServer::store(Backend::Embedded).await)).await;
    let c = srv.client();
    populate(&c).await;
    hub_caught_up(&srv).await;
    let before = read_all(&c).await;
    srv.set_down(true);
    assert_eq!(read_all(&c).await, before);
    let (e, _) = api_err(c.post("/v1/profiles", &json!({"name": "LATE"})).await, 503);
    assert!(
        e.contains("unavailable") && e.contains("nothing was changed"),
        "{e}"
    );
    api_err(
        c.post(
            &format!("/v1/endpoints/{EP1}/profiles"),
            &json!({"action": "set", "profiles": ["DB"]}),
        )
        .await,
        503,
    );
    api_err(c.get("/healthz").await, 503);
    srv.set_down(false);
    write_works_again(&c, "BACK", Duration::from_secs(5)).await;
    // The refused writes changed nothing.
    api_err(c.get("/v1/profiles/LATE").await, 404);
    assert_eq!(
        c.get(&format!("/v1/endpoints/{EP1}/profiles"))
            .await
            .expect("profiles"),
        json!(["WEB"])
    );
    assert_eq!(c.get("/healthz").await.expect("healthz")["status"], "ok");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_etcd_gives_cached_reads_and_quick_503s() {
    let store = Arc::new(TestServer::store(Backend::Etcd).await);
    let srv = TestServer::start_with_hub(store.clone()).await;
    let c = srv.client();
    populate(&c).await;
    hub_caught_up(&srv).await;
    let before = read_all(&c).await;
    let etcd = store.etcd.as_ref().expect("etcd");
    etcd.pause();
    // Reads: the first waits for etcd's request timeout (3 s), then the cache answers at once.
    let t = Instant::now();
    assert_eq!(read_all(&c).await, before);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "reads took {:?}",
        t.elapsed()
    );
    // Writes: a 503 naming etcd, within 5 s, every time.
    for name in ["LATE1", "LATE2"] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let t = Instant::now();
        let (e, _) = api_err(c.post("/v1/profiles", &json!({"name": name})).await, 503);
        let took = t.elapsed();
        assert!(took < Duration::from_secs(5), "the 503 took {took:?}");
        assert!(
            e.contains("etcd at http://127.0.0.1:")
                && e.contains("unreachable")
                && e.contains("nothing was changed"),
            "{e}"
        );
    }
    let t = Instant::now();
    api_err(
        c.post(
            &format!("/v1/endpoints/{EP1}/profiles"),
            &json!({"action": "set", "profiles": ["DB"]}),
        )
        .await,
        503,
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the 503 took {:?}",
        t.elapsed()
    );
    etcd.resume();
    write_works_again(&c, "BACK", Duration::from_secs(20)).await;
    // Nothing refused was applied, not even later by the thawed etcd.
    for name in ["LATE1", "LATE2"] {
        api_err(c.get(&format!("/v1/profiles/{name}")).await, 404);
    }
    assert_eq!(
        c.get(&format!("/v1/endpoints/{EP1}/profiles"))
            .await
            .expect("profiles"),
        json!(["WEB"])
    );
    assert_eq!(
        c.get("/v1/profiles/BACK").await.expect("show")["name"],
        "BACK"
    );
    srv.stop().await;
}
