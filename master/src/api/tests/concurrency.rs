//! Concurrent writers: compare-and-swap means no update is lost and creates happen exactly once.

use serde_json::json;

use super::TestServer;
use crate::client::ClientError;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tag_and_rule_updates_are_all_kept() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    c.post("/v1/profiles", &json!({"name": "WEB"}))
        .await
        .expect("create");
    let mut tasks = Vec::new();
    for i in 0..24 {
        let c = srv.client();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                c.put(&format!("/v1/profiles/WEB/tags/T{i}"), None).await
            } else {
                let rule = json!({"action": "allow", "protocol": "tcp", "dst_ports": [1000 + i]});
                c.post("/v1/profiles/WEB/rules/inbound", &json!({"rule": rule}))
                    .await
            }
        }));
    }
    for t in tasks {
        let r = t.await.expect("task").expect("write");
        assert_eq!(r["changed"], true);
    }
    let tags = c.get("/v1/profiles/WEB/tags").await.expect("tags");
    let tags = tags.as_array().expect("tags");
    assert_eq!(tags.len(), 1 + 12, "{tags:?}");
    for i in (0..24).step_by(2) {
        assert!(tags.contains(&json!(format!("T{i}"))), "T{i} lost");
    }
    let rules = c.get("/v1/profiles/WEB/rules").await.expect("rules");
    let inbound = rules["inbound_rules"].as_array().expect("inbound");
    assert_eq!(inbound.len(), 1 + 12);
    for i in (1..24).step_by(2) {
        assert!(
            inbound.iter().any(|r| r["dst_ports"] == json!([1000 + i])),
            "rule {i} lost"
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_profile_succeed_once() {
    let srv = TestServer::start(None).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let c = srv.client();
        tasks.push(tokio::spawn(async move {
            c.post("/v1/profiles", &json!({"name": "DB"})).await
        }));
    }
    let (mut created, mut conflicts) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => created += 1,
            Err(ClientError::Api { status: 409, .. }) => conflicts += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((created, conflicts), (1, 9));
    srv.stop().await;
}
