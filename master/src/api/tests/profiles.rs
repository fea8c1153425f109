//! `/v1/profiles` and tags: create with defaults, list (detailed), remove (in use, forced), tags.

use serde_json::json;

use super::{api_err, TestServer};
use crate::{
    model::{Endpoint, EndpointState, ORCHESTRATOR_DOCKER},
    store::{keys::Key, Store},
};

pub(super) fn endpoint(host: &str, id: &str, profiles: &[&str]) -> Endpoint {
    Endpoint {
        hostname: host.into(),
        orchestrator: ORCHESTRATOR_DOCKER.into(),
        workload_id: format!("w-{id}"),
        endpoint_id: id.into(),
        state: EndpointState::Active,
        name: "cali0123456789a".into(),
        mac: None,
        if_name: None,
        profile_ids: profiles.iter().map(|p| (*p).to_owned()).collect(),
        ipv4_nets: vec![],
        ipv6_nets: vec![],
        ipv4_gateway: None,
        ipv6_gateway: None,
    }
}

fn put_endpoint(store: &dyn Store, ep: &Endpoint) {
    let value = serde_json::to_vec(&ep.etcd_value()).expect("json");
    store.put(&Key::endpoint(ep).path(), &value).expect("put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_default_rules_and_list() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    let r = c
        .post("/v1/profiles", &json!({"name": "WEB"}))
        .await
        .expect("create");
    assert_eq!(r["message"], "Created profile WEB");
    // The original's defaults, at the original's keys.
    let tags = srv
        .store
        .get("/calico/v1/policy/profile/WEB/tags")
        .expect("get")
        .expect("tags");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&tags.value).expect("json"),
        json!(["WEB"])
    );
    let rules = srv
        .store
        .get("/calico/v1/policy/profile/WEB/rules")
        .expect("get")
        .expect("rules");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&rules.value).expect("json"),
        json!({"inbound_rules": [{"action": "allow", "src_tag": "WEB"}], "outbound_rules": [{"action": "allow"}]})
    );
    let p = c.get("/v1/profiles/WEB").await.expect("get");
    assert_eq!(p["tags"], json!(["WEB"]));
    assert_eq!(p["rules"]["id"], "WEB");
    c.post("/v1/profiles", &json!({"name": "DB"}))
        .await
        .expect("create DB");
    let all = c.get("/v1/profiles").await.expect("list");
    let names: Vec<&str> = all
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["DB", "WEB"]);
    assert!(
        all[0].get("endpoints").is_none(),
        "only the detailed listing has endpoints"
    );

    let (error, field) = api_err(c.post("/v1/profiles", &json!({"name": "WEB"})).await, 409);
    assert_eq!(
        (error.as_str(), field.as_deref()),
        ("Profile WEB already exists", Some("name"))
    );
    for bad in [
        json!({"name": "rule"}),
        json!({"name": "a b"}),
        json!({"name": ""}),
        json!({"name": "x".repeat(41)}),
        json!({}),
        json!({"name": 3}),
    ] {
        let (_, field) = api_err(c.post("/v1/profiles", &bad).await, 400);
        assert_eq!(field.as_deref(), Some("name"), "{bad}");
    }
    let (error, _) = api_err(c.get("/v1/profiles/NOPE").await, 404);
    assert!(error.contains("Profile NOPE not found"), "{error}");
    api_err(c.get("/v1/profiles/bad%20name").await, 400);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_refuses_while_in_use_unless_forced() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    for n in ["WEB", "DB"] {
        c.post("/v1/profiles", &json!({"name": n}))
            .await
            .expect("create");
    }
    put_endpoint(srv.store.as_ref(), &endpoint("core-01", "ep1", &["WEB"]));
    put_endpoint(
        srv.store.as_ref(),
        &endpoint("core-02", "ep2", &["DB", "WEB"]),
    );

    let detailed = c.get("/v1/profiles?detailed=true").await.expect("detailed");
    assert_eq!(detailed[0]["name"], "DB");
    assert_eq!(detailed[0]["endpoints"].as_array().map(Vec::len), Some(1));
    let web_eps: Vec<&str> = detailed[1]["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .filter_map(|e| e["endpoint_id"].as_str())
        .collect();
    assert_eq!(web_eps, ["ep1", "ep2"]);
    assert_eq!(detailed[1]["endpoints"][0]["hostname"], "core-01");

    let err = c.delete("/v1/profiles/WEB").await.expect_err("in use");
    match err {
        crate::client::ClientError::Api {
            status,
            error,
            field,
            body,
        } => {
            assert_eq!(status, 409);
            assert_eq!(field.as_deref(), Some("name"));
            assert!(
                error.contains("ep1, ep2") && error.contains("--force"),
                "{error}"
            );
            assert_eq!(body["endpoints"].as_array().map(Vec::len), Some(2));
        }
        other => panic!("expected 409, got {other:?}"),
    }
    assert!(c.get("/v1/profiles/WEB").await.is_ok(), "still there");
    let r = c
        .delete("/v1/profiles/WEB?force=true")
        .await
        .expect("forced");
    assert_eq!(r["message"], "Deleted profile WEB");
    api_err(c.get("/v1/profiles/WEB").await, 404);
    assert!(srv
        .store
        .list("/calico/v1/policy/profile/WEB/")
        .expect("list")
        .kvs
        .is_empty());
    api_err(c.delete("/v1/profiles/WEB").await, 404);
    // Unused profiles go without --force.
    put_endpoint(srv.store.as_ref(), &endpoint("core-02", "ep2", &[]));
    c.delete("/v1/profiles/DB").await.expect("unused");
    assert_eq!(c.get("/v1/profiles").await.expect("list"), json!([]));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_show_add_remove() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    c.post("/v1/profiles", &json!({"name": "WEB"}))
        .await
        .expect("create");
    let r = c
        .put("/v1/profiles/WEB/tags/FRONTEND", None)
        .await
        .expect("add");
    assert_eq!(r["message"], "Tag FRONTEND added to profile WEB");
    assert_eq!(r["changed"], true);
    assert_eq!(
        c.get("/v1/profiles/WEB/tags").await.expect("tags"),
        json!(["WEB", "FRONTEND"])
    );
    // Adding it again says so and writes nothing.
    let rev = srv.store.revision().expect("rev");
    let r = c
        .put("/v1/profiles/WEB/tags/FRONTEND", None)
        .await
        .expect("dup");
    assert_eq!(r["changed"], false);
    assert!(
        r["message"].as_str().unwrap_or("").contains("already"),
        "{r}"
    );
    assert_eq!(srv.store.revision().expect("rev"), rev);
    // Only the tags key is written by a tag change.
    let rules_rev = srv
        .store
        .get("/calico/v1/policy/profile/WEB/rules")
        .expect("get")
        .expect("rules")
        .mod_revision;
    let r = c.delete("/v1/profiles/WEB/tags/WEB").await.expect("remove");
    assert_eq!(r["message"], "Tag WEB removed from profile WEB");
    assert_eq!(r["tags"], json!(["FRONTEND"]));
    let after = srv
        .store
        .get("/calico/v1/policy/profile/WEB/rules")
        .expect("get")
        .expect("rules")
        .mod_revision;
    assert_eq!(rules_rev, after);

    let (error, field) = api_err(c.delete("/v1/profiles/WEB/tags/WEB").await, 404);
    assert_eq!(field.as_deref(), Some("tag"));
    assert!(error.contains("Tag WEB is not on profile WEB"), "{error}");
    let (_, field) = api_err(c.put("/v1/profiles/WEB/tags/add", None).await, 400);
    assert_eq!(field.as_deref(), Some("tag"));
    api_err(c.put("/v1/profiles/NOPE/tags/X", None).await, 404);
    api_err(c.get("/v1/profiles/NOPE/tags").await, 404);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_stored_profiles_are_skipped_in_listings() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    c.post("/v1/profiles", &json!({"name": "WEB"}))
        .await
        .expect("create");
    // Written behind the API's back (e.g. by hand with etcdctl): tags that are not a list.
    srv.store
        .put("/calico/v1/policy/profile/BROKEN/tags", b"{\"oops\": 1}")
        .expect("put");
    // A profile with only a rules key exists, with no tags.
    srv.store
        .put(
            "/calico/v1/policy/profile/RULESONLY/rules",
            br#"{"inbound_rules": [], "outbound_rules": []}"#,
        )
        .expect("put");
    let all = c.get("/v1/profiles").await.expect("list");
    let names: Vec<&str> = all
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["RULESONLY", "WEB"]);
    assert_eq!(all[0]["tags"], json!([]));
    let (error, _) = api_err(c.get("/v1/profiles/BROKEN").await, 500);
    assert!(error.contains("malformed"), "{error}");
    // Tag changes on the rules-only profile create its tags key.
    c.put("/v1/profiles/RULESONLY/tags/X", None)
        .await
        .expect("tag");
    assert_eq!(
        c.get("/v1/profiles/RULESONLY/tags").await.expect("tags"),
        json!(["X"])
    );
    srv.stop().await;
}
