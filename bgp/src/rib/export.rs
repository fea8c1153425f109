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

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use super::adjout::AdjOut;
use super::as4;
use super::dest::Dest;
use super::hash::FastMap;
use super::intern::AttrTable;
use super::loc::Loc;
use super::peer::PeerSession;
use super::peer::RibConfig;
use super::policy::{apply, first_match};
use super::table::{source, PeerState, Rib};
use super::{Changes, FamilyUpdates, RouteAttrs, Source};
use crate::wire::{community, AfiSafi, AsPath, AsSegment, Nlri, Prefix, SegmentType};

/// Transformed attributes per (source attributes, source peer slot, target, export rule, family) within one
/// batch. The source `Arc` is kept in the value so its address cannot be reused while the cache lives; slots
/// are not reused within a batch (a peer is removed, and its slot freed, before the batch is finished).
type CacheKey = (usize, u32, IpAddr, Option<usize>, AfiSafi);

/// The export cache of one batch.
#[derive(Debug, Default)]
pub(super) struct ExportCache {
    map: FastMap<CacheKey, (Arc<RouteAttrs>, Option<Arc<RouteAttrs>>)>,
    /// The last entry used: runs of prefixes with the same attributes (a full export, a large UPDATE) skip
    /// the hashing.
    last: Option<(CacheKey, Option<Arc<RouteAttrs>>)>,
}

impl ExportCache {
    fn get(&mut self, key: &CacheKey) -> Option<&Option<Arc<RouteAttrs>>> {
        if self.last.as_ref().is_some_and(|(k, _)| k == key) {
            return self.last.as_ref().map(|(_, a)| a);
        }
        let (_, a) = self.map.get(key)?;
        self.last = Some((*key, a.clone()));
        self.last.as_ref().map(|(_, a)| a)
    }

    fn insert(&mut self, key: CacheKey, source: &Arc<RouteAttrs>, a: Option<Arc<RouteAttrs>>) {
        self.map.insert(key, (Arc::clone(source), a));
    }
}

/// What a peer was sent for one prefix: (path id, attributes) pairs; one inline (the common case: no heap
/// allocation per prefix), several (ADD-PATH) in an exactly sized boxed slice.
#[derive(Debug, Clone)]
pub(super) enum Sent {
    One((u32, Arc<RouteAttrs>)),
    Many(Box<[(u32, Arc<RouteAttrs>)]>),
}

impl Deref for Sent {
    type Target = [(u32, Arc<RouteAttrs>)];

    #[inline]
    fn deref(&self) -> &Self::Target {
        match self {
            Sent::One(x) => std::slice::from_ref(x),
            Sent::Many(v) => v,
        }
    }
}

impl Sent {
    /// The pairs of `v` (emptied), or `None` if there are none.
    fn take(v: &mut Vec<(u32, Arc<RouteAttrs>)>) -> Option<Sent> {
        match v.len() {
            0 => None,
            1 => v.pop().map(Sent::One),
            _ => Some(Sent::Many(v.drain(..).collect())),
        }
    }

    /// Heap bytes owned.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Sent::One(_) => 0,
            Sent::Many(v) => std::mem::size_of_val::<[_]>(v),
        }
    }
}

/// The (peer, family) an [`OutBuilder`] is adding to, taken out of its changes meanwhile.
#[derive(Debug)]
struct Current {
    peer: IpAddr,
    family: AfiSafi,
    updates: FamilyUpdates,
    /// Announcement group index per attribute set.
    groups: FastMap<usize, usize>,
    /// The last attribute set announced and its group.
    last: Option<(usize, usize)>,
}

/// Accumulates per-peer updates, grouping announcements by attribute set.
#[derive(Debug, Default)]
pub(super) struct OutBuilder {
    /// The changes; a (peer, family) being added to lives in `cur` until [`OutBuilder::into_changes`].
    pub changes: Changes,
    /// The group indexes of the (peer, family) pairs not current.
    groups: FastMap<(IpAddr, AfiSafi), FastMap<usize, usize>>,
    cur: Option<Current>,
}

impl OutBuilder {
    /// Continue from earlier changes.
    pub fn from_changes(changes: Changes) -> Self {
        let mut groups: FastMap<(IpAddr, AfiSafi), FastMap<usize, usize>> = FastMap::default();
        for (peer, u) in &changes.peers {
            for (family, f) in &u.families {
                let g = groups.entry((*peer, *family)).or_default();
                for (i, (a, _)) in f.announce.iter().enumerate() {
                    g.insert(Arc::as_ptr(a) as usize, i);
                }
            }
        }
        OutBuilder {
            changes,
            groups,
            cur: None,
        }
    }

    /// The updates of `peer` for `family`, made current.
    #[inline]
    fn current(&mut self, peer: IpAddr, family: AfiSafi) -> &mut Current {
        let hit = self
            .cur
            .as_ref()
            .is_some_and(|c| c.peer == peer && c.family == family);
        if !hit {
            self.put_back();
            let updates = self
                .changes
                .peers
                .get_mut(&peer)
                .and_then(|u| u.families.remove(&family))
                .unwrap_or_default();
            let groups = self.groups.remove(&(peer, family)).unwrap_or_default();
            self.cur = Some(Current {
                peer,
                family,
                updates,
                groups,
                last: None,
            });
        }
        self.cur.get_or_insert_with(|| Current {
            peer,
            family,
            updates: FamilyUpdates::default(),
            groups: FastMap::default(),
            last: None,
        })
    }

    /// Return the current (peer, family) to the changes.
    fn put_back(&mut self) {
        let Some(c) = self.cur.take() else {
            return;
        };
        if !c.updates.is_empty() {
            self.changes
                .peers
                .entry(c.peer)
                .or_default()
                .families
                .insert(c.family, c.updates);
        }
        self.groups.insert((c.peer, c.family), c.groups);
    }

    /// Announce `nlri` with `attrs` to `peer`.
    #[inline]
    pub fn announce(&mut self, peer: IpAddr, family: AfiSafi, attrs: &Arc<RouteAttrs>, nlri: Nlri) {
        let c = self.current(peer, family);
        let key = Arc::as_ptr(attrs) as usize;
        let i = match c.last {
            Some((k, i)) if k == key => i,
            _ => {
                let i = match c.groups.get(&key) {
                    Some(&i) => i,
                    None => {
                        let i = c.updates.announce.len();
                        c.groups.insert(key, i);
                        c.updates.announce.push((Arc::clone(attrs), Vec::new()));
                        i
                    }
                };
                c.last = Some((key, i));
                i
            }
        };
        if let Some((_, v)) = c.updates.announce.get_mut(i) {
            v.push(nlri);
        }
    }

    /// Withdraw `nlri` from `peer`.
    pub fn withdraw(&mut self, peer: IpAddr, family: AfiSafi, nlri: Nlri) {
        self.current(peer, family).updates.withdraw.push(nlri);
    }

    /// The accumulated changes.
    pub fn into_changes(mut self) -> Changes {
        self.put_back();
        self.changes
    }
}

/// Run `f` with an [`Exporter`] towards `target`, the target's Adj-RIB-Out (taken out of its state
/// meanwhile) and the Loc-RIB; nothing when the target is unknown or down.
pub(super) fn with_exporter(
    rib: &mut Rib,
    target: IpAddr,
    f: impl FnOnce(&mut Exporter<'_>, &mut AdjOut, &Loc),
) {
    let Some(p) = rib.peers.get_mut(&target) else {
        return;
    };
    if p.session.is_none() {
        return;
    }
    let mut adj = std::mem::take(&mut p.adj_out);
    let Rib {
        cfg,
        peers,
        loc,
        slots,
        table,
        ..
    } = rib;
    if let Some(tp) = peers.get(&target) {
        if let Some(sess) = &tp.session {
            let mut ex = Exporter {
                cfg,
                peers,
                slots,
                table,
                target,
                tp,
                sess,
                desired: Vec::new(),
            };
            f(&mut ex, &mut adj, loc);
        }
    }
    if let Some(p) = rib.peers.get_mut(&target) {
        p.adj_out = adj;
    }
}

/// Export towards one up peer: what it reads, looked up once for a run of prefixes.
pub(super) struct Exporter<'a> {
    cfg: &'a RibConfig,
    peers: &'a FastMap<IpAddr, PeerState>,
    slots: &'a [Option<IpAddr>],
    table: &'a mut AttrTable,
    target: IpAddr,
    tp: &'a PeerState,
    sess: &'a PeerSession,
    /// Scratch: the pairs the prefix should have been sent.
    desired: Vec<(u32, Arc<RouteAttrs>)>,
}

impl Exporter<'_> {
    /// Bring the target's Adj-RIB-Out `adj` for `prefix`, whose Loc-RIB entry is `dest`, up to date,
    /// recording the difference in `out`.
    pub fn export(
        &mut self,
        prefix: &Prefix,
        dest: Option<&Dest>,
        adj: &mut AdjOut,
        out: &mut OutBuilder,
        cache: &mut ExportCache,
    ) {
        let family = prefix.afi_safi();
        let (tp, target) = (self.tp, self.target);
        let add_path = self.sess.add_path_send.contains(&family);
        let mut desired = std::mem::take(&mut self.desired);
        desired.clear();
        if let Some(dest) = dest.filter(|_| self.sess.families.contains(&family)) {
            let n = if add_path {
                dest.paths.len()
            } else {
                dest.selected.min(1) as usize
            };
            for p in &dest.paths[..n] {
                let rule = first_match(&tp.cfg.policy.export, prefix, &p.attrs);
                let key = (Arc::as_ptr(&p.attrs) as usize, p.peer, target, rule, family);
                let exported = match cache.get(&key) {
                    Some(a) => a.clone(),
                    None => {
                        let a = export_route(
                            self.cfg,
                            self.peers,
                            tp,
                            source(self.slots, p.peer),
                            &p.attrs,
                            family,
                            rule,
                        )
                        .map(|ra| self.table.intern(ra));
                        cache.insert(key, &p.attrs, a.clone());
                        a
                    }
                };
                if let Some(a) = exported {
                    desired.push((if add_path { p.local_id } else { 0 }, a));
                }
            }
        }
        let nlri = |id: u32| Nlri {
            path_id: add_path.then_some(id),
            prefix: *prefix,
        };
        let old = adj.get(prefix);
        // Whether the peer is sent anything for it now (else its Adj-RIB-Out entry stays as it is).
        let mut changed = false;
        if let Some(old) = old {
            for (id, _) in old.iter() {
                if !desired.iter().any(|(d, _)| *d == id) {
                    out.withdraw(target, family, nlri(id));
                    changed = true;
                }
            }
        }
        for (id, a) in &desired {
            let sent = old.is_some_and(|o| o.iter().any(|(o, b)| o == *id && Arc::ptr_eq(a, b)));
            if !sent {
                out.announce(target, family, a, nlri(*id));
                changed = true;
            }
        }
        if changed {
            adj.set(*prefix, Sent::take(&mut desired));
        }
        self.desired = desired;
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
