//! `/v1/endpoints`: create (addresses must be assigned to the workload), update, list, show, profile
//! changes, delete releasing the addresses, and "profile in use" through the real path.

use serde_json::{json, Value};

use super::{
    api_err,
    ipam::{assign, pools},
    TestServer,
};
use crate::{client::Client, store::Store};

pub(super) const EP1: &str = "0123456789abcdef0123456789abcdef";
pub(super) const EP2: &str = "fedcba9876543210fedcba9876543210";

pub(super) fn ep(host: &str, workload: &str, id: &str, v4: &[&str], profiles: &[&str]) -> Value {
    json!({
        "hostname": host, "orchestrator": "docker", "workload_id": workload, "endpoint_id": id,
        "state": "active", "mac": "ee:ee:ee:ee:ee:ee", "container:if_name": "eth0",
        "profile_ids": profiles, "ipv4_nets": v4.iter().map(|a| format!("{a}/32")).collect::<Vec<_>>(),
        "ipv6_nets": [], "ipv4_gateway": "172.17.8.101", "ipv6_gateway": null,
    })
}

/// Pools, profiles WEB and DB, and w1 on h1 holding 10.65.0.1 and the v6 ::1.
pub(super) async fn setup(c: &Client) {
    pools(c).await;
    for p in ["WEB", "DB"] {
        c.post("/v1/profiles", &json!({"name": p}))
            .await
            .expect("profile");
    }
    assign(c, "h1", "w1", &["auto", "ipv6"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_update_list_show_delete() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    setup(&c).await;
    let mut body = ep("h1", "w1", EP1, &["10.65.0.1"], &["WEB"]);
    body["ipv6_nets"] = json!(["fd80:24e2:f998:72d6::1/128"]);
    let v = c.post("/v1/endpoints", &body).await.expect("create");
    assert_eq!(v["message"], format!("Created endpoint {EP1}"));
    // The name defaults to cali + 11 hex digits of the id; stored as the original's value.
    assert_eq!(v["endpoint"]["name"], "cali0123456789a");
    let kv = srv
        .store
        .get(&format!(
            "/calico/v1/host/h1/workload/docker/w1/endpoint/{EP1}"
        ))
        .expect("get")
        .expect("stored");
    let stored: Value = serde_json::from_slice(&kv.value).expect("json");
    assert_eq!(stored["ipv4_nets"], json!(["10.65.0.1/32"]));
    assert_eq!(stored["profile_ids"], json!(["WEB"]));
    assert!(
        stored.get("hostname").is_none(),
        "key fields stay in the key"
    );
    // Update: same key, 200.
    body["state"] = json!("inactive");
    let v = c.post("/v1/endpoints", &body).await.expect("update");
    assert_eq!(v["message"], format!("Updated endpoint {EP1}"));
    let list = c.get("/v1/endpoints").await.expect("list");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["state"], "inactive");
    assert_eq!(list[0]["hostname"], "h1");
    assert_eq!(
        c.get("/v1/endpoints?host=h2").await.expect("list"),
        json!([])
    );
    assert_eq!(
        c.get("/v1/endpoints?host=h1").await.expect("list")[0]["endpoint_id"],
        EP1
    );
    api_err(c.get("/v1/endpoints?host=bad%20host").await, 400);
    let one = c.get(&format!("/v1/endpoints/{EP1}")).await.expect("show");
    assert_eq!(one["workload_id"], "w1");
    api_err(c.get(&format!("/v1/endpoints/{EP2}")).await, 404);

    // Delete releases the workload's addresses.
    let v = c
        .delete(&format!("/v1/endpoints/{EP1}"))
        .await
        .expect("delete");
    assert_eq!(
        v["released"],
        json!(["10.65.0.1", "fd80:24e2:f998:72d6::1"])
    );
    api_err(c.get("/v1/ipam/ips/10.65.0.1").await, 404);
    api_err(c.delete(&format!("/v1/endpoints/{EP1}")).await, 404);
    assert_eq!(c.get("/v1/endpoints").await.expect("list"), json!([]));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_endpoints_are_refused_naming_the_field() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    setup(&c).await;
    assign(&c, "h1", "w2", &["auto"]).await; // 10.65.0.2
    let field = |r: Result<Value, _>, status| api_err(r, status).1;
    // A free address, a foreign one, and one held on another host.
    let (e, f) = api_err(
        c.post("/v1/endpoints", &ep("h1", "w1", EP1, &["10.65.0.9"], &[]))
            .await,
        400,
    );
    assert!(e.contains("10.65.0.9 is not assigned"), "{e}");
    assert_eq!(f.as_deref(), Some("ipv4_nets"));
    let (e, _) = api_err(
        c.post("/v1/endpoints", &ep("h1", "w1", EP1, &["10.65.0.2"], &[]))
            .await,
        400,
    );
    assert!(e.contains("10.65.0.2 is in use by w2 on host h1"), "{e}");
    api_err(
        c.post("/v1/endpoints", &ep("h2", "w1", EP1, &["10.65.0.1"], &[]))
            .await,
        400,
    );
    let (e, f) = api_err(
        c.post(
            "/v1/endpoints",
            &ep("h1", "w1", EP1, &["10.65.0.1"], &["NOPE"]),
        )
        .await,
        400,
    );
    assert!(e.contains("Profile NOPE not found"), "{e}");
    assert_eq!(f.as_deref(), Some("profile_ids"));
    let mut b = ep("h1", "w1", EP1, &["10.65.0.1"], &[]);
    b["name"] = json!("tap0");
    assert_eq!(
        field(c.post("/v1/endpoints", &b).await, 400).as_deref(),
        Some("name")
    );
    let mut b = ep("h1", "w1", EP1, &["10.65.0.1"], &[]);
    b["mac"] = json!("nope");
    assert_eq!(
        field(c.post("/v1/endpoints", &b).await, 400).as_deref(),
        Some("mac")
    );
    let mut b = ep("h1", "w1", EP1, &["10.65.0.1"], &[]);
    b["ipv4_nets"] = json!(["10.65.0.0/24"]);
    assert_eq!(
        field(c.post("/v1/endpoints", &b).await, 400).as_deref(),
        Some("ipv4_nets")
    );
    let mut b = ep("h1", "w1", EP1, &["10.65.0.1"], &[]);
    b["state"] = json!("up");
    assert_eq!(
        field(c.post("/v1/endpoints", &b).await, 400).as_deref(),
        Some("state")
    );
    let mut b = ep("h1", "w1", EP1, &["10.65.0.1"], &[]);
    b["colour"] = json!("red");
    assert_eq!(
        field(c.post("/v1/endpoints", &b).await, 400).as_deref(),
        Some("colour")
    );
    let mut b = ep("h1", "w1", EP1, &["10.65.0.1"], &[]);
    b.as_object_mut().map(|o| o.remove("workload_id"));
    assert_eq!(
        field(c.post("/v1/endpoints", &b).await, 400).as_deref(),
        Some("workload_id")
    );
    let b = ep("h1", "w1", "not-hex", &["10.65.0.1"], &[]);
    assert_eq!(
        field(c.post("/v1/endpoints", &b).await, 400).as_deref(),
        Some("name")
    );
    assert_eq!(
        c.get("/v1/endpoints").await.expect("list"),
        json!([]),
        "nothing written"
    );
    // The same endpoint id under another workload is a conflict.
    c.post("/v1/endpoints", &ep("h1", "w1", EP1, &["10.65.0.1"], &[]))
        .await
        .expect("create");
    let (e, _) = api_err(
        c.post("/v1/endpoints", &ep("h1", "w2", EP1, &["10.65.0.2"], &[]))
            .await,
        409,
    );
    assert!(e.contains("already used by workload w1"), "{e}");
    // An address in use by an endpoint is not released unless forced.
    let (e, _) = api_err(c.delete("/v1/ipam/ips/10.65.0.1").await, 409);
    assert!(e.contains(EP1), "{e}");
    c.delete("/v1/ipam/ips/10.65.0.1?force=true")
        .await
        .expect("forced");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_profiles_and_profile_in_use() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    setup(&c).await;
    c.post(
        "/v1/endpoints",
        &ep("h1", "w1", EP1, &["10.65.0.1"], &["WEB"]),
    )
    .await
    .expect("create");
    let path = format!("/v1/endpoints/{EP1}/profiles");
    assert_eq!(c.get(&path).await.expect("show"), json!(["WEB"]));
    let v = c
        .post(
            &path,
            &json!({"action": "append", "profiles": ["DB", "WEB"]}),
        )
        .await
        .expect("append");
    assert_eq!(v["profile_ids"], json!(["WEB", "DB"]));
    let v = c
        .post(&path, &json!({"action": "append", "profiles": ["DB"]}))
        .await
        .expect("again");
    assert_eq!(v["changed"], false);
    let (e, _) = api_err(
        c.post(&path, &json!({"action": "append", "profiles": ["NOPE"]}))
            .await,
        400,
    );
    assert!(e.contains("Profile NOPE not found"), "{e}");
    let v = c
        .post(&path, &json!({"action": "remove", "profiles": ["WEB"]}))
        .await
        .expect("remove");
    assert_eq!(v["profile_ids"], json!(["DB"]));
    api_err(
        c.post(&path, &json!({"action": "remove", "profiles": ["WEB"]}))
            .await,
        404,
    );
    let v = c
        .post(&path, &json!({"action": "set", "profiles": ["WEB", "DB"]}))
        .await
        .expect("set");
    assert_eq!(v["profile_ids"], json!(["WEB", "DB"]));
    api_err(
        c.post(&path, &json!({"action": "shuffle", "profiles": []}))
            .await,
        400,
    );
    api_err(c.post(&path, &json!({"action": "set"})).await, 400);
    api_err(
        c.post(&path, &json!({"action": "set", "profiles": ["show"]}))
            .await,
        400,
    );
    api_err(c.get(&format!("/v1/endpoints/{EP2}/profiles")).await, 404);
    // Removing a profile in use is refused through the real endpoint path.
    let (e, _) = api_err(c.delete("/v1/profiles/DB").await, 409);
    assert!(e.contains(EP1), "{e}");
    let detailed = c.get("/v1/profiles?detailed=true").await.expect("detailed");
    assert_eq!(detailed[0]["endpoints"][0]["endpoint_id"], EP1);
    let v = c
        .post(&path, &json!({"action": "set", "profiles": []}))
        .await
        .expect("clear");
    assert_eq!(v["profile_ids"], json!([]));
    c.delete("/v1/profiles/DB").await.expect("no longer in use");
    srv.stop().await;
}
