//! Request counters for `GET /metrics`, in the Prometheus text format.
//!
//! Role: count every answered request by route template (`/v1/profiles/{name}/tags`, never the
//! concrete path, so the label set stays bounded), method and status. Inputs: one [`Metrics::record`]
//! per request, the store revision and the sync hub's counters at render time. Output: the exposition
//! text.

use std::{collections::BTreeMap, fmt::Write, sync::Mutex};

use crate::sync::SyncStats;

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
}

impl Metrics {
    /// Count one request.
    pub fn record(&self, route: &'static str, method: &str, status: u16) {
        // A poisoned lock only means another thread panicked mid-increment; the map is still usable.
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((route, method.to_owned(), status)).or_insert(0) += 1;
    }

    /// The exposition text; `revision` is the store's, or `None` if it could not be read; `sync` the
    /// sync hub's counters, when this master runs one.
    pub fn render(&self, revision: Option<u64>, sync: Option<SyncStats>) -> String {
        let mut out = String::new();
        out.push_str("# HELP calico_master_http_requests_total API requests answered, by route, method and status.\n");
        out.push_str("# TYPE calico_master_http_requests_total counter\n");
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, method, status), n) in map.iter() {
            let _ = writeln!(
                out,
                "calico_master_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP calico_master_store_revision The datastore's current revision.\n");
        out.push_str("# TYPE calico_master_store_revision gauge\n");
        if let Some(rev) = revision {
            let _ = writeln!(out, "calico_master_store_revision {rev}");
        }
        out.push_str(
            "# HELP calico_master_store_up Whether the datastore answered (1) or not (0).\n",
        );
        out.push_str("# TYPE calico_master_store_up gauge\n");
        let _ = writeln!(
            out,
            "calico_master_store_up {}",
            u8::from(revision.is_some())
        );
        if let Some(s) = sync {
            out.push_str(
                "# HELP calico_master_sync_subscribers Nodes subscribed to the sync stream.\n",
            );
            out.push_str("# TYPE calico_master_sync_subscribers gauge\n");
            let _ = writeln!(out, "calico_master_sync_subscribers {}", s.subscribers);
            out.push_str("# HELP calico_master_sync_resyncs_total Subscribers sent a fresh snapshot because they fell behind.\n");
            out.push_str("# TYPE calico_master_sync_resyncs_total counter\n");
            let _ = writeln!(out, "calico_master_sync_resyncs_total {}", s.resyncs_total);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_revision() {
        let m = Metrics::default();
        m.record("/v1/pools", "GET", 200);
        m.record("/v1/pools", "GET", 200);
        m.record("/v1/pools", "POST", 400);
        let text = m.render(Some(7), None);
        assert!(text.contains(
            "calico_master_http_requests_total{route=\"/v1/pools\",method=\"GET\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "calico_master_http_requests_total{route=\"/v1/pools\",method=\"POST\",status=\"400\"} 1\n"
        ));
        assert!(text.contains("calico_master_store_revision 7\n"));
        assert!(text.contains("calico_master_store_up 1\n"));
        let down = m.render(None, None);
        assert!(!down.contains("\ncalico_master_store_revision "));
        assert!(down.contains("calico_master_store_up 0\n"));
        assert!(!down.contains("sync"));
        let sync = m.render(
            Some(7),
            Some(SyncStats {
                subscribers: 3,
                resyncs_total: 2,
                revision: 7,
            }),
        );
        assert!(sync.contains("# TYPE calico_master_sync_subscribers gauge\n"));
        assert!(sync.contains("calico_master_sync_subscribers 3\n"));
        assert!(sync.contains("# TYPE calico_master_sync_resyncs_total counter\n"));
        assert!(sync.contains("calico_master_sync_resyncs_total 2\n"));
    }
}
