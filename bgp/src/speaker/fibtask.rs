//! The FIB task: keeps the kernel's table in step with the RIB's learned best routes, on its own thread.
//!
//! Role: take route changes from the core, coalesce whatever queued up while the kernel was busy, and
//! write only the differences in batches through [`crate::fib::Fib`]. The core keeps at most
//! [`IN_FLIGHT`] batches queued here; while the thread is busy it only marks the prefixes that changed
//! and sends them, with their state at that time, when the thread asks for more: a prefix that changes
//! four times while the kernel is busy (four ECMP peers sending the same routes) is written once. While
//! more than [`BACKLOG`] prefixes wait so, the core reads no more from its peers ([`FibHandle::catch_up`]). At start it adopts our routes a
//! previous run left (graceful restart) and removes the ones nobody re-learned when told to sweep.
//! A gateway the kernel cannot reach directly (a multihop peer's next hop) is resolved recursively
//! through the kernel's own routes to it, and again on every scan (one lookup per distinct next hop), so
//! such routes follow a change of the way to their next hop. Every [`FibSettings::scan`] it reads our routes back from the
//! kernel and restores what someone else deleted or changed (and deletes routes of our protocol that
//! we do not hold), as BIRD's kernel protocol does on its scan.
//! Inputs: [`FibOp`]s. Outputs: kernel routes of our protocol in our table; warnings for refusals.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_netlink::route::{get_route, parse_route, route_gateways};
use calico_netlink::socket::Socket;
use tokio::sync::oneshot;

use super::held::Held;
use super::metrics::FibStats;
use super::view::next_hop_ip;
use super::waiting::Waiting;
use super::{Error, FibSettings};
use crate::fib::{Fib, Prefix};
use crate::rib::hash::FastSet;
use crate::rib::{FibChange, Rib};
use crate::wire;

const ENETUNREACH: i32 = 101;
const ESRCH: i32 = 3;
/// Changes written per pass at most: coalescing stops here, so a burst of 100,000 routes is written in
/// passes of this many instead of piling up (with a sorted copy) in one, which costs memory and buys no speed.
/// Each queued batch holds 40 bytes a route ([`IN_FLIGHT`] of them at once), so a pass of 2,048 routes
/// (some 10 ms of kernel work) keeps that near 0.2 MB.
const WINDOW: usize = 2048;
/// Route changes after which the thread, going idle, has the allocator give free memory back.
const TRIM_AFTER: usize = 10_000;
/// Batches of changes the core keeps queued for the FIB thread at most (one being written, one ready).
const IN_FLIGHT: usize = 2;
/// Prefixes waiting for the thread above which the core reads no more from its peers until the thread
/// catches up ([`FibHandle::catch_up`]): four passes, some 12 ms of kernel work, so the thread never runs
/// dry while the core decodes the next read (well under a millisecond), and a burst of 100,000 routes
/// waits in the peers' TCP streams instead of in a queue here (2 MB at its largest without the limit).
const BACKLOG: usize = 4 * WINDOW;
/// How long the core waits for the thread to write a batch before it reads on regardless: a thread
/// stuck in the kernel costs memory, never sessions.
const CATCH_UP_WAIT: Duration = Duration::from_millis(100);

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
#[derive(Debug)]
pub(super) struct FibHandle {
    tx: mpsc::Sender<FibOp>,
    stats: Arc<FibStats>,
    /// Batches of route changes sent and not yet written.
    in_flight: usize,
    /// Batches the thread wrote since the core last looked (read between any two inputs, so a busy
    /// core feeds the thread without waiting for its own queue to reach the thread's wake-up).
    written: Arc<AtomicUsize>,
    /// Prefixes changed while [`IN_FLIGHT`] batches were queued; sent, least recently changed first,
    /// with their state at the time they are sent.
    waiting: Waiting,
    /// Signalled by the thread after each pass that wrote batches.
    progress: Arc<tokio::sync::Notify>,
    /// The thread wrote nothing for [`CATCH_UP_WAIT`]: do not wait for it again until it has.
    stalled: bool,
}

impl FibHandle {
    /// The FIB thread's counters.
    pub fn stats(&self) -> &FibStats {
        &self.stats
    }

    /// RIB changes for the kernel: sent at once while the thread has room, else remembered by prefix.
    pub fn changes(&mut self, changes: &[FibChange]) {
        if self.in_flight < IN_FLIGHT && self.waiting.is_empty() {
            self.in_flight += 1;
            let _ = self.tx.send(FibOp::Routes(fib_changes(changes)));
            return;
        }
        for c in changes {
            let prefix = match c {
                FibChange::Install { prefix, .. } | FibChange::Remove { prefix } => *prefix,
            };
            self.waiting.mark(prefix);
        }
    }

    /// Feeds the thread if it wrote batches since the last look: what changed meanwhile, as the RIB
    /// has it now. Cheap when it did not (one atomic load).
    pub fn feed(&mut self, rib: &Rib) {
        if self.written.load(Ordering::Acquire) == 0 {
            return;
        }
        self.stalled = false;
        let batches = self.written.swap(0, Ordering::AcqRel);
        self.in_flight = self.in_flight.saturating_sub(batches);
        while self.in_flight < IN_FLIGHT && !self.waiting.is_empty() {
            self.send_dirty(WINDOW, rib);
        }
    }

    /// Waits, feeding the thread, until at most [`BACKLOG`] prefixes wait for it: called before the core
    /// takes in more routes, so a burst waits in the peers' TCP streams (flow control, as a daemon that
    /// writes each route before reading the next gets), not here. Gives up (and stops waiting until the
    /// thread writes again) when the thread writes nothing for [`CATCH_UP_WAIT`].
    pub async fn catch_up(&mut self, rib: &Rib) {
        while self.waiting.len() > BACKLOG && !self.stalled {
            self.feed(rib);
            if self.waiting.len() <= BACKLOG {
                break;
            }
            if tokio::time::timeout(CATCH_UP_WAIT, self.progress.notified())
                .await
                .is_err()
            {
                self.stalled = self.written.load(Ordering::Acquire) == 0;
                if self.stalled {
                    tracing::warn!(
                        waiting = self.waiting.len(),
                        "the kernel FIB writes nothing: reading on without waiting for it"
                    );
                }
            }
        }
    }

    /// Sends up to `max` remembered prefixes in one batch, each as the RIB has it now.
    fn send_dirty(&mut self, max: usize, rib: &Rib) {
        let mut batch = Vec::with_capacity(max.min(self.waiting.len()));
        let mut kernel = ToKernel::default();
        let mut next_hops = Vec::new();
        while batch.len() < max {
            let Some(p) = self.waiting.pop() else { break };
            rib.fib_next_hops_into(&p, &mut next_hops);
            batch.push(kernel.route(&p, &next_hops));
        }
        self.in_flight += 1;
        let _ = self.tx.send(FibOp::Routes(batch));
    }

    /// Sends everything remembered now, ahead of `op` (a sweep or a stop must follow every change).
    fn flush_then(&mut self, op: FibOp, rib: &Rib) {
        while !self.waiting.is_empty() {
            self.send_dirty(WINDOW, rib);
        }
        let _ = self.tx.send(op);
    }

    /// Removes the routes a previous run left that no peer re-sent.
    pub fn sweep(&mut self, rib: &Rib) {
        self.flush_then(FibOp::Sweep, rib);
    }

    /// Applies what is queued, optionally clears, and waits until the task has ended.
    pub async fn stop(&mut self, clear: bool, rib: &Rib) {
        let (done, rx) = oneshot::channel();
        self.flush_then(FibOp::Stop { clear, done }, rib);
        let _ = rx.await;
    }
}

/// The kernel's view of RIB changes: each prefix with its gateways of its own family, sorted and
/// deduplicated (none: no route). Consecutive routes with the same gateways share one allocation.
pub(super) fn fib_changes(changes: &[FibChange]) -> Vec<(Prefix, Option<Gateways>)> {
    let mut kernel = ToKernel::default();
    changes
        .iter()
        .map(|c| match c {
            FibChange::Install { prefix, next_hops } => kernel.route(prefix, next_hops),
            FibChange::Remove { prefix } => ((prefix.addr(), prefix.len()), None),
        })
        .collect()
}

/// Turns a prefix and its RIB next hops into a kernel route; consecutive routes with the same gateways
/// share one allocation.
#[derive(Default)]
struct ToKernel {
    scratch: Vec<IpAddr>,
    last: Option<Gateways>,
}

impl ToKernel {
    /// The route of `prefix` through the gateways of its own family among `next_hops`, sorted and
    /// deduplicated (none: no route).
    fn route(
        &mut self,
        prefix: &wire::Prefix,
        next_hops: &[wire::NextHop],
    ) -> (Prefix, Option<Gateways>) {
        let key = (prefix.addr(), prefix.len());
        self.scratch.clear();
        self.scratch.extend(
            next_hops
                .iter()
                .map(|nh| next_hop_ip(*nh))
                .filter(|ip| ip.is_ipv4() == key.0.is_ipv4()),
        );
        self.scratch.sort();
        self.scratch.dedup();
        if self.scratch.is_empty() {
            return (key, None);
        }
        let gws = match &self.last {
            Some(l) if l[..] == self.scratch[..] => l.clone(),
            _ => {
                let g = Gateways::from(&self.scratch[..]);
                self.last = Some(g.clone());
                g
            }
        };
        (key, Some(gws))
    }
}

/// Opens the FIB, reads our routes (kept until a sweep unless `sweep_now`) and starts the thread, which
/// calls `wake` after each pass that wrote route batches (for the core to [`FibHandle::feed`] it).
/// Returns the handle and how many routes a previous run left.
pub(super) fn start(
    settings: &FibSettings,
    sweep_now: bool,
    wake: impl Fn() + Send + 'static,
) -> Result<(FibHandle, usize), Error> {
    let mut fib = Fib::new(None, settings.table, settings.protocol)?;
    let read = fib.read()?;
    let adopted = read.len();
    let mut have = Held::default();
    let mut left = FastSet::default();
    if sweep_now {
        if adopted > 0 {
            let gone: Vec<(Prefix, Option<&[IpAddr]>)> = read.keys().map(|p| (*p, None)).collect();
            let failed = fib.write(&gone)?;
            tracing::info!(
                removed = adopted - failed.len(),
                "removed routes a previous run left"
            );
        }
        fib.clear_nexthops();
    } else if adopted > 0 {
        tracing::info!(
            adopted,
            "keeping routes a previous run left until peers re-send theirs"
        );
        for (p, gws) in read {
            left.insert(p);
            have.insert(p, &Gateways::from(gws));
        }
        fib.collect_unused(true);
    } else {
        fib.collect_unused(true);
    }
    tracing::info!(
        nexthop_objects = fib.uses_nexthop_objects(),
        table = settings.table,
        protocol = settings.protocol,
        "kernel FIB opened"
    );
    let (tx, rx) = mpsc::channel();
    let stats = Arc::new(FibStats::default());
    stats.set_routes(have.len());
    let written = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(tokio::sync::Notify::new());
    let mut task = FibTask {
        fib,
        stats: Arc::clone(&stats),
        have,
        left,
        swept: sweep_now,
        scan: settings.scan,
        resolved: FastSet::default(),
        lookup: None,
        written: Arc::clone(&written),
        progress: Arc::clone(&progress),
        since_trim: 0,
        wake: Box::new(wake),
    };
    std::thread::Builder::new()
        .name("bgp-fib".into())
        .spawn(move || task.run(rx))
        .map_err(|e| Error::Fib(calico_netlink::Error::Io(e)))?;
    let handle = FibHandle {
        tx,
        stats,
        in_flight: 0,
        written,
        waiting: Waiting::default(),
        progress,
        stalled: false,
    };
    Ok((handle, adopted))
}

struct FibTask {
    fib: Fib,
    stats: Arc<FibStats>,
    /// Our routes in the kernel, under the gateways the RIB asked for.
    have: Held,
    /// Routes a previous run left that no change has touched yet (removed by the sweep).
    left: FastSet<Prefix>,
    swept: bool,
    /// How often to read our routes back from the kernel and restore what others changed (`None`: never).
    scan: Option<Duration>,
    /// Prefixes written through resolved gateways (a multihop next hop): the kernel holds other
    /// gateways for them than `have` records.
    resolved: FastSet<Prefix>,
    /// A second socket for route lookups (recursive next hops), opened on first use.
    lookup: Option<Socket>,
    /// Route batches written, for the core to see; `wake` tells it to look (and `progress` wakes a core
    /// waiting in [`FibHandle::catch_up`]).
    written: Arc<AtomicUsize>,
    progress: Arc<tokio::sync::Notify>,
    /// Route changes handled since the allocator last gave free memory back.
    since_trim: usize,
    wake: Box<dyn Fn() + Send>,
}

impl FibTask {
    fn run(&mut self, rx: mpsc::Receiver<FibOp>) {
        let mut pending: Vec<(Prefix, Option<Gateways>)> = Vec::new();
        let mut next_scan = self.scan.map(|every| Instant::now() + every);
        loop {
            let first = match rx.try_recv() {
                Ok(op) => op,
                Err(mpsc::TryRecvError::Disconnected) => return,
                Err(mpsc::TryRecvError::Empty) => {
                    // Going idle: a burst of changes is over.
                    if self.since_trim >= TRIM_AFTER {
                        self.since_trim = 0;
                        super::sys::release_free_memory();
                    }
                    match next_scan {
                        Some(at) => {
                            match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                                Ok(op) => op,
                                Err(RecvTimeoutError::Timeout) => {
                                    self.check();
                                    next_scan = self.scan.map(|every| Instant::now() + every);
                                    continue;
                                }
                                Err(RecvTimeoutError::Disconnected) => return,
                            }
                        }
                        None => match rx.recv() {
                            Ok(op) => op,
                            Err(_) => return,
                        },
                    }
                }
            };
            let mut next = Some(first);
            let mut sweep = false;
            let mut stop = None;
            let mut batches = 0;
            // Coalesce what queued up, up to a window; the rest waits for the next pass, in order.
            while let Some(op) = next
                .take()
                .or_else(|| (pending.len() < WINDOW).then(|| rx.try_recv().ok())?)
            {
                match op {
                    FibOp::Routes(list) => {
                        batches += 1;
                        if !self.left.is_empty() {
                            for (p, _) in &list {
                                self.left.remove(p);
                            }
                        }
                        if pending.is_empty() {
                            pending = list;
                        } else {
                            pending.reserve_exact(list.len());
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
            self.since_trim += pending.len();
            self.sync(&mut pending);
            // The next pass takes over the next batch's vector: keep no burst's room here.
            pending = Vec::new();
            if matches!(stop, Some((true, _))) {
                self.fib.clear_nexthops();
            } else {
                self.fib.collect_unused(false);
            }
            if batches > 0 {
                self.written.fetch_add(batches, Ordering::AcqRel);
                self.progress.notify_one();
                (self.wake)();
            }
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
                (Some(g), None) => {
                    self.have.insert(*p, g);
                    if !self.resolved.is_empty() {
                        self.resolved.remove(p);
                    }
                }
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
                    if !self.resolved.is_empty() {
                        self.resolved.remove(p);
                    }
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
                            self.resolved.insert(p);
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

    /// Reads our routes back from the kernel; restores those someone else deleted or changed and deletes
    /// routes of our protocol we do not hold. Keeps no copy of the kernel's table unless routes are missing.
    fn check(&mut self) {
        let started = Instant::now();
        let mut matched = 0usize;
        let mut fix: Vec<(Prefix, Option<Gateways>)> = Vec::new();
        let mut foreign: Vec<(Prefix, Option<Gateways>)> = Vec::new();
        // Routes through resolved gateways, with what the kernel holds: checked below against a
        // fresh resolution, so they follow a change of the route to their next hop.
        let mut through: Vec<(Prefix, Vec<IpAddr>)> = Vec::new();
        let (have, resolved) = (&self.have, &self.resolved);
        let scanned = self.fib.scan(|p, gws| match have.get(&p) {
            Some(h) => {
                matched += 1;
                if resolved.contains(&p) {
                    through.push((p, gws));
                } else if h[..] != gws[..] {
                    fix.push((p, Some(h.clone())));
                }
            }
            None => foreign.push((p, None)),
        });
        if let Err(e) = scanned {
            tracing::warn!(error = %e, "cannot read the kernel's routes back");
            return;
        }
        if matched < self.have.len() {
            let mut seen = FastSet::default();
            if let Err(e) = self.fib.scan(|p, _| {
                seen.insert(p);
            }) {
                tracing::warn!(error = %e, "cannot read the kernel's routes back");
                return;
            }
            fix.extend(
                self.have
                    .prefixes()
                    .filter(|p| !seen.contains(p))
                    .map(|p| (p, self.have.get(&p).cloned())),
            );
        }
        let moved = self.moved_next_hops(through);
        if !moved.is_empty() {
            tracing::info!(
                routes = moved.len(),
                "the routes to some recursive next hops changed: following them"
            );
            // Written again through their BGP next hops, which the kernel refuses as unreachable and
            // the write resolves afresh.
            for (p, _) in &moved {
                self.have.remove(p);
                self.resolved.remove(p);
            }
            let mut moved = moved;
            self.sync(&mut moved);
        }
        if fix.is_empty() && foreign.is_empty() {
            tracing::debug!(
                routes = matched,
                took_us = started.elapsed().as_micros() as u64,
                "kernel FIB checked"
            );
            return;
        }
        tracing::warn!(
            restored = fix.len(),
            removed = foreign.len(),
            "our kernel routes were changed by someone else: restoring them"
        );
        if !foreign.is_empty() {
            if let Err(e) = self.fib.write(&foreign) {
                tracing::error!(error = %e, "kernel FIB update failed");
            }
        }
        // Forget what the kernel lost, so the write below is not skipped as already done.
        for (p, _) in &fix {
            self.have.remove(p);
        }
        self.sync(&mut fix);
    }

    /// Of the routes through resolved gateways (prefix, gateways in the kernel), those whose BGP next
    /// hops now resolve to other gateways, with their BGP next hops; one lookup per distinct next-hop set.
    fn moved_next_hops(
        &mut self,
        through: Vec<(Prefix, Vec<IpAddr>)>,
    ) -> Vec<(Prefix, Option<Gateways>)> {
        let mut fresh: std::collections::HashMap<Gateways, Vec<IpAddr>> =
            std::collections::HashMap::new();
        let mut moved = Vec::new();
        for (p, in_kernel) in through {
            let Some(wanted) = self.have.get(&p).cloned() else {
                continue;
            };
            if !fresh.contains_key(&wanted) {
                let now = self.resolve(&wanted);
                fresh.insert(wanted.clone(), now);
            }
            let now = &fresh[&wanted];
            if !now.is_empty() && now[..] != in_kernel[..] {
                moved.push((p, Some(wanted)));
            }
        }
        moved
    }

    /// The gateways through which the kernel reaches each of `gws` (recursive next hops; every
    /// gateway of an ECMP route to one of them).
    fn resolve(&mut self, gws: &[IpAddr]) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for gw in gws {
            for via in self.lookup_gateways(*gw) {
                if !out.contains(&via) {
                    out.push(via);
                }
            }
        }
        out.sort();
        out
    }

    fn lookup_gateways(&mut self, dst: IpAddr) -> Vec<IpAddr> {
        if self.lookup.is_none() {
            self.lookup = Socket::open(None).ok();
        }
        let Some(socket) = self.lookup.as_mut() else {
            return Vec::new();
        };
        let seq = socket.next_seq();
        let Ok(answers) = socket.request_each(&get_route(dst, seq), &[seq]) else {
            return Vec::new();
        };
        match answers.get(&seq) {
            Some(Ok(body)) if parse_route(body).is_some() => route_gateways(body),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::RibConfig;
    use std::net::Ipv4Addr;

    fn handle() -> (FibHandle, mpsc::Receiver<FibOp>) {
        let (tx, rx) = mpsc::channel();
        let h = FibHandle {
            tx,
            stats: Arc::default(),
            in_flight: 0,
            written: Arc::default(),
            waiting: Waiting::default(),
            progress: Arc::default(),
            stalled: false,
        };
        (h, rx)
    }

    /// `n` changes for distinct /32s.
    fn many(n: u32) -> Vec<FibChange> {
        (0..n)
            .map(|i| FibChange::Install {
                prefix: wire::Prefix::new(IpAddr::V4(Ipv4Addr::from(0x0a60_0000 + i)), 32).unwrap(),
                next_hops: vec![wire::NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))],
            })
            .collect()
    }

    #[tokio::test]
    async fn the_core_reads_no_more_while_the_thread_is_behind_and_on_once_it_catches_up() {
        let (mut h, rx) = handle();
        let rib = Rib::new(RibConfig::new(65001, Ipv4Addr::new(10, 0, 0, 1)));
        h.in_flight = IN_FLIGHT;
        h.changes(&many(BACKLOG as u32 + 5_000));
        assert!(rx.try_recv().is_err());
        // A thread that writes each batch it gets, a little later.
        let (written, progress) = (Arc::clone(&h.written), Arc::clone(&h.progress));
        let thread = std::thread::spawn(move || {
            let mut routes = 0;
            while let Ok(FibOp::Routes(list)) = rx.recv_timeout(Duration::from_secs(2)) {
                std::thread::sleep(Duration::from_millis(2));
                routes += list.len();
                written.fetch_add(1, Ordering::AcqRel);
                progress.notify_one();
            }
            routes
        });
        // Both queued batches written: the thread asks for more.
        h.written.fetch_add(IN_FLIGHT, Ordering::AcqRel);
        h.progress.notify_one();
        h.catch_up(&rib).await;
        assert!(!h.stalled);
        assert!(h.waiting.len() <= BACKLOG, "{} still wait", h.waiting.len());
        // What left the queue went to the thread, in whole windows.
        drop(h);
        let sent = thread.join().unwrap();
        assert!(sent >= 5_000 && sent % WINDOW == 0, "{sent} routes sent");
    }

    #[tokio::test]
    async fn a_thread_that_writes_nothing_holds_the_core_back_once_only() {
        let (mut h, _rx) = handle();
        let rib = Rib::new(RibConfig::new(65001, Ipv4Addr::new(10, 0, 0, 1)));
        h.in_flight = IN_FLIGHT;
        h.changes(&many(BACKLOG as u32 + 1));
        let t0 = Instant::now();
        h.catch_up(&rib).await;
        assert!(t0.elapsed() >= CATCH_UP_WAIT);
        assert!(h.stalled);
        // Reads go on without waiting, however much waits, until the thread writes again.
        h.changes(&many(BACKLOG as u32 * 2));
        let t1 = Instant::now();
        h.catch_up(&rib).await;
        assert!(t1.elapsed() < CATCH_UP_WAIT / 2);
        h.written.fetch_add(1, Ordering::AcqRel);
        h.feed(&rib);
        assert!(!h.stalled);
    }

    fn p(last: u8) -> wire::Prefix {
        wire::Prefix::new(IpAddr::V4(Ipv4Addr::new(10, 96, 0, last)), 32).unwrap()
    }

    fn install(last: u8, gw: u8) -> FibChange {
        FibChange::Install {
            prefix: p(last),
            next_hops: vec![wire::NextHop::V4(Ipv4Addr::new(192, 0, 2, gw))],
        }
    }

    fn routes(op: FibOp) -> Vec<(Prefix, Option<Gateways>)> {
        match op {
            FibOp::Routes(r) => r,
            other => panic!("not routes: {other:?}"),
        }
    }

    #[test]
    fn a_busy_thread_gets_each_changed_prefix_once_with_its_latest_state() {
        let (mut h, rx) = handle();
        let rib = Rib::new(RibConfig::new(65001, Ipv4Addr::new(10, 0, 0, 1)));
        // Two batches go at once; the thread has not written either yet.
        h.changes(&[install(1, 1)]);
        h.changes(&[install(2, 1)]);
        assert_eq!(routes(rx.try_recv().unwrap()).len(), 1);
        assert_eq!(routes(rx.try_recv().unwrap()).len(), 1);
        // Further changes wait as prefixes, each once, least recently changed first.
        h.changes(&[install(3, 1), install(1, 2)]);
        h.changes(&[install(3, 2), install(4, 1), install(1, 3)]);
        assert!(rx.try_recv().is_err());
        assert_eq!(h.waiting.len(), 3);
        // Nothing written yet: feeding sends nothing.
        h.feed(&rib);
        assert!(rx.try_recv().is_err());
        // One batch written: the waiting prefixes go in one batch, as the RIB has them now (this
        // RIB holds none of them: no route).
        h.written.fetch_add(1, Ordering::AcqRel);
        h.feed(&rib);
        let sent = routes(rx.try_recv().unwrap());
        let want: Vec<(Prefix, Option<Gateways>)> = [3, 4, 1]
            .iter()
            .map(|l| ((p(*l).addr(), 32), None))
            .collect();
        assert_eq!(sent, want);
        assert!(h.waiting.is_drained());
        assert_eq!(h.in_flight, 2);
    }

    #[test]
    fn a_sweep_follows_every_waiting_change() {
        let (mut h, rx) = handle();
        let rib = Rib::new(RibConfig::new(65001, Ipv4Addr::new(10, 0, 0, 1)));
        h.in_flight = IN_FLIGHT;
        h.changes(&[install(1, 1), install(2, 1)]);
        h.sweep(&rib);
        assert_eq!(routes(rx.try_recv().unwrap()).len(), 2);
        assert!(matches!(rx.try_recv().unwrap(), FibOp::Sweep));
        assert!(h.waiting.is_empty());
    }

    #[test]
    fn consecutive_routes_through_the_same_gateways_share_them() {
        let out = fib_changes(&[install(1, 1), install(2, 1), install(3, 2)]);
        let g: Vec<&Gateways> = out.iter().map(|(_, g)| g.as_ref().unwrap()).collect();
        assert!(Arc::ptr_eq(g[0], g[1]));
        assert!(!Arc::ptr_eq(g[1], g[2]));
    }
}
