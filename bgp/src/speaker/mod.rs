//! The BGP speaker's runtime: the sans-IO session FSMs and RIB driven by tokio, with TCP, timers and the
//! kernel FIB at the edges. This is what calico-node embeds and what the `calico-bgp` daemon runs.
//!
//! Role: own one [`crate::rib::Rib`], one [`crate::session::Peer`] per configured neighbour, the listening
//! sockets and the FIB task; apply declarative peer and local-route sets; answer status and route queries.
//! Inputs: [`SpeakerConfig`] at start, then [`Speaker::set_peers`], [`Speaker::set_local_routes`],
//! [`Speaker::shutdown`]; TCP connections and bytes from peers; the clock.
//! Outputs: BGP messages to peers, learned best routes (and ECMP sets) in the kernel's table, and
//! [`PeerStatus`] / [`RouteEntry`] views.
//!
//! Layout: this file holds the public types and the [`Speaker`] handle; `core` is the single task that
//! owns all state (one input queue, no locks); `peers` handles each peer's session actions; `conn`
//! owns sockets (listen, connect, read and write tasks, MD5 and TTL options, with `sys` for the one raw
//! syscall); `fibtask` keeps the kernel in step on a blocking thread; `view` turns the RIB into
//! [`RouteEntry`]s; `control` serves the daemon's unix control socket; `metrics` its Prometheus text;
//! `config` and `spec` parse the daemon's file and flags.
//!
//! Behaviour: locally originated routes are announced with ORIGIN IGP and next-hop-self (unless a next
//! hop is given) and never installed in the kernel by the speaker; graceful restart (RFC 4724) is
//! supported in both roles; connections from unconfigured addresses are refused.

pub mod config;
mod conn;
pub mod control;
mod core;
mod fibtask;
mod held;
pub mod metrics;
mod peers;
pub mod spec;
pub mod sys;
#[cfg(test)]
mod tests;
mod v4map;
mod view;
mod waiting;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

pub use crate::wire::{AfiSafi, LargeCommunity};
pub use view::{RouteEntry, RoutePath};

/// The default BGP port.
pub const BGP_PORT: u16 = 179;

/// The speaker's own settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// Our AS.
    pub asn: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Our route-reflection cluster id (RFC 4456): reflectors that serve the same clients share one.
    /// `None`: the router id.
    pub cluster_id: Option<Ipv4Addr>,
    /// Addresses to listen on (port 179 by convention; port 0 picks a free one).
    pub listen: Vec<SocketAddr>,
    /// Program learned routes into the kernel; `None` keeps them in the RIB only.
    pub fib: Option<FibSettings>,
    /// The maximum number of paths in an ECMP set (1: no ECMP).
    pub ecmp: usize,
    /// Our graceful restart time, advertised to peers; also how long routes a previous run left in the
    /// kernel are kept at start while peers re-send theirs. `None`: no graceful restart, a clean kernel.
    pub graceful_restart: Option<Duration>,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        SpeakerConfig {
            asn: 0,
            router_id: Ipv4Addr::UNSPECIFIED,
            cluster_id: None,
            listen: vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), BGP_PORT),
                SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), BGP_PORT),
            ],
            fib: Some(FibSettings::default()),
            ecmp: 1,
            graceful_restart: None,
        }
    }
}

/// Where learned routes go in the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FibSettings {
    /// The routing table (254: main).
    pub table: u32,
    /// The route protocol number marking our routes (186 by default; never Felix's 80).
    pub protocol: u8,
    /// How often our routes are read back from the kernel and what someone else deleted or changed is
    /// restored (`None`: never).
    pub scan: Option<std::time::Duration>,
}

/// The default [`FibSettings::scan`] interval, in seconds.
pub const DEFAULT_FIB_SCAN: u64 = 30;

impl Default for FibSettings {
    fn default() -> Self {
        FibSettings {
            table: crate::fib::DEFAULT_TABLE,
            protocol: crate::fib::DEFAULT_PROTOCOL,
            scan: Some(std::time::Duration::from_secs(DEFAULT_FIB_SCAN)),
        }
    }
}

/// One configured neighbour.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PeerSettings {
    /// Its address (the key: one session per address).
    pub address: IpAddr,
    /// Its AS (ours: iBGP).
    pub asn: u32,
    /// Only accept its connections; never dial it.
    pub passive: bool,
    /// TCP MD5 signature key (RFC 2385).
    pub password: Option<String>,
    /// A route-reflector client of ours (iBGP).
    pub rr_client: bool,
    /// The hold time we propose.
    pub hold_time: Duration,
    /// The longest keepalive interval: keepalives go every min(this, negotiated hold time / 3).
    /// `None`: every third of the negotiated hold time.
    pub keepalive: Option<Duration>,
    /// eBGP multihop: the TTL of our packets.
    pub multihop: Option<u8>,
    /// Our restart time advertised to this peer (overrides the speaker's).
    pub graceful_restart: Option<Duration>,
    /// The address our connections to it come from.
    pub local_address: Option<IpAddr>,
    /// The port we connect to (179 unless it listens elsewhere).
    pub port: u16,
    /// Free text for status.
    pub description: String,
    /// Offer only this address family (multiprotocol and graceful-restart capabilities); `None`: IPv4 and
    /// IPv6 unicast. calico-node gives each node-to-node session its own address's family, as Calico ran
    /// one BIRD per family.
    pub family: Option<AfiSafi>,
    /// Announce our own address as the next hop of every route sent to it (implied for eBGP; for iBGP
    /// it replaces the next hop learnt from an eBGP peer).
    pub next_hop_self: bool,
    /// Import and export rules, and the max-prefix limit (none: accept everything, no limit).
    pub policy: crate::rib::Policy,
    /// GTSM (RFC 5082): our packets go with TTL 255 and the peer's must arrive with at least 255 minus
    /// the hops between us (`multihop`, default 1) plus one, so a forger further away cannot reach the
    /// session.
    pub ttl_security: bool,
    /// The next hop we announce for the family other than the session's (IPv6 routes over an IPv4
    /// session, or IPv4 over IPv6); `None`: an address of that family on the interface that holds the
    /// session's local address.
    pub other_next_hop: Option<IpAddr>,
    /// ADD-PATH (RFC 7911): offer to receive several paths per prefix from it.
    pub add_path_receive: bool,
    /// ADD-PATH: offer to send it several paths per prefix (the best and the other usable ones).
    pub add_path_send: bool,
}

impl PeerSettings {
    /// The lowest TTL its packets may arrive with under GTSM (`None`: no check).
    pub(crate) fn min_ttl(&self) -> Option<u8> {
        let hops = u16::from(self.multihop.unwrap_or(1).max(1));
        self.ttl_security
            .then(|| u8::try_from(256 - hops).unwrap_or(u8::MAX))
    }

    /// The RIB's configuration of this peer, with `local` our addresses towards it (the session's, and
    /// one of the other family if known).
    pub(crate) fn rib_config(&self, local: &[IpAddr]) -> crate::rib::PeerConfig {
        let mut pc = crate::rib::PeerConfig::new(self.address, self.asn, self.address)
            .with_policy(self.policy.clone());
        pc.rr_client = self.rr_client;
        pc.next_hop_self = self.next_hop_self;
        pc.local_v4 = None;
        pc.local_v6 = None;
        for ip in local {
            match ip {
                IpAddr::V4(a) => pc.local_v4 = pc.local_v4.or(Some(*a)),
                IpAddr::V6(a) => pc.local_v6 = pc.local_v6.or(Some(*a)),
            }
        }
        pc
    }
}

impl Default for PeerSettings {
    fn default() -> Self {
        PeerSettings {
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            asn: 0,
            passive: false,
            password: None,
            rr_client: false,
            hold_time: Duration::from_secs(90),
            keepalive: None,
            multihop: None,
            graceful_restart: None,
            local_address: None,
            port: BGP_PORT,
            description: String::new(),
            family: None,
            next_hop_self: false,
            policy: crate::rib::Policy::default(),
            ttl_security: false,
            other_next_hop: None,
            add_path_receive: false,
            add_path_send: false,
        }
    }
}

/// A route we originate.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LocalRoute {
    /// The prefix.
    pub prefix: ipnet::IpNet,
    /// The next hop to announce; `None`: our address towards each peer (next-hop-self).
    pub next_hop: Option<IpAddr>,
    /// Standard communities (RFC 1997) as `(AS << 16) | value`.
    pub communities: Vec<u32>,
}

/// One peer's session, for `calico-bgp status`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PeerStatus {
    /// The peer's address.
    pub address: IpAddr,
    /// Its AS.
    pub asn: u32,
    /// Its description.
    pub description: String,
    /// "Idle", "Connect", "Active", "OpenSent", "OpenConfirm" or "Established".
    pub state: String,
    /// When the state last changed between Established and not.
    pub since: SystemTime,
    /// Routes the peer announces to us (accepted or not).
    pub routes_received: u64,
    /// Routes accepted into the RIB.
    pub routes_accepted: u64,
    /// Routes we announce to it.
    pub routes_advertised: u64,
    /// Why the last session ended, or the last connection error.
    pub last_error: Option<String>,
}

/// Errors of the speaker's API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listening socket could not be set up.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The kernel FIB could not be opened or read.
    #[error("kernel FIB: {0}")]
    Fib(#[from] calico_netlink::Error),
    /// A configuration value is invalid (nothing was changed).
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A socket option failed.
    #[error("socket option {what} for {peer}: {source}")]
    SocketOption {
        what: &'static str,
        peer: IpAddr,
        source: std::io::Error,
    },
    /// The speaker has shut down.
    #[error("the speaker is shut down")]
    Stopped,
    /// The control socket.
    #[error("control socket {path}: {source}")]
    Control {
        path: String,
        source: std::io::Error,
    },
}

/// A request to the core task.
pub(crate) enum Request {
    SetPeers(Vec<PeerSettings>, oneshot::Sender<Result<(), Error>>),
    SetLocal(Vec<core::Originated>, oneshot::Sender<Result<(), Error>>),
    Status(oneshot::Sender<Vec<PeerStatus>>),
    Routes(oneshot::Sender<Vec<RouteEntry>>),
    Metrics(oneshot::Sender<metrics::SpeakerMetrics>),
    Shutdown {
        keep_fib: bool,
        done: oneshot::Sender<()>,
    },
}

/// A cheap handle on a running speaker; clones share it.
#[derive(Clone)]
pub struct Speaker {
    tx: mpsc::UnboundedSender<core::Input>,
    local: Arc<Vec<SocketAddr>>,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker")
            .field("local", &self.local)
            .finish()
    }
}

impl Speaker {
    /// Binds every listen address, opens the kernel FIB (adopting our routes a previous run left) and
    /// starts the speaker's tasks. Must be called inside a tokio runtime.
    pub async fn start(config: SpeakerConfig) -> Result<Speaker, Error> {
        let (tx, local) = core::start(config).await?;
        Ok(Speaker {
            tx,
            local: Arc::new(local),
        })
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(core::Input::Request(make(reply)))
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Declares the whole set of peers: new ones are started, gone ones stopped (Cease / Peer
    /// De-configured), changed ones re-created; unchanged sessions are not touched.
    pub async fn set_peers(&self, peers: Vec<PeerSettings>) -> Result<(), Error> {
        self.ask(|r| Request::SetPeers(peers, r)).await?
    }

    /// Declares the whole set of locally originated routes; the difference is announced or withdrawn.
    pub async fn set_local_routes(&self, routes: Vec<LocalRoute>) -> Result<(), Error> {
        self.set_local_routes_with_large(routes.into_iter().map(|r| (r, Vec::new())).collect())
            .await
    }

    /// Like [`Speaker::set_local_routes`], each route with large communities (RFC 8092) too.
    pub async fn set_local_routes_with_large(
        &self,
        routes: Vec<(LocalRoute, Vec<LargeCommunity>)>,
    ) -> Result<(), Error> {
        let list = routes
            .into_iter()
            .map(|(route, large)| core::Originated { route, large })
            .collect();
        self.ask(|r| Request::SetLocal(list, r)).await?
    }

    /// Every configured peer's session.
    pub async fn status(&self) -> Vec<PeerStatus> {
        self.ask(Request::Status).await.unwrap_or_default()
    }

    /// The Loc-RIB with best and ECMP marks.
    pub async fn routes(&self) -> Vec<RouteEntry> {
        self.ask(Request::Routes).await.unwrap_or_default()
    }

    /// Counters and gauges for the Prometheus metrics.
    pub async fn metrics(&self) -> metrics::SpeakerMetrics {
        self.ask(Request::Metrics).await.unwrap_or_default()
    }

    /// The addresses the speaker listens on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.local.as_ref().clone()
    }

    /// Stops the speaker. Without `keep_fib`: every session ends with Cease / Administrative Shutdown
    /// and our routes leave the kernel. With `keep_fib` (a graceful restart): the connections just
    /// close, so peers that negotiated graceful restart keep our routes, and ours stay in the kernel.
    pub async fn shutdown(self, keep_fib: bool) {
        let _ = self.ask(|done| Request::Shutdown { keep_fib, done }).await;
    }
}
