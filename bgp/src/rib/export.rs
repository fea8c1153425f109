//! Export: what each peer is sent (RFC 4271 §9.2, RFC 4456 §6, RFC 1997, RFC 6793 §4.2.2) and the
//! Adj-RIB-Out diff that turns it into announcements and withdrawals.
//!
//! Role: for one prefix and one up peer, compute the paths to advertise (the best path, or every path with
//! ADD-PATH send), transform their attributes for the peer, compare with what the peer was last sent, and
//! record the difference grouped by interned attribute set.
//! Inputs: the [`Rib`]'s tables and configuration, a prefix, a peer.
//! Outputs: entries in an [`OutBuilder`] (becoming [`Changes::peers`]) and the updated Adj-RIB-Out.
//!
//! Rules, in order: never back to the peer the path came from (split horizon); iBGP-learned paths go to
//! iBGP peers only by reflection (from a client to everyone, from a non-client to clients only); export
//! policy; NO_ADVERTISE to nobody, NO_EXPORT (and NO_EXPORT_SUBCONFED, no confederations here) not to eBGP.
//! Then to eBGP: our AS prepended, next hop our address, MED, LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST
//! stripped; to iBGP: LOCAL_PREF present (100 by default), next hop kept (ours with next-hop-self or for local
//! routes without one), and on reflection ORIGINATOR_ID added when absent and our cluster id prepended.
//! Unrecognised transitive attributes of learned routes get the Partial bit; non-transitive ones are dropped.
//! Towards a 2-byte speaker AS_TRANS, AS4_PATH and AS4_AGGREGATOR are generated.

use super::hash::FastMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::as4;
use super::peer::RibConfig;
use super::policy::{apply, first_match};
use super::table::{PeerState, Rib};
use super::{Changes, RouteAttrs, Source};
use crate::wire::{community, AfiSafi, AsPath, AsSegment, Nlri, Prefix, SegmentType};

/// Transformed attributes per (source attributes, source peer slot, target, export rule, family) within one
/// batch. The source `Arc` is kept in the value so its address cannot be reused while the cache lives; slots
/// are not reused within a batch (a peer is removed, and its slot freed, before the batch is finished).
type CacheKey = (usize, u32, IpAddr, Option<usize>, AfiSafi);

/// The export cache of one batch.
#[derive(Debug, Default)]
pub(super) struct ExportCache(FastMap<CacheKey, (Arc<RouteAttrs>, Option<Arc<RouteAttrs>>)>);

/// Accumulates per-peer updates, grouping announcements by attribute set.
#[derive(Debug, Default)]
pub(super) struct OutBuilder {
    pub changes: Changes,
    groups: FastMap<(IpAddr, AfiSafi, usize), usize>,
}

impl OutBuilder {
    /// Continue from earlier changes.
    pub fn from_changes(changes: Changes) -> Self {
        let mut groups = FastMap::default();
        for (peer, u) in &changes.peers {
            for (family, f) in &u.families {
                for (i, (a, _)) in f.announce.iter().enumerate() {
                    groups.insert((*peer, *family, Arc::as_ptr(a) as usize), i);
                }
            }
        }
        OutBuilder { changes, groups }
    }

    /// Announce `nlri` with `attrs` to `peer`.
    pub fn announce(&mut self, peer: IpAddr, family: AfiSafi, attrs: &Arc<RouteAttrs>, nlri: Nlri) {
        let f = self
            .changes
            .peers
            .entry(peer)
            .or_default()
            .families
            .entry(family)
            .or_default();
        let key = (peer, family, Arc::as_ptr(attrs) as usize);
        match self.groups.get(&key) {
            Some(&i) => f.announce[i].1.push(nlri),
            None => {
                self.groups.insert(key, f.announce.len());
                f.announce.push((Arc::clone(attrs), vec![nlri]));
            }
        }
    }

    /// Withdraw `nlri` from `peer`.
    pub fn withdraw(&mut self, peer: IpAddr, family: AfiSafi, nlri: Nlri) {
        self.changes
            .peers
            .entry(peer)
            .or_default()
            .families
            .entry(family)
            .or_default()
            .withdraw
            .push(nlri);
    }

    /// The accumulated changes.
    pub fn into_changes(self) -> Changes {
        self.changes
    }
}

/// Bring `target`'s Adj-RIB-Out for `prefix` up to date, recording the difference in `out`.
pub(super) fn export_prefix(
    rib: &mut Rib,
    prefix: &Prefix,
    target: IpAddr,
    out: &mut OutBuilder,
    cache: &mut ExportCache,
) {
    let family = prefix.afi_safi();
    let Some(tp) = rib.peers.get(&target) else {
        return;
    };
    let Some(sess) = &tp.session else {
        return;
    };
    let add_path = sess.add_path_send.contains(&family);
    let mut desired: Vec<(u32, Arc<RouteAttrs>)> = Vec::new();
    if sess.families.contains(&family) {
        if let Some(dest) = rib.loc.get(prefix) {
            let n = if add_path {
                dest.paths.len()
            } else {
                dest.selected.min(1) as usize
            };
            // Exactly sized: this vector is kept as the Adj-RIB-Out entry.
            desired.reserve_exact(n);
            for p in &dest.paths[..n] {
                let rule = first_match(&tp.cfg.policy.export, prefix, &p.attrs);
                let key = (Arc::as_ptr(&p.attrs) as usize, p.peer, target, rule, family);
                let exported = match cache.0.get(&key) {
                    Some((_, a)) => a.clone(),
                    None => {
                        let a = export_route(
                            &rib.cfg,
                            &rib.peers,
                            tp,
                            rib.source(p),
                            &p.attrs,
                            family,
                            rule,
                        )
                        .map(|ra| rib.table.intern(ra));
                        cache.0.insert(key, (Arc::clone(&p.attrs), a.clone()));
                        a
                    }
                };
                if let Some(a) = exported {
                    desired.push((if add_path { p.local_id } else { 0 }, a));
                }
            }
        }
    }
    let Some(tp) = rib.peers.get_mut(&target) else {
        return;
    };
    let old = tp.adj_out.remove(prefix).unwrap_or_default();
    let nlri = |id: u32| Nlri {
        path_id: add_path.then_some(id),
        prefix: *prefix,
    };
    for (id, _) in &old {
        if !desired.iter().any(|(d, _)| d == id) {
            out.withdraw(target, family, nlri(*id));
        }
    }
    for (id, a) in &desired {
        if !old.iter().any(|(o, b)| o == id && Arc::ptr_eq(a, b)) {
            out.announce(target, family, a, nlri(*id));
        }
    }
    if !desired.is_empty() {
        tp.adj_out.insert(*prefix, desired);
    }
}

fn prepend(path: &mut AsPath, asn: u32) {
    match path.segments.first_mut() {
        Some(AsSegment {
            kind: SegmentType::Sequence,
            asns,
        }) if asns.len() < 255 => asns.insert(0, asn),
        _ => path.segments.insert(
            0,
            AsSegment {
                kind: SegmentType::Sequence,
                asns: vec![asn],
            },
        ),
    }
}

/// The attributes `target` gets for a path from `source`, or `None` if it gets nothing.
pub(super) fn export_route(
    cfg: &RibConfig,
    peers: &FastMap<IpAddr, PeerState>,
    target: &PeerState,
    source: Source,
    ra: &RouteAttrs,
    family: AfiSafi,
    rule: Option<usize>,
) -> Option<RouteAttrs> {
    let target_ibgp = target.ibgp(cfg.local_as);
    let (src_ibgp, src_client, src_id) = match source {
        Source::Local => (false, false, cfg.router_id),
        Source::Peer(a) => {
            if a == target.cfg.address {
                return None; // split horizon
            }
            let s = peers.get(&a)?;
            (s.ibgp(cfg.local_as), s.cfg.rr_client, s.bgp_id)
        }
    };
    let reflect = src_ibgp && target_ibgp;
    if reflect && !(src_client || target.cfg.rr_client) {
        return None;
    }
    let self_nh = target.self_next_hop(family);
    let mut out = apply(&target.cfg.policy.export, rule, ra, self_nh)?;
    let a = &mut out.attrs;
    if a.has_community(community::NO_ADVERTISE) {
        return None;
    }
    if !target_ibgp
        && (a.has_community(community::NO_EXPORT)
            || a.has_community(community::NO_EXPORT_SUBCONFED))
    {
        return None;
    }
    if source != Source::Local {
        a.unknown = a.unknown_for_propagation();
    }
    if target_ibgp {
        a.local_pref = Some(a.local_pref.unwrap_or(100));
        a.as_path.get_or_insert_with(AsPath::default);
        if reflect {
            a.originator_id.get_or_insert(src_id);
            a.cluster_list.insert(0, cfg.cluster_id());
        }
        if target.cfg.next_hop_self || out.next_hop.is_none() {
            out.next_hop = Some(self_nh?);
        }
    } else {
        prepend(a.as_path.get_or_insert_with(AsPath::default), cfg.local_as);
        a.med = None;
        a.local_pref = None;
        a.originator_id = None;
        a.cluster_list.clear();
        out.next_hop = Some(self_nh?);
    }
    if target.session.as_ref().is_none_or(|s| s.four_byte_as) {
        as4::prepare_for_four_byte(&mut out.attrs);
    } else {
        as4::prepare_for_two_byte(&mut out.attrs);
    }
    Some(out)
}
