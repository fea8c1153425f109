//! The sync hub: follows the store and fans each node's changes out to its subscribers.
//!
//! Role: [`SyncHub`] loads the whole cluster from a [`Store`] into a [`ClusterModel`], then follows the
//! store's change feed in revision order (a thread of its own: store calls block, and the etcd store
//! must not be called from async tasks). Each revision's per-node [`Change`]s become one
//! [`SyncMessage::Delta`] per affected node, appended to that node's [`NodeLog`] and pushed to the
//! node's live [`Subscription`]s.
//!
//! Inputs: the store; subscriptions (node name, optionally the revision the node last applied).
//! Outputs: per subscriber, a snapshot then deltas ([`Subscription::next`]), heartbeats while nothing
//! changes; [`SyncStats`] for metrics; and [`SyncHub::mirror`], a copy of every key under `/calico/`
//! kept current from the same listing and change feed (the master's cache, which the API reads while
//! etcd is unreachable, see [`crate::store::CachedStore`]).
//!
//! # Resuming
//! A node that subscribes with revision `R` gets exactly the logged deltas after `R` when its log
//! still covers `R` (it is bounded by [`SyncConfig::log_entries`] and [`SyncConfig::log_bytes`]), and
//! a fresh snapshot otherwise: when `R` is older than the log, when the node is not known to this hub
//! (logs of nodes without subscribers and without objects in the store are dropped), when `R` is ahead
//! of the hub, and after a master restart for any `R` older than the revision the new hub loaded (its
//! logs start there; a node at exactly that revision misses nothing and gets no snapshot). Revisions
//! are the store's, so with etcd a node may resume on any master whose log covers `R`.
//!
//! # Slow subscribers
//! Each subscriber has a queue bounded by [`SyncConfig::queue_messages`] and
//! [`SyncConfig::queue_bytes`]. The follower never waits for a subscriber: when a push would exceed a
//! bound, the queue is dropped and the subscriber marked for a resync, so its next read is a fresh
//! [`SyncMessage::Snapshot`] (counted in [`SyncStats::resyncs_total`]) followed by live deltas. A
//! compacted change feed (the store's history no longer reaches the hub's revision) reloads the model
//! and resyncs every subscriber the same way.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
    },
    thread::JoinHandle,
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use super::{
    log::{message_size, Entry, NodeLog},
    model::ClusterModel,
    NodeState, SyncMessage,
};
use crate::store::{keys::ROOT, Event, Listing, Mirror, Revision, Store, StoreError};

/// The hub's limits and timings.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// A subscriber that received nothing for this long gets a [`SyncMessage::Heartbeat`].
    pub heartbeat: Duration,
    /// Most messages queued for one subscriber before it is resynced.
    pub queue_messages: usize,
    /// Most (estimated) bytes queued for one subscriber before it is resynced.
    pub queue_bytes: usize,
    /// Most deltas kept per node for resuming.
    pub log_entries: usize,
    /// Most (estimated) bytes of deltas kept per node for resuming.
    pub log_bytes: usize,
    /// How often the follower checks for shutdown while the store is idle.
    pub poll: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            heartbeat: Duration::from_secs(5),
            queue_messages: 1024,
            queue_bytes: 16 << 20,
            log_entries: 1024,
            log_bytes: 4 << 20,
            poll: Duration::from_millis(200),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Live subscriptions.
    pub subscribers: u64,
    /// Subscribers resynced with a snapshot because they fell behind (or the store's history was
    /// compacted).
    pub resyncs_total: u64,
    /// The revision the hub has processed.
    pub revision: Revision,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Entry>,
    bytes: usize,
    /// The next read is a snapshot (the first, or after an overflow).
    resync: bool,
    /// The hub stopped: reads end.
    closed: bool,
    /// The subscription was dropped: the follower forgets it.
    dropped: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    notify: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves a valid queue (plain fields).
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct Core {
    model: ClusterModel,
    logs: BTreeMap<String, NodeLog>,
    subs: BTreeMap<String, Vec<Arc<Shared>>>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    config: SyncConfig,
    core: RwLock<Core>,
    /// Every key under [`ROOT`], at the revision the model has reached.
    mirror: Arc<RwLock<Mirror>>,
    /// The processed revision, published after the pushes of that revision.
    revision: AtomicU64,
    /// Serialises followers (the thread, or a test's [`SyncHub::catch_up`]).
    follow: Mutex<()>,
    stop: AtomicBool,
    subscribers: AtomicU64,
    resyncs: AtomicU64,
}

/// The node sync hub. Dropping it stops the follower and ends every subscription.
#[derive(Debug)]
pub struct SyncHub {
    inner: Arc<Inner>,
    follower: Mutex<Option<JoinHandle<()>>>,
}

fn load(store: &dyn Store) -> Result<(ClusterModel, Mirror), StoreError> {
    let listing = store.list(ROOT)?;
    Ok((model_of(&listing), Mirror::from_listing(&listing)))
}

fn model_of(listing: &Listing) -> ClusterModel {
    ClusterModel::load(
        listing.revision,
        listing
            .kvs
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.as_slice())),
    )
}

impl Inner {
    fn read(&self) -> RwLockReadGuard<'_, Core> {
        self.core.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Core> {
        self.core.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn mirror(&self) -> RwLockWriteGuard<'_, Mirror> {
        self.mirror.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn catch_up(&self) -> Result<Revision, StoreError> {
        let _one = self.follow.lock().unwrap_or_else(PoisonError::into_inner);
        let from = self.revision.load(Ordering::Acquire);
        let events = match self.store.changes_since(from) {
            Ok(e) => e,
            Err(StoreError::Compacted { .. }) => return self.reload(),
            Err(e) => return Err(e),
        };
        let mut start = 0;
        while start < events.len() {
            let rev = events[start].mod_revision;
            let end = events[start..]
                .iter()
                .position(|e| e.mod_revision != rev)
                .map_or(events.len(), |n| start + n);
            self.process(rev, &events[start..end]);
            start = end;
        }
        Ok(self.revision.load(Ordering::Acquire))
    }

    /// Apply one revision and push its deltas.
    fn process(&self, rev: Revision, events: &[Event]) {
        let mut core = self.write();
        let prev = core.model.revision();
        if rev <= prev {
            return;
        }
        let ours: Vec<Event> = events
            .iter()
            .filter(|e| e.key.starts_with(ROOT))
            .cloned()
            .collect();
        let mut mirror = self.mirror();
        mirror.apply(&ours);
        mirror.advance(rev);
        drop(mirror);
        let changes = core.model.apply(rev, events);
        if !changes.is_empty() {
            let targets: BTreeSet<String> = if changes.global.is_empty() {
                changes.nodes.keys().cloned().collect()
            } else {
                core.logs
                    .keys()
                    .chain(changes.nodes.keys())
                    .cloned()
                    .collect()
            };
            let cfg = &self.config;
            for node in targets {
                let list = changes.for_node(&node);
                if list.is_empty() {
                    continue;
                }
                let message = Arc::new(SyncMessage::Delta {
                    revision: rev,
                    changes: list,
                });
                let entry = Entry {
                    size: message_size(&message),
                    message,
                };
                let core = &mut *core;
                core.logs
                    .entry(node.clone())
                    .or_insert_with(|| NodeLog::new(prev))
                    .push(entry.clone(), cfg.log_entries, cfg.log_bytes);
                if let Some(subs) = core.subs.get_mut(&node) {
                    subs.retain(|s| !s.lock().dropped);
                    for s in subs.iter() {
                        self.push(s, &entry);
                    }
                }
            }
        }
        self.revision.store(rev, Ordering::Release);
    }

    fn push(&self, s: &Shared, entry: &Entry) {
        let cfg = &self.config;
        let mut q = s.lock();
        if q.dropped || q.closed || q.resync {
            return;
        }
        let over = q.items.len() >= cfg.queue_messages
            || (!q.items.is_empty() && q.bytes + entry.size > cfg.queue_bytes);
        if over {
            q.items = VecDeque::new();
            q.bytes = 0;
            q.resync = true;
            self.resyncs.fetch_add(1, Ordering::Relaxed);
        } else {
            q.items.push_back(entry.clone());
            q.bytes += entry.size;
        }
        drop(q);
        s.notify.notify_one();
    }

    /// The change feed no longer reaches our revision: reload and resync everyone.
    fn reload(&self) -> Result<Revision, StoreError> {
        let (model, mirror) = load(self.store.as_ref())?;
        let rev = model.revision();
        let mut core = self.write();
        *self.mirror() = mirror;
        tracing::warn!(
            from = core.model.revision(),
            to = rev,
            "sync: the store's history was compacted past the hub's revision; reloaded, resyncing every subscriber"
        );
        let nodes = model.nodes();
        core.model = model;
        for log in core.logs.values_mut() {
            *log = NodeLog::new(rev);
        }
        for n in nodes {
            core.logs.entry(n).or_insert_with(|| NodeLog::new(rev));
        }
        for s in core.subs.values().flatten() {
            let mut q = s.lock();
            if q.dropped || q.closed {
                continue;
            }
            q.items = VecDeque::new();
            q.bytes = 0;
            if !q.resync {
                q.resync = true;
                self.resyncs.fetch_add(1, Ordering::Relaxed);
            }
            drop(q);
            s.notify.notify_one();
        }
        self.revision.store(rev, Ordering::Release);
        Ok(rev)
    }

    /// Forget dropped subscriptions, and the logs of nodes nobody follows and the store does not know.
    fn prune(&self) {
        let mut core = self.write();
        let core = &mut *core;
        core.subs.retain(|_, subs| {
            subs.retain(|s| !s.lock().dropped);
            !subs.is_empty()
        });
        let (model, subs) = (&core.model, &core.subs);
        core.logs
            .retain(|node, _| subs.contains_key(node) || model.knows(node));
    }

    fn follow(self: Arc<Self>) {
        let poll = self.config.poll;
        let mut since_prune = 0u32;
        while !self.stop.load(Ordering::Acquire) {
            let cur = self.revision.load(Ordering::Acquire);
            match self.store.wait_for_revision(cur, poll) {
                Ok(r) if r > cur => {
                    if let Err(e) = self.catch_up() {
                        tracing::warn!(error = %e, "sync: cannot read the store's changes; retrying");
                        std::thread::sleep(poll);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "sync: cannot watch the store; retrying");
                    std::thread::sleep(poll);
                }
            }
            since_prune += 1;
            if since_prune >= 50 {
                since_prune = 0;
                self.prune();
            }
        }
    }
}

impl SyncHub {
    /// Load the cluster from `store` (blocking; call it where the store may block). The hub does not
    /// follow the store until [`SyncHub::start`] or [`SyncHub::catch_up`].
    pub fn new(store: Arc<dyn Store>, config: SyncConfig) -> Result<Self, StoreError> {
        let (model, mirror) = load(store.as_ref())?;
        let rev = model.revision();
        let logs = model
            .nodes()
            .into_iter()
            .map(|n| (n, NodeLog::new(rev)))
            .collect();
        Ok(SyncHub {
            inner: Arc::new(Inner {
                store,
                config,
                core: RwLock::new(Core {
                    model,
                    logs,
                    subs: BTreeMap::new(),
                }),
                mirror: Arc::new(RwLock::new(mirror)),
                revision: AtomicU64::new(rev),
                follow: Mutex::new(()),
                stop: AtomicBool::new(false),
                subscribers: AtomicU64::new(0),
                resyncs: AtomicU64::new(0),
            }),
            follower: Mutex::new(None),
        })
    }

    /// Load the cluster and follow the store on a thread of its own until [`SyncHub::shutdown`].
    pub fn start(store: Arc<dyn Store>, config: SyncConfig) -> Result<Arc<Self>, StoreError> {
        let hub = Self::new(store, config)?;
        let inner = hub.inner.clone();
        let handle = std::thread::Builder::new()
            .name("sync-follower".into())
            .spawn(move || inner.follow())
            .map_err(|source| StoreError::Io {
                context: "starting the sync follower thread".into(),
                source,
            })?;
        *hub.follower.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        Ok(Arc::new(hub))
    }

    /// Process every change the store has now (what the follower thread does on each new
    /// revision); returns the hub's revision after.
    pub fn catch_up(&self) -> Result<Revision, StoreError> {
        self.inner.catch_up()
    }

    /// The hub's copy of every key under `/calico/`, at the revision it has processed (shared: it
    /// stays current as the hub follows the store).
    pub fn mirror(&self) -> Arc<RwLock<Mirror>> {
        self.inner.mirror.clone()
    }

    /// The revision the hub has processed.
    pub fn revision(&self) -> Revision {
        self.inner.revision.load(Ordering::Acquire)
    }

    /// The counters.
    pub fn stats(&self) -> SyncStats {
        SyncStats {
            subscribers: self.inner.subscribers.load(Ordering::Relaxed),
            resyncs_total: self.inner.resyncs.load(Ordering::Relaxed),
            revision: self.revision(),
        }
    }

    /// The hub's limits.
    pub fn config(&self) -> &SyncConfig {
        &self.inner.config
    }

    /// `node`'s whole state now.
    pub fn snapshot(&self, node: &str) -> NodeState {
        self.inner.read().model.snapshot(node)
    }

    /// The resume log of `node`: (floor, number of deltas), if the hub keeps one.
    pub fn log_extent(&self, node: &str) -> Option<(Revision, usize)> {
        self.inner
            .read()
            .logs
            .get(node)
            .map(|l| (l.floor(), l.len()))
    }

    /// Subscribe `node`: a snapshot first, or, with `since` (the revision the node last applied)
    /// covered by the node's log, exactly the deltas after it (see the module docs).
    pub fn subscribe(&self, node: &str, since: Option<Revision>) -> Subscription {
        let shared = Arc::new(Shared::default());
        let resumed = {
            let mut core = self.inner.write();
            let rev = core.model.revision();
            let mut q = shared.lock();
            let log = core
                .logs
                .entry(node.to_owned())
                .or_insert_with(|| NodeLog::new(rev));
            let entries = since.filter(|r| *r <= rev).and_then(|r| log.since(r));
            match entries {
                Some(e) if e.len() <= self.inner.config.queue_messages => {
                    q.bytes = e.iter().map(|e| e.size).sum();
                    q.items = e.into();
                }
                _ => q.resync = true,
            }
            q.closed = self.inner.stop.load(Ordering::Acquire);
            let resumed = !q.resync;
            drop(q);
            let subs = core.subs.entry(node.to_owned()).or_default();
            subs.retain(|s| !s.lock().dropped);
            subs.push(shared.clone());
            resumed
        };
        tracing::debug!(node, ?since, resumed, "sync: node subscribed");
        self.inner.subscribers.fetch_add(1, Ordering::Relaxed);
        Subscription {
            inner: self.inner.clone(),
            node: node.to_owned(),
            shared,
            last_sent: Instant::now(),
            sent_revision: since.unwrap_or(0),
        }
    }

    /// Stop following the store and end every subscription (their reads return `None`).
    pub fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::Release);
        let handle = self
            .follower
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::warn!("sync: the follower thread panicked");
            }
        }
        let core = self.inner.read();
        for s in core.subs.values().flatten() {
            s.lock().closed = true;
            s.notify.notify_one();
        }
    }
}

impl Drop for SyncHub {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One node's live feed from the hub. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    inner: Arc<Inner>,
    node: String,
    shared: Arc<Shared>,
    last_sent: Instant,
    sent_revision: Revision,
}

impl Subscription {
    /// The node subscribed for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Messages waiting (a pending resync counts as none: the snapshot is made when read).
    pub fn queued(&self) -> usize {
        self.shared.lock().items.len()
    }

    /// The next message is a resync snapshot.
    pub fn resync_pending(&self) -> bool {
        self.shared.lock().resync
    }

    /// The next message if one is ready (a queued delta, or a snapshot when one is due); never a
    /// heartbeat. `None` also when the hub has stopped.
    pub fn try_next(&mut self) -> Option<SyncMessage> {
        let msg = self.ready().ok().flatten()?;
        self.sent(&msg);
        Some(msg)
    }

    /// The next message: a snapshot when one is due, else the next delta, else (after
    /// [`SyncConfig::heartbeat`] without any message) a heartbeat. `None` once the hub has stopped.
    pub async fn next(&mut self) -> Option<SyncMessage> {
        loop {
            // Read the revision before looking at the queue: a heartbeat must not claim a revision
            // whose delta is still to be queued.
            let rev = self.inner.revision.load(Ordering::Acquire);
            match self.ready() {
                Err(()) => return None,
                Ok(Some(msg)) => {
                    self.sent(&msg);
                    return Some(msg);
                }
                Ok(None) => {}
            }
            let deadline = self.last_sent + self.inner.config.heartbeat;
            if Instant::now() >= deadline {
                let msg = SyncMessage::Heartbeat {
                    revision: rev.max(self.sent_revision),
                };
                self.sent(&msg);
                return Some(msg);
            }
            tokio::select! {
                () = self.shared.notify.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    fn sent(&mut self, msg: &SyncMessage) {
        self.last_sent = Instant::now();
        self.sent_revision = match msg {
            SyncMessage::Snapshot { revision, .. } => *revision,
            other => self.sent_revision.max(other.revision()),
        };
    }

    /// A queued message or a due snapshot; `Err` when closed.
    fn ready(&self) -> Result<Option<SyncMessage>, ()> {
        let mut q = self.shared.lock();
        if q.closed {
            return Err(());
        }
        if q.resync {
            drop(q);
            return Ok(Some(self.resync()));
        }
        Ok(q.items.pop_front().map(|e| {
            q.bytes -= e.size;
            Arc::unwrap_or_clone(e.message)
        }))
    }

    /// A fresh snapshot; the queue is emptied under the hub's lock, so the deltas queued after it
    /// are exactly those after its revision.
    fn resync(&self) -> SyncMessage {
        let core = self.inner.read();
        let mut q = self.shared.lock();
        q.items = VecDeque::new();
        q.bytes = 0;
        q.resync = false;
        let state = core.model.snapshot(&self.node);
        SyncMessage::Snapshot {
            revision: state.revision,
            state: Box::new(state),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut q = self.shared.lock();
        q.dropped = true;
        q.items = VecDeque::new();
        q.bytes = 0;
        drop(q);
        self.inner.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}
