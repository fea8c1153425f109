//! An in-memory copy of the store's keys, kept current from the change feed.
//!
//! Role: the master's cache of the datastore. The sync hub (which follows the store anyway) loads it
//! from its initial listing and applies every revision's events to it; [`super::CachedStore`] answers
//! reads from it while the store (etcd) cannot be reached. Pure data, no I/O.
//!
//! Inputs: a [`Listing`], then [`Event`]s in revision order. Outputs: point reads and prefix listings
//! with etcd's per-key revisions (create revision, mod revision and version are tracked from the
//! events exactly as etcd counts them), at the revision the copy has reached.

use std::collections::BTreeMap;

use super::{Event, EventKind, KeyValue, Listing, Revision};

/// A copy of the keys under one prefix at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirror {
    revision: Revision,
    kvs: BTreeMap<String, KeyValue>,
}

impl Mirror {
    /// A copy of `listing`.
    pub fn from_listing(listing: &Listing) -> Self {
        Mirror {
            revision: listing.revision,
            kvs: listing
                .kvs
                .iter()
                .map(|kv| (kv.key.clone(), kv.clone()))
                .collect(),
        }
    }

    /// The revision the copy reflects.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.kvs.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.kvs.is_empty()
    }

    /// Apply events in order (those at or below the copy's revision are skipped: already applied).
    pub fn apply(&mut self, events: &[Event]) {
        let from = self.revision;
        for e in events.iter().filter(|e| e.mod_revision > from) {
            match e.kind {
                EventKind::Put => {
                    let (create, version) = match self.kvs.get(&e.key) {
                        Some(old) => (old.create_revision, old.version + 1),
                        None => (e.mod_revision, 1),
                    };
                    self.kvs.insert(
                        e.key.clone(),
                        KeyValue {
                            key: e.key.clone(),
                            value: e.value.clone(),
                            create_revision: create,
                            mod_revision: e.mod_revision,
                            version,
                        },
                    );
                }
                EventKind::Delete => {
                    self.kvs.remove(&e.key);
                }
            }
            self.revision = self.revision.max(e.mod_revision);
        }
    }

    /// Move the revision on without events (a revision that changed nothing under the prefix).
    pub fn advance(&mut self, revision: Revision) {
        self.revision = self.revision.max(revision);
    }

    /// One key.
    pub fn get(&self, key: &str) -> Option<KeyValue> {
        self.kvs.get(key).cloned()
    }

    /// Every key starting with `prefix`, in key order, at the copy's revision.
    pub fn list(&self, prefix: &str) -> Listing {
        Listing {
            revision: self.revision,
            kvs: self
                .kvs
                .range(prefix.to_owned()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, kv)| kv.clone())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EmbeddedOptions, EmbeddedStore, Op, Store, Txn};

    fn put(key: &str, value: &str, rev: Revision) -> Event {
        Event {
            kind: EventKind::Put,
            key: key.into(),
            value: value.as_bytes().to_vec(),
            mod_revision: rev,
        }
    }

    #[test]
    fn follows_a_real_store_exactly() {
        let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).unwrap();
        store.put("/calico/a", b"1").unwrap();
        store.put("/calico/b/x", b"2").unwrap();
        let mut m = Mirror::from_listing(&store.list("/calico/").unwrap());
        let from = m.revision();
        store.put("/calico/a", b"3").unwrap();
        store
            .txn(
                Txn::new()
                    .and_then(Op::delete("/calico/b/x"))
                    .and_then(Op::put("/calico/b/y", "4"))
                    .and_then(Op::put("/calico/c", "5")),
            )
            .unwrap();
        store.delete("/calico/c").unwrap();
        store.put("/calico/c", b"6").unwrap();
        m.apply(&store.changes_since(from).unwrap());
        for prefix in ["/calico/", "/calico/b/", "/calico/a", "/calico/z"] {
            assert_eq!(m.list(prefix), store.list(prefix).unwrap(), "{prefix}");
        }
        for key in ["/calico/a", "/calico/b/x", "/calico/c"] {
            assert_eq!(m.get(key), store.get(key).unwrap(), "{key}");
        }
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn replayed_events_are_skipped_and_revisions_only_grow() {
        let mut m = Mirror::default();
        m.apply(&[put("/k", "a", 5)]);
        m.apply(&[put("/k", "b", 4), put("/k", "c", 5)]);
        let kv = m.get("/k").unwrap();
        assert_eq!((kv.value.as_slice(), kv.version), (b"a".as_slice(), 1));
        m.advance(3);
        assert_eq!(m.revision(), 5);
        m.advance(9);
        assert_eq!(m.list("/").revision, 9);
        assert!(!m.is_empty());
    }
}
