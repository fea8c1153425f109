//! The etcd store's long-lived watch: it keeps the [`RevisionWatch`] at etcd's revision.
//!
//! Role: one task on the etcd store's runtime watches every key from the revision the store started
//! at, and publishes the revision of each event (and each response header) to the store's
//! [`RevisionWatch`], which wakes [`Store::wait_for_revision`](super::Store::wait_for_revision) and
//! calls the subscribers — including for writes made by other masters on the same etcd.
//!
//! Inputs: the etcd client, the start revision. Outputs: published revisions and log lines.
//!
//! etcd-client does not resume a watch by itself: when the stream fails (etcd restarted, network cut),
//! the task waits (backoff from 100 ms doubling to 2 s), then watches again after the last revision it
//! saw (etcd is asked from that revision itself, so that a compaction of anything after it is
//! reported), so no revision is skipped. If etcd has compacted that history, the task logs it, takes
//! the current revision and publishes it: subscribers wake, ask
//! [`Store::changes_since`](super::Store::changes_since) for what they missed, get
//! [`StoreError::Compacted`](super::StoreError::Compacted) and relist.

use std::{sync::Arc, time::Duration};

use etcd_client as ec;

use super::{
    etcd::{current_revision, Conn},
    RevisionWatch,
};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Why one watch stream ended.
enum End {
    /// The stream failed or closed; resume from the last seen revision + 1.
    Lost(String),
    /// etcd no longer has the history to resume from; it was compacted up to this revision.
    Compacted(i64),
}

/// Run forever (until the store's runtime shuts down). A stream that fails before delivering
/// anything moves the task on to the next endpoint.
pub(super) async fn run(conn: Arc<Conn>, watch: RevisionWatch, start: u64) {
    let mut last = i64::try_from(start).unwrap_or(i64::MAX);
    let mut backoff = BACKOFF_MIN;
    let mut endpoint = conn.preferred();
    loop {
        let mut progressed = false;
        let (index, client) = conn.client(endpoint);
        match stream(&client, &conn, &watch, &mut last, &mut progressed).await {
            End::Lost(why) => {
                tracing::warn!(endpoint = %conn.endpoints[index], resume_from = last + 1, "etcd watch lost: {why}; resuming");
            }
            End::Compacted(c) => {
                tracing::warn!(endpoint = %conn.endpoints[index], last_seen = last, compacted = c,
                    "etcd compacted the history after the last seen revision; subscribers must relist");
                let current = tokio::time::timeout(
                    conn.request_timeout,
                    conn.failover(false, |c| async move { current_revision(&c).await }),
                )
                .await;
                match current {
                    Ok(Ok(rev)) => {
                        let rev = rev.max(c);
                        last = rev;
                        watch.publish(u64::try_from(rev).unwrap_or(0));
                        progressed = true;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!("etcd: reading the revision after compaction: {e}")
                    }
                    Err(_) => {
                        tracing::warn!("etcd: reading the revision after compaction timed out")
                    }
                }
            }
        }
        if progressed {
            backoff = BACKOFF_MIN;
        } else {
            endpoint = index + 1;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One watch stream resuming after `last`, until it ends. Advances `last` past every event delivered.
async fn stream(
    client: &ec::Client,
    conn: &Conn,
    watch: &RevisionWatch,
    last: &mut i64,
    progressed: &mut bool,
) -> End {
    let opts = ec::WatchOptions::new()
        .with_all_keys()
        // From `last` itself (its events were seen): etcd then reports a compaction exactly when
        // history after `last` is incomplete. A fresh etcd starts at revision 1.
        .with_start_revision((*last).max(1))
        .with_progress_notify();
    let mut wc = client.watch_client().max_decoding_message_size(256 << 20);
    let mut s =
        match tokio::time::timeout(conn.request_timeout, wc.watch(Vec::new(), Some(opts))).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return End::Lost(e.to_string()),
            Err(_) => return End::Lost(format!("no answer within {:?}", conn.request_timeout)),
        };
    loop {
        let resp = match s.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return End::Lost("the stream closed".into()),
            Err(e) => return End::Lost(e.to_string()),
        };
        if resp.compact_revision() > 0 {
            return End::Compacted(resp.compact_revision());
        }
        if resp.canceled() {
            return End::Lost(format!(
                "etcd cancelled the watch: {}",
                resp.cancel_reason()
            ));
        }
        *progressed = true;
        if let Some(max) = resp
            .events()
            .iter()
            .filter_map(|e| e.kv().map(ec::KeyValue::mod_revision))
            .max()
        {
            *last = (*last).max(max);
            watch.publish(u64::try_from(max).unwrap_or(0));
        }
        // The header is the store's revision when etcd sent the response; publishing it can only
        // tell waiters about writes that did happen.
        if let Some(h) = resp.header() {
            watch.publish(u64::try_from(h.revision()).unwrap_or(0));
        }
    }
}
