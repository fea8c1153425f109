//! The core task: the one owner of the speaker's state.
//!
//! Role: hold the RIB, every peer's [`Peer`] FSM with its connections, the locally originated routes, the
//! listeners and the FIB handle; process one [`Input`] at a time (API requests, accepted and dialled
//! connections, bytes, closures) and the timers (FSM deadlines, peers' graceful-restart deadlines, the
//! start-up sweep deadline). No locks: every other task talks to it through its queue.
//! Inputs: [`Input`]s, the clock. Outputs: calls into `peers` (session actions, RIB changes) and replies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

use super::conn::{self, ConnHandle};
use super::fibtask::{self, FibHandle};
use super::metrics::{PeerMetrics, SpeakerMetrics};
use super::view;
use super::{Error, LocalRoute, PeerSettings, PeerStatus, Request, SpeakerConfig};
use crate::rib::{Rib, RibConfig};
use crate::session::{ConnId, Peer, SessionConfig};
use crate::wire::{
    AddPathFamily, AfiSafi, GracefulRestart, GracefulRestartFamily, LargeCommunity, NextHop,
    PathAttributes, Prefix, RefreshSubtype,
};

/// What the core's queue carries.
pub(crate) enum Input {
    Request(Request),
    /// The FIB thread wrote route changes and may take more.
    FibWritten,
    Accepted {
        stream: TcpStream,
        remote: SocketAddr,
    },
    Connected {
        peer: IpAddr,
        conn: ConnId,
        stream: TcpStream,
    },
    ConnectFailed {
        peer: IpAddr,
        conn: ConnId,
        error: String,
    },
    Data {
        peer: IpAddr,
        conn: ConnId,
        data: Vec<u8>,
        /// The connection's reader reads again once this is dropped (after `data` was applied).
        _credit: OwnedSemaphorePermit,
    },
    Closed {
        peer: IpAddr,
        conn: ConnId,
        error: Option<String>,
    },
}

/// The families every session offers.
pub(super) const FAMILIES: [AfiSafi; 2] = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];
/// The first connect-retry delay (it doubles on consecutive failures, jittered).
const CONNECT_RETRY: Duration = Duration::from_secs(1);
/// The longest connect-retry delay.
const CONNECT_RETRY_MAX: Duration = Duration::from_secs(8);

/// One configured peer and its connections.
pub(super) struct PeerEntry {
    pub settings: PeerSettings,
    pub peer: Peer,
    pub conns: HashMap<ConnId, ConnHandle>,
    /// Our connection attempt in progress.
    pub connecting: Option<(ConnId, JoinHandle<()>)>,
    /// Until when its stale routes are kept (its graceful restart).
    pub gr_deadline: Option<Instant>,
    pub since: SystemTime,
    pub last_error: Option<String>,
    /// Families negotiated on the current session, and those whose End-of-RIB arrived.
    pub families: Vec<AfiSafi>,
    pub eor: BTreeSet<AfiSafi>,
    /// Our addresses towards it on the current session: the session's, then the next hop for the
    /// other family's routes (found once, when the session comes up).
    pub local: Vec<IpAddr>,
    /// UPDATE messages received and sent (for the metrics).
    pub updates_in: u64,
    pub updates_out: u64,
}

/// A route we originate, as held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Originated {
    pub route: LocalRoute,
    pub large: Vec<LargeCommunity>,
}

/// The core's state.
pub(super) struct Core {
    pub cfg: SpeakerConfig,
    pub rib: Rib,
    pub peers: BTreeMap<IpAddr, PeerEntry>,
    pub local: BTreeMap<Prefix, Originated>,
    pub listeners: Vec<(Arc<TcpListener>, JoinHandle<()>)>,
    pub tx: mpsc::UnboundedSender<Input>,
    pub fib: Option<FibHandle>,
    pub next_conn: ConnId,
    /// Routes a previous run left are kept until this sweep (graceful restart of our own).
    pub startup_sweep: Option<Instant>,
    /// `set_peers` was called at least once (until then, no peer can have re-sent its routes).
    pub peers_set: bool,
    /// We restarted with forwarding state preserved (the R and F bits of our capability).
    pub restarting: bool,
    pub stopped: bool,
}

/// Binds, opens the FIB and spawns the core; returns its queue and the bound addresses.
pub(super) async fn start(
    cfg: SpeakerConfig,
) -> Result<(mpsc::UnboundedSender<Input>, Vec<SocketAddr>), Error> {
    if cfg.asn == 0 {
        return Err(Error::Invalid("AS 0 is not a valid AS".into()));
    }
    if cfg.router_id.is_unspecified() {
        return Err(Error::Invalid("the router id must not be 0.0.0.0".into()));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let mut listeners = Vec::new();
    let mut local = Vec::new();
    for addr in &cfg.listen {
        let l = Arc::new(conn::bind(*addr)?);
        local.push(l.local_addr().map_err(|source| Error::Listen {
            addr: *addr,
            source,
        })?);
        let task = conn::spawn_accept(Arc::clone(&l), tx.clone());
        listeners.push((l, task));
    }
    let gr = cfg.graceful_restart;
    let (fib, adopted) = match &cfg.fib {
        Some(settings) => {
            let tx = tx.clone();
            let (h, n) = fibtask::start(settings, gr.is_none(), move || {
                let _ = tx.send(Input::FibWritten);
            })?;
            (Some(h), n)
        }
        None => (None, 0),
    };
    let mut rib_cfg = RibConfig::new(cfg.asn, cfg.router_id);
    rib_cfg.ecmp = cfg.ecmp.max(1);
    rib_cfg.cluster_id = cfg.cluster_id;
    let core = Core {
        rib: Rib::new(rib_cfg),
        peers: BTreeMap::new(),
        local: BTreeMap::new(),
        listeners,
        tx: tx.clone(),
        fib,
        next_conn: 1,
        startup_sweep: gr.filter(|_| adopted > 0).map(|t| Instant::now() + t),
        peers_set: false,
        restarting: gr.is_some() && adopted > 0,
        stopped: false,
        cfg,
    };
    tracing::info!(asn = core.cfg.asn, router_id = %core.cfg.router_id, listen = ?local, "BGP speaker started");
    tokio::spawn(core.run(rx));
    Ok((tx, local))
}

impl Core {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        loop {
            // While sessions' initial exports go in steps, one step each per turn, with any waiting input
            // and due timers in between: the first UPDATEs leave at once and no input waits for a whole export.
            if self.export_steps(Instant::now()) {
                let input = match rx.try_recv() {
                    Ok(input) => Some(input),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                };
                let now = Instant::now();
                if self.next_deadline().is_some_and(|d| d <= now) {
                    self.timers(now);
                }
                if let Some(input) = input {
                    if self.handle(input).await {
                        break;
                    }
                }
                tokio::task::yield_now().await;
                continue;
            }
            let deadline = self.next_deadline();
            let input = match deadline {
                Some(d) => {
                    tokio::select! {
                        m = rx.recv() => m,
                        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(d)) => {
                            self.timers(Instant::now());
                            continue;
                        }
                    }
                }
                None => rx.recv().await,
            };
            let Some(input) = input else { break };
            if self.handle(input).await {
                break;
            }
        }
        for (_, task) in &self.listeners {
            task.abort();
        }
    }

    /// Handles one input; true when the core stops.
    async fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Request(Request::Shutdown { keep_fib, done }) => {
                self.shutdown(keep_fib).await;
                let _ = done.send(());
                true
            }
            other => {
                if let Some(f) = &mut self.fib {
                    if matches!(other, Input::Data { .. }) {
                        f.catch_up(&self.rib).await;
                    }
                    f.feed(&self.rib);
                }
                self.input(other);
                self.stopped
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .flat_map(|e| [e.peer.poll_timeout(), e.gr_deadline])
            .chain([self.startup_sweep])
            .flatten()
            .min()
    }

    fn timers(&mut self, now: Instant) {
        let addrs: Vec<IpAddr> = self.peers.keys().copied().collect();
        for addr in addrs {
            let Some(e) = self.peers.get_mut(&addr) else {
                continue;
            };
            if e.peer.poll_timeout().is_some_and(|d| d <= now) {
                let actions = e.peer.handle_timeout(now);
                self.apply(addr, actions, now);
            }
            let Some(e) = self.peers.get_mut(&addr) else {
                continue;
            };
            if e.gr_deadline.is_some_and(|d| d <= now) {
                e.gr_deadline = None;
                tracing::info!(peer = %addr, "graceful restart time over: removing its stale routes");
                if let Ok(ch) = self.rib.restart_timer_expired(addr) {
                    self.dispatch(ch, now);
                }
            }
        }
        if self.startup_sweep.is_some_and(|d| d <= now) {
            tracing::info!("graceful restart time over: sweeping routes a previous run left");
            self.sweep_startup();
        }
    }

    /// Remove the routes a previous run left that no peer re-sent.
    pub(super) fn sweep_startup(&mut self) {
        self.startup_sweep = None;
        self.restarting = false;
        if let Some(f) = &mut self.fib {
            f.sweep(&self.rib);
        }
    }

    /// Sweep at once when every peer has re-sent its routes (End-of-RIB on every family).
    pub(super) fn check_startup(&mut self) {
        if self.startup_sweep.is_none() || !self.peers_set {
            return;
        }
        let all = self
            .peers
            .values()
            .all(|e| !e.families.is_empty() && e.families.iter().all(|f| e.eor.contains(f)));
        if all {
            tracing::info!("every peer re-sent its routes: sweeping routes a previous run left");
            self.sweep_startup();
        }
    }

    fn input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Request(r) => self.request(r, now),
            // Fed below.
            Input::FibWritten => {}
            Input::Accepted { stream, remote } => self.accepted(stream, remote, now),
            Input::Connected { peer, conn, stream } => {
                let Some(e) = self.peers.get_mut(&peer) else {
                    return;
                };
                if e.connecting.as_ref().map(|c| c.0) != Some(conn) {
                    return; // abandoned meanwhile: dropping the stream closes it
                }
                e.connecting = None;
                match conn::attach(conn, peer, stream, self.tx.clone()) {
                    Ok(h) => {
                        e.conns.insert(conn, h);
                        let actions = e.peer.connected(conn, now);
                        self.apply(peer, actions, now);
                    }
                    Err(err) => {
                        e.last_error = Some(format!("connection: {err}"));
                        let actions = e.peer.connect_failed(now);
                        self.apply(peer, actions, now);
                    }
                }
            }
            Input::ConnectFailed { peer, conn, error } => {
                let Some(e) = self.peers.get_mut(&peer) else {
                    return;
                };
                if e.connecting.as_ref().map(|c| c.0) != Some(conn) {
                    return;
                }
                e.connecting = None;
                tracing::debug!(%peer, %error, "connection attempt failed");
                e.last_error = Some(format!("connect: {error}"));
                let actions = e.peer.connect_failed(now);
                self.apply(peer, actions, now);
            }
            Input::Data {
                peer, conn, data, ..
            } => {
                let Some(e) = self.peers.get_mut(&peer) else {
                    return;
                };
                if !e.conns.contains_key(&conn) {
                    return;
                }
                let actions = e.peer.receive(conn, &data, now);
                self.apply(peer, actions, now);
            }
            Input::Closed { peer, conn, error } => {
                let Some(e) = self.peers.get_mut(&peer) else {
                    return;
                };
                let Some(h) = e.conns.remove(&conn) else {
                    return;
                };
                h.close();
                if let Some(err) = error {
                    e.last_error = Some(format!("connection: {err}"));
                }
                let actions = e.peer.closed(conn, now);
                self.apply(peer, actions, now);
            }
        }
    }

    fn accepted(&mut self, stream: TcpStream, remote: SocketAddr, now: Instant) {
        let ip = super::peers::unmapped(remote.ip());
        let conn = self.next_conn;
        let Some(e) = self.peers.get_mut(&ip) else {
            tracing::info!(%remote, "refused a connection from an unconfigured address");
            return;
        };
        self.next_conn += 1;
        if let Err(err) = conn::accepted_gtsm(&stream, &e.settings) {
            tracing::warn!(%remote, error = %err, "cannot set GTSM on an accepted connection: refused");
            return;
        }
        match conn::attach(conn, ip, stream, self.tx.clone()) {
            Ok(h) => {
                e.conns.insert(conn, h);
                let actions = e.peer.incoming(conn, now);
                self.apply(ip, actions, now);
            }
            Err(err) => tracing::warn!(%remote, error = %err, "cannot use an accepted connection"),
        }
    }

    /// Starts dialling a peer.
    pub(super) fn start_connect(&mut self, addr: IpAddr) {
        let conn = self.next_conn;
        self.next_conn += 1;
        let tx = self.tx.clone();
        if let Some(e) = self.peers.get_mut(&addr) {
            if let Some((_, old)) = e.connecting.take() {
                old.abort();
            }
            let task = conn::spawn_connect(conn, &e.settings, tx);
            e.connecting = Some((conn, task));
        }
    }

    fn request(&mut self, r: Request, now: Instant) {
        match r {
            Request::SetPeers(list, reply) => {
                let result = self.set_peers(list, now);
                let _ = reply.send(result);
            }
            Request::SetLocal(list, reply) => {
                let result = self.set_local(list, now);
                let _ = reply.send(result);
            }
            Request::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Request::Routes(reply) => {
                let _ = reply.send(view::entries(self.rib.routes()));
            }
            Request::Metrics(reply) => {
                let _ = reply.send(self.metrics());
            }
            Request::Shutdown { .. } => {} // handled by `run`
        }
    }

    fn status(&self) -> Vec<PeerStatus> {
        self.peers
            .values()
            .map(|e| {
                let c = self.rib.counters(e.settings.address).unwrap_or_default();
                PeerStatus {
                    address: e.settings.address,
                    asn: e.settings.asn,
                    description: e.settings.description.clone(),
                    state: format!("{:?}", e.peer.state()),
                    since: e.since,
                    routes_received: c.received as u64,
                    routes_accepted: c.accepted as u64,
                    routes_advertised: c.advertised as u64,
                    last_error: e.last_error.clone(),
                }
            })
            .collect()
    }

    fn metrics(&self) -> SpeakerMetrics {
        let peers = self
            .peers
            .values()
            .map(|e| {
                let c = self.rib.counters(e.settings.address).unwrap_or_default();
                PeerMetrics {
                    address: e.settings.address,
                    state: format!("{:?}", e.peer.state()),
                    routes_received: c.received as u64,
                    routes_accepted: c.accepted as u64,
                    routes_advertised: c.advertised as u64,
                    updates_received: e.updates_in,
                    updates_sent: e.updates_out,
                }
            })
            .collect();
        SpeakerMetrics {
            peers,
            fib: self.fib.as_ref().map(|f| f.stats().snapshot()),
        }
    }

    fn set_peers(&mut self, list: Vec<PeerSettings>, now: Instant) -> Result<(), Error> {
        let mut want = BTreeMap::new();
        for p in list {
            validate_peer(&p)?;
            if want.insert(p.address, p.clone()).is_some() {
                return Err(Error::Invalid(format!("peer {} listed twice", p.address)));
            }
        }
        // A change of policy alone is applied to the running session; any other change restarts it.
        let soft: Vec<PeerSettings> = self
            .peers
            .iter()
            .filter_map(|(a, e)| {
                let new = want.get(a)?;
                (new != &e.settings
                    && policy_only(&e.settings, new)
                    && e.peer.state() == crate::session::State::Established)
                    .then(|| new.clone())
            })
            .collect();
        for s in soft {
            self.change_policy(s, now);
        }
        let gone: Vec<IpAddr> = self
            .peers
            .iter()
            .filter(|(a, e)| want.get(*a) != Some(&e.settings))
            .map(|(a, _)| *a)
            .collect();
        for addr in gone {
            // A peer still configured restarts with its new settings: Administrative Reset (RFC 4486,
            // with an RFC 9003 communication); one no longer configured: Peer De-configured.
            let n = if want.contains_key(&addr) {
                crate::wire::Notification::shutdown(
                    crate::wire::code::cease::ADMINISTRATIVE_RESET,
                    "configuration changed",
                )
                .ok()
            } else {
                None
            };
            self.remove_peer(addr, n, now);
        }
        for (addr, s) in want {
            if !self.peers.contains_key(&addr) {
                self.add_peer(s, now)?;
            }
        }
        self.peers_set = true;
        self.check_startup();
        Ok(())
    }

    /// Applies new policy settings to an Established session without resetting it: export changes go
    /// out at once; for new import rules (or limit) the peer is asked to re-send its routes (RFC 2918),
    /// so they apply to all of them. A peer that cannot re-send keeps its old settings here, and its
    /// session restarts with the new ones.
    fn change_policy(&mut self, s: PeerSettings, now: Instant) {
        let addr = s.address;
        let Some(e) = self.peers.get(&addr) else {
            return;
        };
        let Some(n) = e.peer.session().negotiated() else {
            return;
        };
        let import_changed = e.settings.policy.import != s.policy.import
            || e.settings.policy.max_prefix != s.policy.max_prefix;
        if import_changed && !n.route_refresh {
            tracing::info!(peer = %addr, "new import policy; the peer cannot re-send its routes: restarting the session");
            return;
        }
        let families = n.families.clone();
        let local = e.local.clone();
        tracing::info!(peer = %addr, import_changed, "new policy applied without a reset");
        if let Ok(ch) = self.rib.reconfigure_peer(s.rib_config(&local)) {
            self.dispatch(ch, now);
        }
        if let Some(e) = self.peers.get_mut(&addr) {
            e.settings = s;
        }
        if import_changed {
            for f in families.into_iter().filter(|f| FAMILIES.contains(f)) {
                self.send_refresh(addr, f, RefreshSubtype::Normal, now);
            }
        }
    }

    fn session_config(&self, s: &PeerSettings) -> SessionConfig {
        let mut c = SessionConfig::new(self.cfg.asn, self.cfg.router_id, s.asn);
        c.hold_time = u16::try_from(s.hold_time.as_secs()).unwrap_or(u16::MAX);
        // 0 means "not set" (what a hold time of 0 resolves to); the FSM caps it at hold / 3.
        c.keepalive = s
            .keepalive
            .filter(|k| k.as_secs() > 0)
            .map(|k| u16::try_from(k.as_secs()).unwrap_or(u16::MAX));
        c.connect_retry = CONNECT_RETRY;
        c.connect_retry_max = CONNECT_RETRY_MAX;
        c.passive = s.passive;
        let families: Vec<AfiSafi> = match s.family {
            Some(f) => vec![f],
            None => FAMILIES.to_vec(),
        };
        c.families = families.clone();
        // Offered to every peer; used only when both sides offer it (RFC 8654).
        c.extended_message = true;
        if s.add_path_receive || s.add_path_send {
            c.add_path = families
                .iter()
                .map(|f| AddPathFamily {
                    afi_safi: *f,
                    receive: s.add_path_receive,
                    send: s.add_path_send,
                })
                .collect();
        }
        c.graceful_restart =
            s.graceful_restart
                .or(self.cfg.graceful_restart)
                .map(|t| GracefulRestart {
                    restarting: self.restarting,
                    notification: false,
                    restart_time: u16::try_from(t.as_secs().min(4095)).unwrap_or(4095),
                    families: families
                        .iter()
                        .map(|f| GracefulRestartFamily {
                            afi_safi: *f,
                            forwarding_preserved: self.restarting,
                        })
                        .collect(),
                });
        c
    }

    fn add_peer(&mut self, s: PeerSettings, now: Instant) -> Result<(), Error> {
        let addr = s.address;
        for (l, _) in &self.listeners {
            if s.password.is_some() {
                conn::listener_md5(l, addr, s.password.as_deref())?;
            }
        }
        if let Err(e) = self.rib.add_peer(s.rib_config(&[])) {
            return Err(Error::Invalid(e.to_string()));
        }
        let mut peer = Peer::new(self.session_config(&s));
        let actions = peer.start(now);
        tracing::info!(peer = %addr, asn = s.asn, passive = s.passive, "peer added");
        self.peers.insert(
            addr,
            PeerEntry {
                settings: s,
                peer,
                conns: HashMap::new(),
                connecting: None,
                gr_deadline: None,
                since: SystemTime::now(),
                last_error: None,
                families: Vec::new(),
                eor: BTreeSet::new(),
                updates_in: 0,
                updates_out: 0,
                local: Vec::new(),
            },
        );
        self.apply(addr, actions, now);
        Ok(())
    }

    /// Cease / Peer De-configured on every connection, then the peer and its routes are gone.
    /// Ends a peer's sessions with `notification` (default: Cease / Peer De-configured) and forgets it.
    fn remove_peer(
        &mut self,
        addr: IpAddr,
        notification: Option<crate::wire::Notification>,
        now: Instant,
    ) {
        let Some(mut e) = self.peers.remove(&addr) else {
            return;
        };
        tracing::info!(peer = %addr, "peer removed");
        if let Some((_, t)) = e.connecting.take() {
            t.abort();
        }
        let n = notification.unwrap_or_else(|| {
            crate::wire::Notification::new(
                crate::wire::code::CEASE,
                crate::wire::code::cease::PEER_DECONFIGURED,
                Vec::new(),
            )
        });
        let msg = crate::wire::Message::Notification(n);
        for (id, h) in e.conns.drain() {
            let codec = e.peer.tx_codec(id);
            if e.peer.session().state().has_connection() || e.peer.extra().is_some() {
                for bytes in super::peers::encode(msg.clone(), &codec) {
                    h.send(bytes);
                }
            }
            h.close();
        }
        if e.settings.password.is_some() {
            for (l, _) in &self.listeners {
                if let Err(err) = conn::listener_md5(l, addr, None) {
                    tracing::warn!(error = %err, "cannot remove an MD5 key");
                }
            }
        }
        if let Ok(ch) = self.rib.remove_peer(addr) {
            self.dispatch(ch, now);
        }
    }

    fn set_local(&mut self, list: Vec<Originated>, now: Instant) -> Result<(), Error> {
        let mut want = BTreeMap::new();
        for o in list {
            let prefix = view::to_prefix(&o.route.prefix)
                .ok_or_else(|| Error::Invalid(format!("bad prefix {}", o.route.prefix)))?;
            if let Some(nh) = o.route.next_hop {
                if nh.is_ipv4() != o.route.prefix.addr().is_ipv4() {
                    return Err(Error::Invalid(format!(
                        "next hop {nh} is not of the family of {}",
                        o.route.prefix
                    )));
                }
            }
            want.insert(prefix, o);
        }
        let gone: Vec<Prefix> = self
            .local
            .keys()
            .filter(|p| !want.contains_key(*p))
            .copied()
            .collect();
        for p in gone {
            self.local.remove(&p);
            let ch = self.rib.withdraw_local(p);
            self.dispatch(ch, now);
        }
        for (p, o) in want {
            if self.local.get(&p) == Some(&o) {
                continue;
            }
            let attrs = PathAttributes {
                communities: o.route.communities.clone(),
                large_communities: o.large.clone(),
                ..PathAttributes::default()
            };
            let nh = o.route.next_hop.map(|ip| match ip {
                IpAddr::V4(a) => NextHop::V4(a),
                IpAddr::V6(global) => NextHop::V6 {
                    global,
                    link_local: None,
                },
            });
            let ch = self.rib.originate_via(p, attrs, nh);
            self.local.insert(p, o);
            self.dispatch(ch, now);
        }
        Ok(())
    }

    async fn shutdown(&mut self, keep_fib: bool) {
        let now = Instant::now();
        // A graceful restart (keep_fib) closes the connections without a NOTIFICATION: RFC 4724 peers
        // then keep our routes for the restart time, as they would after a crash. A real stop tells
        // them why (RFC 8203) and they withdraw at once.
        let addrs: Vec<IpAddr> = if keep_fib {
            Vec::new()
        } else {
            self.peers.keys().copied().collect()
        };
        for addr in &addrs {
            if let Some(e) = self.peers.get_mut(addr) {
                let actions = e.peer.stop("calico-bgp shutting down", now);
                // Only what goes on the wire matters now: the RIB is going away.
                let sends = actions
                    .into_iter()
                    .filter(|a| {
                        matches!(
                            a.action,
                            crate::session::Action::Send(_)
                                | crate::session::Action::CloseConnection
                        )
                    })
                    .collect();
                self.apply(*addr, sends, now);
            }
        }
        let mut closing = Vec::new();
        for e in self.peers.values_mut() {
            if let Some((_, t)) = e.connecting.take() {
                t.abort();
            }
            closing.extend(e.conns.drain().map(|(_, h)| h));
        }
        for h in closing {
            h.close_and_wait().await;
        }
        if let Some(f) = &mut self.fib {
            f.stop(!keep_fib, &self.rib).await;
        }
        self.stopped = true;
        tracing::info!(keep_fib, "BGP speaker stopped");
    }
}

fn validate_peer(p: &PeerSettings) -> Result<(), Error> {
    let bad = |what: String| Err(Error::Invalid(format!("peer {}: {what}", p.address)));
    if p.address.is_unspecified() {
        return bad("the address must not be unspecified".into());
    }
    if p.asn == 0 {
        return bad("AS 0 is not a valid AS".into());
    }
    let hold = p.hold_time.as_secs();
    if hold != 0 && hold < 3 || hold > 65535 {
        return bad(format!("hold time {hold} s (0, or 3 to 65535)"));
    }
    if p.password
        .as_ref()
        .is_some_and(|k| k.len() > super::sys::MAX_KEY_LEN)
    {
        return bad("the MD5 password is longer than 80 bytes".into());
    }
    if let Some(nh) = p
        .other_next_hop
        .filter(|nh| nh.is_ipv4() == p.address.is_ipv4())
    {
        return bad(format!(
            "other-next-hop {nh} is of the session's own family (it is for the other family's routes)"
        ));
    }
    if p.local_address
        .is_some_and(|l| l.is_ipv4() != p.address.is_ipv4())
    {
        return bad("the local address is of another family".into());
    }
    Ok(())
}

/// Whether `new` differs from `old` only in what [`Core::change_policy`] applies to a running session.
fn policy_only(old: &PeerSettings, new: &PeerSettings) -> bool {
    let base = |s: &PeerSettings| PeerSettings {
        policy: crate::rib::Policy::default(),
        next_hop_self: false,
        description: String::new(),
        ..s.clone()
    };
    base(old) == base(new)
}
