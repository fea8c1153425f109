//! The decision process of RFC 4271 §9.1.2.2 (with RFC 4456 §9 tie-breaks) and the ECMP set.
//!
//! Role: from the candidate paths of one prefix, pick the best and the multipath set. Pure.
//! Inputs: [`Candidate`]s (the facts each step needs, extracted from the path and its peer) and the ECMP count.
//! Outputs: a [`Selection`]: indices into the candidates, best first.
//!
//! Steps, each removing candidates: (a) highest degree of preference (LOCAL_PREF; eBGP routes got 100 on
//! import), (b) shortest AS_PATH (AS_SET counts 1, confederation segments 0), (c) lowest ORIGIN, (d) a route is
//! removed when another from the same neighbour AS has a lower MED (missing MED = 0), (e) locally originated
//! over eBGP-learned over iBGP-learned, (f) IGP cost to the next hop: skipped (next hops are on-link or resolved
//! by the kernel; no IGP here). The survivors are then ordered by (g) lowest router id (ORIGINATOR_ID when
//! present), (h) shortest CLUSTER_LIST, (i) lowest peer address, and finally the ADD-PATH path id.
//!
//! ECMP rule: the multipath set is the best path plus the other survivors of steps (a)–(e) in the order above,
//! up to the ECMP count; for eBGP only those whose neighbour AS equals the best path's (like BIRD and FRR
//! without "multipath relax", which [`crate::rib::RibConfig::ecmp_relax`] turns on); iBGP survivors all
//! qualify; a local best path is never combined.

use std::net::{IpAddr, Ipv4Addr};

use super::RouteAttrs;
use crate::wire::Origin;

/// How a path was learned (step e's ranking: lower wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathKind {
    /// Locally originated.
    Local,
    /// From an eBGP peer.
    Ebgp,
    /// From an iBGP peer.
    Ibgp,
}

/// What the decision process needs to know about one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// LOCAL_PREF (100 when absent).
    pub local_pref: u32,
    /// AS_PATH length for selection.
    pub as_path_len: usize,
    /// ORIGIN (INCOMPLETE when absent).
    pub origin: Origin,
    /// MED (0 when absent).
    pub med: u32,
    /// The neighbour AS: the first AS of the path, or ours for routes originated in our AS.
    pub neighbour_as: u32,
    /// How it was learned.
    pub kind: PathKind,
    /// ORIGINATOR_ID if present, else the BGP id of the peer (ours for local routes).
    pub router_id: Ipv4Addr,
    /// CLUSTER_LIST length.
    pub cluster_len: usize,
    /// The peer address (`None` for local routes, which sort first).
    pub peer: Option<IpAddr>,
    /// The ADD-PATH path id it was received with (0 without).
    pub path_id: u32,
}

impl Candidate {
    /// The facts of a path with these attributes, learned as `kind` from a peer with this id and address.
    pub fn new(
        ra: &RouteAttrs,
        kind: PathKind,
        peer_id: Ipv4Addr,
        peer: Option<IpAddr>,
        path_id: u32,
        local_as: u32,
    ) -> Self {
        let a = &ra.attrs;
        Candidate {
            local_pref: a.local_pref.unwrap_or(100),
            as_path_len: a.as_path.as_ref().map_or(0, |p| p.route_length()),
            origin: a.origin.unwrap_or(Origin::Incomplete),
            med: a.med.unwrap_or(0),
            neighbour_as: a
                .as_path
                .as_ref()
                .and_then(|p| p.first_as())
                .unwrap_or(local_as),
            kind,
            router_id: a.originator_id.unwrap_or(peer_id),
            cluster_len: a.cluster_list.len(),
            peer,
            path_id,
        }
    }

    fn tie_break_key(&self) -> (Ipv4Addr, usize, Option<IpAddr>, u32) {
        (self.router_id, self.cluster_len, self.peer, self.path_id)
    }
}

/// The outcome for one prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The multipath set as indices into the candidates, best first; empty when there are no candidates.
    pub multipath: Vec<usize>,
}

impl Selection {
    /// The best path's index.
    pub fn best(&self) -> Option<usize> {
        self.multipath.first().copied()
    }
}

fn keep_best<K: Ord>(set: &mut Vec<usize>, key: impl Fn(usize) -> K) {
    if let Some(best) = set.iter().map(|&i| key(i)).min() {
        set.retain(|&i| key(i) == best);
    }
}

/// Run the decision process over `cands`, returning at most `ecmp` (at least 1) paths. With `relax`, eBGP
/// paths from different neighbour ASes may share the multipath set (FRR's "as-path multipath-relax").
pub fn select(cands: &[Candidate], ecmp: usize, relax: bool) -> Selection {
    let mut set: Vec<usize> = (0..cands.len()).collect();
    // (a) highest degree of preference.
    keep_best(&mut set, |i| std::cmp::Reverse(cands[i].local_pref));
    // (b) shortest AS path.
    keep_best(&mut set, |i| cands[i].as_path_len);
    // (c) lowest origin.
    keep_best(&mut set, |i| cands[i].origin);
    // (d) MED, compared only among routes from the same neighbour AS.
    let before = set.clone();
    set.retain(|&i| {
        !before
            .iter()
            .any(|&j| cands[j].neighbour_as == cands[i].neighbour_as && cands[j].med < cands[i].med)
    });
    // (e) local over eBGP over iBGP.
    keep_best(&mut set, |i| cands[i].kind);
    // (f) IGP cost: skipped. (g)-(i) and the path id order the survivors.
    set.sort_by_key(|&i| cands[i].tie_break_key());
    let Some(&best) = set.first() else {
        return Selection::default();
    };
    let b = &cands[best];
    let multipath = match b.kind {
        PathKind::Local => vec![best],
        PathKind::Ebgp => set
            .into_iter()
            .filter(|&i| relax || cands[i].neighbour_as == b.neighbour_as)
            .take(ecmp.max(1))
            .collect(),
        PathKind::Ibgp => set.into_iter().take(ecmp.max(1)).collect(),
    };
    Selection { multipath }
}
