//! Revision notifications, independent of any async runtime.
//!
//! Role: [`RevisionWatch`] holds the latest committed revision of a store. Writers [`publish`] after each
//! commit; readers either block in [`RevisionWatch::wait_for`] (a `Condvar`, from a plain thread or a
//! runtime's blocking pool) or register a callback ([`RevisionWatch::subscribe`]) that can feed an
//! async channel. Backends share it: the embedded store publishes after each commit, an etcd backend
//! from its watch task.
//!
//! Inputs: published revisions. Outputs: woken waiters and callback calls with the new revision. The
//! published revision never goes backwards (late publishes of older revisions are ignored).
//!
//! [`publish`]: RevisionWatch::publish

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak},
    time::{Duration, Instant},
};

use super::Revision;

/// A callback told about each new revision.
pub type RevisionCallback = Box<dyn Fn(Revision) + Send + Sync>;

struct State {
    revision: Revision,
    next_id: u64,
    callbacks: BTreeMap<u64, Arc<dyn Fn(Revision) + Send + Sync>>,
}

struct Inner {
    state: Mutex<State>,
    changed: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another thread while holding the lock leaves the state valid (plain fields).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The latest revision of a store, with waiters and subscribers.
#[derive(Clone)]
pub struct RevisionWatch {
    inner: Arc<Inner>,
}

impl fmt::Debug for RevisionWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.lock();
        f.debug_struct("RevisionWatch")
            .field("revision", &s.revision)
            .field("subscribers", &s.callbacks.len())
            .finish()
    }
}

impl RevisionWatch {
    /// A watch starting at `revision`.
    pub fn new(revision: Revision) -> Self {
        RevisionWatch {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    revision,
                    next_id: 0,
                    callbacks: BTreeMap::new(),
                }),
                changed: Condvar::new(),
            }),
        }
    }

    /// The latest published revision.
    pub fn current(&self) -> Revision {
        self.inner.lock().revision
    }

    /// Record a committed revision; wake waiters and call subscribers if it is newer.
    pub fn publish(&self, revision: Revision) {
        let callbacks: Vec<_> = {
            let mut s = self.inner.lock();
            if revision <= s.revision {
                return;
            }
            s.revision = revision;
            s.callbacks.values().cloned().collect()
        };
        self.inner.changed.notify_all();
        for cb in callbacks {
            cb(revision);
        }
    }

    /// Block until the revision is above `after` or `timeout` passes; return the revision then.
    pub fn wait_for(&self, after: Revision, timeout: Duration) -> Revision {
        let deadline = Instant::now().checked_add(timeout);
        let mut s = self.inner.lock();
        while s.revision <= after {
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                break;
            }
            s = self
                .inner
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        s.revision
    }

    /// Call `callback` with every newer revision until the returned [`Subscription`] is dropped.
    pub fn subscribe(&self, callback: RevisionCallback) -> Subscription {
        let mut s = self.inner.lock();
        let id = s.next_id;
        s.next_id += 1;
        s.callbacks.insert(id, Arc::from(callback));
        Subscription {
            watch: Arc::downgrade(&self.inner),
            id,
        }
    }
}

/// A registered callback; dropping it unregisters the callback.
pub struct Subscription {
    watch: Weak<Inner>,
    id: u64,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(inner) = self.watch.upgrade() {
            inner.lock().callbacks.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn waiters_wake_and_revision_never_goes_back() {
        let w = RevisionWatch::new(5);
        assert_eq!(w.wait_for(5, Duration::from_millis(20)), 5);
        assert_eq!(w.wait_for(4, Duration::from_secs(10)), 5);
        let w2 = w.clone();
        let t = std::thread::spawn(move || w2.wait_for(5, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(30));
        w.publish(7);
        assert_eq!(t.join().unwrap(), 7);
        w.publish(6);
        assert_eq!(w.current(), 7);
    }

    #[test]
    fn subscribers_see_new_revisions_until_dropped() {
        let w = RevisionWatch::new(0);
        let seen = Arc::new(AtomicU64::new(0));
        let s2 = seen.clone();
        let sub = w.subscribe(Box::new(move |r| s2.store(r, Ordering::SeqCst)));
        w.publish(3);
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        w.publish(2);
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        drop(sub);
        w.publish(9);
        assert_eq!(seen.load(Ordering::SeqCst), 3);
    }
}
