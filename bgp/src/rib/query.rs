//! Read-only views of the RIB for `calico-bgp routes` and `status`, and a memory estimate.
//!
//! Role: list the Loc-RIB with best/ECMP marks, a peer's Adj-RIB-In and Adj-RIB-Out, and its counters.
//! Inputs: a [`Rib`]. Outputs: owned view structs, sorted by prefix.

use std::mem::size_of;
use std::net::IpAddr;
use std::sync::Arc;

use super::peer::Counters;
use super::table::{Dest, InEntry, Path, Rib};
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
        let stale = |p: &Path| match p.source {
            Source::Local => false,
            Source::Peer(a) => self
                .peers
                .get(&a)
                .and_then(|s| s.adj_in.get(&(*prefix, p.path_id)))
                .is_some_and(|e: &InEntry| e.stale),
        };
        RouteView {
            prefix: *prefix,
            paths: dest
                .paths
                .iter()
                .enumerate()
                .map(|(i, p)| PathView {
                    source: p.source,
                    path_id: p.path_id,
                    attrs: Arc::clone(&p.attrs),
                    best: i == 0 && dest.selected > 0,
                    multipath: i < dest.selected as usize,
                    stale: stale(p),
                })
                .collect(),
        }
    }

    /// The whole Loc-RIB, sorted by prefix.
    pub fn routes(&self) -> Vec<RouteView> {
        let mut v: Vec<RouteView> = self.loc.iter().map(|(p, d)| self.view(p, d)).collect();
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
            received: p.adj_in.len() + p.filtered.len(),
            accepted: p.adj_in.len(),
            advertised: p.adj_out.values().map(Vec::len).sum(),
            stale: p.stale,
        })
    }

    /// What a peer sent us (after import policy), sorted by prefix and path id.
    pub fn adj_rib_in(&self, peer: IpAddr) -> Result<Vec<AdjEntry>, RibError> {
        let p = self.peers.get(&peer).ok_or(RibError::UnknownPeer(peer))?;
        let mut v: Vec<AdjEntry> = p
            .adj_in
            .iter()
            .map(|(k, e)| AdjEntry {
                prefix: k.0,
                path_id: k.1,
                attrs: Arc::clone(&e.attrs),
                stale: e.stale,
            })
            .collect();
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
                paths.iter().map(|(id, a)| AdjEntry {
                    prefix: *prefix,
                    path_id: *id,
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

    /// An estimate of the heap bytes used by the tables: hash table buckets (entry + 1 control byte, by
    /// capacity), per-prefix path vectors, Adj-RIB-Out vectors and the interned attribute sets.
    pub fn memory_estimate(&self) -> usize {
        let loc = self.loc.capacity() * (size_of::<(Prefix, Dest)>() + 1)
            + self
                .loc
                .values()
                .map(|d| d.paths.capacity() * size_of::<Path>())
                .sum::<usize>();
        let peers: usize = self
            .peers
            .values()
            .map(|p| {
                p.adj_in.capacity() * (size_of::<((Prefix, u32), InEntry)>() + 1)
                    + p.filtered.capacity() * (size_of::<(Prefix, u32)>() + 1)
                    + p.adj_out.capacity()
                        * (size_of::<(Prefix, Vec<(u32, Arc<RouteAttrs>)>)>() + 1)
                    + p.adj_out
                        .values()
                        .map(|v| v.capacity() * size_of::<(u32, Arc<RouteAttrs>)>())
                        .sum::<usize>()
            })
            .sum();
        loc + peers + self.table.heap_bytes()
    }
}
