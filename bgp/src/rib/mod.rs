//! The RIBs, the decision process and export: pure, no I/O.
//!
//! Role: hold what every peer sent (Adj-RIB-In, after import policy: the paths of the Loc-RIB), pick the best
//! path and the ECMP set of every prefix (Loc-RIB, RFC 4271 §9.1 with RFC 4456 tie-breaks), and compute what
//! each peer must be sent
//! (Adj-RIB-Out, RFC 4271 §9.2 with route reflection, communities, AS4 translation and per-peer policy).
//!
//! Inputs (methods of [`Rib`]): peers added and removed with their [`PeerConfig`], sessions going up
//! ([`PeerSession`]) and down (gracefully or not), UPDATEs and treat-as-withdraw lists from the session,
//! End-of-RIB markers, route refresh requests, the graceful restart timer expiring, and locally originated
//! routes (`originate` / `withdraw_local`).
//! Outputs: every input returns [`Changes`]: FIB changes (prefix → next hops, or removed), per-peer updates
//! grouped by interned attribute set, and events the owner acts on (max-prefix). Query methods serve
//! `calico-bgp routes` and `status` ([`Rib::routes`], [`Rib::counters`]).
//!
//! Layout: `intern` (the attribute table), `hash` (a fast hasher for the tables), `peer` (configuration and
//! session facts), `decision` (§9.1), `policy` (filters and actions), `as4` (RFC 6793 §4.2), `dest` (one
//! prefix's paths, compactly), `table` (the [`Rib`] and its inputs), `export` (what each peer gets), `query`
//! (read-only views).
//!
//! Memory: attribute sets are interned ([`intern::AttrTable`]) and an accepted route is held once, as a Loc-RIB
//! path stored inline in its hash table entry (`loc`, `dest`), so an IPv4 prefix with one path costs one 32-byte
//! entry that also holds its key (about 43 bytes with the table's control bytes and spare capacity; IPv6 56 and
//! about 75), plus about 64 per peer it is advertised to (its Adj-RIB-Out entry, which holds one path inline).
//! The owner's duties: send End-of-RIB after a session's initial export, tear a session down on
//! [`RibEvent::MaxPrefixExceeded`] with [`MaxPrefixAction::TearDown`], and run the restart timer of
//! [`Rib::peer_down`] with `graceful`.

mod adjout;
pub mod as4;
pub mod decision;
mod dest;
mod export;
pub mod hash;
pub mod intern;
mod loc;
pub mod peer;
pub mod policy;
mod query;
mod table;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::wire::{AfiSafi, MpReach, NextHop, Nlri, PathAttributes, Prefix, Update};

pub use decision::{Candidate, Selection};
pub use peer::{Counters, PeerConfig, PeerSession, RibConfig};
pub use policy::{Match, MaxPrefix, MaxPrefixAction, Modify, Policy, PrefixRange, Rule, Verdict};
pub use query::{AdjEntry, PathView, RouteView};
pub use table::Rib;

/// Where a path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Originated here through [`Rib::originate`].
    Local,
    /// Learned from the peer at this address.
    Peer(IpAddr),
}

/// The interned unit: a route's path attributes and its next hop.
///
/// `attrs.next_hop` is always `None` inside the RIB: the next hop of every family lives in `next_hop`, so that
/// IPv4 routes from the NLRI field and from MP_REACH_NLRI share one representation. `next_hop` is `None` only
/// for locally originated routes without an explicit next hop ("self": the session's local address on export).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    /// The path attributes (NEXT_HOP cleared).
    pub attrs: PathAttributes,
    /// The next hop.
    pub next_hop: Option<NextHop>,
}

impl RouteAttrs {
    /// Attributes with no next hop.
    pub fn new(attrs: PathAttributes) -> Self {
        RouteAttrs {
            attrs,
            next_hop: None,
        }
    }

    /// Heap bytes owned by the attribute set (an estimate from vector capacities).
    pub fn heap_bytes(&self) -> usize {
        let a = &self.attrs;
        let path = |p: &Option<crate::wire::AsPath>| {
            p.as_ref().map_or(0, |p| {
                p.segments.capacity() * std::mem::size_of::<crate::wire::AsSegment>()
                    + p.segments
                        .iter()
                        .map(|s| s.asns.capacity() * 4)
                        .sum::<usize>()
            })
        };
        std::mem::size_of::<Self>()
            + 16 // the Arc's counters
            + path(&a.as_path)
            + path(&a.as4_path)
            + a.communities.capacity() * 4
            + a.cluster_list.capacity() * 4
            + a.large_communities.capacity() * 12
            + a.unknown.iter().map(|u| u.value.capacity() + 32).sum::<usize>()
    }
}

/// A change for the kernel FIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibChange {
    /// Install (or replace) the route: the best path's next hop, then the other ECMP next hops.
    Install {
        /// The prefix.
        prefix: Prefix,
        /// One next hop per path of the multipath set, best first, without duplicates.
        next_hops: Vec<NextHop>,
    },
    /// The prefix has no usable learned route any more (none at all, or the best one is local).
    Remove {
        /// The prefix.
        prefix: Prefix,
    },
}

/// What to send a peer for one family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyUpdates {
    /// Announcements grouped by attribute set: one UPDATE (or several, split by size) per group.
    pub announce: Vec<(Arc<RouteAttrs>, Vec<Nlri>)>,
    /// Withdrawals.
    pub withdraw: Vec<Nlri>,
}

impl FamilyUpdates {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }

    /// The number of prefixes announced.
    pub fn announced(&self) -> usize {
        self.announce.iter().map(|(_, n)| n.len()).sum()
    }
}

/// What to send one peer, per family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerUpdates {
    /// Per family.
    pub families: BTreeMap<AfiSafi, FamilyUpdates>,
}

impl PeerUpdates {
    /// The wire UPDATEs: one withdrawal UPDATE per family with withdrawals, one UPDATE per attribute group
    /// (IPv4 with an IPv4 next hop in the NLRI field, everything else in MP_REACH_NLRI). Cutting UPDATEs
    /// that exceed the message size is the encoder's job ([`Update::into_fitting`]).
    pub fn to_updates(&self) -> Vec<Update> {
        self.clone().into_updates()
    }

    /// [`PeerUpdates::to_updates`], consuming the updates (no prefix list is copied).
    pub fn into_updates(self) -> Vec<Update> {
        let mut out = Vec::new();
        for (family, f) in self.families {
            if !f.withdraw.is_empty() {
                out.push(if family == AfiSafi::IPV4_UNICAST {
                    Update {
                        withdrawn: f.withdraw,
                        ..Update::default()
                    }
                } else {
                    Update {
                        mp_unreach: Some(crate::wire::MpUnreach {
                            afi_safi: family,
                            withdrawn: f.withdraw,
                        }),
                        ..Update::default()
                    }
                });
            }
            for (ra, nlri) in f.announce {
                let mut attributes = ra.attrs.clone();
                match ra.next_hop {
                    Some(NextHop::V4(nh)) if family == AfiSafi::IPV4_UNICAST => {
                        attributes.next_hop = Some(nh);
                        out.push(Update {
                            attributes,
                            nlri,
                            ..Update::default()
                        });
                    }
                    Some(next_hop) => out.push(Update {
                        attributes,
                        mp_reach: Some(MpReach {
                            afi_safi: family,
                            next_hop,
                            nlri,
                        }),
                        ..Update::default()
                    }),
                    // Export always resolves "self"; an unresolved next hop is never handed out.
                    None => {}
                }
            }
        }
        out
    }
}

/// Something the owner must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RibEvent {
    /// A peer sent more prefixes than its limit allows (reported once each time the limit is crossed).
    MaxPrefixExceeded {
        /// The peer.
        peer: IpAddr,
        /// The limit.
        limit: usize,
        /// Its accepted prefix count now.
        count: usize,
        /// Warn only, or tear the session down (the owner stops it and then calls [`Rib::peer_down`]).
        action: MaxPrefixAction,
    },
}

/// The result of one input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Loc-RIB best/multipath changes for the FIB, in the order they happened.
    pub fib: Vec<FibChange>,
    /// What to send each peer.
    pub peers: BTreeMap<IpAddr, PeerUpdates>,
    /// Events.
    pub events: Vec<RibEvent>,
}

impl Changes {
    /// The updates for one peer, if any.
    pub fn peer(&self, addr: IpAddr) -> Option<&PeerUpdates> {
        self.peers.get(&addr)
    }
}

/// Errors of the RIB API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RibError {
    /// No peer with this address was added.
    #[error("unknown peer {0}")]
    UnknownPeer(IpAddr),
    /// A peer with this address exists already.
    #[error("peer {0} exists already")]
    DuplicatePeer(IpAddr),
    /// The peer's session is not up.
    #[error("peer {0} has no established session")]
    PeerDown(IpAddr),
    /// A reconfiguration tried to change the peer's AS.
    #[error("peer {0}: changing the AS needs the peer removed and added again")]
    AsChanged(IpAddr),
}
