//! The embedded datastore: one redb file (or redb in memory, for tests).
//!
//! Role: the default backend of [`Store`](super::Store). Inputs: reads, transactions and change-feed
//! requests. Outputs: their answers, with etcd's semantics (see [`super`]).
//!
//! Layout (three redb tables in one file, default [`DEFAULT_PATH`]):
//! - `calico_kv`: key → (create_revision, mod_revision, version, value bytes);
//! - `calico_log`: (revision, index in its transaction) → (kind, key, value bytes): the change log,
//!   trimmed to the last [`EmbeddedOptions::history`] revisions;
//! - `calico_meta`: `revision` (the store revision), `compacted` (the newest revision whose log entries
//!   were trimmed), `format` (the layout version, 1).
//!
//! Durability: each [`Txn`] is one redb write transaction that writes the data, the log entries and the
//! new revision together and commits with redb's default durability (`Immediate`: fsync before commit
//! returns), so a transaction is acknowledged only once it is on disk, and a crash leaves the file at
//! the last committed transaction. A transaction that changes nothing is aborted (no fsync, no revision).
//! On open, redb recovers the last commit; the revision and the change log are read from the file. The
//! only in-memory state is the [`RevisionWatch`], which is published after each commit and so never
//! runs ahead of the file.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
    time::Duration,
};

use redb::{
    backends::InMemoryBackend, Builder, Database, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};

use super::{
    Event, EventKind, KeyValue, Listing, Op, OpResult, Revision, RevisionCallback, RevisionWatch,
    Store, StoreError, Subscription, Txn, TxnResponse,
};

/// Where `calicoctl master run` keeps its data unless told otherwise.
pub const DEFAULT_PATH: &str = "/var/lib/calico/master.db";

/// (create_revision, mod_revision, version, value).
type KvTuple = (u64, u64, u64, &'static [u8]);
/// (kind, key, value).
type LogTuple = (u8, &'static str, &'static [u8]);

const DATA: TableDefinition<&str, KvTuple> = TableDefinition::new("calico_kv");
const LOG: TableDefinition<(u64, u32), LogTuple> = TableDefinition::new("calico_log");
const META: TableDefinition<&str, u64> = TableDefinition::new("calico_meta");

const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";
const META_FORMAT: &str = "format";
const FORMAT: u64 = 1;

const KIND_PUT: u8 = 0;
const KIND_DELETE: u8 = 1;

/// Tuning of the embedded store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// How many revisions of change history to keep (at least 1). A subscriber further behind relists.
    pub history: u64,
    /// redb's page cache, bytes.
    pub cache_bytes: usize,
    /// Verify the whole file's checksums on open, so that a file damaged outside redb is reported as
    /// [`StoreError::Corrupt`] rather than trusted. Costs a read of the file.
    pub check_integrity: bool,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            history: 10_000,
            cache_bytes: 64 << 20,
            check_integrity: true,
        }
    }
}

/// The embedded store. Cheap to share (`Arc`); every method may be called from any thread.
pub struct EmbeddedStore {
    db: Database,
    path: Option<PathBuf>,
    options: EmbeddedOptions,
    watch: RevisionWatch,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .field("revision", &self.watch.current())
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Open (or create, with its parent directories) the store file at `path`.
    pub fn open(path: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                context: format!("creating directory {}", parent.display()),
                source,
            })?;
        }
        let db = builder(&options)
            .create(path)
            .map_err(|e| convert(&format!("opening {}", path.display()), e))?;
        Self::init(db, Some(path.to_owned()), options)
    }

    /// A store in memory (nothing survives the value): for tests of code above the store.
    pub fn in_memory(options: EmbeddedOptions) -> Result<Self, StoreError> {
        let db = builder(&options)
            .create_with_backend(InMemoryBackend::new())
            .map_err(|e| convert("creating an in-memory store", e))?;
        Self::init(db, None, options)
    }

    fn init(
        db: Database,
        path: Option<PathBuf>,
        options: EmbeddedOptions,
    ) -> Result<Self, StoreError> {
        let mut store = EmbeddedStore {
            db,
            path,
            options: EmbeddedOptions {
                history: options.history.max(1),
                ..options
            },
            watch: RevisionWatch::new(0),
        };
        let wtx = store.begin_write()?;
        let created = {
            let mut meta = wtx
                .open_table(META)
                .map_err(|e| store.err("opening tables", e))?;
            wtx.open_table(DATA)
                .map_err(|e| store.err("opening tables", e))?;
            wtx.open_table(LOG)
                .map_err(|e| store.err("opening tables", e))?;
            match meta_get(&meta, META_FORMAT).map_err(|e| store.err("reading the format", e))? {
                0 => {
                    let rev = meta_get(&meta, META_REVISION)
                        .map_err(|e| store.err("reading the revision", e))?;
                    if rev != 0 {
                        return Err(StoreError::Corrupt(format!(
                            "{} has data but no format version",
                            store.describe()
                        )));
                    }
                    meta.insert(META_FORMAT, FORMAT)
                        .map_err(|e| store.err("writing the format", e))?;
                    true
                }
                FORMAT => false,
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "{} has layout version {other}; this build reads version {FORMAT}",
                        store.describe()
                    )))
                }
            }
        };
        if created {
            wtx.commit().map_err(|e| store.err("initialising", e))?;
        } else {
            wtx.abort().map_err(|e| store.err("opening", e))?;
        }
        let rev = store.revision()?;
        store.watch = RevisionWatch::new(rev);
        Ok(store)
    }

    /// The file, if the store has one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The newest revision whose changes are no longer kept (0: the whole history is there).
    pub fn compacted_revision(&self) -> Result<Revision, StoreError> {
        let rtx = self.db.begin_read().map_err(|e| self.err("reading", e))?;
        let meta = rtx.open_table(META).map_err(|e| self.err("reading", e))?;
        meta_get(&meta, META_COMPACTED).map_err(|e| self.err("reading", e))
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(p) => format!("datastore file {}", p.display()),
            None => "in-memory datastore".to_owned(),
        }
    }

    fn err(&self, what: &str, e: impl Into<redb::Error>) -> StoreError {
        convert(&format!("{what} {}", self.describe()), e)
    }

    fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.db
            .begin_write()
            .map_err(|e| self.err("starting a write to", e))
    }

    fn apply(&self, wtx: &WriteTransaction, txn: &Txn) -> Result<Outcome, redb::Error> {
        let mut data = wtx.open_table(DATA)?;
        let mut meta = wtx.open_table(META)?;
        let current = meta_get(&meta, META_REVISION)?;
        let mut succeeded = true;
        for c in &txn.compares {
            if !c.holds(read_kv(&data, &c.key)?.as_ref()) {
                succeeded = false;
                break;
            }
        }
        let rev = current
            .checked_add(1)
            .ok_or_else(|| redb::Error::Corrupted("the revision counter is exhausted".into()))?;
        let mut events = Vec::new();
        let mut results = Vec::new();
        for op in if succeeded {
            &txn.success
        } else {
            &txn.failure
        } {
            match op {
                Op::Put { key, value } => {
                    let prev = read_kv(&data, key)?;
                    let (create, version) = match &prev {
                        Some(p) => (p.create_revision, p.version.saturating_add(1)),
                        None => (rev, 1),
                    };
                    data.insert(key.as_str(), (create, rev, version, value.as_slice()))?;
                    events.push(event(EventKind::Put, key, value.clone(), rev));
                    results.push(OpResult::Put { prev });
                }
                Op::Delete { key } => {
                    let prev = data.remove(key.as_str())?.map(|g| to_kv(key, g.value()));
                    if prev.is_some() {
                        events.push(event(EventKind::Delete, key, Vec::new(), rev));
                    }
                    results.push(OpResult::Delete {
                        deleted: prev.into_iter().collect(),
                    });
                }
                Op::DeletePrefix { prefix } => {
                    let deleted = scan(&data, prefix)?;
                    for kv in &deleted {
                        data.remove(kv.key.as_str())?;
                        events.push(event(EventKind::Delete, &kv.key, Vec::new(), rev));
                    }
                    results.push(OpResult::Delete { deleted });
                }
                Op::Get { key } => results.push(OpResult::Get {
                    kv: read_kv(&data, key)?,
                }),
            }
        }
        if events.is_empty() {
            return Ok(Outcome {
                succeeded,
                revision: None,
                current,
                results,
            });
        }
        let mut log = wtx.open_table(LOG)?;
        for (i, e) in events.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| redb::Error::ValueTooLarge(events.len()))?;
            let kind = match e.kind {
                EventKind::Put => KIND_PUT,
                EventKind::Delete => KIND_DELETE,
            };
            log.insert((rev, i), (kind, e.key.as_str(), e.value.as_slice()))?;
        }
        meta.insert(META_REVISION, rev)?;
        let compacted = meta_get(&meta, META_COMPACTED)?;
        if rev.saturating_sub(compacted) > self.options.history {
            let upto = rev - self.options.history;
            log.retain_in((compacted + 1, 0u32)..(upto + 1, 0u32), |_, _| false)?;
            meta.insert(META_COMPACTED, upto)?;
        }
        Ok(Outcome {
            succeeded,
            revision: Some(rev),
            current,
            results,
        })
    }
}

struct Outcome {
    succeeded: bool,
    /// The new revision, if the transaction wrote anything.
    revision: Option<Revision>,
    current: Revision,
    results: Vec<OpResult>,
}

fn builder(options: &EmbeddedOptions) -> Builder {
    let mut b = Builder::new();
    b.set_cache_size(options.cache_bytes)
        .set_check_integrity_on_open(options.check_integrity);
    b
}

fn convert(context: &str, e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Io(source) if source.kind() == std::io::ErrorKind::InvalidData => {
            StoreError::Corrupt(format!("{context}: {source}"))
        }
        redb::Error::Io(source) => StoreError::Io {
            context: context.to_owned(),
            source,
        },
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
            StoreError::Unavailable(format!(
                "{context}: the file is in use by another process (is another master running?)"
            ))
        }
        redb::Error::Corrupted(m) => StoreError::Corrupt(format!("{context}: {m}")),
        e @ (redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::UpgradeRequired(_)) => {
            StoreError::Corrupt(format!("{context}: not a calico datastore: {e}"))
        }
        other => StoreError::Backend(format!("{context}: {other}")),
    }
}

fn event(kind: EventKind, key: &str, value: Vec<u8>, rev: Revision) -> Event {
    Event {
        kind,
        key: key.to_owned(),
        value,
        mod_revision: rev,
    }
}

fn to_kv(
    key: &str,
    (create_revision, mod_revision, version, value): (u64, u64, u64, &[u8]),
) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: value.to_vec(),
        create_revision,
        mod_revision,
        version,
    }
}

fn meta_get(meta: &impl ReadableTable<&'static str, u64>, name: &str) -> Result<u64, redb::Error> {
    Ok(meta.get(name)?.map_or(0, |g| g.value()))
}

fn read_kv(
    data: &impl ReadableTable<&'static str, KvTuple>,
    key: &str,
) -> Result<Option<KeyValue>, redb::Error> {
    Ok(data.get(key)?.map(|g| to_kv(key, g.value())))
}

fn scan(
    data: &impl ReadableTable<&'static str, KvTuple>,
    prefix: &str,
) -> Result<Vec<KeyValue>, redb::Error> {
    let mut out = Vec::new();
    for item in data.range::<&str>(prefix..)? {
        let (k, v) = item?;
        let key = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push(to_kv(key, v.value()));
    }
    Ok(out)
}

impl Store for EmbeddedStore {
    fn revision(&self) -> Result<Revision, StoreError> {
        let rtx = self.db.begin_read().map_err(|e| self.err("reading", e))?;
        let meta = rtx.open_table(META).map_err(|e| self.err("reading", e))?;
        meta_get(&meta, META_REVISION).map_err(|e| self.err("reading", e))
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let rtx = self.db.begin_read().map_err(|e| self.err("reading", e))?;
        let data = rtx.open_table(DATA).map_err(|e| self.err("reading", e))?;
        read_kv(&data, key).map_err(|e| self.err("reading", e))
    }

    fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let read = || -> Result<Listing, redb::Error> {
            let rtx = self.db.begin_read()?;
            let meta = rtx.open_table(META)?;
            let data = rtx.open_table(DATA)?;
            Ok(Listing {
                revision: meta_get(&meta, META_REVISION)?,
                kvs: scan(&data, prefix)?,
            })
        };
        read().map_err(|e| self.err("listing", e))
    }

    fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        txn.check()?;
        let wtx = self.begin_write()?;
        // On an error the transaction is dropped, which aborts it: nothing is written.
        let out = self.apply(&wtx, &txn).map_err(|e| self.err("writing", e))?;
        let revision = match out.revision {
            Some(rev) => {
                wtx.commit().map_err(|e| self.err("committing to", e))?;
                self.watch.publish(rev);
                rev
            }
            None => {
                wtx.abort().map_err(|e| self.err("writing", e))?;
                out.current
            }
        };
        Ok(TxnResponse {
            succeeded: out.succeeded,
            revision,
            results: out.results,
        })
    }

    fn changes_since(&self, revision: Revision) -> Result<Vec<Event>, StoreError> {
        let read = || -> Result<Result<Vec<Event>, StoreError>, redb::Error> {
            let rtx = self.db.begin_read()?;
            let meta = rtx.open_table(META)?;
            let compacted = meta_get(&meta, META_COMPACTED)?;
            if revision < compacted {
                return Ok(Err(StoreError::Compacted {
                    requested: revision,
                    compacted,
                }));
            }
            let log = rtx.open_table(LOG)?;
            let mut out = Vec::new();
            let Some(from) = revision.checked_add(1) else {
                return Ok(Ok(out));
            };
            for item in log.range((from, 0u32)..)? {
                let (k, v) = item?;
                let (rev, _) = k.value();
                let (kind, key, value) = v.value();
                let kind = match kind {
                    KIND_PUT => EventKind::Put,
                    KIND_DELETE => EventKind::Delete,
                    other => {
                        return Ok(Err(StoreError::Corrupt(format!(
                            "change log entry {rev} of {} has unknown kind {other}",
                            self.describe()
                        ))))
                    }
                };
                out.push(event(kind, key, value.to_vec(), rev));
            }
            Ok(Ok(out))
        };
        read().map_err(|e| self.err("reading the change log of", e))?
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
