//! Prometheus metrics: the speaker's counters in the text exposition format, served on `GET /metrics`
//! by a small HTTP/1.1 responder (`calico-bgp run --metrics ADDR:PORT`).
//!
//! Role: [`FibStats`] is shared (atomics) between the FIB thread, which records each kernel write, and
//! the core; [`SpeakerMetrics`] is a snapshot the core answers with; [`render`] turns it into text
//! (pure); [`serve`] answers `GET /metrics` (200), other paths (404) and other methods (405), one
//! request per connection.
//! Inputs: snapshots from [`Speaker::metrics`]; HTTP requests. Outputs: the metrics text.
//!
//! Metrics: `calico_bgp_sessions{state}`, per peer `calico_bgp_peer_established`,
//! `calico_bgp_routes_received`, `calico_bgp_routes_accepted`, `calico_bgp_routes_advertised`,
//! `calico_bgp_updates_received_total`, `calico_bgp_updates_sent_total`; for the kernel
//! `calico_bgp_fib_routes` and the histogram `calico_bgp_fib_batch_seconds` (one observation per
//! batch of changes written) with `calico_bgp_fib_changes_total` and `calico_bgp_fib_errors_total`.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{Error, Speaker};

/// Upper bounds of the FIB batch latency buckets, in seconds.
pub const FIB_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The FIB thread's counters.
#[derive(Debug, Default)]
pub struct FibStats {
    routes: AtomicU64,
    changes: AtomicU64,
    errors: AtomicU64,
    batches: AtomicU64,
    sum_micros: AtomicU64,
    buckets: [AtomicU64; FIB_BUCKETS.len()],
}

impl FibStats {
    /// Records one batch: `changes` written in `took`, `errors` of them refused, `routes` held now.
    pub fn record(&self, changes: usize, errors: usize, took: Duration, routes: usize) {
        self.routes.store(routes as u64, Ordering::Relaxed);
        self.changes.fetch_add(changes as u64, Ordering::Relaxed);
        self.errors.fetch_add(errors as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (b, le) in self.buckets.iter().zip(FIB_BUCKETS) {
            if secs <= le {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sets the number of routes held (e.g. adopted at start).
    pub fn set_routes(&self, routes: usize) {
        self.routes.store(routes as u64, Ordering::Relaxed);
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> FibMetrics {
        FibMetrics {
            routes: self.routes.load(Ordering::Relaxed),
            changes: self.changes.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// The kernel FIB's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FibMetrics {
    /// Our routes in the kernel.
    pub routes: u64,
    /// Route changes written.
    pub changes: u64,
    /// Changes the kernel refused.
    pub errors: u64,
    /// Batches written (the histogram's count).
    pub batches: u64,
    /// Total time writing (the histogram's sum).
    pub sum_seconds: f64,
    /// Cumulative counts per bucket of [`FIB_BUCKETS`].
    pub buckets: Vec<u64>,
}

/// One peer's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMetrics {
    pub address: IpAddr,
    pub state: String,
    pub routes_received: u64,
    pub routes_accepted: u64,
    pub routes_advertised: u64,
    pub updates_received: u64,
    pub updates_sent: u64,
}

/// A snapshot of the speaker.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpeakerMetrics {
    pub peers: Vec<PeerMetrics>,
    /// `None` without a FIB.
    pub fib: Option<FibMetrics>,
}

const STATES: [&str; 6] = [
    "Idle",
    "Connect",
    "Active",
    "OpenSent",
    "OpenConfirm",
    "Established",
];

/// The Prometheus text exposition of `m`.
pub fn render(m: &SpeakerMetrics) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(
        o,
        "# HELP calico_bgp_sessions Configured peers by session state."
    );
    let _ = writeln!(o, "# TYPE calico_bgp_sessions gauge");
    for s in STATES {
        let n = m.peers.iter().filter(|p| p.state == s).count();
        let _ = writeln!(o, "calico_bgp_sessions{{state=\"{s}\"}} {n}");
    }
    type Field = fn(&PeerMetrics) -> u64;
    let per_peer: [(&str, &str, &str, Field); 6] = [
        (
            "calico_bgp_peer_established",
            "gauge",
            "1 when the session is Established.",
            |p| u64::from(p.state == "Established"),
        ),
        (
            "calico_bgp_routes_received",
            "gauge",
            "Routes the peer announces to us.",
            |p| p.routes_received,
        ),
        (
            "calico_bgp_routes_accepted",
            "gauge",
            "The peer's routes accepted into the RIB.",
            |p| p.routes_accepted,
        ),
        (
            "calico_bgp_routes_advertised",
            "gauge",
            "Routes we announce to the peer.",
            |p| p.routes_advertised,
        ),
        (
            "calico_bgp_updates_received_total",
            "counter",
            "UPDATE messages received.",
            |p| p.updates_received,
        ),
        (
            "calico_bgp_updates_sent_total",
            "counter",
            "UPDATE messages sent.",
            |p| p.updates_sent,
        ),
    ];
    for (name, ty, help, f) in per_peer {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} {ty}");
        for p in &m.peers {
            let _ = writeln!(o, "{name}{{peer=\"{}\"}} {}", p.address, f(p));
        }
    }
    if let Some(f) = &m.fib {
        let _ = writeln!(o, "# HELP calico_bgp_fib_routes Our routes in the kernel.");
        let _ = writeln!(o, "# TYPE calico_bgp_fib_routes gauge");
        let _ = writeln!(o, "calico_bgp_fib_routes {}", f.routes);
        let _ = writeln!(
            o,
            "# HELP calico_bgp_fib_changes_total Route changes written to the kernel."
        );
        let _ = writeln!(o, "# TYPE calico_bgp_fib_changes_total counter");
        let _ = writeln!(o, "calico_bgp_fib_changes_total {}", f.changes);
        let _ = writeln!(
            o,
            "# HELP calico_bgp_fib_errors_total Route changes the kernel refused."
        );
        let _ = writeln!(o, "# TYPE calico_bgp_fib_errors_total counter");
        let _ = writeln!(o, "calico_bgp_fib_errors_total {}", f.errors);
        let name = "calico_bgp_fib_batch_seconds";
        let _ = writeln!(
            o,
            "# HELP {name} Time to write one batch of route changes to the kernel."
        );
        let _ = writeln!(o, "# TYPE {name} histogram");
        for (le, n) in FIB_BUCKETS.iter().zip(&f.buckets) {
            let _ = writeln!(o, "{name}_bucket{{le=\"{le}\"}} {n}");
        }
        let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {}", f.batches);
        let _ = writeln!(o, "{name}_sum {}", f.sum_seconds);
        let _ = writeln!(o, "{name}_count {}", f.batches);
    }
    out
}

/// The response to one request head.
fn respond(head: &str, body: impl FnOnce() -> String) -> String {
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let (status, ctype, text) = match (method, path.split('?').next().unwrap_or_default()) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body()),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
}

/// Listens on `addr` and answers until the task is aborted.
pub async fn serve(
    speaker: Speaker,
    addr: SocketAddr,
) -> Result<(JoinHandle<()>, SocketAddr), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Listen { addr, source })?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let speaker = speaker.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                let read = tokio::time::timeout(Duration::from_secs(5), async {
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return false,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    true
                })
                .await;
                if !matches!(read, Ok(true)) {
                    return;
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let snapshot = if text.starts_with("GET /metrics") {
                    speaker.metrics().await
                } else {
                    SpeakerMetrics::default()
                };
                let answer = respond(&text, || render(&snapshot));
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok((task, local))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SpeakerMetrics {
        let stats = FibStats::default();
        stats.record(1000, 1, Duration::from_millis(3), 999);
        stats.record(10, 0, Duration::from_millis(30), 1009);
        SpeakerMetrics {
            peers: vec![
                PeerMetrics {
                    address: "10.250.0.12".parse().unwrap(),
                    state: "Established".into(),
                    routes_received: 7,
                    routes_accepted: 6,
                    routes_advertised: 2,
                    updates_received: 5,
                    updates_sent: 3,
                },
                PeerMetrics {
                    address: "fd00:250::13".parse().unwrap(),
                    state: "Active".into(),
                    routes_received: 0,
                    routes_accepted: 0,
                    routes_advertised: 0,
                    updates_received: 0,
                    updates_sent: 0,
                },
            ],
            fib: Some(stats.snapshot()),
        }
    }

    #[test]
    fn the_text_has_every_metric() {
        let text = render(&sample());
        for line in [
            "calico_bgp_sessions{state=\"Established\"} 1",
            "calico_bgp_sessions{state=\"Active\"} 1",
            "calico_bgp_sessions{state=\"Idle\"} 0",
            "calico_bgp_peer_established{peer=\"10.250.0.12\"} 1",
            "calico_bgp_peer_established{peer=\"fd00:250::13\"} 0",
            "calico_bgp_routes_received{peer=\"10.250.0.12\"} 7",
            "calico_bgp_routes_accepted{peer=\"10.250.0.12\"} 6",
            "calico_bgp_routes_advertised{peer=\"10.250.0.12\"} 2",
            "calico_bgp_updates_received_total{peer=\"10.250.0.12\"} 5",
            "calico_bgp_updates_sent_total{peer=\"10.250.0.12\"} 3",
            "calico_bgp_fib_routes 1009",
            "calico_bgp_fib_changes_total 1010",
            "calico_bgp_fib_errors_total 1",
            "calico_bgp_fib_batch_seconds_bucket{le=\"0.001\"} 0",
            "calico_bgp_fib_batch_seconds_bucket{le=\"0.005\"} 1",
            "calico_bgp_fib_batch_seconds_bucket{le=\"0.05\"} 2",
            "calico_bgp_fib_batch_seconds_bucket{le=\"+Inf\"} 2",
            "calico_bgp_fib_batch_seconds_sum 0.033",
            "calico_bgp_fib_batch_seconds_count 2",
            "# TYPE calico_bgp_fib_batch_seconds histogram",
            "# TYPE calico_bgp_updates_sent_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Without a FIB, no FIB lines.
        let bare = render(&SpeakerMetrics::default());
        assert!(!bare.contains("fib") && bare.contains("calico_bgp_sessions{state=\"Idle\"} 0"));
    }

    #[test]
    fn requests_get_their_status() {
        let ok = respond("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", || {
            "a 1\n".into()
        });
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Length: 4\r\n") && ok.ends_with("\r\n\r\na 1\n"));
        assert!(respond("GET / HTTP/1.1\r\n\r\n", String::new).starts_with("HTTP/1.1 404"));
        assert!(respond("POST /metrics HTTP/1.1\r\n\r\n", String::new).starts_with("HTTP/1.1 405"));
    }
}
