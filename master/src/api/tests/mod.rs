//! API tests: a real server on 127.0.0.1 (ephemeral port) over an in-memory embedded store, driven
//! through [`crate::client::Client`] and, for malformed requests, raw HTTP.
//!
//! The same suite runs against a real etcd (one server per test, see
//! [`crate::store::etcd_server`]) with `CALICO_API_TEST_STORE=etcd cargo test -p calico-master api::`;
//! tests that must run on both stores every time (the endpoint index, the read cache) name their
//! backend with [`TestServer::start_with`].
//!
//! This file holds the harness and the cross-cutting tests (health, metrics, auth, errors, 503,
//! shutdown); the route groups have their own files.

mod bgp;
mod cache;
mod concurrency;
mod config;
mod endpoint_index;
mod endpoints;
mod ipam;
mod nodes;
mod pools;
mod profiles;
mod rules;
mod sync;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
    task::JoinHandle,
};

use super::{bind, serve, Api};
use crate::{
    client::{Client, ClientError, Method},
    store::{
        etcd_server::EtcdServer, EmbeddedOptions, EmbeddedStore, Event, KeyValue, Listing,
        Revision, RevisionCallback, Store, StoreError, Subscription, Txn, TxnResponse,
    },
    sync::{SyncConfig, SyncHub},
};

/// Which datastore a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Backend {
    /// The embedded store, in memory.
    Embedded,
    /// A real etcd started for the test.
    Etcd,
}

impl Backend {
    /// `CALICO_API_TEST_STORE` (`embedded`, the default, or `etcd`).
    fn from_env() -> Backend {
        match std::env::var("CALICO_API_TEST_STORE").as_deref() {
            Err(_) | Ok("") | Ok("embedded") => Backend::Embedded,
            Ok("etcd") => Backend::Etcd,
            Ok(other) => panic!("CALICO_API_TEST_STORE={other}: use embedded or etcd"),
        }
    }
}

/// A store that can be switched off, answering [`StoreError::Unavailable`] like an unreachable etcd.
pub(super) struct Switchable {
    inner: Box<dyn Store>,
    down: AtomicBool,
    /// The etcd behind `inner`, if any (stopped when the store is dropped).
    etcd: Option<EtcdServer>,
}

impl std::fmt::Debug for Switchable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switchable")
            .field("inner", &self.inner)
            .field("down", &self.down)
            .field("etcd", &self.etcd.as_ref().map(EtcdServer::endpoint))
            .finish()
    }
}

impl Switchable {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("test switch is off".into()))
        } else {
            Ok(())
        }
    }
}

impl Store for Switchable {
    fn revision(&self) -> Result<Revision, StoreError> {
        self.check()?;
        self.inner.revision()
    }
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.check()?;
        self.inner.get(key)
    }
    fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        self.check()?;
        self.inner.list(prefix)
    }
    fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        self.check()?;
        self.inner.txn(txn)
    }
    fn changes_since(&self, revision: Revision) -> Result<Vec<Event>, StoreError> {
        self.check()?;
        self.inner.changes_since(revision)
    }
    fn wait_for_revision(
        &self,
        after: Revision,
        timeout: Duration,
    ) -> Result<Revision, StoreError> {
        self.check()?;
        self.inner.wait_for_revision(after, timeout)
    }
    fn subscribe(&self, callback: RevisionCallback) -> Subscription {
        self.inner.subscribe(callback)
    }
}

/// A running server.
pub(super) struct TestServer {
    pub url: String,
    pub addr: std::net::SocketAddr,
    pub store: Arc<Switchable>,
    /// The sync hub, for servers started with [`TestServer::start_with_hub`].
    pub hub: Option<Arc<SyncHub>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A server on the store `CALICO_API_TEST_STORE` names (the embedded store by default).
    pub async fn start(token: Option<&str>) -> TestServer {
        Self::start_with(Backend::from_env(), token).await
    }

    /// A server on a fresh store of `backend`.
    pub async fn start_with(backend: Backend, token: Option<&str>) -> TestServer {
        Self::start_on(Arc::new(Self::store(backend).await), token).await
    }

    /// A fresh store of `backend`.
    pub async fn store(backend: Backend) -> Switchable {
        let (inner, etcd): (Box<dyn Store>, _) = match backend {
            Backend::Embedded => (
                Box::new(
                    EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("in-memory store"),
                ),
                None,
            ),
            Backend::Etcd => {
                let (server, store) = tokio::task::spawn_blocking(|| {
                    let server = EtcdServer::start();
                    let store = server.store();
                    (server, store)
                })
                .await
                .expect("starting etcd");
                (Box::new(store), Some(server))
            }
        };
        Switchable {
            inner,
            down: AtomicBool::new(false),
            etcd,
        }
    }

    /// A second master on the same store (as two masters on one etcd).
    pub async fn start_on(store: Arc<Switchable>, token: Option<&str>) -> TestServer {
        let api = Api::new(store.clone(), token.map(str::to_owned));
        Self::serve(store, api, None).await
    }

    /// A master with a sync hub on `store`, as `calicoctl master run` starts it (the API then
    /// answers reads from the hub's cache while the store is unreachable).
    pub async fn start_with_hub(store: Arc<Switchable>) -> TestServer {
        let cfg = SyncConfig {
            poll: Duration::from_millis(20),
            ..SyncConfig::default()
        };
        let s: Arc<dyn Store> = store.clone();
        let hub = tokio::task::spawn_blocking(move || SyncHub::start(s, cfg))
            .await
            .expect("join")
            .expect("hub");
        let api = Api::new(store.clone(), None).with_sync(hub.clone());
        Self::serve(store, api, Some(hub)).await
    }

    async fn serve(store: Arc<Switchable>, api: Api, hub: Option<Arc<SyncHub>>) -> TestServer {
        let api = Arc::new(api);
        let listeners = bind(&["127.0.0.1:0".parse().expect("addr")])
            .await
            .expect("bind");
        let addr = listeners[0].local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(listeners, api, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        TestServer {
            url: format!("http://{addr}"),
            addr,
            store,
            hub,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&[&self.url], None).expect("client")
    }

    pub fn client_with(&self, token: &str) -> Client {
        Client::new(&[&self.url], Some(token.to_owned())).expect("client")
    }

    pub fn set_down(&self, down: bool) {
        self.store.down.store(down, Ordering::SeqCst);
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("server stops within 10 s")
                .expect("server task");
        }
        if let Some(hub) = self.hub.take() {
            tokio::task::spawn_blocking(move || hub.shutdown())
                .await
                .expect("hub stops");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Expect an API error with this status; return (error, field).
pub(super) fn api_err(r: Result<Value, ClientError>, status: u16) -> (String, Option<String>) {
    match r {
        Err(ClientError::Api {
            status: s,
            error,
            field,
            ..
        }) if s == status => (error, field),
        other => panic!("expected an API error with status {status}, got {other:?}"),
    }
}

/// One raw HTTP/1.1 exchange: (status, body).
pub(super) async fn raw(addr: std::net::SocketAddr, request: &str, body: &[u8]) -> (u16, String) {
    raw_declared(addr, request, body, body.len()).await
}

/// Like [`raw`], with a `Content-Length` that may differ from the body sent.
async fn raw_declared(
    addr: std::net::SocketAddr,
    request: &str,
    body: &[u8],
    declared: usize,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{request} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {declared}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(body).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    let h = c.get("/healthz").await.expect("healthz");
    assert_eq!(h["status"], "ok");
    // 0 on a fresh embedded store, 1 on a fresh etcd.
    let r0 = h["revision"].as_u64().expect("revision");
    assert!(r0 <= 1, "{h}");
    c.post("/v1/pools", &json!({"cidr": "10.65.0.0/16"}))
        .await
        .expect("add pool");
    let _ = c.get("/v1/nothing").await;
    let text = c.get("/metrics").await.expect("metrics");
    let text = text.as_str().expect("metrics are text");
    assert!(text.contains(
        "calico_master_http_requests_total{route=\"/v1/pools\",method=\"POST\",status=\"201\"} 1"
    ), "{text}");
    assert!(
        text.contains(
            "calico_master_http_requests_total{route=\"other\",method=\"GET\",status=\"404\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("calico_master_store_revision {}\n", r0 + 1)),
        "{text}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_is_required_except_for_healthz() {
    let srv = TestServer::start(Some("s3cret")).await;
    let anon = srv.client();
    assert_eq!(anon.get("/healthz").await.expect("healthz")["status"], "ok");
    for path in ["/v1/pools", "/v1/profiles", "/metrics", "/v1/nothing"] {
        let (error, _) = api_err(anon.get(path).await, 401);
        assert!(error.contains("token"), "{error}");
    }
    let (_, _) = api_err(
        anon.post("/v1/profiles", &json!({"name": "WEB"})).await,
        401,
    );
    api_err(srv.client_with("wrong").get("/v1/pools").await, 401);
    api_err(
        srv.client_with("s3cret-and-more").get("/v1/pools").await,
        401,
    );
    let ok = srv.client_with("s3cret");
    assert_eq!(ok.get("/v1/pools").await.expect("pools"), json!([]));
    ok.post("/v1/profiles", &json!({"name": "WEB"}))
        .await
        .expect("create");
    // The unauthorised create changed nothing: only the authorised one exists.
    let all = ok.get("/v1/profiles").await.expect("profiles");
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    // Raw: a non-Bearer scheme is refused too.
    let (status, _) = raw(srv.addr, "GET /v1/pools", b"").await;
    assert_eq!(status, 401);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_configured_means_open() {
    let srv = TestServer::start(None).await;
    let c = srv.client_with("anything");
    assert_eq!(c.get("/v1/pools").await.expect("pools"), json!([]));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_json_errors() {
    let srv = TestServer::start(None).await;
    let (status, body) = raw(srv.addr, "POST /v1/pools", b"{not json").await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).expect("json error body");
    assert_eq!(v["field"], "body");
    assert!(v["error"].as_str().unwrap_or("").contains("not valid JSON"));
    let (status, body) = raw(srv.addr, "POST /v1/profiles", b"").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = raw(srv.addr, "PATCH /v1/pools", b"").await;
    assert_eq!(status, 405, "{body}");
    let (status, _) = raw(srv.addr, "POST /healthz", b"").await;
    assert_eq!(status, 405);
    let (status, body) = raw(srv.addr, "GET /v2/whatever", b"").await;
    assert_eq!(status, 404);
    let v: Value = serde_json::from_str(&body).expect("json error body");
    assert!(v["error"].as_str().unwrap_or("").contains("no such route"));
    // Refused on the declared length, before any of the body is read.
    let (status, _) =
        raw_declared(srv.addr, "POST /v1/pools", b"", super::MAX_BODY_BYTES + 1).await;
    assert_eq!(status, 413);
    let (status, body) = raw(srv.addr, "GET /v1/pools?version=5", b"").await;
    assert_eq!(status, 400);
    assert!(body.contains("\"field\":\"version\""), "{body}");
    let (status, _) = raw(srv.addr, "GET /v1/profiles?detailed=maybe", b"").await;
    assert_eq!(status, 400);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_gives_503_and_changes_nothing() {
    let srv = TestServer::start(None).await;
    let c = srv.client();
    c.post("/v1/profiles", &json!({"name": "WEB"}))
        .await
        .expect("create");
    srv.set_down(true);
    let (error, _) = api_err(
        c.post("/v1/pools", &json!({"cidr": "10.65.0.0/16"})).await,
        503,
    );
    assert!(error.contains("unavailable"), "{error}");
    api_err(c.get("/v1/profiles").await, 503);
    api_err(c.put("/v1/profiles/WEB/tags/DB", None).await, 503);
    api_err(c.get("/healthz").await, 503);
    let metrics = c.get("/metrics").await.expect("metrics still served");
    assert!(metrics
        .as_str()
        .unwrap_or("")
        .contains("calico_master_store_up 0"));
    srv.set_down(false);
    assert_eq!(c.get("/v1/pools").await.expect("pools"), json!([]));
    assert_eq!(
        c.get("/v1/profiles/WEB/tags").await.expect("tags"),
        json!(["WEB"])
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_fails_over_and_reports_every_url_tried() {
    let srv = TestServer::start(None).await;
    // A port that was just free: nothing listens there.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let dead_url = format!("http://{dead}");
    let c = Client::new(&[dead_url.as_str(), srv.url.as_str()], None).expect("client");
    assert_eq!(c.get("/v1/pools").await.expect("failover"), json!([]));
    // POST also fails over when the first master could not even be connected to.
    c.post("/v1/profiles", &json!({"name": "WEB"}))
        .await
        .expect("post after failover");
    srv.stop().await;
    let err = c.get("/v1/pools").await.expect_err("nobody answers");
    match &err {
        ClientError::Unreachable { tried } => {
            assert_eq!(tried.len(), 2);
            assert!(tried[0].starts_with(&dead_url), "{tried:?}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("cannot reach any master") && text.contains(&dead_url),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting() {
    let srv = TestServer::start(None).await;
    let addr = srv.addr;
    let c = srv.client();
    c.get("/healthz").await.expect("up");
    srv.stop().await;
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    let r = c.request(Method::GET, "/healthz", None).await;
    assert!(matches!(r, Err(ClientError::Unreachable { .. })), "{r:?}");
}
