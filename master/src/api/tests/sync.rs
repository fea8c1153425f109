//! `GET /v1/sync` end to end: a real server with a [`SyncHub`] over an embedded store (and over a real
//! etcd), driven through the API and read with [`Client::sync`]: snapshot, live deltas that fold to
//! the oracle's state, heartbeats, auth and query errors, resume after a disconnect (exactly the
//! missed deltas), resume on a restarted master, failover to the next URL, metrics, and shutdown
//! ending the streams.

use std::{sync::Arc, time::Duration};

use serde_json::json;
use tokio::{sync::oneshot, task::JoinHandle};

use super::{api_err, endpoints::ep, ipam::pools};
use crate::{
    api::{bind, serve, Api},
    client::{Client, ClientError, SyncStream},
    store::{EmbeddedOptions, EmbeddedStore, Store},
    sync::{oracle::expected, Change, NodeState, SyncConfig, SyncHub, SyncMessage},
};

const TOKEN: &str = "s3cret";

struct SyncServer {
    url: String,
    hub: Arc<SyncHub>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SyncServer {
    async fn start(store: Arc<dyn Store>) -> SyncServer {
        let cfg = SyncConfig {
            heartbeat: Duration::from_millis(300),
            poll: Duration::from_millis(20),
            ..SyncConfig::default()
        };
        let s = store.clone();
        let hub = tokio::task::spawn_blocking(move || SyncHub::start(s, cfg))
            .await
            .expect("join")
            .expect("hub");
        let api = Arc::new(Api::new(store, Some(TOKEN.into())).with_sync(hub.clone()));
        let listeners = bind(&["127.0.0.1:0".parse().expect("addr")])
            .await
            .expect("bind");
        let addr = listeners[0].local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(listeners, api, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        SyncServer {
            url: format!("http://{addr}"),
            hub,
            stop: Some(tx),
            task: Some(task),
        }
    }

    fn client(&self) -> Client {
        Client::new(&[&self.url], Some(TOKEN.into())).expect("client")
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("server stops within 10 s")
                .expect("server task");
        }
        let hub = self.hub.clone();
        tokio::task::spawn_blocking(move || hub.shutdown())
            .await
            .expect("hub stops");
    }
}

impl Drop for SyncServer {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

async fn next(s: &mut SyncStream) -> SyncMessage {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("a message within 10 s")
        .expect("stream ok")
        .expect("stream open")
}

/// Read until a message that is not a heartbeat.
async fn next_change(s: &mut SyncStream) -> SyncMessage {
    loop {
        let m = next(s).await;
        if !matches!(m, SyncMessage::Heartbeat { .. }) {
            return m;
        }
    }
}

/// Read and fold until the state matches the store (deltas come only for revisions that concern the
/// node, so the folded revision may lag the store's).
async fn converge(s: &mut SyncStream, st: &mut NodeState, store: &Arc<dyn Store>, node: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let want = oracle(store, node).await;
        let mut got = st.clone();
        got.revision = want.revision;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no convergence: got {got:#?}\nwant {want:#?}"
        );
        st.apply(&next(s).await);
    }
}

/// The oracle's state (store calls from a blocking thread, as the etcd store needs).
async fn oracle(store: &Arc<dyn Store>, node: &str) -> NodeState {
    let store = store.clone();
    let node = node.to_owned();
    tokio::task::spawn_blocking(move || expected(store.as_ref(), &node))
        .await
        .expect("oracle")
}

async fn revision(store: &Arc<dyn Store>) -> u64 {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.revision().expect("revision"))
        .await
        .expect("revision")
}

fn id(n: u32) -> String {
    format!("{n:032x}")
}

/// Register an endpoint the way the Docker proxy does: assign its address, then write it.
async fn register(c: &Client, host: &str, n: u32, addr: &str, profiles: &[&str]) {
    let workload = format!("w{n}");
    c.post(
        "/v1/ipam/assign",
        &json!({"host": host, "handle_id": workload, "request": addr}),
    )
    .await
    .expect("assign");
    c.post(
        "/v1/endpoints",
        &ep(host, &workload, &id(n), &[addr], profiles),
    )
    .await
    .expect("endpoint");
}

async fn setup(c: &Client) {
    pools(c).await;
    for p in ["WEB", "DB"] {
        c.post("/v1/profiles", &json!({"name": p}))
            .await
            .expect("profile");
    }
    for (h, a) in [("h1", "172.17.8.101"), ("h2", "172.17.8.102")] {
        c.put(&format!("/v1/nodes/{h}"), Some(&json!({"ip_addr_v4": a})))
            .await
            .expect("node");
    }
    register(c, "h1", 1, "10.65.0.1", &["WEB"]).await;
    register(c, "h2", 2, "10.65.0.70", &["DB", "WEB"]).await;
}

fn embedded() -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store"))
}

/// The scenario, against any store.
async fn scenario(store: Arc<dyn Store>) {
    let srv = SyncServer::start(store.clone()).await;
    let c = srv.client();
    setup(&c).await;

    // Errors: token, query.
    let anon = Client::new(&[&srv.url], None).expect("client");
    api_err(anon.sync("h1", None).await.map(|_| json!(null)), 401);
    let (_, field) = api_err(c.get("/v1/sync").await, 400);
    assert_eq!(field.as_deref(), Some("node"));
    let (_, field) = api_err(c.sync("bad name!", None).await.map(|_| json!(null)), 400);
    assert_eq!(field.as_deref(), Some("node"));
    let (_, field) = api_err(c.get("/v1/sync?node=h1&revision=x").await, 400);
    assert_eq!(field.as_deref(), Some("revision"));
    api_err(c.post("/v1/sync?node=h1", &json!({})).await, 405);

    // The snapshot, then live deltas that fold to the oracle's state.
    let mut s1 = c.sync("h1", None).await.expect("sync");
    let first = next(&mut s1).await;
    let mut st = NodeState::default();
    assert!(matches!(first, SyncMessage::Snapshot { .. }), "{first:?}");
    st.apply(&first);
    // The hub follows the store (with etcd, through a watch), so the snapshot may predate the
    // last setup writes; the deltas catch up.
    converge(&mut s1, &mut st, &store, "h1").await;
    assert_eq!(st.endpoints.len(), 1);
    assert!(st.profile("WEB").is_some());
    assert_eq!(st.host().map(|h| h.name.as_str()), Some("h1"));

    c.post(
        "/v1/profiles/WEB/rules/inbound",
        &json!({"rule": {"action": "allow", "src_tag": "DB"}}),
    )
    .await
    .expect("rule");
    let m = next_change(&mut s1).await;
    match &m {
        SyncMessage::Delta { changes, .. } => assert!(
            changes.iter().any(|c| matches!(c, Change::Acl { .. })),
            "{changes:?}"
        ),
        other => panic!("expected a delta, got {other:?}"),
    }
    st.apply(&m);
    converge(&mut s1, &mut st, &store, "h1").await;
    // Idle: heartbeats carry the current revision.
    let hb = next(&mut s1).await;
    assert!(matches!(hb, SyncMessage::Heartbeat { .. }), "{hb:?}");
    st.apply(&hb);
    let seen = st.revision;

    // An unregistered node gets pools and BGP only.
    let mut s9 = c.sync("h9", None).await.expect("sync");
    let snap = next(&mut s9).await;
    let mut st9 = NodeState::default();
    st9.apply(&snap);
    assert!(st9.endpoints.is_empty() && st9.host().is_none());
    assert_eq!(st9.pools.len(), 2);
    assert_eq!(st9.bgp.nodes.len(), 2);
    drop(s9);

    let metrics = c.get("/metrics").await.expect("metrics");
    let metrics = metrics.as_str().expect("text");
    assert!(
        metrics.contains("calico_master_sync_subscribers 1\n")
            || metrics.contains("calico_master_sync_subscribers 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("calico_master_sync_resyncs_total 0\n"),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/v1/sync\",method=\"GET\",status=\"200\""));

    // Disconnect; changes are made while h1 is away (some concern only h2).
    drop(s1);
    register(&c, "h1", 3, "10.65.0.2", &["DB"]).await;
    register(&c, "h2", 4, "10.65.0.71", &[]).await;
    c.put("/v1/profiles/DB/tags/EXTRA", None)
        .await
        .expect("tag");
    let missed_until = revision(&store).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while srv.hub.revision() < missed_until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("hub catches up");
    let (floor, logged) = srv.hub.log_extent("h1").expect("h1 has a log");
    assert!(floor <= seen);
    let mut s1 = c.sync("h1", Some(seen)).await.expect("resume");
    // Exactly the deltas after `seen` that concern h1, then nothing but heartbeats.
    let mut deltas = Vec::new();
    loop {
        let m = next(&mut s1).await;
        match m {
            SyncMessage::Delta { .. } => deltas.push(m),
            SyncMessage::Heartbeat { .. } => break,
            SyncMessage::Snapshot { .. } => panic!("resume within the log must not resnapshot"),
        }
    }
    assert!(!deltas.is_empty());
    assert!(deltas.iter().all(|d| d.revision() > seen));
    let revs: Vec<u64> = deltas.iter().map(SyncMessage::revision).collect();
    let mut sorted = revs.clone();
    sorted.dedup();
    assert_eq!(revs, sorted, "in order, no duplicates");
    assert!(deltas.len() <= logged);
    for d in &deltas {
        st.apply(d);
    }
    let want = oracle(&store, "h1").await;
    let mut got = st.clone();
    got.revision = want.revision;
    assert_eq!(got, want);
    assert_eq!(st.endpoints.len(), 2);

    // Server shutdown ends the stream.
    let t = tokio::time::Instant::now();
    let stopping = tokio::spawn(srv.stop());
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s1.next().await {
                Ok(Some(SyncMessage::Heartbeat { .. } | SyncMessage::Delta { .. })) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends within 10 s");
    assert!(matches!(end, Ok(None)), "{end:?}");
    stopping.await.expect("stopped");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // A restarted master on the same store: a node at the revision it loaded misses nothing; an
    // older one gets a snapshot. Failover: the first URL is dead.
    let at = st.revision.max(revision(&store).await);
    let srv = SyncServer::start(store.clone()).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let c2 = Client::new(&[dead.as_str(), srv.url.as_str()], Some(TOKEN.into())).expect("client");
    let mut same = c2.sync("h1", Some(at)).await.expect("failover");
    assert_eq!(same.url(), srv.url);
    let m = next(&mut same).await;
    assert_eq!(m, SyncMessage::Heartbeat { revision: at });
    let mut old = c2.sync("h1", Some(seen)).await.expect("sync");
    let m = next(&mut old).await;
    match m {
        SyncMessage::Snapshot { state, .. } => {
            assert_eq!(*state, oracle(&store, "h1").await);
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_stream_over_http_embedded() {
    scenario(embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_needs_a_hub() {
    let store = embedded();
    let api = Arc::new(Api::new(store, None));
    let listeners = bind(&["127.0.0.1:0".parse().expect("addr")])
        .await
        .expect("bind");
    let url = format!("http://{}", listeners[0].local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listeners, api, async {
        let _ = rx.await;
    }));
    let c = Client::new(&[&url], None).expect("client");
    match c.sync("h1", None).await {
        Err(ClientError::Api { status: 404, .. }) => {}
        other => panic!("expected 404, got {other:?}"),
    }
    let _ = tx.send(());
    task.await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_stream_over_http_etcd() {
    // etcd's revision is the revision: the restarted master below resumes nodes as any master would.
    let (etcd, store) = tokio::task::spawn_blocking(|| {
        let etcd = crate::store::etcd_server::EtcdServer::start();
        let store = etcd.store();
        (etcd, store)
    })
    .await
    .expect("etcd");
    scenario(Arc::new(store)).await;
    // Killed and reaped on drop.
    tokio::task::spawn_blocking(move || drop(etcd))
        .await
        .expect("etcd stops");
}
