//! `/v1/profiles/<name>/rules`: get, replace, add at a position, duplicates, remove by position or rule.

use serde_json::{json, Value};

use super::{api_err, TestServer};
use crate::store::Store;

fn actions(rules: &Value, dir: &str) -> Vec<String> {
    rules[dir]
        .as_array()
        .expect("list")
        .iter()
        .map(|r| crate::rules::format_rule(&crate::model::Rule::from_json(r).expect("rule")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_at_positions_duplicates_and_remove() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    c.post("/v1/profiles", &json!({"name": "WEB"}))
        .await
        .expect("create");
    let tcp80 = json!({"action": "allow", "protocol": "tcp", "dst_ports": [80]});
    let r = c
        .post("/v1/profiles/WEB/rules/inbound", &json!({"rule": tcp80}))
        .await
        .expect("append");
    assert_eq!(r["changed"], true);
    assert_eq!(r["message"], "Added inbound rule 2 to profile WEB");
    let deny = json!({"action": "deny", "src_net": "10.0.0.0/8"});
    c.post(
        "/v1/profiles/WEB/rules/inbound",
        &json!({"rule": deny, "position": 1}),
    )
    .await
    .expect("at 1");
    let rules = c.get("/v1/profiles/WEB/rules").await.expect("get");
    assert_eq!(
        actions(&rules, "inbound_rules"),
        [
            "deny from 10.0.0.0/8",
            "allow from tag WEB",
            "allow tcp to ports 80"
        ]
    );
    // A duplicate says so, with 200, and writes nothing.
    let rev = srv.store.revision().expect("rev");
    let r = c
        .post(
            "/v1/profiles/WEB/rules/inbound",
            &json!({"rule": tcp80, "position": 1}),
        )
        .await
        .expect("dup");
    assert_eq!(r["changed"], false);
    assert_eq!(r["message"], "Rule already present, skipping.");
    assert_eq!(srv.store.revision().expect("rev"), rev);
    // Outbound: at len+1 is an append; past it is an error naming the field.
    let icmp = json!({"action": "allow", "protocol": "icmp", "icmp_type": 8});
    c.post(
        "/v1/profiles/WEB/rules/outbound",
        &json!({"rule": icmp, "position": 2}),
    )
    .await
    .expect("append at 2");
    let (error, field) = api_err(
        c.post(
            "/v1/profiles/WEB/rules/outbound",
            &json!({"rule": {"action": "deny"}, "position": 9}),
        )
        .await,
        400,
    );
    assert_eq!(field.as_deref(), Some("position"));
    assert!(error.contains("past the end"), "{error}");
    for bad_pos in [json!(0), json!(-1), json!("2")] {
        let (_, field) = api_err(
            c.post(
                "/v1/profiles/WEB/rules/outbound",
                &json!({"rule": {"action": "deny"}, "position": bad_pos}),
            )
            .await,
            400,
        );
        assert_eq!(field.as_deref(), Some("position"));
    }

    // Remove by position, then by rule.
    let r = c
        .delete("/v1/profiles/WEB/rules/inbound/1")
        .await
        .expect("remove at 1");
    assert_eq!(r["message"], "Removed inbound rule 1 from profile WEB");
    let r = c
        .post(
            "/v1/profiles/WEB/rules/inbound/remove",
            &json!({"rule": tcp80}),
        )
        .await
        .expect("remove rule");
    assert_eq!(
        actions(&r["rules"], "inbound_rules"),
        ["allow from tag WEB"]
    );
    let (error, field) = api_err(
        c.post(
            "/v1/profiles/WEB/rules/inbound/remove",
            &json!({"rule": tcp80}),
        )
        .await,
        404,
    );
    assert_eq!(field.as_deref(), Some("rule"));
    assert!(error.starts_with("Rule not found"), "{error}");
    let (error, field) = api_err(c.delete("/v1/profiles/WEB/rules/outbound/3").await, 404);
    assert_eq!(field.as_deref(), Some("position"));
    assert!(error.contains("it has 2"), "{error}");
    api_err(c.delete("/v1/profiles/WEB/rules/outbound/zero").await, 400);
    api_err(c.delete("/v1/profiles/WEB/rules/sideways/1").await, 404);
    let rules = c.get("/v1/profiles/WEB/rules").await.expect("get");
    assert_eq!(
        actions(&rules, "outbound_rules"),
        ["allow", "allow icmp type 8"]
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rules_name_the_field_and_change_nothing() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    c.post("/v1/profiles", &json!({"name": "WEB"}))
        .await
        .expect("create");
    let rev = srv.store.revision().expect("rev");
    for (rule, field) in [
        (json!({"action": "allow", "dst_ports": [80]}), "dst_ports"),
        (
            json!({"action": "allow", "protocol": "icmp", "icmp_type": 255}),
            "icmp_type",
        ),
        (json!({"action": "drop"}), "action"),
        (
            json!({"action": "allow", "src_net": "10.0.0.0/33"}),
            "src_net",
        ),
        (json!({"action": "allow", "src_tag": "bad tag"}), "src_tag"),
        (json!({"action": "allow", "colour": "red"}), "colour"),
        (json!("allow"), "rule"),
    ] {
        let (error, f) = api_err(
            c.post("/v1/profiles/WEB/rules/inbound", &json!({"rule": rule}))
                .await,
            400,
        );
        assert_eq!(f.as_deref(), Some(field), "{rule}: {error}");
    }
    let (_, f) = api_err(
        c.post("/v1/profiles/WEB/rules/inbound", &json!({})).await,
        400,
    );
    assert_eq!(f.as_deref(), Some("rule"));
    api_err(
        c.post(
            "/v1/profiles/NOPE/rules/inbound",
            &json!({"rule": {"action": "allow"}}),
        )
        .await,
        404,
    );
    assert_eq!(srv.store.revision().expect("rev"), rev);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_rules_as_json() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    c.post("/v1/profiles", &json!({"name": "WEB"}))
        .await
        .expect("create");
    let mut rules = c.get("/v1/profiles/WEB/rules").await.expect("get");
    assert_eq!(rules["id"], "WEB");
    rules["inbound_rules"] =
        json!([{"action": "allow", "protocol": "udp", "dst_ports": ["2048:4000", 53]}]);
    let r = c
        .put("/v1/profiles/WEB/rules", Some(&rules))
        .await
        .expect("replace");
    assert_eq!(r["changed"], true);
    let got = c.get("/v1/profiles/WEB/rules").await.expect("get");
    assert_eq!(got, rules);
    let r = c
        .put("/v1/profiles/WEB/rules", Some(&rules))
        .await
        .expect("same again");
    assert_eq!(r["changed"], false);
    // Without an id is fine; with another profile's id is not.
    c.put(
        "/v1/profiles/WEB/rules",
        Some(&json!({"inbound_rules": [], "outbound_rules": []})),
    )
    .await
    .expect("no id");
    let (_, f) = api_err(
        c.put(
            "/v1/profiles/WEB/rules",
            Some(&json!({"id": "DB", "inbound_rules": []})),
        )
        .await,
        400,
    );
    assert_eq!(f.as_deref(), Some("id"));
    let (error, f) = api_err(
        c.put("/v1/profiles/WEB/rules", Some(&json!({"outbound_rules": [{"action": "allow"}, {"action": "allow", "icmp_code": 1}]})))
            .await,
        400,
    );
    assert_eq!(f.as_deref(), Some("icmp_code"));
    assert!(error.contains("outbound rule 2"), "{error}");
    let got = c.get("/v1/profiles/WEB/rules").await.expect("get");
    assert_eq!(
        got,
        json!({"id": "WEB", "inbound_rules": [], "outbound_rules": []})
    );
    api_err(
        c.put("/v1/profiles/NOPE/rules", Some(&json!({}))).await,
        404,
    );
    srv.stop().await;
}
