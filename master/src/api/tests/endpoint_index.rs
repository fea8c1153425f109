//! The endpoint-id index (`/calico/v1/index/endpoint/<id>`): it follows create, update, delete and
//! node removal; stale entries are ignored and replaced; a store written before the index existed is
//! indexed by the next master. Each test runs on the embedded store and on a real etcd.

use serde_json::{json, Value};

use super::{
    api_err,
    endpoints::{ep, setup, EP1, EP2},
    ipam::assign,
    Backend, TestServer,
};
use crate::{
    model::Endpoint,
    store::{
        keys::{endpoint_index_key, Key, ENDPOINT_INDEX_PREFIX},
        Store,
    },
};

fn ep_key(host: &str, workload: &str, id: &str) -> String {
    format!("/calico/v1/host/{host}/workload/docker/{workload}/endpoint/{id}")
}

/// The key the index names for `id` (a blocking store call: run from a blocking thread).
async fn entry(srv: &TestServer, id: &str) -> Option<String> {
    let store = srv.store.clone();
    let key = endpoint_index_key(id);
    tokio::task::spawn_blocking(move || store.get(&key))
        .await
        .expect("join")
        .expect("get")
        .map(|kv| String::from_utf8(kv.value).expect("utf-8"))
}

async fn follows_create_update_delete(backend: Backend) {
    let srv = TestServer::start_with(backend, None).await;
    let c = srv.client();
    setup(&c).await;
    assign(&c, "h1", "w2", &["auto"]).await; // 10.65.0.2
    c.post(
        "/v1/endpoints",
        &ep("h1", "w1", EP1, &["10.65.0.1"], &["WEB"]),
    )
    .await
    .expect("create");
    assert_eq!(entry(&srv, EP1).await, Some(ep_key("h1", "w1", EP1)));
    // An update keeps the entry; the id still resolves.
    let mut body = ep("h1", "w1", EP1, &["10.65.0.1"], &["WEB"]);
    body["state"] = json!("inactive");
    c.post("/v1/endpoints", &body).await.expect("update");
    assert_eq!(entry(&srv, EP1).await, Some(ep_key("h1", "w1", EP1)));
    assert_eq!(
        c.get(&format!("/v1/endpoints/{EP1}")).await.expect("show")["state"],
        "inactive"
    );
    // The same id under another workload is refused and the entry is unchanged.
    let (e, f) = api_err(
        c.post("/v1/endpoints", &ep("h1", "w2", EP1, &["10.65.0.2"], &[]))
            .await,
        409,
    );
    assert!(e.contains("already used by workload w1 on host h1"), "{e}");
    assert_eq!(f.as_deref(), Some("endpoint_id"));
    assert_eq!(entry(&srv, EP1).await, Some(ep_key("h1", "w1", EP1)));
    // Lookups by id go through the entry.
    let v = c
        .post(
            &format!("/v1/endpoints/{EP1}/profiles"),
            &json!({"action": "set", "profiles": ["DB"]}),
        )
        .await
        .expect("profile set");
    assert_eq!(v["profile_ids"], json!(["DB"]));
    assert_eq!(
        c.get(&format!("/v1/endpoints/{EP1}/profiles"))
            .await
            .expect("profiles"),
        json!(["DB"])
    );
    // A delete removes the entry with the endpoint; the id is free again.
    c.delete(&format!("/v1/endpoints/{EP1}"))
        .await
        .expect("delete");
    assert_eq!(entry(&srv, EP1).await, None);
    api_err(c.get(&format!("/v1/endpoints/{EP1}")).await, 404);
    c.post("/v1/endpoints", &ep("h1", "w2", EP1, &["10.65.0.2"], &[]))
        .await
        .expect("the id is free again");
    assert_eq!(entry(&srv, EP1).await, Some(ep_key("h1", "w2", EP1)));
    srv.stop().await;
}

async fn follows_node_removal_and_ignores_stale_entries(backend: Backend) {
    let srv = TestServer::start_with(backend, None).await;
    let c = srv.client();
    setup(&c).await;
    let ip_of = |a: Vec<Value>| a[0]["ip"].as_str().expect("ip").to_owned();
    let w2_ip = ip_of(assign(&c, "h2", "w2", &["auto"]).await);
    let w3_ip = ip_of(assign(&c, "h2", "w3", &["auto"]).await);
    for (h, ip) in [("h1", "172.17.8.101"), ("h2", "172.17.8.102")] {
        c.put(&format!("/v1/nodes/{h}"), Some(&json!({"ip_addr_v4": ip})))
            .await
            .expect("node");
    }
    c.post(
        "/v1/endpoints",
        &ep("h1", "w1", EP1, &["10.65.0.1"], &["WEB"]),
    )
    .await
    .expect("create");
    let v = c.delete("/v1/nodes/h1?force=true").await.expect("remove");
    assert_eq!(v["endpoints_removed"], 1);
    assert_eq!(entry(&srv, EP1).await, None);
    api_err(c.get(&format!("/v1/endpoints/{EP1}")).await, 404);
    c.post("/v1/endpoints", &ep("h2", "w2", EP1, &[&w2_ip], &[]))
        .await
        .expect("the id is free after the node went");
    assert_eq!(entry(&srv, EP1).await, Some(ep_key("h2", "w2", EP1)));

    // Stale: the endpoint removed behind the API's back leaves an entry naming nothing.
    let store = srv.store.clone();
    let gone = ep_key("h2", "w2", EP1);
    tokio::task::spawn_blocking(move || store.delete(&gone))
        .await
        .expect("join")
        .expect("delete");
    api_err(c.get(&format!("/v1/endpoints/{EP1}")).await, 404);
    api_err(c.delete(&format!("/v1/endpoints/{EP1}")).await, 404);
    c.post("/v1/endpoints", &ep("h2", "w3", EP1, &[&w3_ip], &[]))
        .await
        .expect("a stale entry is replaced");
    assert_eq!(entry(&srv, EP1).await, Some(ep_key("h2", "w3", EP1)));
    assert_eq!(
        c.get(&format!("/v1/endpoints/{EP1}")).await.expect("show")["workload_id"],
        "w3"
    );
    srv.stop().await;
}

async fn a_store_written_before_the_index_still_works(backend: Backend) {
    let srv = TestServer::start_with(backend, None).await;
    let c = srv.client();
    setup(&c).await; // w1 on h1 holds 10.65.0.1
    assign(&c, "h1", "w2", &["auto"]).await; // 10.65.0.2
    assign(&c, "h1", "w3", &["auto"]).await; // 10.65.0.3
                                             // Two endpoints as a master without the index wrote them: the endpoint keys only.
    let old: Vec<(String, Value)> = [("w1", EP1, "10.65.0.1"), ("w2", EP2, "10.65.0.2")]
        .into_iter()
        .map(|(w, id, ip)| {
            let mut body = ep("h1", w, id, &[ip], &["WEB"]);
            body["name"] = json!(format!("cali{}", &id[..11]));
            let ep = Endpoint::from_etcd_value("h1", "docker", w, id, &body).expect("endpoint");
            (Key::endpoint(&ep).path(), ep.etcd_value())
        })
        .collect();
    let store = srv.store.clone();
    tokio::task::spawn_blocking(move || {
        for (key, value) in old {
            store.put(&key, value.to_string().as_bytes()).expect("put");
        }
    })
    .await
    .expect("join");
    assert_eq!(entry(&srv, EP1).await, None);
    // A master started on that store.
    let second = TestServer::start_on(srv.store.clone(), None).await;
    let c2 = second.client();
    assert_eq!(
        c2.get(&format!("/v1/endpoints/{EP1}")).await.expect("show")["workload_id"],
        "w1"
    );
    assert_eq!(entry(&second, EP1).await, Some(ep_key("h1", "w1", EP1)));
    assert_eq!(entry(&second, EP2).await, Some(ep_key("h1", "w2", EP2)));
    // A second endpoint with an old id is refused; the old ones can be changed and removed.
    api_err(
        c2.post("/v1/endpoints", &ep("h1", "w3", EP2, &["10.65.0.3"], &[]))
            .await,
        409,
    );
    c2.post(
        &format!("/v1/endpoints/{EP2}/profiles"),
        &json!({"action": "append", "profiles": ["DB"]}),
    )
    .await
    .expect("append");
    c2.delete(&format!("/v1/endpoints/{EP1}"))
        .await
        .expect("delete");
    assert_eq!(entry(&second, EP1).await, None);
    // The index holds exactly the one endpoint left.
    let store = srv.store.clone();
    let listed = tokio::task::spawn_blocking(move || store.list(ENDPOINT_INDEX_PREFIX))
        .await
        .expect("join")
        .expect("list");
    let keys: Vec<&str> = listed.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, [endpoint_index_key(EP2)]);
    second.stop().await;
    srv.stop().await;
}

macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backend::Embedded).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backend::Etcd).await;
                }
            )*
        }
    };
}

on_both_stores!(
    follows_create_update_delete,
    follows_node_removal_and_ignores_stale_entries,
    a_store_written_before_the_index_still_works,
);
