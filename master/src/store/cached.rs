//! A store that answers reads from the master's cache while the real one (etcd) is unreachable.
//!
//! Role: what the API talks to when the master runs a sync hub ([`crate::api::Api::with_sync`]). Every
//! call goes to the wrapped store while it answers. When a call fails with
//! [`StoreError::Unavailable`], the store is marked down: reads ([`Store::get`], [`Store::list`]) are
//! then answered from the [`Mirror`] the sync hub keeps current from the change feed (so they show the
//! state as of the last change the hub saw), and writes ([`Store::txn`]) and [`Store::revision`] (the
//! health check) fail at once with [`StoreError::Unavailable`], without sending anything, so a refused
//! write changes nothing and is answered quickly. After [`CachedStore::RETRY_AFTER`] the next call
//! tries the real store again; the first that succeeds marks it up.
//!
//! A write goes out only after the store answered within the last [`CachedStore::PROBE_IDLE`], or
//! after a cheap probe ([`Store::revision`]) succeeds, so the first write after a silent failure (etcd
//! frozen, the network cut) times out on the probe rather than being queued on a dead connection, from
//! which it might be applied later. (A failure between the probe and the write can still leave the write
//! in doubt, as with any etcd client.)
//!
//! Inputs: the real store, the shared [`Mirror`]. Outputs: the [`Store`] calls' answers. The change
//! feed, waits and subscriptions go to the real store unchanged.

use std::{
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use super::{
    Event, KeyValue, Listing, Mirror, Revision, RevisionCallback, Store, StoreError, Subscription,
    Txn, TxnResponse,
};

#[derive(Debug)]
struct Health {
    /// When the store last answered.
    last_ok: Instant,
    /// Down since, the reason, and when to try again.
    down: Option<Down>,
}

#[derive(Debug, Clone)]
struct Down {
    since: Instant,
    reason: String,
    retry_at: Instant,
}

/// See the module docs.
#[derive(Debug)]
pub struct CachedStore {
    inner: Arc<dyn Store>,
    mirror: Arc<RwLock<Mirror>>,
    health: Mutex<Health>,
}

impl CachedStore {
    /// How long after a failure calls go to the cache (reads) or are refused (writes) before the
    /// real store is tried again.
    pub const RETRY_AFTER: Duration = Duration::from_secs(1);
    /// A write after this long without an answer from the store is preceded by a probe.
    pub const PROBE_IDLE: Duration = Duration::from_secs(1);

    /// Wrap `inner`, answering reads from `mirror` while it is unreachable.
    pub fn new(inner: Arc<dyn Store>, mirror: Arc<RwLock<Mirror>>) -> Self {
        CachedStore {
            inner,
            mirror,
            health: Mutex::new(Health {
                last_ok: Instant::now(),
                down: None,
            }),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// Whether the store is marked unreachable now.
    pub fn is_down(&self) -> bool {
        self.health().down.is_some()
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The outage, if calls should not try the store now.
    fn skip(&self) -> Option<Down> {
        self.health()
            .down
            .clone()
            .filter(|d| Instant::now() < d.retry_at)
    }

    /// Record the outcome of a call to the store.
    fn track<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        let now = Instant::now();
        let mut h = self.health();
        match &r {
            Ok(_) => {
                h.last_ok = now;
                if let Some(d) = h.down.take() {
                    tracing::info!(
                        after = ?now - d.since,
                        "the datastore answers again; reads and writes go to it"
                    );
                }
            }
            Err(StoreError::Unavailable(reason)) => {
                if h.down.is_none() {
                    let rev = self
                        .mirror
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .revision();
                    tracing::warn!(
                        error = %reason,
                        cache_revision = rev,
                        "the datastore is unreachable: answering reads from the master's cache, refusing writes"
                    );
                }
                let since = h.down.as_ref().map_or(now, |d| d.since);
                h.down = Some(Down {
                    since,
                    reason: reason.clone(),
                    retry_at: now + Self::RETRY_AFTER,
                });
            }
            Err(_) => {}
        }
        r
    }

    fn refused(d: &Down) -> StoreError {
        StoreError::Unavailable(format!(
            "{} (unreachable for {:.1} s; nothing is sent until it answers again)",
            d.reason,
            d.since.elapsed().as_secs_f64()
        ))
    }

    fn cached<T>(&self, f: impl FnOnce(&Mirror) -> T) -> T {
        f(&self.mirror.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Answer a read from the store, or from the cache when the store is unreachable.
    fn read<T>(
        &self,
        from_store: impl FnOnce(&dyn Store) -> Result<T, StoreError>,
        from_cache: impl FnOnce(&Mirror) -> T,
    ) -> Result<T, StoreError> {
        if self.skip().is_some() {
            return Ok(self.cached(from_cache));
        }
        match self.track(from_store(self.inner.as_ref())) {
            Err(StoreError::Unavailable(_)) => Ok(self.cached(from_cache)),
            other => other,
        }
    }
}

impl Store for CachedStore {
    fn revision(&self) -> Result<Revision, StoreError> {
        if let Some(d) = self.skip() {
            return Err(Self::refused(&d));
        }
        self.track(self.inner.revision())
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.read(|s| s.get(key), |m| m.get(key))
    }

    fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        self.read(|s| s.list(prefix), |m| m.list(prefix))
    }

    fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        if let Some(d) = self.skip() {
            return Err(Self::refused(&d));
        }
        if self.health().last_ok.elapsed() > Self::PROBE_IDLE {
            self.track(self.inner.revision())?;
        }
        self.track(self.inner.txn(txn))
    }

    fn changes_since(&self, revision: Revision) -> Result<Vec<Event>, StoreError> {
        self.inner.changes_since(revision)
    }

    fn wait_for_revision(
        &self,
        after: Revision,
        timeout: Duration,
    ) -> Result<Revision, StoreError> {
        self.inner.wait_for_revision(after, timeout)
    }

    fn subscribe(&self, callback: RevisionCallback) -> Subscription {
        self.inner.subscribe(callback)
    }
}
