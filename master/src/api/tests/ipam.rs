//! `/v1/ipam`: explicit, automatic and dual-stack assignment, refusals naming the address, info,
//! release by address and by handle, all-or-nothing multi-requests, and 100 concurrent assignments.

use std::{collections::BTreeSet, net::IpAddr};

use serde_json::{json, Value};

use super::{api_err, TestServer};
use crate::{api::ipam, client::Client, ipam::Block, store::Store};

pub(super) async fn pools(c: &Client) {
    c.post("/v1/pools", &json!({"cidr": "10.65.0.0/16"}))
        .await
        .expect("v4 pool");
    c.post("/v1/pools", &json!({"cidr": "fd80:24e2:f998:72d6::/64"}))
        .await
        .expect("v6 pool");
}

pub(super) async fn assign(c: &Client, host: &str, handle: &str, reqs: &[&str]) -> Vec<Value> {
    let v = c
        .post(
            "/v1/ipam/assign",
            &json!({"host": host, "handle_id": handle, "requests": reqs}),
        )
        .await
        .expect("assign");
    assert_eq!(v["changed"], true);
    v["assignments"].as_array().expect("assignments").clone()
}

fn used(store: &dyn Store) -> usize {
    let loaded = ipam::load(store).expect("load");
    loaded.state.blocks.values().map(Block::used).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_auto_and_dual_stack() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    pools(&c).await;
    let a = assign(&c, "h1", "w1", &["auto"]).await;
    assert_eq!(
        a,
        [
            json!({"ip": "10.65.0.1", "block": "10.65.0.0/26", "host_route": false, "request": "auto"})
        ]
    );
    let a = assign(&c, "h1", "w2", &["auto", "ipv6"]).await;
    assert_eq!(a[0]["ip"], "10.65.0.2");
    assert_eq!(a[1]["ip"], "fd80:24e2:f998:72d6::1");
    assert_eq!(a[1]["block"], "fd80:24e2:f998:72d6::/122");
    // One request as a string, an explicit address and a pool CIDR.
    let v = c
        .post(
            "/v1/ipam/assign",
            &json!({"host": "h1", "handle_id": "w3", "request": "10.65.1.7"}),
        )
        .await
        .expect("explicit");
    assert_eq!(v["assignments"][0]["ip"], "10.65.1.7");
    assert_eq!(v["assignments"][0]["block"], "10.65.1.0/26");
    let a = assign(&c, "h1", "w4", &["10.65.0.0/16"]).await;
    assert_eq!(a[0]["ip"], "10.65.0.3");
    // An explicit address in another host's block is announced as a host route.
    let a = assign(&c, "h2", "w5", &["10.65.0.9"]).await;
    assert_eq!(a[0]["host_route"], true);

    let info = c.get("/v1/ipam/ips/10.65.0.9").await.expect("info");
    assert_eq!(info["handle_id"], "w5");
    assert_eq!(info["host"], "h2");
    assert_eq!(info["block"], "10.65.0.0/26");
    assert_eq!(info["block_affinity"], "h1");
    assert_eq!(info["host_route"], true);
    assert_eq!(info["pool"], "10.65.0.0/16");
    assert_eq!(
        c.get("/v1/ipam/hosts/h1/routes").await.expect("routes"),
        json!({"host": "h1", "blocks": ["10.65.0.0/26", "10.65.1.0/26", "fd80:24e2:f998:72d6::/122"], "host_routes": []})
    );
    assert_eq!(
        c.get("/v1/ipam/hosts/h2/routes").await.expect("routes"),
        json!({"host": "h2", "blocks": [], "host_routes": ["10.65.0.9"]})
    );
    api_err(c.get("/v1/ipam/hosts/bad%20host/routes").await, 400);
    // The handles of a host's addresses (wherever their blocks are), with them.
    assert_eq!(
        c.get("/v1/ipam/hosts/h2/handles").await.expect("handles"),
        json!({"host": "h2", "handles": [{"handle_id": "w5", "ips": ["10.65.0.9"]}]})
    );
    let h1 = c.get("/v1/ipam/hosts/h1/handles").await.expect("handles");
    let names: Vec<&str> = h1["handles"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|h| h["handle_id"].as_str())
        .collect();
    assert_eq!(names, ["w1", "w2", "w3", "w4"]);
    assert_eq!(
        h1["handles"][1]["ips"],
        json!(["10.65.0.2", "fd80:24e2:f998:72d6::1"])
    );
    assert_eq!(
        c.get("/v1/ipam/hosts/h3/handles").await.expect("handles"),
        json!({"host": "h3", "handles": []})
    );
    api_err(c.get("/v1/ipam/hosts/bad%20host/handles").await, 400);
    let info = c
        .get("/v1/ipam/ips/fd80:24e2:f998:72d6::1")
        .await
        .expect("v6 info");
    assert_eq!(info["handle_id"], "w2");
    assert_eq!(used(srv.store.as_ref()), 6);
    // Stored under the original IPAM v2 keys.
    let kv = srv
        .store
        .get("/calico/ipam/v2/assignment/ipv4/block/10.65.0.0-26")
        .expect("get")
        .expect("block stored");
    let block: Value = serde_json::from_slice(&kv.value).expect("json");
    assert_eq!(block["affinity"], "host:h1");
    assert!(srv
        .store
        .get("/calico/ipam/v2/assignment/ipv6/block/fd80:24e2:f998:72d6::-122")
        .expect("get")
        .is_some());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_address_and_change_nothing() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    pools(&c).await;
    c.post(
        "/v1/pools",
        &json!({"cidr": "10.70.0.0/24", "disabled": true}),
    )
    .await
    .expect("disabled pool");
    assign(&c, "h1", "w1", &["10.65.0.7"]).await;
    let req = |r: Value| json!({"host": "h1", "handle_id": "w2", "requests": r});
    let (e, f) = api_err(
        c.post("/v1/ipam/assign", &req(json!(["10.65.0.7"]))).await,
        409,
    );
    assert!(
        e.contains("10.65.0.7 is already in use by w1 on host h1"),
        "{e}"
    );
    assert_eq!(f.as_deref(), Some("ip"));
    let (e, f) = api_err(
        c.post("/v1/ipam/assign", &req(json!(["10.66.0.1"]))).await,
        400,
    );
    assert!(e.contains("10.66.0.1 is not in any IP pool"), "{e}");
    assert_eq!(f.as_deref(), Some("ip"));
    let (e, _) = api_err(
        c.post("/v1/ipam/assign", &req(json!(["10.70.0.5"]))).await,
        400,
    );
    assert!(e.contains("disabled"), "{e}");
    let (e, _) = api_err(
        c.post("/v1/ipam/assign", &req(json!(["10.65.0.0"]))).await,
        400,
    );
    assert!(e.contains("network address"), "{e}");
    let (e, f) = api_err(
        c.post("/v1/ipam/assign", &req(json!(["banana"]))).await,
        400,
    );
    assert!(e.contains("`banana` is not an IP request"), "{e}");
    assert_eq!(f.as_deref(), Some("request"));
    api_err(
        c.post("/v1/ipam/assign", &req(json!(["10.99.0.0/16"])))
            .await,
        400,
    );
    api_err(c.post("/v1/ipam/assign", &req(json!([]))).await, 400);
    api_err(c.post("/v1/ipam/assign", &req(json!([7]))).await, 400);
    let (_, f) = api_err(
        c.post(
            "/v1/ipam/assign",
            &json!({"host": "bad host", "handle_id": "w", "request": "auto"}),
        )
        .await,
        400,
    );
    assert_eq!(f.as_deref(), Some("host"));
    let (_, f) = api_err(
        c.post("/v1/ipam/assign", &json!({"host": "h1", "request": "auto"}))
            .await,
        400,
    );
    assert_eq!(f.as_deref(), Some("handle_id"));
    let (_, f) = api_err(
        c.post(
            "/v1/ipam/assign",
            &json!({"host": "h1", "handle_id": "w", "request": "auto", "x": 1}),
        )
        .await,
        400,
    );
    assert_eq!(f.as_deref(), Some("x"));
    // Dual stack is all-or-nothing: the IPv4 address of a failed pair is released again.
    api_err(
        c.post("/v1/ipam/assign", &req(json!(["auto", "10.66.0.1"])))
            .await,
        400,
    );
    assert_eq!(used(srv.store.as_ref()), 1, "only w1's address is held");
    // Info and release of bad or free addresses.
    let (e, _) = api_err(c.get("/v1/ipam/ips/10.65.0.8").await, 404);
    assert!(
        e.contains("10.65.0.8 is not assigned (it is free in pool 10.65.0.0/16)"),
        "{e}"
    );
    let (e, _) = api_err(c.get("/v1/ipam/ips/10.99.0.8").await, 404);
    assert!(e.contains("in no IP pool"), "{e}");
    let (_, f) = api_err(c.get("/v1/ipam/ips/nope").await, 400);
    assert_eq!(f.as_deref(), Some("ip"));
    api_err(c.delete("/v1/ipam/ips/10.65.0.8").await, 404);
    api_err(c.delete("/v1/ipam/handles/nobody").await, 404);
    api_err(c.delete("/v1/ipam/handles/-bad").await, 400);
    api_err(c.get("/v1/ipam/assign").await, 405);
    // With the datastore down: 503, nothing assigned.
    srv.set_down(true);
    let (e, _) = api_err(c.post("/v1/ipam/assign", &req(json!(["auto"]))).await, 503);
    assert!(e.contains("nothing was changed"), "{e}");
    api_err(c.get("/v1/ipam/ips/10.65.0.7").await, 503);
    api_err(c.get("/v1/endpoints").await, 503);
    api_err(c.get("/v1/nodes").await, 503);
    api_err(c.get("/v1/bgp/config").await, 503);
    srv.set_down(false);
    assert_eq!(used(srv.store.as_ref()), 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_by_address_and_by_handle() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    pools(&c).await;
    assign(&c, "h1", "w1", &["auto", "ipv6", "auto"]).await;
    assign(&c, "h1", "w2", &["auto"]).await;
    let v = c.delete("/v1/ipam/ips/10.65.0.3").await.expect("release");
    assert_eq!(v["released"], json!(["10.65.0.3"]));
    assert!(v["message"]
        .as_str()
        .unwrap_or("")
        .contains("held by w2 on host h1"));
    api_err(c.get("/v1/ipam/ips/10.65.0.3").await, 404);
    let v = c
        .delete("/v1/ipam/handles/w1")
        .await
        .expect("release handle");
    assert_eq!(
        v["released"],
        json!(["10.65.0.1", "10.65.0.2", "fd80:24e2:f998:72d6::1"])
    );
    assert_eq!(used(srv.store.as_ref()), 0);
    // A reservation made before the container existed is re-keyed to the container id.
    assign(&c, "h1", "resv-1", &["auto", "ipv6"]).await;
    let v = c
        .post(
            "/v1/ipam/handles/resv-1/rename",
            &json!({"handle_id": "c0ffee"}),
        )
        .await
        .expect("rename");
    assert_eq!(v["ips"], json!(["10.65.0.1", "fd80:24e2:f998:72d6::1"]));
    assert_eq!(
        c.get("/v1/ipam/ips/10.65.0.1").await.expect("info")["handle_id"],
        "c0ffee"
    );
    api_err(
        c.post("/v1/ipam/handles/resv-1/rename", &json!({"handle_id": "x"}))
            .await,
        404,
    );
    let (_, f) = api_err(
        c.post(
            "/v1/ipam/handles/c0ffee/rename",
            &json!({"handle_id": "bad handle"}),
        )
        .await,
        400,
    );
    assert_eq!(f.as_deref(), Some("handle_id"));
    api_err(
        c.post("/v1/ipam/handles/c0ffee/rename", &json!({})).await,
        400,
    );
    c.delete("/v1/ipam/handles/c0ffee").await.expect("release");
    // Freed addresses are handed out again, from the host's own block.
    let a = assign(&c, "h1", "w3", &["auto"]).await;
    assert_eq!(a[0]["ip"], "10.65.0.1");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_assignments_never_duplicate() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    c.post("/v1/pools", &json!({"cidr": "10.65.0.0/24"}))
        .await
        .expect("pool");
    let mut tasks = Vec::new();
    for i in 0..100 {
        let c = srv.client();
        tasks.push(tokio::spawn(async move {
            let host = format!("h{}", i % 3);
            let v = c
                .post(
                    "/v1/ipam/assign",
                    &json!({"host": host, "handle_id": format!("w{i}"), "request": if i % 10 == 0 { "10.65.0.0/24" } else { "auto" }}),
                )
                .await
                .expect("assign");
            v["assignments"][0]["ip"]
                .as_str()
                .expect("ip")
                .parse::<IpAddr>()
                .expect("an address")
        }));
    }
    let mut ips = BTreeSet::new();
    for t in tasks {
        let ip = t.await.expect("task");
        assert!(ips.insert(ip), "{ip} was handed out twice");
    }
    assert_eq!(ips.len(), 100);
    assert_eq!(used(srv.store.as_ref()), 100);
    for ip in &ips {
        let info = c.get(&format!("/v1/ipam/ips/{ip}")).await.expect("held");
        assert_eq!(info["ip"], ip.to_string());
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_masters_on_one_store_never_duplicate() {
    let a = TestServer::start(None).await;
    let b = TestServer::start_on(a.store.clone(), None).await;
    a.client()
        .post("/v1/pools", &json!({"cidr": "10.65.0.0/24"}))
        .await
        .expect("pool");
    let mut tasks = Vec::new();
    for i in 0..100 {
        // Alternate masters; each master serialises its own requests, so the two only meet at the
        // compare-and-swap of the shared blocks.
        let c = if i % 2 == 0 { a.client() } else { b.client() };
        tasks.push(tokio::spawn(async move {
            let v = c
                .post(
                    "/v1/ipam/assign",
                    &json!({"host": "h1", "handle_id": format!("w{i}"), "request": "auto"}),
                )
                .await
                .expect("assign");
            v["assignments"][0]["ip"].as_str().expect("ip").to_owned()
        }));
    }
    let mut ips = BTreeSet::new();
    for t in tasks {
        let ip = t.await.expect("task");
        assert!(ips.insert(ip.clone()), "{ip} was handed out twice");
    }
    assert_eq!(ips.len(), 100);
    assert_eq!(used(a.store.as_ref()), 100);
    b.stop().await;
    a.stop().await;
}
