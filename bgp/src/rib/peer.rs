//! What the RIB knows about itself and its peers.
//!
//! Role: our AS, router id, cluster id and ECMP count ([`RibConfig`]); each peer's configured properties
//! ([`PeerConfig`]: address, AS, route-reflector client, next-hop-self, local addresses, policy); the facts its
//! established session settled ([`PeerSession`]: BGP id, 4-octet AS, ADD-PATH send families); and its counters.
//! Inputs: configuration from the owner, [`crate::session::Negotiated`] at session up.
//! Outputs: plain data read by the decision process and export.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::policy::Policy;
use crate::session::Negotiated;
use crate::wire::AfiSafi;

/// The speaker's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Our route-reflection cluster id; the router id when `None` (RFC 4456 §7).
    pub cluster_id: Option<Ipv4Addr>,
    /// The maximum number of paths in a multipath (ECMP) set; 1 disables ECMP.
    pub ecmp: usize,
    /// Let eBGP paths from different neighbour ASes (equal up to step e) share the multipath set.
    pub ecmp_relax: bool,
}

impl RibConfig {
    /// A configuration with no ECMP and the router id as cluster id.
    pub fn new(local_as: u32, router_id: Ipv4Addr) -> Self {
        RibConfig {
            local_as,
            router_id,
            cluster_id: None,
            ecmp: 1,
            ecmp_relax: false,
        }
    }

    /// The cluster id in force.
    pub fn cluster_id(&self) -> Ipv4Addr {
        self.cluster_id.unwrap_or(self.router_id)
    }
}

/// A configured peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's address (its key).
    pub address: IpAddr,
    /// Its AS: equal to ours for iBGP.
    pub asn: u32,
    /// A route-reflector client of ours (iBGP only).
    pub rr_client: bool,
    /// Set the next hop to our address on routes sent to it (implied for eBGP).
    pub next_hop_self: bool,
    /// Our IPv4 address towards it (the next hop we announce for IPv4 routes).
    pub local_v4: Option<Ipv4Addr>,
    /// Our IPv6 address towards it (the next hop we announce for IPv6 routes).
    pub local_v6: Option<Ipv6Addr>,
    /// Import and export policy, max-prefix.
    pub policy: Policy,
}

impl PeerConfig {
    /// A peer with no policy, our session address `local` (filling `local_v4` or `local_v6`).
    pub fn new(address: IpAddr, asn: u32, local: IpAddr) -> Self {
        let (local_v4, local_v6) = match local {
            IpAddr::V4(a) => (Some(a), None),
            IpAddr::V6(a) => (None, Some(a)),
        };
        PeerConfig {
            address,
            asn,
            rr_client: false,
            next_hop_self: false,
            local_v4,
            local_v6,
            policy: Policy::default(),
        }
    }

    /// Make it a route-reflector client.
    pub fn rr_client(mut self) -> Self {
        self.rr_client = true;
        self
    }

    /// Set its policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }
}

/// What an established session settled, for the RIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSession {
    /// The peer's BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Both sides speak 4-octet AS (otherwise AS4_PATH/AS4_AGGREGATOR are merged and generated).
    pub four_byte_as: bool,
    /// Families we send with ADD-PATH path identifiers (every eligible path is advertised).
    pub add_path_send: Vec<AfiSafi>,
    /// The families negotiated.
    pub families: Vec<AfiSafi>,
}

impl PeerSession {
    /// A plain IPv4 + IPv6 unicast session with 4-octet AS and no ADD-PATH.
    pub fn new(bgp_id: Ipv4Addr) -> Self {
        PeerSession {
            bgp_id,
            four_byte_as: true,
            add_path_send: Vec::new(),
            families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
        }
    }

    /// The facts of a negotiated session.
    pub fn from_negotiated(n: &Negotiated) -> Self {
        PeerSession {
            bgp_id: n.peer_open.bgp_id,
            four_byte_as: n.tx.four_byte_as,
            add_path_send: n.tx.add_path.clone(),
            families: n.families.clone(),
        }
    }
}

/// Per-peer route counters for `calico-bgp status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Routes the peer currently has announced to us (accepted plus filtered by import policy).
    pub received: usize,
    /// Routes accepted by import policy (the Adj-RIB-In size), stale ones included.
    pub accepted: usize,
    /// Routes we currently advertise to it (the Adj-RIB-Out size).
    pub advertised: usize,
    /// Of the accepted, how many are stale (graceful restart).
    pub stale: usize,
}
