//! The endpoint-id index: finding an endpoint by its id without reading every endpoint.
//!
//! Role: endpoints live at `/calico/v1/host/<h>/workload/<orch>/<workload>/endpoint/<id>` (the
//! original's layout, kept), but the API names them by id alone (`GET /v1/endpoints/<id>`,
//! `calicoctl endpoint <EP> profile set`) and refuses a second endpoint with an id already in use. The
//! index key [`endpoint_index_key`] (`/calico/v1/index/endpoint/<id>`) holds the endpoint's full key, so
//! both are one or two point reads, whatever the cluster's size.
//!
//! Maintenance (`endpoints.rs`): a create writes the entry in the same transaction as the endpoint,
//! comparing the entry's mod revision as read (absent, or stale), so two creates of one id never both
//! succeed; a delete removes the entry in the endpoint's transaction when the entry names that endpoint.
//! An entry is *stale* when the key it names no longer holds an endpoint with that id (the endpoint was
//! removed by a node's prefix delete, or by hand): lookups treat it as absent and a create replaces it.
//!
//! Stores written before the index existed (or endpoints written behind the API's back): the first
//! lookup of each master process adds every missing entry ([`EndpointIndex::ensure`]: one listing of
//! the endpoints, then batched writes), so a master started on an old store finds and protects the
//! endpoints already there. Inputs: the store. Outputs: the endpoint's key-value for an id.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, PoisonError,
    },
};

use super::ApiError;
use crate::store::{
    keys::{endpoint_index_key, Key, ENDPOINT_INDEX_PREFIX, HOST_PREFIX},
    KeyValue, Op, Store, Txn,
};

/// Most writes in one transaction while rebuilding (etcd's default `--max-txn-ops` is 128).
const REBUILD_BATCH: usize = 100;

/// Whether this process has completed the index (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct EndpointIndex {
    complete: AtomicBool,
    rebuilding: Mutex<()>,
}

impl EndpointIndex {
    /// Make sure every endpoint in the store has its entry; only the first call of a process reads
    /// every endpoint (concurrent first calls wait for it).
    pub(crate) fn ensure(&self, store: &dyn Store) -> Result<(), ApiError> {
        if self.complete.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one = self
            .rebuilding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.complete.load(Ordering::Acquire) {
            return Ok(());
        }
        let added = rebuild(store)?;
        if added > 0 {
            tracing::info!(
                added,
                "endpoint index: added the entries of endpoints written without one"
            );
        }
        self.complete.store(true, Ordering::Release);
        Ok(())
    }
}

/// Add the missing and stale entries of every endpoint in the store; returns how many were written.
/// Two endpoints with one id (written behind the API's back) keep the entry that names one of them,
/// with a warning.
pub(crate) fn rebuild(store: &dyn Store) -> Result<usize, ApiError> {
    let index = store.list(ENDPOINT_INDEX_PREFIX)?;
    let endpoints = store.list(HOST_PREFIX)?;
    // Every key that holds an endpoint.
    let live: BTreeSet<&str> = endpoints
        .kvs
        .iter()
        .filter(|kv| matches!(Key::parse(&kv.key), Some(Key::Endpoint(_))))
        .map(|kv| kv.key.as_str())
        .collect();
    let mut entries: BTreeMap<String, String> = index
        .kvs
        .iter()
        .filter_map(|kv| {
            let id = kv.key.strip_prefix(ENDPOINT_INDEX_PREFIX)?;
            Some((id.to_owned(), String::from_utf8(kv.value.clone()).ok()?))
        })
        .collect();
    let mut ops = Vec::new();
    for key in &live {
        let Some(Key::Endpoint(k)) = Key::parse(key) else {
            continue;
        };
        let id = k.endpoint_id;
        match entries.get(&id) {
            Some(target) if target == *key => {}
            Some(target) if names_live(&live, target, &id) => {
                tracing::warn!(
                    endpoint_id = %id,
                    indexed = %target,
                    also = %key,
                    "endpoint index: two endpoints share one id; remove one of them"
                );
            }
            _ => {
                ops.push(Op::put(endpoint_index_key(&id), key.as_bytes()));
                entries.insert(id, (*key).to_owned());
            }
        }
    }
    let added = ops.len();
    for chunk in ops.chunks(REBUILD_BATCH) {
        store.txn(Txn {
            success: chunk.to_vec(),
            ..Txn::default()
        })?;
    }
    Ok(added)
}

/// Whether `target` is a key in `live` that holds an endpoint with id `id`.
fn names_live(live: &BTreeSet<&str>, target: &str, id: &str) -> bool {
    live.contains(target)
        && matches!(Key::parse(target), Some(Key::Endpoint(k)) if k.endpoint_id == id)
}

/// What the index says about one endpoint id.
#[derive(Debug)]
pub(crate) struct Lookup {
    /// The entry's mod revision (0: no entry); a write of the entry compares it.
    pub entry_revision: u64,
    /// The endpoint the entry names, when it still holds an endpoint with that id.
    pub endpoint: Option<KeyValue>,
}

/// Look `id` up: the entry, then the endpoint it names (two point reads).
pub(crate) fn lookup(store: &dyn Store, id: &str) -> Result<Lookup, ApiError> {
    let Some(entry) = store.get(&endpoint_index_key(id))? else {
        return Ok(Lookup {
            entry_revision: 0,
            endpoint: None,
        });
    };
    let target = String::from_utf8(entry.value).ok();
    let endpoint = match target.as_deref().map(|t| (t, Key::parse(t))) {
        Some((t, Some(Key::Endpoint(k)))) if k.endpoint_id == id => store.get(t)?,
        _ => None,
    };
    Ok(Lookup {
        entry_revision: entry.mod_revision,
        endpoint,
    })
}
