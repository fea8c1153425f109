//! `/v1/pools`: list, add/update, remove, with good and bad input; values land at the original's keys.

use serde_json::json;

use super::{api_err, TestServer};
use crate::store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_list_update_remove() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    let r = c
        .post(
            "/v1/pools",
            &json!({"cidr": "192.168.0.0/16", "ipip": true, "nat_outgoing": true}),
        )
        .await
        .expect("add");
    assert_eq!(r["changed"], true);
    assert_eq!(r["message"], "Added pool 192.168.0.0/16");
    c.post("/v1/pools", &json!({"cidr": "fd80:24e2:f998:72d6::/64"}))
        .await
        .expect("add v6");
    // Stored exactly as the original did.
    let kv = srv
        .store
        .get("/calico/v1/ipam/v4/pool/192.168.0.0-16")
        .expect("get")
        .expect("present");
    let stored: serde_json::Value = serde_json::from_slice(&kv.value).expect("json");
    assert_eq!(
        stored,
        json!({"cidr": "192.168.0.0/16", "ipip": "tunl0", "masquerade": true})
    );

    let all = c.get("/v1/pools").await.expect("list");
    assert_eq!(
        all,
        json!([
            {"cidr": "192.168.0.0/16", "ipip": true, "nat_outgoing": true, "disabled": false},
            {"cidr": "fd80:24e2:f998:72d6::/64", "ipip": false, "nat_outgoing": false, "disabled": false}
        ])
    );
    let v4 = c.get("/v1/pools?version=4").await.expect("v4");
    assert_eq!(v4.as_array().map(Vec::len), Some(1));
    let v6 = c.get("/v1/pools?version=6").await.expect("v6");
    assert_eq!(v6[0]["cidr"], "fd80:24e2:f998:72d6::/64");

    // Re-adding with other flags updates (200); with the same flags changes nothing.
    let r = c
        .post("/v1/pools", &json!({"cidr": "192.168.0.0/16"}))
        .await
        .expect("update");
    assert_eq!(
        (r["changed"].clone(), r["message"].clone()),
        (json!(true), json!("Updated pool 192.168.0.0/16"))
    );
    let rev = srv.store.revision().expect("rev");
    let r = c
        .post("/v1/pools", &json!({"cidr": "192.168.0.0/16"}))
        .await
        .expect("same");
    assert_eq!(r["changed"], false);
    assert_eq!(
        srv.store.revision().expect("rev"),
        rev,
        "no write for an unchanged pool"
    );
    let all = c.get("/v1/pools?version=4").await.expect("list");
    assert_eq!(all[0]["ipip"], false);

    let r = c.delete("/v1/pools/192.168.0.0-16").await.expect("remove");
    assert_eq!(r["message"], "Removed pool 192.168.0.0/16");
    c.delete("/v1/pools/fd80:24e2:f998:72d6::-64")
        .await
        .expect("remove v6");
    assert_eq!(c.get("/v1/pools").await.expect("list"), json!([]));
    let (error, field) = api_err(c.delete("/v1/pools/192.168.0.0-16").await, 404);
    assert_eq!(field.as_deref(), Some("cidr"));
    assert!(error.contains("is not a configured pool"), "{error}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pools_are_rejected_naming_the_field() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    c.post("/v1/pools", &json!({"cidr": "10.65.0.0/16"}))
        .await
        .expect("add");
    let rev = srv.store.revision().expect("rev");
    for (body, field, words) in [
        (json!({"cidr": "10.65.0.300/16"}), "cidr", "Invalid CIDR"),
        (json!({"cidr": "not-a-cidr"}), "cidr", "Invalid CIDR"),
        (json!({"cidr": "10.1.0.1/16"}), "cidr", "host bits"),
        (json!({"cidr": "10.1.0.1/32"}), "cidr", "network address"),
        (json!({"cidr": "10.65.1.0/24"}), "cidr", "overlaps"),
        (json!({"cidr": "10.0.0.0/8"}), "cidr", "overlaps"),
        (json!({"cidr": "fd00::/64", "ipip": true}), "ipip", "IPv4"),
        (
            json!({"cidr": "10.2.0.0/16", "ipip": "yes"}),
            "ipip",
            "true or false",
        ),
        (json!({"cidr": 10}), "cidr", "string"),
        (json!({}), "cidr", "required"),
        (
            json!({"cidr": "10.2.0.0/16", "masq": true}),
            "masq",
            "unknown field",
        ),
        (json!(["10.2.0.0/16"]), "body", "JSON object"),
    ] {
        let (error, f) = api_err(c.post("/v1/pools", &body).await, 400);
        assert_eq!(f.as_deref(), Some(field), "{body}: {error}");
        assert!(error.contains(words), "{body}: {error}");
    }
    api_err(c.delete("/v1/pools/garbage").await, 400);
    assert_eq!(
        srv.store.revision().expect("rev"),
        rev,
        "rejected writes change nothing"
    );
    assert_eq!(
        c.get("/v1/pools")
            .await
            .expect("list")
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    srv.stop().await;
}
