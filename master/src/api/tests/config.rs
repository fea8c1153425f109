//! `/v1/config`: cluster-wide and per-host Felix settings at the original's keys (plain-string
//! values), validation naming the field, host overrides in `?host=H` answers and in the node's sync
//! state.

use std::time::Duration;

use serde_json::json;

use super::{api_err, TestServer};
use crate::{store::Store, sync::NodeState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_show_override_and_unset() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    assert_eq!(c.get("/v1/config").await.expect("empty"), json!([]));
    let put = |key: &str, host: Option<&str>, value: &str| {
        let q = host.map_or(String::new(), |h| format!("?host={h}"));
        let c = c.clone();
        let path = format!("/v1/config/{key}{q}");
        let body = json!({"value": value});
        async move { c.put(&path, Some(&body)).await }
    };
    let v = put("DefaultEndpointToHostAction", None, "RETURN")
        .await
        .expect("set");
    assert_eq!(v["changed"], true);
    assert_eq!(
        v["message"],
        "Set DefaultEndpointToHostAction to RETURN cluster-wide"
    );
    put("LogSeverityScreen", None, "INFO").await.expect("set");
    put("DefaultEndpointToHostAction", Some("h1"), "ACCEPT")
        .await
        .expect("host set");
    // Stored as the original stored them: plain strings at its keys.
    let store = srv.store.clone();
    let raw = tokio::task::spawn_blocking(move || {
        (
            store.get("/calico/v1/config/DefaultEndpointToHostAction"),
            store.get("/calico/v1/host/h1/config/DefaultEndpointToHostAction"),
        )
    })
    .await
    .expect("join");
    assert_eq!(raw.0.expect("get").expect("stored").value, b"RETURN");
    assert_eq!(raw.1.expect("get").expect("stored").value, b"ACCEPT");
    // Again: unchanged.
    let v = put("LogSeverityScreen", None, "INFO").await.expect("same");
    assert_eq!(v["changed"], false);
    assert_eq!(
        c.get("/v1/config").await.expect("global"),
        json!([
            {"key": "DefaultEndpointToHostAction", "value": "RETURN", "source": "global"},
            {"key": "LogSeverityScreen", "value": "INFO", "source": "global"},
        ])
    );
    assert_eq!(
        c.get("/v1/config?host=h1").await.expect("h1"),
        json!([
            {"key": "DefaultEndpointToHostAction", "value": "ACCEPT", "source": "host"},
            {"key": "LogSeverityScreen", "value": "INFO", "source": "global"},
        ])
    );
    assert_eq!(
        c.get("/v1/config/DefaultEndpointToHostAction?host=h2")
            .await
            .expect("h2")["value"],
        "RETURN"
    );
    // Unset the host's: the cluster-wide value shows through.
    c.delete("/v1/config/DefaultEndpointToHostAction?host=h1")
        .await
        .expect("unset");
    assert_eq!(
        c.get("/v1/config/DefaultEndpointToHostAction?host=h1")
            .await
            .expect("h1")["source"],
        "global"
    );
    let (e, f) = api_err(
        c.delete("/v1/config/DefaultEndpointToHostAction?host=h1")
            .await,
        404,
    );
    assert!(e.contains("not set for host h1"), "{e}");
    assert_eq!(f.as_deref(), Some("key"));
    c.delete("/v1/config/LogSeverityScreen")
        .await
        .expect("unset");
    api_err(c.get("/v1/config/LogSeverityScreen").await, 404);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_refused_naming_the_field() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    let cases = [
        (
            "/v1/config/DefaultEndpointToHostAction",
            json!({"value": "drop"}),
            "value",
            "DROP, RETURN or ACCEPT",
        ),
        (
            "/v1/config/IpInIpMtu",
            json!({"value": "20"}),
            "value",
            "576 to 9000",
        ),
        (
            "/v1/config/9bad",
            json!({"value": "x"}),
            "key",
            "not a setting name",
        ),
        (
            "/v1/config/LogSeverityScreen",
            json!({"value": 3}),
            "value",
            "not a string",
        ),
        (
            "/v1/config/LogSeverityScreen",
            json!({}),
            "value",
            "required",
        ),
        (
            "/v1/config/LogSeverityScreen?host=bad%20host",
            json!({"value": "INFO"}),
            "host",
            "",
        ),
    ];
    for (path, body, field, words) in cases {
        let (e, f) = api_err(c.put(path, Some(&body)).await, 400);
        assert_eq!(f.as_deref(), Some(field), "{path}: {e}");
        assert!(e.contains(words), "{path}: {e}");
    }
    // Nothing was written.
    assert_eq!(c.get("/v1/config").await.expect("list"), json!([]));
    // A later Felix's setting is taken as it is.
    c.put("/v1/config/SomeNewerSetting", Some(&json!({"value": "on"})))
        .await
        .expect("unknown key");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_get_their_effective_settings_in_the_sync_stream() {
    let srv = TestServer::start_with_hub(std::sync::Arc::new(
        TestServer::store(super::Backend::Embedded).await,
    ))
    .await;
    let c = srv.client();
    c.put(
        "/v1/config/DefaultEndpointToHostAction",
        Some(&json!({"value": "DROP"})),
    )
    .await
    .expect("global");
    let mut h1 = c.sync("h1", None).await.expect("h1 subscribes");
    let mut h2 = c.sync("h2", None).await.expect("h2 subscribes");
    let mut s1 = NodeState::default();
    let mut s2 = NodeState::default();
    let settle = |want: &[(&str, &str)]| {
        want.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    // Fold each stream until it holds `want`.
    async fn until(
        s: &mut crate::client::SyncStream,
        st: &mut NodeState,
        want: &std::collections::BTreeMap<String, String>,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while st.config != *want {
            assert!(
                tokio::time::Instant::now() < deadline,
                "config {:?}, want {want:?}",
                st.config
            );
            let m = tokio::time::timeout(Duration::from_secs(10), s.next())
                .await
                .expect("a message")
                .expect("stream ok")
                .expect("stream open");
            st.apply(&m);
        }
    }
    let drop_all = settle(&[("DefaultEndpointToHostAction", "DROP")]);
    until(&mut h1, &mut s1, &drop_all).await;
    until(&mut h2, &mut s2, &drop_all).await;
    c.put(
        "/v1/config/DefaultEndpointToHostAction?host=h1",
        Some(&json!({"value": "ACCEPT"})),
    )
    .await
    .expect("h1's own");
    c.put(
        "/v1/config/LogSeverityScreen",
        Some(&json!({"value": "INFO"})),
    )
    .await
    .expect("global");
    until(
        &mut h1,
        &mut s1,
        &settle(&[
            ("DefaultEndpointToHostAction", "ACCEPT"),
            ("LogSeverityScreen", "INFO"),
        ]),
    )
    .await;
    until(
        &mut h2,
        &mut s2,
        &settle(&[
            ("DefaultEndpointToHostAction", "DROP"),
            ("LogSeverityScreen", "INFO"),
        ]),
    )
    .await;
    srv.stop().await;
}
