//! The datastore: a key-value store with etcd's semantics, served by one of several backends.
//!
//! Role: the one storage model of the master. Keys are strings under the original layout
//! (`/calico/v1/...`, `/calico/bgp/v1/...`, `/calico/ipam/v2/...`, see [`keys`]); values are JSON bytes,
//! which this layer stores without parsing. Every committed write bumps a single store-wide revision;
//! each key carries the revision that created it and the one that last modified it, so a caller can
//! compare-and-swap (IPAM blocks) or create-if-absent with a [`Txn`], exactly as on etcd.
//!
//! Inputs: reads, transactions ([`Txn`]: compares, then the success or the failure ops), change-feed
//! requests. Outputs: [`KeyValue`]s, [`Listing`]s (values with the revision they were read at),
//! [`TxnResponse`]s (succeeded?, the revision after the transaction, each op's previous values),
//! [`Event`]s since a revision (or [`StoreError::Compacted`] when that history is gone, so the caller
//! relists), and revision notifications ([`RevisionWatch`]).
//!
//! Semantics (those of etcd v3, so an etcd backend maps onto them one to one):
//! - Revision 0 means "nothing written yet"; the first committed write is revision 1 (etcd's numbers
//!   start elsewhere; callers only rely on "greater means later").
//! - A transaction that changes nothing (a failed compare with no failure ops, deleting absent keys)
//!   does not bump the revision. A put of an unchanged value does (as on etcd).
//! - All writes of one transaction share its revision; their events are in op order.
//! - A compare on the mod revision of an absent key sees 0; a compare on the value of an absent key
//!   fails.
//! - One op list may not write a key twice, nor put a key that a delete of the same list covers
//!   ([`StoreError::InvalidTxn`]), as etcd refuses "duplicate key given in txn request".
//! - History (the change log) is kept for a bounded number of revisions; older requests get
//!   [`StoreError::Compacted`].
//!
//! Backends: [`EmbeddedStore`] (redb, one file, or in memory for tests) and [`EtcdStore`] (a real etcd;
//! call it from blocking threads, see its docs), which implements the same [`Store`] trait, mapping
//! (etcd-client names):
//! - [`Revision`] ↔ `ResponseHeader::revision` (i64); [`Listing::revision`] is the range's header
//!   revision; [`KeyValue`] ↔ `KeyValue` (create/mod revision, version).
//! - [`CompareTarget::ModRevision`] ↔ `Compare::mod_revision(key, Equal, rev)`; `Exists` ↔
//!   `Compare::create_revision(key, Greater, 0)`; `Absent` ↔ `Compare::version(key, Equal, 0)`;
//!   `Value` ↔ `Compare::value(key, Equal, v)` (fails on an absent key, as here).
//! - [`Op::Put`] / [`Op::Delete`] / [`Op::DeletePrefix`] ↔ `TxnOp::put` / `TxnOp::delete` (the latter
//!   with `with_prefix`), all `with_prev_key`; [`Op::Get`] ↔ `TxnOp::get`.
//! - [`Store::changes_since`] ↔ a watch from `revision` with that revision's own events skipped (so
//!   that etcd reports a compaction exactly when history after `revision` is incomplete),
//!   `ErrCompacted` ↔ [`StoreError::Compacted`]; [`RevisionWatch`] is fed by a long-lived watch task.
//! - Connection failures ↔ [`StoreError::Unavailable`] naming the endpoints tried.
//!
//! Around a backend, [`CachedStore`] answers reads from a [`Mirror`] (the sync hub's copy of the keys,
//! fed by the change feed) while the backend is unreachable, and refuses writes at once.

mod cached;
mod embedded;
mod etcd;
mod etcd_watch;
pub mod keys;
mod mirror;
mod watch;

use std::{fmt, time::Duration};

pub use cached::CachedStore;
pub use embedded::{EmbeddedOptions, EmbeddedStore, DEFAULT_PATH};
pub use etcd::{EtcdOptions, EtcdStore, EtcdTls};
pub use mirror::Mirror;
pub use watch::{RevisionCallback, RevisionWatch, Subscription};

/// A store revision (etcd's `revision`).
pub type Revision = u64;

/// A stored key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value (JSON bytes).
    pub value: Vec<u8>,
    /// The revision of the write that created the key (since its last deletion).
    pub create_revision: Revision,
    /// The revision of the last write to the key.
    pub mod_revision: Revision,
    /// Number of writes since creation (1 after the first put).
    pub version: u64,
}

/// The keys under a prefix, read at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    /// The store revision the listing reflects; resume a change feed from here.
    pub revision: Revision,
    /// The keys, in byte order of their names.
    pub kvs: Vec<KeyValue>,
}

/// What a compare looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    /// The key's mod revision equals this (0: the key is absent).
    ModRevision(Revision),
    /// The key exists.
    Exists,
    /// The key is absent.
    Absent,
    /// The key exists with exactly this value.
    Value(Vec<u8>),
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    /// The key compared.
    pub key: String,
    /// What must hold.
    pub target: CompareTarget,
}

impl Compare {
    /// `key`'s mod revision is `rev` (0 for absent): the compare of a compare-and-swap.
    pub fn mod_revision(key: impl Into<String>, rev: Revision) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::ModRevision(rev),
        }
    }

    /// `key` exists.
    pub fn exists(key: impl Into<String>) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::Exists,
        }
    }

    /// `key` is absent: the compare of create-if-absent.
    pub fn absent(key: impl Into<String>) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::Absent,
        }
    }

    /// `key` holds exactly `value`.
    pub fn value(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::Value(value.into()),
        }
    }

    /// Whether the compare holds for `kv` (the key's current state, `None` when absent).
    pub fn holds(&self, kv: Option<&KeyValue>) -> bool {
        match (&self.target, kv) {
            (CompareTarget::ModRevision(r), kv) => kv.map_or(0, |kv| kv.mod_revision) == *r,
            (CompareTarget::Exists, kv) => kv.is_some(),
            (CompareTarget::Absent, kv) => kv.is_none(),
            (CompareTarget::Value(_), None) => false,
            (CompareTarget::Value(v), Some(kv)) => kv.value == *v,
        }
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write a value.
    Put {
        /// The key.
        key: String,
        /// The value (JSON bytes).
        value: Vec<u8>,
    },
    /// Delete a key (nothing happens if it is absent).
    Delete {
        /// The key.
        key: String,
    },
    /// Delete every key starting with the prefix.
    DeletePrefix {
        /// The prefix.
        prefix: String,
    },
    /// Read a key as the transaction sees it at this point (e.g. to retry a failed compare-and-swap
    /// without another round trip).
    Get {
        /// The key.
        key: String,
    },
}

impl Op {
    /// A put.
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// A delete of one key.
    pub fn delete(key: impl Into<String>) -> Self {
        Op::Delete { key: key.into() }
    }

    /// A delete of every key under a prefix.
    pub fn delete_prefix(prefix: impl Into<String>) -> Self {
        Op::DeletePrefix {
            prefix: prefix.into(),
        }
    }

    /// A read of one key.
    pub fn get(key: impl Into<String>) -> Self {
        Op::Get { key: key.into() }
    }
}

/// An atomic transaction: if every compare holds, run `success`, else `failure`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// Conditions, all of which must hold.
    pub compares: Vec<Compare>,
    /// Ops run when they hold.
    pub success: Vec<Op>,
    /// Ops run when one does not.
    pub failure: Vec<Op>,
}

impl Txn {
    /// An empty transaction (always succeeds, changes nothing).
    pub fn new() -> Self {
        Txn::default()
    }

    /// Add a condition.
    #[must_use]
    pub fn when(mut self, c: Compare) -> Self {
        self.compares.push(c);
        self
    }

    /// Add an op run on success.
    #[must_use]
    pub fn and_then(mut self, op: Op) -> Self {
        self.success.push(op);
        self
    }

    /// Add an op run on failure.
    #[must_use]
    pub fn or_else(mut self, op: Op) -> Self {
        self.failure.push(op);
        self
    }

    /// Check both op lists: no key written twice and no put under a delete of the same list.
    pub fn check(&self) -> Result<(), StoreError> {
        check_ops(&self.success)?;
        check_ops(&self.failure)
    }
}

fn check_ops(ops: &[Op]) -> Result<(), StoreError> {
    let mut puts: Vec<&str> = Vec::new();
    let mut deleted: Vec<&str> = Vec::new();
    let mut prefixes: Vec<&str> = Vec::new();
    for op in ops {
        match op {
            Op::Put { key, .. } => {
                if puts.contains(&key.as_str()) {
                    return Err(StoreError::InvalidTxn(format!(
                        "key {key} is put twice in one transaction"
                    )));
                }
                puts.push(key);
            }
            Op::Delete { key } => deleted.push(key),
            Op::DeletePrefix { prefix } => prefixes.push(prefix),
            Op::Get { .. } => {}
        }
    }
    for key in puts {
        if deleted.contains(&key) || prefixes.iter().any(|p| key.starts_with(p)) {
            return Err(StoreError::InvalidTxn(format!(
                "key {key} is both put and deleted in one transaction"
            )));
        }
    }
    Ok(())
}

/// The result of one op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// A put; the key as it was before.
    Put {
        /// The previous value, if the key existed.
        prev: Option<KeyValue>,
    },
    /// A delete or delete-prefix; the keys it removed, as they were.
    Delete {
        /// The removed keys.
        deleted: Vec<KeyValue>,
    },
    /// A get.
    Get {
        /// The key, if it exists.
        kv: Option<KeyValue>,
    },
}

/// The outcome of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether every compare held (so the success ops ran).
    pub succeeded: bool,
    /// The store revision after the transaction: the new one if it wrote anything, else the current one.
    pub revision: Revision,
    /// One result per op that ran, in order.
    pub results: Vec<OpResult>,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Created or modified.
    Put,
    /// Deleted.
    Delete,
}

/// One change in the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key.
    pub key: String,
    /// The new value (empty for a delete).
    pub value: Vec<u8>,
    /// The revision of the transaction that made the change.
    pub mod_revision: Revision,
}

/// Why a datastore operation failed. A failed write changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The datastore cannot be reached or opened (etcd down, file locked by another process).
    #[error("the datastore is unavailable: {0}")]
    Unavailable(String),
    /// The change history asked for is gone; relist and resume from the listing's revision.
    #[error("changes after revision {requested} are no longer kept (history starts after revision {compacted}); relist")]
    Compacted {
        /// The revision the caller asked to resume after.
        requested: Revision,
        /// The newest revision whose changes have been discarded.
        compacted: Revision,
    },
    /// The stored data does not have the expected shape.
    #[error("the datastore is corrupt: {0}")]
    Corrupt(String),
    /// An I/O error.
    #[error("datastore I/O error ({context}): {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The transaction is malformed (see [`Txn::check`]); nothing was written.
    #[error("invalid transaction: {0}")]
    InvalidTxn(String),
    /// Any other backend failure.
    #[error("datastore error: {0}")]
    Backend(String),
}

/// A datastore backend. Object safe: the master holds an `Arc<dyn Store>`.
pub trait Store: Send + Sync + fmt::Debug {
    /// The current store revision.
    fn revision(&self) -> Result<Revision, StoreError>;

    /// One key.
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Every key starting with `prefix` (`""` for all), with the revision they were read at.
    fn list(&self, prefix: &str) -> Result<Listing, StoreError>;

    /// Run a transaction atomically (and, on the embedded store, durably before it returns).
    fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError>;

    /// Every change after `revision` (exclusive) up to now, in order; [`StoreError::Compacted`] if
    /// some of them are no longer kept. A revision at or past the current one gives no events.
    fn changes_since(&self, revision: Revision) -> Result<Vec<Event>, StoreError>;

    /// Block until the store revision is greater than `after` or `timeout` passes; return the
    /// revision then (equal to or below `after` on timeout).
    fn wait_for_revision(&self, after: Revision, timeout: Duration)
        -> Result<Revision, StoreError>;

    /// Call `callback` with the new revision after every committed write (from the writing thread;
    /// it must be quick and must not block, e.g. `tokio::sync::watch::Sender::send_replace`).
    /// Dropping the returned [`Subscription`] stops the calls.
    fn subscribe(&self, callback: RevisionCallback) -> Subscription;

    /// Write one key; returns the new revision.
    fn put(&self, key: &str, value: &[u8]) -> Result<Revision, StoreError> {
        Ok(self.txn(Txn::new().and_then(Op::put(key, value)))?.revision)
    }

    /// Delete one key; returns it as it was, if it existed.
    fn delete(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let resp = self.txn(Txn::new().and_then(Op::delete(key)))?;
        Ok(match resp.results.into_iter().next() {
            Some(OpResult::Delete { deleted }) => deleted.into_iter().next(),
            _ => None,
        })
    }

    /// Write `key` only if it is absent; `Ok(None)` if it was created, else `Ok(Some(existing))`.
    fn create(&self, key: &str, value: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        let resp = self.txn(
            Txn::new()
                .when(Compare::absent(key))
                .and_then(Op::put(key, value))
                .or_else(Op::get(key)),
        )?;
        Ok(if resp.succeeded {
            None
        } else {
            first_get(resp.results)
        })
    }

    /// Compare-and-swap: write `value` (delete when `None`) if `key`'s mod revision is still
    /// `expected` (0: absent).
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Revision,
        value: Option<&[u8]>,
    ) -> Result<Swap, StoreError> {
        let op = match value {
            Some(v) => Op::put(key, v),
            None => Op::delete(key),
        };
        let resp = self.txn(
            Txn::new()
                .when(Compare::mod_revision(key, expected))
                .and_then(op)
                .or_else(Op::get(key)),
        )?;
        Ok(if resp.succeeded {
            Swap::Done(resp.revision)
        } else {
            Swap::Conflict(first_get(resp.results))
        })
    }
}

/// The outcome of [`Store::compare_and_swap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// Written, at this revision (the current one if the write changed nothing, e.g. deleting an
    /// absent key).
    Done(Revision),
    /// Someone changed the key first; this is its current state (`None`: absent).
    Conflict(Option<KeyValue>),
}

fn first_get(results: Vec<OpResult>) -> Option<KeyValue> {
    results.into_iter().find_map(|r| match r {
        OpResult::Get { kv } => kv,
        _ => None,
    })
}

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
pub(crate) mod etcd_server;
#[cfg(test)]
mod etcd_tests;
#[cfg(test)]
mod ipam_tests;
#[cfg(test)]
mod tests;
