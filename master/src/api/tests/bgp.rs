//! `/v1/bgp`: defaults, default AS, node mesh, timers, global peers; values under the original keys.

use serde_json::{json, Value};

use super::{api_err, TestServer};
use crate::store::Store;

fn stored(store: &dyn Store, key: &str) -> Option<String> {
    store
        .get(key)
        .expect("get")
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_as_mesh_and_timers() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    assert_eq!(
        c.get("/v1/bgp/config").await.expect("config"),
        json!({"as_num": 64511, "node_mesh": true, "timers": {}})
    );
    let v = c
        .put("/v1/bgp/as_num", Some(&json!({"as_num": 64512})))
        .await
        .expect("as");
    assert_eq!(v["changed"], true);
    assert_eq!(
        stored(srv.store.as_ref(), "/calico/bgp/v1/global/as_num").as_deref(),
        Some("64512")
    );
    c.put("/v1/bgp/as_num", Some(&json!({"as_num": "1.10"})))
        .await
        .expect("asdot");
    assert_eq!(
        c.get("/v1/bgp/config").await.expect("config")["as_num"],
        65546
    );
    for bad in [
        json!({"as_num": 0}),
        json!({"as_num": "x"}),
        json!({}),
        json!({"as_num": 4294967296u64}),
    ] {
        let (_, f) = api_err(c.put("/v1/bgp/as_num", Some(&bad)).await, 400);
        assert_eq!(f.as_deref(), Some("as_num"), "{bad}");
    }
    c.put("/v1/bgp/node_mesh", Some(&json!({"enabled": false})))
        .await
        .expect("mesh");
    assert_eq!(
        stored(srv.store.as_ref(), "/calico/bgp/v1/global/node_mesh").as_deref(),
        Some(r#"{"enabled":false}"#)
    );
    assert_eq!(
        c.get("/v1/bgp/config").await.expect("config")["node_mesh"],
        false
    );
    api_err(
        c.put("/v1/bgp/node_mesh", Some(&json!({"enabled": "yes"})))
            .await,
        400,
    );
    api_err(c.put("/v1/bgp/node_mesh", Some(&json!({}))).await, 400);
    c.put(
        "/v1/bgp/timers",
        Some(&json!({"hold_time": 9, "keepalive": 3, "graceful_restart_time": 30})),
    )
    .await
    .expect("timers");
    assert_eq!(
        c.get("/v1/bgp/config").await.expect("config")["timers"],
        json!({"hold_time": 9, "keepalive": 3, "graceful_restart_time": 30})
    );
    let (_, f) = api_err(
        c.put(
            "/v1/bgp/timers",
            Some(&json!({"hold_time": 9, "keepalive": 9})),
        )
        .await,
        400,
    );
    assert_eq!(f.as_deref(), Some("keepalive"));
    let (_, f) = api_err(
        c.put("/v1/bgp/timers", Some(&json!({"hold_time": 2})))
            .await,
        400,
    );
    assert_eq!(f.as_deref(), Some("hold_time"));
    api_err(
        c.put("/v1/bgp/timers", Some(&json!({"hold_time": -1})))
            .await,
        400,
    );
    api_err(
        c.put("/v1/bgp/timers", Some(&json!({"holdtime": 9}))).await,
        400,
    );
    assert_eq!(
        c.get("/v1/bgp/config").await.expect("config")["timers"]["hold_time"],
        9,
        "unchanged"
    );
    c.put("/v1/bgp/timers", Some(&json!({})))
        .await
        .expect("clear");
    assert_eq!(
        c.get("/v1/bgp/config").await.expect("config")["timers"],
        json!({})
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_peers() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    let v = c
        .post(
            "/v1/bgp/peers",
            &json!({"ip": "172.17.8.200", "as_num": 64513}),
        )
        .await
        .expect("add");
    assert_eq!(
        v["message"],
        "Added global BGP peer 172.17.8.200 (AS 64513)"
    );
    let raw = stored(
        srv.store.as_ref(),
        "/calico/bgp/v1/global/peer_v4/172.17.8.200",
    )
    .expect("stored");
    assert_eq!(
        serde_json::from_str::<Value>(&raw).expect("json"),
        json!({"ip": "172.17.8.200", "as_num": 64513})
    );
    c.post(
        "/v1/bgp/peers",
        &json!({"ip": "fd00::1", "as_num": "64514", "hold_time": 9}),
    )
    .await
    .expect("add v6");
    assert!(stored(srv.store.as_ref(), "/calico/bgp/v1/global/peer_v6/fd00::1").is_some());
    let again = c
        .post(
            "/v1/bgp/peers",
            &json!({"ip": "172.17.8.200", "as_num": 64513}),
        )
        .await
        .expect("again");
    assert_eq!(again["changed"], false);
    let upd = c
        .post(
            "/v1/bgp/peers",
            &json!({"ip": "172.17.8.200", "as_num": 64515}),
        )
        .await
        .expect("update");
    assert!(upd["message"].as_str().unwrap_or("").starts_with("Updated"));
    assert_eq!(
        c.get("/v1/bgp/peers?version=4").await.expect("v4"),
        json!([{"ip": "172.17.8.200", "as_num": 64515, "md5": false}])
    );
    // An MD5 key is stored but never shown.
    let signed = c
        .post(
            "/v1/bgp/peers",
            &json!({"ip": "172.17.8.200", "as_num": 64515, "password": "s3cret"}),
        )
        .await
        .expect("md5");
    assert_eq!(signed["peer"]["md5"], true);
    let listed = c.get("/v1/bgp/peers?version=4").await.expect("v4");
    assert_eq!(
        listed,
        json!([{"ip": "172.17.8.200", "as_num": 64515, "md5": true}])
    );
    for (bad, why) in [
        (json!(""), "printable"),
        (json!("a\tb"), "printable"),
        (json!(7), "string"),
    ] {
        let (e, field) = api_err(
            c.post(
                "/v1/bgp/peers",
                &json!({"ip": "172.17.8.201", "as_num": 1, "password": bad}),
            )
            .await,
            400,
        );
        assert!(
            e.contains(why) && field.as_deref() == Some("password"),
            "{e} / {field:?}"
        );
    }
    assert_eq!(
        c.get("/v1/bgp/peers?version=6").await.expect("v6"),
        json!([{"ip": "fd00::1", "as_num": 64514, "hold_time": 9, "md5": false}])
    );
    assert_eq!(
        c.get("/v1/bgp/peers")
            .await
            .expect("all")
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    api_err(c.get("/v1/bgp/peers?version=5").await, 400);
    for (bad, field) in [
        (json!({"ip": "nope", "as_num": 1}), "ip"),
        (json!({"ip": "0.0.0.0", "as_num": 1}), "ip"),
        (json!({"ip": "10.0.0.1", "as_num": 0}), "as_num"),
        (json!({"ip": "10.0.0.1"}), "as_num"),
        (
            json!({"ip": "10.0.0.1", "as_num": 1, "keepalive": 0}),
            "keepalive",
        ),
        (
            json!({"ip": "10.0.0.1", "as_num": 1, "colour": 1}),
            "colour",
        ),
    ] {
        let (_, f) = api_err(c.post("/v1/bgp/peers", &bad).await, 400);
        assert_eq!(f.as_deref(), Some(field), "{bad}");
    }
    c.delete("/v1/bgp/peers/fd00::1").await.expect("remove");
    let (e, _) = api_err(c.delete("/v1/bgp/peers/fd00::1").await, 404);
    assert!(e.contains("fd00::1 is not a global BGP peer"), "{e}");
    api_err(c.delete("/v1/bgp/peers/nope").await, 400);
    assert_eq!(
        c.get("/v1/bgp/peers")
            .await
            .expect("all")
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    srv.stop().await;
}
