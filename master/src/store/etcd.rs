//! The etcd datastore: the [`Store`] trait on a real etcd v3 cluster, through the `etcd-client` crate.
//!
//! Role: the cluster backend (`calicoctl master run --etcd-endpoints …`). Several masters may share one
//! etcd: every write is an etcd transaction, so compare-and-swap on IPAM blocks is safe across them.
//!
//! Inputs: [`EtcdOptions`] (endpoints, optional TLS files, timeouts), then the [`Store`] calls.
//! Outputs: etcd's answers in the store's model. Keys and values are stored unchanged (the original's
//! layout, so `etcdctl get --prefix /calico` reads like the original's); revisions are etcd's own
//! (a fresh etcd is at revision 1, so the first write is 2: callers only rely on "greater is later").
//!
//! Mapping (see [`super`] for the semantics): compares and ops map one to one onto etcd's
//! ([`to_compare`], [`to_op`]); puts and deletes ask for the previous values; [`Store::changes_since`]
//! opens a watch over all keys from `revision` (skipping that revision's own events) and reads it up
//! to the current revision, and a watch that etcd cancels with a compact revision becomes
//! [`StoreError::Compacted`] (`compacted` = etcd's compact revision), so the caller relists. [`Store::wait_for_revision`] and [`Store::subscribe`] are fed by one long-lived watch
//! (see [`super::etcd_watch`]) that resumes from the last seen revision + 1 after a disconnect.
//!
//! Threads: etcd-client is async. The store owns a small dedicated tokio runtime (two workers) that
//! runs the client and the watch task; each trait method spawns its request there and waits for the
//! answer on a plain channel, so it may be called from any thread that is not one of that runtime's
//! workers. **Callers on a tokio runtime must not call it from an async task**: it blocks the calling
//! thread for a round trip to etcd. Call it through `tokio::task::spawn_blocking`, as the API server
//! does. [`Store::subscribe`] callbacks run on the store's runtime (from the watch task) or on the
//! writing thread: they must be quick and must not call the store. Dropping the store shuts its
//! runtime down in the background (never blocking), so the last `Arc` may be dropped anywhere.
//!
//! Endpoints: one etcd-client per endpoint; a request goes to the endpoint that answered last and,
//! when that one cannot be reached, to the next (a write only if it was never sent, so it cannot be
//! applied twice); see [`Conn::failover`]. The watch task moves on the same way.
//!
//! Failures: every request runs under [`EtcdOptions::request_timeout`]; when etcd cannot be reached
//! the call fails within that time with [`StoreError::Unavailable`] naming the endpoints tried. A
//! write that times out may or may not have been applied by etcd (as with any etcd client): callers
//! re-read before retrying, as compare-and-swap loops do anyway.

use std::{
    fmt,
    future::Future,
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Arc,
    },
    time::Duration,
};

use etcd_client as ec;
use tokio::runtime::{Handle, Runtime};

use super::{
    etcd_watch, CompareTarget, Event, EventKind, KeyValue, Listing, Op, OpResult, Revision,
    RevisionCallback, RevisionWatch, Store, StoreError, Subscription, Txn, TxnResponse,
};

/// Largest gRPC message the store accepts (big listings of endpoints or long change feeds).
const MAX_MESSAGE: usize = 256 << 20;

/// TLS settings for etcd (PEM files). Endpoints must then be `https://` URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA that signed etcd's server certificate (else the system's roots are not used: give one).
    pub ca: Option<PathBuf>,
    /// The client certificate, for etcd's `--client-cert-auth`.
    pub cert: Option<PathBuf>,
    /// The client certificate's key.
    pub key: Option<PathBuf>,
}

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Client URLs, e.g. `http://127.0.0.1:2379`. Requests go to the one that answered last and
    /// fail over to the next when it cannot be reached.
    pub endpoints: Vec<String>,
    /// TLS, if etcd serves it.
    pub tls: Option<EtcdTls>,
    /// Time to open a connection to one endpoint.
    pub connect_timeout: Duration,
    /// Time for one request, connection included; past it the call fails as unavailable.
    pub request_timeout: Duration,
}

impl EtcdOptions {
    /// Options for these endpoints with the default timeouts (connect 1 s, request 3 s), so that
    /// a dead first endpoint still leaves time to try the next one.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        EtcdOptions {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            tls: None,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(3),
        }
    }

    /// Parse a comma-separated endpoint list (`http://a:2379,http://b:2379`).
    pub fn parse_endpoints(list: &str) -> Result<Vec<String>, StoreError> {
        let eps: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if eps.is_empty() {
            return Err(StoreError::Backend(
                "no etcd endpoint given (expected e.g. http://127.0.0.1:2379)".into(),
            ));
        }
        for e in &eps {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(StoreError::Backend(format!(
                    "etcd endpoint {e} must start with http:// or https://"
                )));
            }
        }
        Ok(eps)
    }
}

/// The etcd store. Share it in an `Arc`; see the module docs for how to call it from async code.
pub struct EtcdStore {
    /// Taken on drop to shut down in the background.
    runtime: Option<Runtime>,
    handle: Handle,
    conn: Arc<Conn>,
    watch: RevisionWatch,
}

/// What requests and the watch task share: one client per endpoint, the one that answered last,
/// and the timeouts.
///
/// One client per endpoint rather than etcd-client's balanced channel over all of them: the
/// balancer keeps sending requests to an endpoint whose connection fails (each then fails with
/// "tcp connect error"), whereas [`Conn::failover`] moves on to the next endpoint and stays there.
pub(super) struct Conn {
    pub(super) endpoints: Vec<String>,
    clients: Vec<ec::Client>,
    preferred: AtomicUsize,
    pub(super) request_timeout: Duration,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("endpoints", &self.endpoints)
            .field("preferred", &self.preferred)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// Whether `e` says etcd could not be reached (or did not answer in time).
fn unreachable(e: &ec::Error) -> bool {
    match e {
        // Cancelled, Unknown (tonic's transport failures), DeadlineExceeded, Unavailable.
        ec::Error::GRpcStatus(s) => matches!(i32::from(s.code()), 1 | 2 | 4 | 14),
        ec::Error::TransportError(_) | ec::Error::IoError(_) => true,
        _ => false,
    }
}

/// Whether `e` says the request never left (no connection): then even a write may go elsewhere.
fn never_sent(e: &ec::Error) -> bool {
    match e {
        ec::Error::GRpcStatus(s) => {
            i32::from(s.code()) == 14 && s.message().to_ascii_lowercase().contains("connect")
        }
        ec::Error::TransportError(_) => true,
        _ => false,
    }
}

impl Conn {
    /// The shared state for these endpoints and their clients (one each, same order).
    pub(super) fn new(
        endpoints: Vec<String>,
        clients: Vec<ec::Client>,
        request_timeout: Duration,
    ) -> Self {
        Conn {
            endpoints,
            clients,
            preferred: AtomicUsize::new(0),
            request_timeout,
        }
    }

    /// The client of endpoint `index` (modulo their number), with its index.
    pub(super) fn client(&self, index: usize) -> (usize, ec::Client) {
        let n = self.clients.len().max(1);
        let i = index % n;
        (i, self.clients[i].clone())
    }

    /// The index of the endpoint that answered last.
    pub(super) fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Relaxed)
    }

    /// Run `f` with the preferred endpoint's client; if etcd there cannot be reached, try the next
    /// endpoint, and so on (a write only when it never left, so that it is never applied twice).
    /// The endpoint that answers becomes the preferred one.
    pub(super) async fn failover<T, F, Fut>(&self, write: bool, f: F) -> Result<T, ec::Error>
    where
        F: Fn(ec::Client) -> Fut,
        Fut: Future<Output = Result<T, ec::Error>>,
    {
        let n = self.clients.len();
        let first = self.preferred();
        for attempt in 0..n {
            let (i, client) = self.client(first + attempt);
            match f(client).await {
                Ok(v) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e) => {
                    let movable = if write {
                        never_sent(&e)
                    } else {
                        unreachable(&e)
                    };
                    if attempt + 1 == n || !movable {
                        return Err(e);
                    }
                    tracing::debug!(endpoint = %self.endpoints[i], "etcd unreachable ({e}); trying the next endpoint");
                }
            }
        }
        Err(ec::Error::InvalidArgs("no etcd endpoint".into()))
    }

    /// A failure to reach etcd, naming the endpoints tried.
    pub(super) fn unavailable(&self, what: &str, detail: impl fmt::Display) -> StoreError {
        StoreError::Unavailable(format!(
            "etcd at {} is unreachable ({what}): {detail}",
            self.endpoints.join(", ")
        ))
    }

    /// Convert an etcd-client error.
    pub(super) fn convert(&self, what: &str, e: ec::Error) -> StoreError {
        if unreachable(&e) {
            return match e {
                ec::Error::GRpcStatus(s) => self.unavailable(what, s.message()),
                other => self.unavailable(what, other),
            };
        }
        match e {
            ec::Error::GRpcStatus(s) => match i32::from(s.code()) {
                // InvalidArgument: e.g. "duplicate key given in txn request".
                3 => StoreError::InvalidTxn(format!("etcd refused {what}: {}", s.message())),
                _ => StoreError::Backend(format!("etcd: {what}: {}", s.message())),
            },
            other => StoreError::Backend(format!("etcd: {what}: {other}")),
        }
    }
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.conn.endpoints)
            .field("revision", &self.watch.current())
            .finish_non_exhaustive()
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl EtcdStore {
    /// Connect to etcd and check that it answers (within the request timeout); start the watch
    /// that feeds [`Store::wait_for_revision`] and [`Store::subscribe`].
    pub fn connect(options: EtcdOptions) -> Result<Self, StoreError> {
        if options.endpoints.is_empty() {
            return Err(StoreError::Backend("no etcd endpoint given".into()));
        }
        let connect_opts = connect_options(&options)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("etcd-store")
            .enable_all()
            .build()
            .map_err(|source| StoreError::Io {
                context: "starting the etcd client's runtime".into(),
                source,
            })?;
        let handle = runtime.handle().clone();
        // The clients connect lazily: this only checks the URLs.
        let mut clients = Vec::new();
        for ep in &options.endpoints {
            let (tx, rx) = mpsc::sync_channel(1);
            let (ep2, o) = (ep.clone(), connect_opts.clone());
            handle.spawn(async move {
                let _ = tx.send(ec::Client::connect([ep2], Some(o)).await);
            });
            match rx.recv_timeout(options.request_timeout) {
                Ok(Ok(c)) => clients.push(c),
                Ok(Err(e)) => {
                    return Err(StoreError::Backend(format!("etcd endpoint {ep}: {e}")));
                }
                Err(_) => {
                    return Err(StoreError::Backend(format!(
                        "etcd endpoint {ep}: the client could not be set up"
                    )));
                }
            }
        }
        let conn = Arc::new(Conn::new(
            options.endpoints.clone(),
            clients,
            options.request_timeout,
        ));
        let mut store = EtcdStore {
            runtime: Some(runtime),
            handle,
            conn,
            watch: RevisionWatch::new(0),
        };
        let rev = store.revision()?;
        store.watch = RevisionWatch::new(rev);
        store.handle.spawn(etcd_watch::run(
            store.conn.clone(),
            store.watch.clone(),
            rev,
        ));
        Ok(store)
    }

    /// The endpoints this store talks to.
    pub fn endpoints(&self) -> &[String] {
        &self.conn.endpoints
    }

    /// Discard etcd's history up to `revision` (etcd's compaction; an operator task). Change feeds
    /// from before it then get [`StoreError::Compacted`].
    pub fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let rev = to_i64(revision)?;
        self.request("compacting", true, move |c| async move {
            kv(&c)
                .compact(rev, Some(ec::CompactionOptions::new().with_physical()))
                .await
                .map(drop)
        })
    }

    /// Run one request on the store's runtime (failing over between endpoints, see
    /// [`Conn::failover`]) and wait for it, under the request timeout.
    fn request<T, F, Fut>(&self, what: &str, write: bool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(ec::Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, ec::Error>> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let conn = self.conn.clone();
        let timeout = conn.request_timeout;
        self.handle.spawn(async move {
            let _ = tx.send(tokio::time::timeout(timeout, conn.failover(write, f)).await);
        });
        let conn = &self.conn;
        // The margin covers a runtime too busy to even start the request (e.g. a subscriber
        // callback that wrongly calls the store from the runtime's own threads).
        match rx.recv_timeout(timeout + Duration::from_secs(1)) {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(conn.convert(what, e)),
            Ok(Err(_)) | Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(conn.unavailable(what, format!("no answer within {timeout:?}")))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(StoreError::Backend(format!(
                "etcd: {what}: the client's runtime has stopped"
            ))),
        }
    }
}

fn connect_options(options: &EtcdOptions) -> Result<ec::ConnectOptions, StoreError> {
    let mut o = ec::ConnectOptions::new()
        .with_connect_timeout(options.connect_timeout)
        .with_timeout(options.request_timeout)
        .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3));
    if let Some(tls) = &options.tls {
        o = o.with_tls(tls_options(tls)?);
        if let Some(e) = options.endpoints.iter().find(|e| e.starts_with("http://")) {
            return Err(StoreError::Backend(format!(
                "etcd endpoint {e} is plain http but TLS files were given: use https://"
            )));
        }
    }
    Ok(o)
}

fn tls_options(tls: &EtcdTls) -> Result<ec::TlsOptions, StoreError> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|source| StoreError::Io {
            context: format!("reading the etcd TLS file {}", p.display()),
            source,
        })
    };
    let mut o = ec::TlsOptions::new();
    if let Some(ca) = &tls.ca {
        o = o.ca_certificate(ec::Certificate::from_pem(read(ca)?));
    }
    match (&tls.cert, &tls.key) {
        (Some(c), Some(k)) => o = o.identity(ec::Identity::from_pem(read(c)?, read(k)?)),
        (None, None) => {}
        _ => {
            return Err(StoreError::Backend(
                "an etcd client certificate needs its key and the key its certificate: give both --etcd-cert and --etcd-key".into(),
            ))
        }
    }
    Ok(o)
}

pub(super) fn to_i64(r: Revision) -> Result<i64, StoreError> {
    i64::try_from(r)
        .map_err(|_| StoreError::Backend(format!("revision {r} is out of etcd's range")))
}

pub(super) fn to_rev(r: i64, what: &str) -> Result<Revision, StoreError> {
    u64::try_from(r).map_err(|_| StoreError::Corrupt(format!("etcd sent a negative {what}: {r}")))
}

fn header_rev(h: Option<&ec::ResponseHeader>) -> Result<Revision, StoreError> {
    match h {
        Some(h) => to_rev(h.revision(), "revision"),
        None => Err(StoreError::Corrupt(
            "etcd sent a response without a header".into(),
        )),
    }
}

/// An etcd key-value as the store's.
pub(super) fn to_kv(kv: &ec::KeyValue) -> Result<KeyValue, StoreError> {
    let key = String::from_utf8(kv.key().to_vec())
        .map_err(|_| StoreError::Corrupt(format!("etcd holds a non-UTF-8 key {:?}", kv.key())))?;
    Ok(KeyValue {
        value: kv.value().to_vec(),
        create_revision: to_rev(kv.create_revision(), "create revision")?,
        mod_revision: to_rev(kv.mod_revision(), "mod revision")?,
        version: to_rev(kv.version(), "version")?,
        key,
    })
}

fn to_kvs(kvs: &[ec::KeyValue]) -> Result<Vec<KeyValue>, StoreError> {
    kvs.iter().map(to_kv).collect()
}

/// An etcd watch event as the store's.
pub(super) fn to_event(e: &ec::Event) -> Result<Event, StoreError> {
    let kv = e
        .kv()
        .ok_or_else(|| StoreError::Corrupt("etcd sent a watch event without a key".into()))?;
    let kv = to_kv(kv)?;
    let (kind, value) = match e.event_type() {
        ec::EventType::Put => (EventKind::Put, kv.value),
        ec::EventType::Delete => (EventKind::Delete, Vec::new()),
    };
    Ok(Event {
        kind,
        key: kv.key,
        value,
        mod_revision: kv.mod_revision,
    })
}

/// A store compare as etcd's (the mapping in [`super`]'s docs).
pub(super) fn to_compare(c: &super::Compare) -> Result<ec::Compare, StoreError> {
    let key = c.key.as_bytes().to_vec();
    Ok(match &c.target {
        CompareTarget::ModRevision(r) => {
            ec::Compare::mod_revision(key, ec::CompareOp::Equal, to_i64(*r)?)
        }
        CompareTarget::Exists => ec::Compare::create_revision(key, ec::CompareOp::Greater, 0),
        CompareTarget::Absent => ec::Compare::version(key, ec::CompareOp::Equal, 0),
        CompareTarget::Value(v) => ec::Compare::value(key, ec::CompareOp::Equal, v.clone()),
    })
}

/// A store op as etcd's; writes return the previous values.
pub(super) fn to_op(op: &Op) -> ec::TxnOp {
    match op {
        Op::Put { key, value } => ec::TxnOp::put(
            key.as_bytes(),
            value.clone(),
            Some(ec::PutOptions::new().with_prev_key()),
        ),
        Op::Delete { key } => ec::TxnOp::delete(
            key.as_bytes(),
            Some(ec::DeleteOptions::new().with_prev_key()),
        ),
        Op::DeletePrefix { prefix } => ec::TxnOp::delete(
            prefix.as_bytes(),
            Some(ec::DeleteOptions::new().with_prefix().with_prev_key()),
        ),
        Op::Get { key } => ec::TxnOp::get(key.as_bytes(), None),
    }
}

fn to_result(r: &ec::TxnOpResponse) -> Result<OpResult, StoreError> {
    Ok(match r {
        ec::TxnOpResponse::Put(p) => OpResult::Put {
            prev: p.prev_key().map(to_kv).transpose()?,
        },
        ec::TxnOpResponse::Delete(d) => OpResult::Delete {
            deleted: to_kvs(d.prev_kvs())?,
        },
        ec::TxnOpResponse::Get(g) => OpResult::Get {
            kv: g.kvs().first().map(to_kv).transpose()?,
        },
        ec::TxnOpResponse::Txn(_) => {
            return Err(StoreError::Corrupt(
                "etcd answered a nested transaction that was never sent".into(),
            ))
        }
    })
}

/// A KV client of `c` that takes large listings.
pub(super) fn kv(c: &ec::Client) -> ec::KvClient {
    c.kv_client()
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Read etcd's current revision (a point read of a key that is never written).
pub(super) async fn current_revision(c: &ec::Client) -> Result<i64, ec::Error> {
    let r = kv(c)
        .get(
            b"\0".to_vec(),
            Some(ec::GetOptions::new().with_count_only()),
        )
        .await?;
    Ok(r.header().map_or(0, |h| h.revision()))
}

/// What a one-shot change-feed watch found.
enum Feed {
    Events(Vec<Event>),
    Compacted(i64),
}

impl Store for EtcdStore {
    fn revision(&self) -> Result<Revision, StoreError> {
        let rev = self.request("reading the revision", false, |c| async move {
            current_revision(&c).await
        })?;
        let rev = to_rev(rev, "revision")?;
        self.watch.publish(rev);
        Ok(rev)
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.as_bytes().to_vec();
        let resp = self.request("reading a key", false, move |c| {
            let key = key.clone();
            async move { kv(&c).get(key, None).await }
        })?;
        resp.kvs().first().map(to_kv).transpose()
    }

    fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let key = prefix.as_bytes().to_vec();
        let resp = self.request("listing", false, move |c| {
            let key = key.clone();
            async move {
                kv(&c)
                    .get(key, Some(ec::GetOptions::new().with_prefix()))
                    .await
            }
        })?;
        Ok(Listing {
            revision: header_rev(resp.header())?,
            kvs: to_kvs(resp.kvs())?,
        })
    }

    fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        txn.check()?;
        let compares = txn
            .compares
            .iter()
            .map(to_compare)
            .collect::<Result<Vec<_>, _>>()?;
        let etxn = ec::Txn::new()
            .when(compares)
            .and_then(txn.success.iter().map(to_op).collect::<Vec<_>>())
            .or_else(txn.failure.iter().map(to_op).collect::<Vec<_>>());
        let resp = self.request("a transaction", true, move |c| {
            let etxn = etxn.clone();
            async move { kv(&c).txn(etxn).await }
        })?;
        let revision = header_rev(resp.header())?;
        self.watch.publish(revision);
        Ok(TxnResponse {
            succeeded: resp.succeeded(),
            revision,
            results: resp
                .op_responses()
                .iter()
                .map(to_result)
                .collect::<Result<_, _>>()?,
        })
    }

    fn changes_since(&self, revision: Revision) -> Result<Vec<Event>, StoreError> {
        let conn = self.conn.clone();
        let feed = self.request("reading the change feed", false, move |c| {
            let conn = conn.clone();
            async move {
                let mut wc = c.watch_client().max_decoding_message_size(MAX_MESSAGE);
                let current = current_revision(&c).await?;
                let Some(after) = i64::try_from(revision).ok().filter(|r| *r < current) else {
                    return Ok(Ok(Feed::Events(Vec::new())));
                };
                // Watch from `after` itself (not after + 1) and skip its events: etcd then reports a
                // compaction exactly when `after` < the compact revision, whose own tombstones etcd
                // discards, which is the store's rule (history starts after the compacted revision).
                let opts = ec::WatchOptions::new()
                    .with_all_keys()
                    .with_start_revision(after.max(1));
                let mut stream = wc.watch(Vec::new(), Some(opts)).await?;
                let mut out = Vec::new();
                while let Some(resp) = stream.message().await? {
                    if resp.compact_revision() > 0 {
                        return Ok(Ok(Feed::Compacted(resp.compact_revision())));
                    }
                    if resp.canceled() {
                        return Ok(Err(StoreError::Backend(format!(
                            "etcd cancelled the change-feed watch: {}",
                            resp.cancel_reason()
                        ))));
                    }
                    let mut done = false;
                    for e in resp.events() {
                        let e = match to_event(e) {
                            Ok(e) => e,
                            Err(err) => return Ok(Err(err)),
                        };
                        // Every revision has at least one event, and one revision's events come in
                        // one response, so the one that reaches `current` ends the feed.
                        if i64::try_from(e.mod_revision).map_or(true, |r| r >= current) {
                            done = true;
                        }
                        if i64::try_from(e.mod_revision).is_ok_and(|r| r > after && r <= current) {
                            out.push(e);
                        }
                    }
                    if done {
                        return Ok(Ok(Feed::Events(out)));
                    }
                }
                Ok(Err(conn.unavailable(
                    "reading the change feed",
                    "the watch ended early",
                )))
            }
        })??;
        match feed {
            Feed::Events(ev) => Ok(ev),
            Feed::Compacted(c) => Err(StoreError::Compacted {
                requested: revision,
                compacted: to_rev(c, "compact revision")?,
            }),
        }
    }

    fn wait_for_revision(
        &self,
        after: Revision,
        timeout: Duration,
    ) -> Result<Revision, StoreError> {
        Ok(self.watch.wait_for(after, timeout))
    }

    fn subscribe(&self, callback: RevisionCallback) -> Subscription {
        self.watch.subscribe(callback)
    }
}
