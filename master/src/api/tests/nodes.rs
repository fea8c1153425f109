//! `/v1/nodes`: register, update, list, show, remove (refused with endpoints unless forced), per-node
//! peers, the route-reflector role, and status reports.

use serde_json::{json, Value};

use super::{
    api_err,
    endpoints::{ep, setup, EP1},
    TestServer,
};
use crate::{client::Client, store::Store};

async fn register(c: &Client, name: &str, v4: &str) -> Value {
    c.put(
        &format!("/v1/nodes/{name}"),
        Some(&json!({"ip_addr_v4": v4})),
    )
    .await
    .expect("register")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_update_list_show() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    let v = register(&c, "h1", "172.17.8.101").await;
    assert_eq!(v["message"], "Registered node h1");
    let raw = srv
        .store
        .get("/calico/bgp/v1/host/h1/ip_addr_v4")
        .expect("get")
        .expect("stored");
    assert_eq!(raw.value, b"172.17.8.101");
    let v = c
        .put(
            "/v1/nodes/h1",
            Some(
                &json!({"ip_addr_v4": "172.17.8.101", "ip_addr_v6": "fd00::101", "as_num": 64512}),
            ),
        )
        .await
        .expect("update");
    assert_eq!(v["message"], "Updated node h1");
    let raw = srv
        .store
        .get("/calico/bgp/v1/host/h1/as_num")
        .expect("get")
        .expect("stored");
    assert_eq!(raw.value, b"64512");
    let v = c
        .put(
            "/v1/nodes/h1",
            Some(
                &json!({"ip_addr_v4": "172.17.8.101", "ip_addr_v6": "fd00::101", "as_num": 64512}),
            ),
        )
        .await
        .expect("same");
    assert_eq!(v["changed"], false);
    register(&c, "h2", "172.17.8.102").await;
    let list = c.get("/v1/nodes").await.expect("list");
    assert_eq!(
        list,
        json!([
            {"name": "h1", "ip_addr_v4": "172.17.8.101", "ip_addr_v6": "fd00::101", "as_num": 64512, "effective_as": 64512, "peers": [], "route_reflector": null},
            {"name": "h2", "ip_addr_v4": "172.17.8.102", "ip_addr_v6": null, "as_num": null, "effective_as": 64511, "peers": [], "route_reflector": null},
        ])
    );
    let detailed = c.get("/v1/nodes?detailed=true").await.expect("detailed");
    assert_eq!(detailed[0]["endpoints"], 0);
    assert_eq!(detailed[0]["state"], "unknown");
    assert_eq!(
        c.get("/v1/nodes/h2").await.expect("show")["effective_as"],
        64511
    );
    api_err(c.get("/v1/nodes/h3").await, 404);
    for (bad, field) in [
        (json!({}), "ip_addr_v4"),
        (json!({"ip_addr_v4": "nope"}), "ip_addr_v4"),
        (json!({"ip_addr_v4": "fd00::1"}), "ip_addr_v4"),
        (json!({"ip_addr_v4": "127.0.0.1"}), "ip_addr_v4"),
        (json!({"ip_addr_v6": "10.0.0.1"}), "ip_addr_v6"),
        (json!({"ip_addr_v4": "10.0.0.1", "as_num": 0}), "as_num"),
        (json!({"ip_addr_v4": "10.0.0.1", "asn": 1}), "asn"),
    ] {
        let (_, f) = api_err(c.put("/v1/nodes/h3", Some(&bad)).await, 400);
        assert_eq!(f.as_deref(), Some(field), "{bad}");
    }
    let (_, f) = api_err(
        c.put(
            "/v1/nodes/bad%20name",
            Some(&json!({"ip_addr_v4": "10.0.0.1"})),
        )
        .await,
        400,
    );
    assert_eq!(f.as_deref(), Some("name"));
    api_err(c.get("/v1/nodes/h3").await, 404);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_peers() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    register(&c, "h1", "172.17.8.101").await;
    let v = c
        .post(
            "/v1/nodes/h1/peers",
            &json!({"ip": "10.0.0.1", "as_num": 65000}),
        )
        .await
        .expect("add");
    assert_eq!(v["message"], "Added node h1 BGP peer 10.0.0.1 (AS 65000)");
    assert!(srv
        .store
        .get("/calico/bgp/v1/host/h1/peer_v4/10.0.0.1")
        .expect("get")
        .is_some());
    c.post(
        "/v1/nodes/h1/peers",
        &json!({"ip": "2001:db8::1", "as_num": 65001}),
    )
    .await
    .expect("add v6");
    assert_eq!(
        c.get("/v1/nodes/h1/peers?version=6").await.expect("v6"),
        json!([{"ip": "2001:db8::1", "as_num": 65001, "md5": false}])
    );
    assert_eq!(
        c.get("/v1/nodes/h1").await.expect("node")["peers"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let (e, _) = api_err(
        c.post(
            "/v1/nodes/h1/peers",
            &json!({"ip": "172.17.8.101", "as_num": 1}),
        )
        .await,
        400,
    );
    assert!(e.contains("own address"), "{e}");
    api_err(
        c.post(
            "/v1/nodes/h9/peers",
            &json!({"ip": "10.0.0.1", "as_num": 1}),
        )
        .await,
        404,
    );
    api_err(c.get("/v1/nodes/h9/peers").await, 404);
    c.delete("/v1/nodes/h1/peers/10.0.0.1")
        .await
        .expect("remove");
    api_err(c.delete("/v1/nodes/h1/peers/10.0.0.1").await, 404);
    // Re-registering keeps the node's peers.
    register(&c, "h1", "172.17.8.111").await;
    assert_eq!(
        c.get("/v1/nodes/h1/peers")
            .await
            .expect("peers")
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_reflector_on_and_off() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    register(&c, "h1", "172.17.8.101").await;
    register(&c, "h2", "172.17.8.102").await;
    c.put("/v1/nodes/h6", Some(&json!({"ip_addr_v6": "fd00::6"})))
        .await
        .expect("v6-only node");
    let key = "/calico/bgp/v1/host/h1/route_reflector";
    // On with the defaults: the node's IPv4 address as cluster id, every non-reflector as client.
    let v = c
        .put("/v1/nodes/h1/route_reflector", Some(&json!({})))
        .await
        .expect("on");
    assert_eq!(v["changed"], true);
    assert!(
        v["message"].as_str().is_some_and(
            |m| m.starts_with("Node h1 is now a route reflector (cluster id 172.17.8.101")
        ),
        "{v}"
    );
    let raw = srv.store.get(key).expect("get").expect("stored");
    assert_eq!(
        serde_json::from_slice::<Value>(&raw.value).expect("json"),
        json!({"cluster_id": "172.17.8.101", "clients": []})
    );
    assert_eq!(
        c.get("/v1/nodes/h1").await.expect("show")["route_reflector"],
        json!({"cluster_id": "172.17.8.101", "clients": []})
    );
    assert_eq!(
        c.get("/v1/nodes").await.expect("list")[1]["route_reflector"],
        Value::Null
    );
    // The same again changes nothing; other settings update.
    let v = c
        .put("/v1/nodes/h1/route_reflector", Some(&json!({})))
        .await
        .expect("same");
    assert_eq!(v["changed"], false);
    let v = c
        .put(
            "/v1/nodes/h1/route_reflector",
            Some(&json!({"cluster_id": "1.0.0.1", "clients": ["172.17.8.102", "fd00::6"]})),
        )
        .await
        .expect("update");
    assert_eq!(v["changed"], true);
    assert_eq!(
        v["node"]["route_reflector"],
        json!({"cluster_id": "1.0.0.1", "clients": ["172.17.8.102", "fd00::6"]})
    );
    // Re-registering (a node restart) keeps the role.
    register(&c, "h1", "172.17.8.101").await;
    assert_eq!(
        c.get("/v1/nodes/h1").await.expect("show")["route_reflector"]["cluster_id"],
        "1.0.0.1"
    );
    // Bad input names the field and changes nothing.
    for (bad, field) in [
        (json!({"cluster_id": "fd00::1"}), "cluster_id"),
        (json!({"cluster_id": "nope"}), "cluster_id"),
        (json!({"cluster_id": 7}), "cluster_id"),
        (json!({"cluster_id": "0.0.0.0"}), "cluster_id"),
        (json!({"clients": "172.17.8.102"}), "clients"),
        (json!({"clients": ["nope"]}), "clients"),
        (json!({"clients": ["172.17.8.101"]}), "clients"),
        (
            json!({"clients": ["172.17.8.102", "172.17.8.102"]}),
            "clients",
        ),
        (json!({"cluster": "1.0.0.1"}), "cluster"),
        (json!([]), "body"),
    ] {
        let (_, f) = api_err(c.put("/v1/nodes/h1/route_reflector", Some(&bad)).await, 400);
        assert_eq!(f.as_deref(), Some(field), "{bad}");
    }
    assert_eq!(
        c.get("/v1/nodes/h1").await.expect("show")["route_reflector"]["cluster_id"],
        "1.0.0.1"
    );
    // A node without IPv4 needs an explicit cluster id.
    let (e, f) = api_err(
        c.put("/v1/nodes/h6/route_reflector", Some(&json!({})))
            .await,
        400,
    );
    assert_eq!(f.as_deref(), Some("cluster_id"), "{e}");
    c.put(
        "/v1/nodes/h6/route_reflector",
        Some(&json!({"cluster_id": "10.0.0.6"})),
    )
    .await
    .expect("explicit cluster id");
    // Unknown nodes.
    api_err(
        c.put("/v1/nodes/h9/route_reflector", Some(&json!({})))
            .await,
        404,
    );
    api_err(c.delete("/v1/nodes/h9/route_reflector").await, 404);
    api_err(c.get("/v1/nodes/h1/route_reflector").await, 405);
    // Off.
    let v = c.delete("/v1/nodes/h1/route_reflector").await.expect("off");
    assert_eq!(v["changed"], true);
    assert!(srv.store.get(key).expect("get").is_none());
    assert_eq!(
        c.get("/v1/nodes/h1").await.expect("show")["route_reflector"],
        Value::Null
    );
    let v = c
        .delete("/v1/nodes/h1/route_reflector")
        .await
        .expect("again");
    assert_eq!(v["changed"], false);
    // Removing a node removes its role too.
    c.delete("/v1/nodes/h6").await.expect("remove h6");
    assert!(srv
        .store
        .get("/calico/bgp/v1/host/h6/route_reflector")
        .expect("get")
        .is_none());
    let metrics = c.get("/metrics").await.expect("metrics");
    let metrics = metrics.as_str().expect("metrics are text");
    assert!(
        metrics.contains("/v1/nodes/{name}/route_reflector"),
        "{metrics}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_refuses_with_endpoints_unless_forced() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    setup(&c).await;
    register(&c, "h1", "172.17.8.101").await;
    register(&c, "h2", "172.17.8.102").await;
    c.post(
        "/v1/endpoints",
        &ep("h1", "w1", EP1, &["10.65.0.1"], &["WEB"]),
    )
    .await
    .expect("endpoint");
    let (e, _) = api_err(c.delete("/v1/nodes/h1").await, 409);
    assert!(e.contains(EP1) && e.contains("--force"), "{e}");
    assert_eq!(
        c.get("/v1/nodes?detailed=true").await.expect("list")[0]["endpoints"],
        1
    );
    c.delete("/v1/nodes/h2").await.expect("no endpoints");
    let v = c.delete("/v1/nodes/h1?force=true").await.expect("forced");
    assert_eq!(v["endpoints_removed"], 1);
    assert_eq!(c.get("/v1/endpoints").await.expect("list"), json!([]));
    api_err(c.get("/v1/ipam/ips/10.65.0.1").await, 404);
    // The IPv6 address of w1 had no endpoint: it stays held, its block loses its affinity.
    let info = c
        .get("/v1/ipam/ips/fd80:24e2:f998:72d6::1")
        .await
        .expect("still held");
    assert_eq!(info["block_affinity"], Value::Null);
    assert_eq!(c.get("/v1/nodes").await.expect("list"), json!([]));
    api_err(c.delete("/v1/nodes/h1").await, 404);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    register(&c, "h1", "172.17.8.101").await;
    let (e, _) = api_err(c.get("/v1/nodes/h1/status").await, 404);
    assert!(e.contains("not reported"), "{e}");
    let report = json!({
        "felix": {"programmed": 3, "failed": 1, "version": "0.1.0"},
        "bgp": [{"peer": "172.17.8.102", "asn": 64511, "type": "mesh", "state": "Established",
                 "since": "12:00:01", "routes_received": 2, "routes_accepted": 2, "routes_advertised": 1}],
    });
    c.put("/v1/nodes/h1/status", Some(&report))
        .await
        .expect("report");
    let s = c.get("/v1/nodes/h1/status").await.expect("status");
    assert_eq!(s["node"], "h1");
    assert_eq!(s["state"], "running");
    assert_eq!(
        s["felix"],
        json!({"programmed": 3, "failed": 1, "errors": [], "version": "0.1.0"})
    );
    assert_eq!(s["bgp"][0]["peer"], "172.17.8.102");
    assert_eq!(s["bgp"][0]["routes_advertised"], 1);
    assert!(s["reported_at"].as_u64().is_some_and(|t| t > 1_600_000_000));
    assert_eq!(
        c.get("/v1/nodes?detailed=true").await.expect("list")[0]["state"],
        "running"
    );
    for (bad, field) in [
        (json!({"felix": {"programmed": -1}}), "programmed"),
        (json!({"felix": 3}), "felix"),
        (
            json!({"bgp": [{"peer": "x", "type": "mesh", "state": "Idle"}]}),
            "peer",
        ),
        (
            json!({"bgp": [{"peer": "10.0.0.1", "type": "ebgp", "state": "Idle"}]}),
            "type",
        ),
        (
            json!({"bgp": [{"peer": "10.0.0.1", "type": "mesh"}]}),
            "state",
        ),
        (
            json!({"bgp": [{"peer": "10.0.0.1", "asn": 0, "type": "mesh", "state": "Idle"}]}),
            "asn",
        ),
        (json!({"uptime": 1}), "uptime"),
    ] {
        let (_, f) = api_err(c.put("/v1/nodes/h1/status", Some(&bad)).await, 400);
        assert_eq!(f.as_deref(), Some(field), "{bad}");
    }
    assert_eq!(
        c.get("/v1/nodes/h1/status").await.expect("status")["felix"]["programmed"],
        3,
        "unchanged"
    );
    api_err(c.put("/v1/nodes/h9/status", Some(&report)).await, 404);
    // The dump (for diags) shows it with everything else.
    let dump = c.get("/v1/dump").await.expect("dump");
    assert_eq!(
        dump["keys"]["/calico/bgp/v1/host/h1/ip_addr_v4"],
        "172.17.8.101"
    );
    assert_eq!(
        dump["keys"]["/calico/felix/v1/host/h1/status"]["node"],
        "h1"
    );
    assert!(dump["revision"].as_u64().is_some_and(|r| r >= 2));
    srv.stop().await;
}
