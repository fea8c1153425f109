//! Read-only views of the RIB for `calico-bgp routes` and `status`, and a memory estimate.
//!
//! Role: list the Loc-RIB with best/ECMP marks, a peer's Adj-RIB-In and Adj-RIB-Out, and its counters.
//! Inputs: a [`Rib`]. Outputs: owned view structs, sorted by prefix.

use std::mem::size_of;
use std::net::IpAddr;
use std::sync::Arc;

use super::dest::{Dest, Paths};
use super::loc::table_bytes;
use super::peer::Counters;
use super::table::Rib;
use super::{RibError, RouteAttrs, Source};
use crate::wire::{NextHop, Prefix};

/// One path of a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathView {
    /// Where it came from.
    pub source: Source,
    /// The ADD-PATH id it was received with (0 without).
    pub path_id: u32,
    /// Its attributes and next hop.
    pub attrs: Arc<RouteAttrs>,
    /// The best path.
    pub best: bool,
    /// In the multipath (ECMP) set (the best path included).
    pub multipath: bool,
    /// Kept through a peer's graceful restart.
    pub stale: bool,
}

/// One route of an Adj-RIB-In or Adj-RIB-Out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjEntry {
    /// The prefix.
    pub prefix: Prefix,
    /// The ADD-PATH path id (0 without).
    pub path_id: u32,
    /// The attributes and next hop.
    pub attrs: Arc<RouteAttrs>,
    /// Kept through a graceful restart (Adj-RIB-In only).
    pub stale: bool,
}

/// One prefix of the Loc-RIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    /// The prefix.
    pub prefix: Prefix,
    /// Its paths, best first, then the rest of the multipath set, then the others.
    pub paths: Vec<PathView>,
}

impl RouteView {
    /// The best path.
    pub fn best(&self) -> Option<&PathView> {
        self.paths.first().filter(|p| p.best)
    }

    /// The next hops of the multipath set.
    pub fn next_hops(&self) -> Vec<NextHop> {
        self.paths
            .iter()
            .filter(|p| p.multipath)
            .filter_map(|p| p.attrs.next_hop)
            .collect()
    }
}

impl Rib {
    fn view(&self, prefix: &Prefix, dest: &Dest) -> RouteView {
        RouteView {
            prefix: *prefix,
            paths: dest
                .paths
                .iter()
                .enumerate()
                .map(|(i, p)| PathView {
                    source: self.source(p),
                    path_id: p.path_id,
                    attrs: Arc::clone(&p.attrs),
                    best: i == 0 && dest.selected > 0,
                    multipath: i < dest.selected as usize,
                    stale: p.stale,
                })
                .collect(),
        }
    }

    /// The whole Loc-RIB, sorted by prefix.
    pub fn routes(&self) -> Vec<RouteView> {
        let mut v: Vec<RouteView> = self.loc.iter().map(|(p, d)| self.view(&p, d)).collect();
        v.sort_by_key(|r| r.prefix);
        v
    }

    /// One prefix of the Loc-RIB.
    pub fn route(&self, prefix: &Prefix) -> Option<RouteView> {
        self.loc.get(prefix).map(|d| self.view(prefix, d))
    }

    /// The number of prefixes in the Loc-RIB.
    pub fn len(&self) -> usize {
        self.loc.len()
    }

    /// Whether the Loc-RIB is empty.
    pub fn is_empty(&self) -> bool {
        self.loc.is_empty()
    }

    /// A peer's counters.
    pub fn counters(&self, peer: IpAddr) -> Result<Counters, RibError> {
        let p = self.peers.get(&peer).ok_or(RibError::UnknownPeer(peer))?;
        Ok(Counters {
            received: p.accepted + p.filtered.len(),
            accepted: p.accepted,
            advertised: p.adj_out.paths(),
            stale: p.stale,
        })
    }

    /// What a peer sent us (after import policy), sorted by prefix and path id: its paths in the Loc-RIB.
    pub fn adj_rib_in(&self, peer: IpAddr) -> Result<Vec<AdjEntry>, RibError> {
        let slot = self
            .peers
            .get(&peer)
            .ok_or(RibError::UnknownPeer(peer))?
            .slot;
        let mut v: Vec<AdjEntry> = Vec::with_capacity(self.peers[&peer].accepted);
        for (prefix, dest) in self.loc.iter() {
            v.extend(
                dest.paths
                    .iter()
                    .filter(|p| p.peer == slot)
                    .map(|p| AdjEntry {
                        prefix,
                        path_id: p.path_id,
                        attrs: Arc::clone(&p.attrs),
                        stale: p.stale,
                    }),
            );
        }
        v.sort_by_key(|e| (e.prefix, e.path_id));
        Ok(v)
    }

    /// What we advertise to a peer, sorted by prefix and path id (ours, with ADD-PATH; 0 without).
    pub fn adj_rib_out(&self, peer: IpAddr) -> Result<Vec<AdjEntry>, RibError> {
        let p = self.peers.get(&peer).ok_or(RibError::UnknownPeer(peer))?;
        let mut v: Vec<AdjEntry> = p
            .adj_out
            .iter()
            .flat_map(|(prefix, paths)| {
                paths.iter().map(move |(id, a)| AdjEntry {
                    prefix,
                    path_id: id,
                    attrs: Arc::clone(a),
                    stale: false,
                })
            })
            .collect();
        v.sort_by_key(|e| (e.prefix, e.path_id));
        Ok(v)
    }

    /// The number of distinct attribute sets held.
    pub fn attribute_sets(&self) -> usize {
        self.table.len()
    }

    /// An estimate of the heap bytes used by the tables: hash tables by bucket (entry + control byte, at their
    /// capacity), the path slices of prefixes with several paths, Adj-RIB-Out slices (ADD-PATH) and the interned
    /// attribute sets.
    pub fn memory_estimate(&self) -> usize {
        let loc = self.loc.table_bytes()
            + self
                .loc
                .values()
                .map(|d| Paths::heap_bytes(&d.paths))
                .sum::<usize>()
            + self.slots.capacity() * size_of::<Option<IpAddr>>();
        let peers: usize = self
            .peers
            .values()
            .map(|p| {
                table_bytes(p.filtered.capacity(), size_of::<(Prefix, u32)>())
                    + p.adj_out.heap_bytes()
            })
            .sum();
        loc + peers + self.table.heap_bytes()
    }
}
