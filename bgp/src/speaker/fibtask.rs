//! The FIB task: keeps the kernel's table in step with the RIB's learned best routes, on its own thread.
//!
//! Role: take route changes from the core, coalesce whatever queued up while the kernel was busy, and
//! write only the differences in batches through [`crate::fib::Fib`]. At start it adopts our routes a
//! previous run left (graceful restart) and removes the ones nobody re-learned when told to sweep.
//! A gateway the kernel cannot reach directly (a multihop peer's next hop) is resolved recursively
//! through the kernel's own routes to it.
//! Inputs: [`FibOp`]s. Outputs: kernel routes of our protocol in our table; warnings for refusals.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use calico_netlink::route::{parse_route, route_gateways, RTM_GETROUTE};
use calico_netlink::socket::Socket;
use calico_netlink::{Message, NLM_F_REQUEST};
use tokio::sync::{mpsc, oneshot};

use super::held::Held;
use super::metrics::FibStats;
use super::{Error, FibSettings};
use crate::fib::{Fib, Prefix};
use crate::rib::hash::FastSet;

const RTA_DST: u16 = 1;
const ENETUNREACH: i32 = 101;
const ESRCH: i32 = 3;
/// Changes written per pass at most: coalescing stops here, so a burst of 100,000 routes is written in
/// passes of this many instead of piling up (with a sorted copy) in one, which costs memory and buys no speed.
const WINDOW: usize = 8192;

/// A route's gateways, sorted; shared between the routes of one UPDATE.
pub(super) type Gateways = Arc<[IpAddr]>;

/// A change for the kernel.
#[derive(Debug)]
pub(super) enum FibOp {
    /// Route changes in order: each prefix through its gateways, or (`None`) no route for it.
    Routes(Vec<(Prefix, Option<Gateways>)>),
    /// Remove our routes that a previous run left and nobody re-learned.
    Sweep,
    /// Apply what is queued, optionally remove all our routes, then end.
    Stop {
        clear: bool,
        done: oneshot::Sender<()>,
    },
}

/// The core's end of the FIB task.
#[derive(Debug, Clone)]
pub(super) struct FibHandle {
    tx: mpsc::UnboundedSender<FibOp>,
    stats: Arc<FibStats>,
}

impl FibHandle {
    /// The FIB thread's counters.
    pub fn stats(&self) -> &FibStats {
        &self.stats
    }

    pub fn send(&self, op: FibOp) {
        let _ = self.tx.send(op);
    }

    /// Applies what is queued, optionally clears, and waits until the task has ended.
    pub async fn stop(&self, clear: bool) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(FibOp::Stop { clear, done }).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Opens the FIB, reads our routes (kept until a sweep unless `sweep_now`) and starts the thread.
/// Returns the handle and how many routes a previous run left.
pub(super) fn start(settings: &FibSettings, sweep_now: bool) -> Result<(FibHandle, usize), Error> {
    let mut fib = Fib::new(None, settings.table, settings.protocol)?;
    let read = fib.read()?;
    let adopted = read.len();
    let mut have = Held::default();
    let mut left = FastSet::default();
    if sweep_now && adopted > 0 {
        let gone: Vec<(Prefix, Option<&[IpAddr]>)> = read.keys().map(|p| (*p, None)).collect();
        let failed = fib.write(&gone)?;
        tracing::info!(
            removed = adopted - failed.len(),
            "removed routes a previous run left"
        );
    } else if adopted > 0 {
        tracing::info!(
            adopted,
            "keeping routes a previous run left until peers re-send theirs"
        );
        for (p, gws) in read {
            left.insert(p);
            have.insert(p, &Gateways::from(gws));
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(FibStats::default());
    stats.set_routes(have.len());
    let mut task = FibTask {
        fib,
        stats: Arc::clone(&stats),
        have,
        left,
        swept: sweep_now,
        lookup: None,
    };
    std::thread::Builder::new()
        .name("bgp-fib".into())
        .spawn(move || task.run(rx))
        .map_err(|e| Error::Fib(calico_netlink::Error::Io(e)))?;
    Ok((FibHandle { tx, stats }, adopted))
}

struct FibTask {
    fib: Fib,
    stats: Arc<FibStats>,
    /// Our routes in the kernel, under the gateways the RIB asked for.
    have: Held,
    /// Routes a previous run left that no change has touched yet (removed by the sweep).
    left: FastSet<Prefix>,
    swept: bool,
    /// A second socket for route lookups (recursive next hops), opened on first use.
    lookup: Option<Socket>,
}

impl FibTask {
    fn run(&mut self, mut rx: mpsc::UnboundedReceiver<FibOp>) {
        let mut pending: Vec<(Prefix, Option<Gateways>)> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            let mut sweep = false;
            let mut stop = None;
            // Coalesce what queued up, up to a window; the rest waits for the next pass, in order.
            while let Some(op) = next
                .take()
                .or_else(|| (pending.len() < WINDOW).then(|| rx.try_recv().ok())?)
            {
                match op {
                    FibOp::Routes(list) => {
                        if !self.left.is_empty() {
                            for (p, _) in &list {
                                self.left.remove(p);
                            }
                        }
                        if pending.is_empty() {
                            pending = list;
                        } else {
                            pending.extend(list);
                        }
                    }
                    FibOp::Sweep => sweep = true,
                    FibOp::Stop { clear, done } => stop = Some((clear, done)),
                }
            }
            if matches!(stop, Some((true, _))) {
                pending.extend(self.have.prefixes().map(|p| (p, None)));
            }
            if sweep && !self.swept {
                self.swept = true;
                tracing::info!(stale = self.left.len(), "sweeping routes no peer re-sent");
                pending.extend(self.left.drain().map(|p| (p, None)));
            }
            self.sync(&mut pending);
            pending.clear();
            if let Some((_, done)) = stop {
                let _ = done.send(());
                return;
            }
        }
    }

    /// Writes the changes in `pending` (in order; the last change of a prefix wins) that differ from
    /// what the kernel holds, in prefix order. `pending` is reordered and cut down to those in place.
    fn sync(&mut self, pending: &mut Vec<(Prefix, Option<Gateways>)>) {
        let started = Instant::now();
        let queued = pending.len();
        // A stable sort keeps each prefix's changes in order; the last of each run is the one to apply.
        pending.sort_by_key(|a| a.0);
        let mut kept = 0;
        for i in 0..pending.len() {
            if pending.get(i + 1).is_some_and(|n| n.0 == pending[i].0) {
                continue;
            }
            let (p, gws) = &pending[i];
            let differs = match gws {
                Some(g) => self.have.get(p) != Some(g),
                None => self.have.contains(p),
            };
            if differs {
                // Everything before `i` is decided, so the slot at `i` may take what `kept` held.
                pending.swap(kept, i);
                kept += 1;
            }
        }
        pending.truncate(kept);
        let ops = &pending[..];
        if ops.is_empty() {
            return;
        }
        let failed = match self.fib.write(ops) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "kernel FIB update failed");
                self.stats
                    .record(ops.len(), ops.len(), started.elapsed(), self.have.len());
                return;
            }
        };
        let refused = failed.len();
        let mut failed = failed.into_iter().peekable();
        let mut retry = Vec::new();
        for (i, (p, gws)) in ops.iter().enumerate() {
            let errno = match failed.peek() {
                Some(&(j, e)) if j == i => {
                    failed.next();
                    Some(e)
                }
                _ => None,
            };
            match (gws, errno) {
                (Some(g), None) => self.have.insert(*p, g),
                (Some(g), Some(ENETUNREACH)) => {
                    let resolved = self.resolve(g);
                    if !resolved.is_empty() && resolved[..] != g[..] {
                        retry.push((*p, Some(Gateways::from(resolved)), g.clone()));
                    } else {
                        tracing::warn!(prefix = %p.0, len = p.1, ?g, "next hop unreachable");
                    }
                }
                (Some(g), Some(errno)) => {
                    tracing::warn!(prefix = %p.0, len = p.1, ?g, errno, "the kernel refused a route")
                }
                (None, None | Some(ESRCH)) => {
                    self.have.remove(p);
                }
                (None, Some(errno)) => {
                    tracing::warn!(prefix = %p.0, len = p.1, errno, "cannot delete route")
                }
            }
        }
        if !retry.is_empty() {
            let writes: Vec<(Prefix, Option<Gateways>)> =
                retry.iter().map(|(p, r, _)| (*p, r.clone())).collect();
            match self.fib.write(&writes) {
                Ok(f) => {
                    let failed: FastSet<usize> = f.iter().map(|(i, _)| *i).collect();
                    for (i, (p, resolved, wanted)) in retry.into_iter().enumerate() {
                        if failed.contains(&i) {
                            tracing::warn!(prefix = %p.0, len = p.1, ?resolved, "resolved next hop refused");
                        } else {
                            // Recorded under the wanted gateways, so an unchanged route is not rewritten.
                            self.have.insert(p, &wanted);
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "kernel FIB update failed"),
            }
        }
        self.stats
            .record(ops.len(), refused, started.elapsed(), self.have.len());
        tracing::debug!(
            changes = ops.len(),
            queued,
            took_us = started.elapsed().as_micros() as u64,
            "kernel FIB written"
        );
    }

    /// The gateways through which the kernel reaches each of `gws` (recursive next hops).
    fn resolve(&mut self, gws: &[IpAddr]) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for gw in gws {
            if let Some(via) = self.lookup_gateway(*gw) {
                if !out.contains(&via) {
                    out.push(via);
                }
            }
        }
        out.sort();
        out
    }

    fn lookup_gateway(&mut self, dst: IpAddr) -> Option<IpAddr> {
        if self.lookup.is_none() {
            self.lookup = Socket::open(None).ok();
        }
        let socket = self.lookup.as_mut()?;
        let seq = socket.next_seq();
        let mut m = Message::new(RTM_GETROUTE, NLM_F_REQUEST, seq);
        let (family, bits, octets) = match dst {
            IpAddr::V4(a) => (2u8, 32u8, a.octets().to_vec()),
            IpAddr::V6(a) => (10u8, 128u8, a.octets().to_vec()),
        };
        m.push_raw(&[family, bits, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        m.attr(RTA_DST, &octets);
        let answers = socket.request_each(&m.finish(), &[seq]).ok()?;
        let body = answers.get(&seq)?.as_ref().ok()?;
        parse_route(body)?;
        route_gateways(body).into_iter().next()
    }
}
