//! The [`Rib`]: the Loc-RIB (which is also every peer's Adj-RIB-In), the Adj-RIBs-Out, and every input that
//! changes them.
//!
//! Role: apply inputs (peers, sessions, UPDATEs, End-of-RIB, timers, local routes) to the tables, then run the
//! decision process on every prefix touched and compute the FIB changes and what each peer must be sent.
//! Inputs: the methods below. Outputs: [`Changes`] from every method.
//!
//! Each input records the prefixes it touches (with their FIB state before); `finish` then decides each of
//! them once and diffs each up peer's Adj-RIB-Out, so an UPDATE with 1,000 prefixes costs 1,000 decisions,
//! not more.
//!
//! An accepted route exists once, as a path in the Loc-RIB ([`Dest`]); each peer keeps only counters (accepted,
//! stale) and the set of routes it sent that import policy rejected. The inputs that concern all of one peer's
//! routes (session loss, graceful restart, End-of-RIB, refresh markers, removal) walk the Loc-RIB once.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::adjout::AdjOut;
use super::as4;
use super::decision::{select, Candidate, PathKind};
use super::dest::{Dest, Path, Paths, LOCAL};
use super::export::{with_exporter, ExportCache, OutBuilder};
use super::hash::{FastMap, FastSet};
use super::intern::AttrTable;
use super::loc::Loc;
use super::peer::{PeerConfig, PeerSession, RibConfig};
use super::policy::{apply, first_match};
use super::{Changes, FibChange, RibError, RibEvent, RouteAttrs, Source};
use crate::wire::{AfiSafi, AsPath, NextHop, Nlri, Origin, PathAttributes, Prefix, Update};

/// Everything about one peer.
#[derive(Debug)]
pub(super) struct PeerState {
    pub cfg: PeerConfig,
    pub session: Option<PeerSession>,
    /// The BGP id from the last session (stale routes keep deciding with it).
    pub bgp_id: Ipv4Addr,
    /// Its slot: what its paths in the Loc-RIB name it by.
    pub slot: u32,
    /// Its paths in the Loc-RIB (its Adj-RIB-In size), stale ones included.
    pub accepted: usize,
    /// Routes the peer sent that import policy or loop detection rejected.
    pub filtered: FastSet<(Prefix, u32)>,
    /// What we advertised: per prefix, (path id, attributes).
    pub adj_out: AdjOut,
    /// The prefixes still to export in its initial export done in steps ([`Rib::peer_up_in_steps`]).
    pub pending_export: Option<Vec<Prefix>>,
    /// Of its accepted paths, how many are stale.
    pub stale: usize,
    pub over_limit: bool,
}

impl PeerState {
    pub fn ibgp(&self, local_as: u32) -> bool {
        self.cfg.asn == local_as
    }

    /// Our next hop towards this peer for a family.
    pub fn self_next_hop(&self, family: AfiSafi) -> Option<NextHop> {
        if family == AfiSafi::IPV4_UNICAST {
            self.cfg.local_v4.map(NextHop::V4)
        } else {
            self.cfg.local_v6.map(|global| NextHop::V6 {
                global,
                link_local: None,
            })
        }
    }
}

/// The prefixes touched by the input in progress.
#[derive(Debug, Default)]
struct Batch {
    /// The prefixes touched, with their FIB next hops before.
    order: Vec<(Prefix, Vec<NextHop>)>,
    events: Vec<RibEvent>,
}

/// The RIBs of one speaker. See the module docs.
#[derive(Debug)]
pub struct Rib {
    pub(super) cfg: RibConfig,
    pub(super) peers: FastMap<IpAddr, PeerState>,
    pub(super) loc: Loc,
    /// Peer slot → address ([`LOCAL`], slot 0, is never a peer's).
    pub(super) slots: Vec<Option<IpAddr>>,
    pub(super) table: AttrTable,
    next_local_id: u32,
    batch: Batch,
}

impl Rib {
    /// An empty RIB.
    pub fn new(cfg: RibConfig) -> Self {
        Rib {
            cfg,
            peers: FastMap::default(),
            loc: Loc::default(),
            slots: vec![None],
            table: AttrTable::default(),
            next_local_id: 1,
            batch: Batch::default(),
        }
    }

    /// Our configuration.
    pub fn config(&self) -> &RibConfig {
        &self.cfg
    }

    /// What the kernel should hold for `prefix` now, as a [`FibChange`] would say it.
    pub fn fib_state(&self, prefix: &Prefix) -> FibChange {
        match self.loc.get(prefix).map(Dest::fib_next_hops) {
            Some(next_hops) if !next_hops.is_empty() => FibChange::Install {
                prefix: *prefix,
                next_hops,
            },
            _ => FibChange::Remove { prefix: *prefix },
        }
    }

    /// The next hops the kernel should hold for `prefix` now, into `out` (cleared first; left empty: no
    /// route). [`Rib::fib_state`] without the allocations, for callers that ask about many prefixes.
    pub fn fib_next_hops_into(&self, prefix: &Prefix, out: &mut Vec<NextHop>) {
        match self.loc.get(prefix) {
            Some(d) => d.fib_next_hops_into(out),
            None => out.clear(),
        }
    }

    /// Add a peer (its session starts down).
    pub fn add_peer(&mut self, cfg: PeerConfig) -> Result<(), RibError> {
        if self.peers.contains_key(&cfg.address) {
            return Err(RibError::DuplicatePeer(cfg.address));
        }
        // A free slot is one whose peer was removed with all its paths, so no path can name the old peer.
        let slot = match self.slots.iter().skip(1).position(Option::is_none) {
            Some(i) => i + 1,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.slots[slot] = Some(cfg.address);
        self.peers.insert(
            cfg.address,
            PeerState {
                cfg,
                session: None,
                bgp_id: Ipv4Addr::UNSPECIFIED,
                slot: slot as u32,
                accepted: 0,
                filtered: FastSet::default(),
                adj_out: AdjOut::default(),
                pending_export: None,
                stale: 0,
                over_limit: false,
            },
        );
        Ok(())
    }

    /// Replace a peer's configuration. Export changes (policy, next-hop-self, route-reflector client, local
    /// addresses) take effect at once for every peer; import policy applies to routes received from now on
    /// (ask the peer for a route refresh to re-apply it to the others). A new AS is refused: that is
    /// [`Rib::remove_peer`] then [`Rib::add_peer`].
    pub fn reconfigure_peer(&mut self, cfg: PeerConfig) -> Result<Changes, RibError> {
        let addr = cfg.address;
        let p = self
            .peers
            .get_mut(&cfg.address)
            .ok_or(RibError::UnknownPeer(cfg.address))?;
        if p.cfg.asn != cfg.asn {
            return Err(RibError::AsChanged(cfg.address));
        }
        // What the peer is sent depends on its export settings; what the others are sent depends on it only
        // through its route-reflector client flag (reflection). Import policy and max-prefix apply to routes
        // received from now on.
        let own_export = p.cfg.next_hop_self != cfg.next_hop_self
            || p.cfg.local_v4 != cfg.local_v4
            || p.cfg.local_v6 != cfg.local_v6
            || p.cfg.policy.export != cfg.policy.export;
        let others = p.cfg.rr_client != cfg.rr_client;
        let up = p.session.is_some();
        p.cfg = cfg;
        let targets: Vec<IpAddr> = if others {
            self.up_peers()
        } else if own_export && up {
            vec![addr]
        } else {
            Vec::new()
        };
        Ok(self.finish_with_full_export(&targets))
    }

    /// The peers whose session is up.
    fn up_peers(&self) -> Vec<IpAddr> {
        self.peers
            .iter()
            .filter(|(_, p)| p.session.is_some())
            .map(|(a, _)| *a)
            .collect()
    }

    /// Remove a peer and every route it sent.
    pub fn remove_peer(&mut self, addr: IpAddr) -> Result<Changes, RibError> {
        self.drop_routes(addr, None)?;
        if let Some(p) = self.peers.remove(&addr) {
            debug_assert_eq!(p.accepted, 0, "a removed peer keeps no path");
            self.slots[p.slot as usize] = None;
        }
        Ok(self.finish())
    }

    /// The peer's session is established: the returned changes carry our whole export to it; the owner
    /// sends them, then an End-of-RIB per family (RFC 4724 §2).
    pub fn peer_up(&mut self, addr: IpAddr, session: PeerSession) -> Result<Changes, RibError> {
        self.start_session(addr, session)?;
        Ok(self.finish_with_full_export(&[addr]))
    }

    /// [`Rib::peer_up`] with the export done in steps: the returned changes are only those of finishing
    /// the input in progress (usually none); the owner then calls [`Rib::export_step`] until it reports the
    /// export done, sending each step's changes as they come, then an End-of-RIB per family. Meanwhile the
    /// peer is up like any other: every change of the Loc-RIB is exported to it at once and its Adj-RIB-Out
    /// follows, so a later step never re-sends a prefix already brought up to date, nor a stale one.
    pub fn peer_up_in_steps(
        &mut self,
        addr: IpAddr,
        session: PeerSession,
    ) -> Result<Changes, RibError> {
        self.start_session(addr, session)?;
        let keys: Vec<Prefix> = self.loc.keys().collect();
        if let Some(p) = self.peers.get_mut(&addr) {
            p.pending_export = Some(keys);
        }
        Ok(self.finish())
    }

    /// The next step of the export [`Rib::peer_up_in_steps`] began: up to `max` prefixes. `None` when no
    /// such export is in progress (it finished, or the session went down); else the changes to send and
    /// whether the export is now complete.
    pub fn export_step(&mut self, addr: IpAddr, max: usize) -> Option<(Changes, bool)> {
        let p = self.peers.get_mut(&addr)?;
        p.session.as_ref()?;
        let mut keys = p.pending_export.take()?;
        let from = keys.len().saturating_sub(max.max(1));
        let mut out = OutBuilder::default();
        let mut cache = ExportCache::default();
        with_exporter(self, addr, |ex, adj, loc| {
            for prefix in &keys[from..] {
                ex.export(prefix, loc.get(prefix), adj, &mut out, &mut cache);
            }
        });
        keys.truncate(from);
        let done = keys.is_empty();
        if !done {
            if let Some(p) = self.peers.get_mut(&addr) {
                p.pending_export = Some(keys);
            }
        }
        Some((out.into_changes(), done))
    }

    /// Whether the peer's initial export ([`Rib::peer_up_in_steps`]) is in progress.
    pub fn exporting(&self, addr: IpAddr) -> bool {
        self.peers
            .get(&addr)
            .is_some_and(|p| p.pending_export.is_some())
    }

    /// Record the established session; the peer's Adj-RIB-Out starts empty.
    fn start_session(&mut self, addr: IpAddr, session: PeerSession) -> Result<(), RibError> {
        let p = self
            .peers
            .get_mut(&addr)
            .ok_or(RibError::UnknownPeer(addr))?;
        p.bgp_id = session.bgp_id;
        p.session = Some(session);
        p.adj_out.clear();
        p.pending_export = None;
        // The peer re-sends everything; what it sent before and we filtered is forgotten (stale routes stay).
        p.filtered.clear();
        Ok(())
    }

    /// The peer's session went down. With `graceful` (RFC 4724, from [`crate::session::SessionDown`]) its
    /// routes of those families are kept, marked stale, until its End-of-RIB or
    /// [`Rib::restart_timer_expired`]; all others are removed.
    pub fn peer_down(
        &mut self,
        addr: IpAddr,
        graceful: Option<&[AfiSafi]>,
    ) -> Result<Changes, RibError> {
        self.drop_routes(addr, graceful)?;
        Ok(self.finish())
    }

    /// Mark the peer down; keep its routes of the `graceful` families as stale, remove the others.
    fn drop_routes(&mut self, addr: IpAddr, graceful: Option<&[AfiSafi]>) -> Result<(), RibError> {
        let p = self
            .peers
            .get_mut(&addr)
            .ok_or(RibError::UnknownPeer(addr))?;
        p.session = None;
        p.adj_out.clear();
        p.pending_export = None;
        p.over_limit = false;
        let keep = |prefix: &Prefix| graceful.is_some_and(|f| f.contains(&prefix.afi_safi()));
        p.filtered.retain(|(prefix, _)| keep(prefix));
        let (slot, accepted) = (p.slot, p.accepted);
        if accepted == 0 {
            return Ok(());
        }
        let mut newly_stale = 0;
        self.retain_paths(slot, |prefix, path| {
            if !keep(&prefix) {
                return false;
            }
            if !path.stale {
                path.stale = true;
                newly_stale += 1;
            }
            true
        });
        if let Some(p) = self.peers.get_mut(&addr) {
            p.stale += newly_stale;
        }
        Ok(())
    }

    /// An UPDATE from a peer (delivered by the session, RFC 7606 attribute discards already applied).
    pub fn update(&mut self, addr: IpAddr, update: &Update) -> Result<Changes, RibError> {
        let p = self.peers.get(&addr).ok_or(RibError::UnknownPeer(addr))?;
        let ibgp = p.ibgp(self.cfg.local_as);
        let four_byte = p.session.as_ref().is_none_or(|s| s.four_byte_as);
        let peer_nh = match addr {
            IpAddr::V4(a) => NextHop::V4(a),
            IpAddr::V6(global) => NextHop::V6 {
                global,
                link_local: None,
            },
        };
        let withdrawn = update
            .withdrawn
            .iter()
            .chain(update.mp_unreach.iter().flat_map(|u| u.withdrawn.iter()));
        for n in withdrawn {
            self.remove_in(addr, (n.prefix, n.path_id.unwrap_or(0)));
        }
        let mut attrs = update.attributes.clone();
        attrs.next_hop = None;
        if four_byte {
            as4::prepare_for_four_byte(&mut attrs);
        } else {
            as4::merge_from_two_byte(&mut attrs);
        }
        if ibgp {
            attrs.as_path.get_or_insert_with(AsPath::default);
        } else {
            // LOCAL_PREF is not accepted from eBGP (RFC 4271 §5.1.5): the default degree of preference applies;
            // the RFC 4456 attributes are iBGP-only.
            attrs.local_pref = Some(100);
            attrs.originator_id = None;
            attrs.cluster_list.clear();
        }
        let looped = if ibgp {
            attrs.originator_id == Some(self.cfg.router_id)
                || attrs.cluster_list.contains(&self.cfg.cluster_id())
        } else {
            attrs
                .as_path
                .as_ref()
                .is_some_and(|p| p.contains(self.cfg.local_as))
        };
        let mut groups: Vec<(Option<NextHop>, &[Nlri])> = Vec::new();
        if !update.nlri.is_empty() {
            groups.push((update.attributes.next_hop.map(NextHop::V4), &update.nlri));
        }
        if let Some(r) = &update.mp_reach {
            groups.push((Some(r.next_hop), &r.nlri));
        }
        for (nh, nlri) in groups {
            let base = RouteAttrs {
                attrs: attrs.clone(),
                next_hop: nh,
            };
            let rejected_all = looped || nh.is_none();
            let mut cache: HashMap<Option<usize>, Option<Arc<RouteAttrs>>> = HashMap::new();
            for n in nlri {
                let key = (n.prefix, n.path_id.unwrap_or(0));
                let accepted = if rejected_all {
                    None
                } else {
                    let rules = &self.peers[&addr].cfg.policy.import;
                    let rule = first_match(rules, &n.prefix, &base);
                    match cache.get(&rule) {
                        Some(a) => a.clone(),
                        None => {
                            let a = apply(rules, rule, &base, Some(peer_nh))
                                .map(|ra| self.table.intern(ra));
                            cache.insert(rule, a.clone());
                            a
                        }
                    }
                };
                match accepted {
                    Some(a) => self.insert_in(addr, key, a),
                    None => {
                        self.remove_in(addr, key);
                        if let Some(p) = self.peers.get_mut(&addr) {
                            p.filtered.insert(key);
                        }
                    }
                }
            }
        }
        self.check_max_prefix(addr);
        Ok(self.finish())
    }

    /// Routes to withdraw (an RFC 7606 treat-as-withdraw UPDATE).
    pub fn withdraw(&mut self, addr: IpAddr, nlri: &[Nlri]) -> Result<Changes, RibError> {
        if !self.peers.contains_key(&addr) {
            return Err(RibError::UnknownPeer(addr));
        }
        for n in nlri {
            self.remove_in(addr, (n.prefix, n.path_id.unwrap_or(0)));
        }
        Ok(self.finish())
    }

    /// The peer's End-of-RIB for a family: its routes of that family still stale are removed.
    pub fn end_of_rib(&mut self, addr: IpAddr, family: AfiSafi) -> Result<Changes, RibError> {
        self.sweep_stale(addr, Some(family))
    }

    /// The peer's restart (or stale-routes) timer expired: all its stale routes are removed.
    pub fn restart_timer_expired(&mut self, addr: IpAddr) -> Result<Changes, RibError> {
        self.sweep_stale(addr, None)
    }

    /// Enhanced route refresh (RFC 7313): at the beginning of a refresh the peer's routes of the family
    /// become stale; at its end the ones not re-sent are removed.
    pub fn refresh_marker(
        &mut self,
        addr: IpAddr,
        family: AfiSafi,
        begin: bool,
    ) -> Result<Changes, RibError> {
        if !begin {
            return self.sweep_stale(addr, Some(family));
        }
        let p = self
            .peers
            .get_mut(&addr)
            .ok_or(RibError::UnknownPeer(addr))?;
        if p.accepted > 0 {
            let mut newly_stale = 0;
            for (prefix, dest) in self.loc.iter_mut() {
                if prefix.afi_safi() != family {
                    continue;
                }
                for path in dest.paths.iter_mut() {
                    if path.peer == p.slot && !path.stale {
                        path.stale = true;
                        newly_stale += 1;
                    }
                }
            }
            p.stale += newly_stale;
        }
        Ok(self.finish())
    }

    /// The peer asked for our routes again (RFC 2918): everything we advertise to it for the family.
    pub fn route_refresh(&mut self, addr: IpAddr, family: AfiSafi) -> Result<Changes, RibError> {
        let p = self.peers.get(&addr).ok_or(RibError::UnknownPeer(addr))?;
        if p.session.is_none() {
            return Err(RibError::PeerDown(addr));
        }
        let mut out = OutBuilder::default();
        let add_path = p
            .session
            .as_ref()
            .is_some_and(|s| s.add_path_send.contains(&family));
        let mut sent: Vec<_> = p
            .adj_out
            .iter()
            .filter(|(k, _)| k.afi_safi() == family)
            .collect();
        sent.sort_by_key(|(k, _)| *k);
        for (prefix, pairs) in sent {
            for (id, a) in pairs.iter() {
                let path_id = add_path.then_some(id);
                out.announce(addr, family, a, Nlri { path_id, prefix });
            }
        }
        Ok(out.into_changes())
    }

    /// Originate a route (ORIGIN IGP, empty AS_PATH); the IPv4 next hop comes from `attrs.next_hop`, else
    /// our address towards each peer. Replaces an earlier origination of the prefix.
    pub fn originate(&mut self, prefix: Prefix, attrs: PathAttributes) -> Changes {
        let nh = match prefix.afi_safi() {
            AfiSafi::IPV4_UNICAST => attrs.next_hop.map(NextHop::V4),
            _ => None,
        };
        self.originate_via(prefix, attrs, nh)
    }

    /// Originate a route with an explicit next hop (`None`: our address towards each peer).
    pub fn originate_via(
        &mut self,
        prefix: Prefix,
        mut attrs: PathAttributes,
        next_hop: Option<NextHop>,
    ) -> Changes {
        attrs.origin = Some(Origin::Igp);
        attrs.as_path = Some(AsPath::default());
        attrs.next_hop = None;
        attrs.originator_id = None;
        attrs.cluster_list.clear();
        let a = self.table.intern(RouteAttrs { attrs, next_hop });
        self.set_local(prefix, Some(a));
        self.finish()
    }

    /// Stop originating a prefix.
    pub fn withdraw_local(&mut self, prefix: Prefix) -> Changes {
        self.set_local(prefix, None);
        self.finish()
    }

    fn sweep_stale(&mut self, addr: IpAddr, family: Option<AfiSafi>) -> Result<Changes, RibError> {
        let p = self.peers.get(&addr).ok_or(RibError::UnknownPeer(addr))?;
        if p.stale > 0 {
            self.retain_paths(p.slot, |prefix, path| {
                !(path.stale && family.is_none_or(|f| prefix.afi_safi() == f))
            });
        }
        Ok(self.finish())
    }

    fn check_max_prefix(&mut self, addr: IpAddr) {
        let Some(p) = self.peers.get_mut(&addr) else {
            return;
        };
        let Some(mp) = p.cfg.policy.max_prefix else {
            return;
        };
        let count = p.accepted;
        if count > mp.limit && !p.over_limit {
            p.over_limit = true;
            self.batch.events.push(RibEvent::MaxPrefixExceeded {
                peer: addr,
                limit: mp.limit,
                count,
                action: mp.action,
            });
        } else if count <= mp.limit {
            p.over_limit = false;
        }
    }

    fn insert_in(&mut self, addr: IpAddr, key: (Prefix, u32), attrs: Arc<RouteAttrs>) {
        let Some(p) = self.peers.get_mut(&addr) else {
            return;
        };
        if !p.filtered.is_empty() {
            p.filtered.remove(&key);
        }
        let dest = self.loc.entry(key.0);
        match dest.find(p.slot, key.1) {
            Some(i) => {
                let path = &mut dest.paths[i];
                if path.stale {
                    path.stale = false;
                    p.stale -= 1;
                }
                if Arc::ptr_eq(&path.attrs, &attrs) {
                    return;
                }
                mark_dirty(&mut self.batch, key.0, dest);
                dest.paths[i].attrs = attrs;
            }
            None => {
                p.accepted += 1;
                mark_dirty(&mut self.batch, key.0, dest);
                let local_id = next_id(&mut self.next_local_id);
                dest.paths.push(Path {
                    peer: p.slot,
                    path_id: key.1,
                    local_id,
                    stale: false,
                    attrs,
                });
            }
        }
    }

    fn remove_in(&mut self, addr: IpAddr, key: (Prefix, u32)) {
        let Some(p) = self.peers.get_mut(&addr) else {
            return;
        };
        if !p.filtered.is_empty() {
            p.filtered.remove(&key);
        }
        let Some(dest) = self.loc.get_mut(&key.0) else {
            return;
        };
        if let Some(i) = dest.find(p.slot, key.1) {
            mark_dirty(&mut self.batch, key.0, dest);
            let old = dest.remove_at(i);
            p.accepted -= 1;
            if old.stale {
                p.stale -= 1;
            }
        }
    }

    /// Walk the Loc-RIB once, removing the paths of peer `slot` for which `keep` is false (it may change the
    /// others); the peer's counters follow.
    fn retain_paths(&mut self, slot: u32, mut keep: impl FnMut(Prefix, &mut Path) -> bool) {
        let (mut removed, mut removed_stale) = (0, 0);
        for (prefix, dest) in self.loc.iter_mut() {
            let mut i = 0;
            while i < dest.paths.len() {
                let path = &mut dest.paths[i];
                if path.peer != slot || keep(prefix, path) {
                    i += 1;
                    continue;
                }
                mark_dirty(&mut self.batch, prefix, dest);
                let old = dest.remove_at(i);
                removed += 1;
                removed_stale += usize::from(old.stale);
            }
        }
        if let Some(addr) = self.slots[slot as usize] {
            if let Some(p) = self.peers.get_mut(&addr) {
                p.accepted -= removed;
                p.stale -= removed_stale;
            }
        }
    }

    /// Set (or with `None` remove) the local path of a prefix, and note the prefix for `finish`.
    fn set_local(&mut self, prefix: Prefix, attrs: Option<Arc<RouteAttrs>>) {
        let dest = self.loc.entry(prefix);
        mark_dirty(&mut self.batch, prefix, dest);
        match (dest.find(LOCAL, 0), attrs) {
            (Some(i), Some(a)) => dest.paths[i].attrs = a,
            (Some(i), None) => {
                dest.remove_at(i);
            }
            (None, Some(attrs)) => {
                let local_id = next_id(&mut self.next_local_id);
                dest.paths.push(Path {
                    peer: LOCAL,
                    path_id: 0,
                    local_id,
                    stale: false,
                    attrs,
                });
            }
            (None, None) => {}
        }
    }

    /// The source a path names.
    pub(super) fn source(&self, p: &Path) -> Source {
        source(&self.slots, p.peer)
    }

    /// The decision-process candidate for a path from `source`.
    #[cfg(test)]
    pub(super) fn candidate(
        &self,
        source: Source,
        path_id: u32,
        attrs: &Arc<RouteAttrs>,
    ) -> Candidate {
        let peer = match source {
            Source::Local => LOCAL,
            Source::Peer(a) => self.peers[&a].slot,
        };
        let p = Path {
            peer,
            path_id,
            local_id: 0,
            stale: false,
            attrs: Arc::clone(attrs),
        };
        candidate(&self.cfg, &self.peers, &self.slots, &p)
    }

    /// Decide every touched prefix, then export them to every up peer.
    pub(super) fn finish(&mut self) -> Changes {
        let batch = std::mem::take(&mut self.batch);
        let mut out = OutBuilder::default();
        let mut touched = Vec::with_capacity(batch.order.len());
        for (prefix, old_fib) in batch.order {
            let Some(dest) = self.loc.get_mut(&prefix) else {
                continue;
            };
            dest.dirty = false;
            decide(&self.cfg, &self.peers, &self.slots, dest);
            let new = dest.fib_next_hops();
            let empty = dest.paths.is_empty();
            if old_fib != new {
                out.changes.fib.push(if new.is_empty() {
                    FibChange::Remove { prefix }
                } else {
                    FibChange::Install {
                        prefix,
                        next_hops: new,
                    }
                });
            }
            if empty {
                self.loc.remove(&prefix);
            }
            touched.push(prefix);
        }
        if !touched.is_empty() {
            let mut cache = ExportCache::default();
            for peer in self.up_peers() {
                with_exporter(self, peer, |ex, adj, loc| {
                    for prefix in &touched {
                        ex.export(prefix, loc.get(prefix), adj, &mut out, &mut cache);
                    }
                });
            }
        }
        out.changes.events = batch.events;
        out.into_changes()
    }

    /// `finish`, then re-export every prefix to each of `targets` (in no particular order: each prefix is
    /// diffed against the target's Adj-RIB-Out on its own).
    fn finish_with_full_export(&mut self, targets: &[IpAddr]) -> Changes {
        let changes = self.finish();
        if targets.is_empty() {
            return changes;
        }
        let mut out = OutBuilder::from_changes(changes);
        let mut cache = ExportCache::default();
        for t in targets {
            with_exporter(self, *t, |ex, adj, loc| {
                // Prefixes advertised but no longer in the Loc-RIB cannot exist: `finish` withdrew them.
                for (prefix, dest) in loc.iter() {
                    ex.export(&prefix, Some(dest), adj, &mut out, &mut cache);
                }
            });
        }
        out.into_changes()
    }
}

/// Note a prefix for `finish` (once per batch), with its FIB state before the change about to be made.
#[inline]
fn mark_dirty(batch: &mut Batch, prefix: Prefix, dest: &mut Dest) {
    if !dest.dirty {
        dest.dirty = true;
        batch.order.push((prefix, dest.fib_next_hops()));
    }
}

/// The next ADD-PATH local id (never 0).
fn next_id(next: &mut u32) -> u32 {
    let id = *next;
    *next = next.wrapping_add(1).max(1);
    id
}

/// The source a peer slot names.
pub(super) fn source(slots: &[Option<IpAddr>], slot: u32) -> Source {
    match slots.get(slot as usize).copied().flatten() {
        Some(a) => Source::Peer(a),
        None => {
            debug_assert_eq!(slot, LOCAL, "a path of a removed peer");
            Source::Local
        }
    }
}

/// The decision-process candidate for a path.
fn candidate(
    cfg: &RibConfig,
    peers: &FastMap<IpAddr, PeerState>,
    slots: &[Option<IpAddr>],
    p: &Path,
) -> Candidate {
    let (kind, id, peer) = match source(slots, p.peer) {
        Source::Local => (PathKind::Local, cfg.router_id, None),
        Source::Peer(a) => match peers.get(&a) {
            Some(s) if s.ibgp(cfg.local_as) => (PathKind::Ibgp, s.bgp_id, Some(a)),
            Some(s) => (PathKind::Ebgp, s.bgp_id, Some(a)),
            None => (PathKind::Ibgp, Ipv4Addr::BROADCAST, Some(a)),
        },
    };
    Candidate::new(&p.attrs, kind, id, peer, p.path_id, cfg.local_as)
}

/// Decide one prefix: reorder its paths so the multipath set comes first.
fn decide(
    cfg: &RibConfig,
    peers: &FastMap<IpAddr, PeerState>,
    slots: &[Option<IpAddr>],
    dest: &mut Dest,
) {
    if dest.paths.len() <= 1 {
        dest.set_selected(dest.paths.len());
        return;
    }
    let cands: Vec<Candidate> = dest
        .paths
        .iter()
        .map(|p| candidate(cfg, peers, slots, p))
        .collect();
    let sel = select(&cands, cfg.ecmp, cfg.ecmp_relax);
    let mut order: Vec<usize> = sel.multipath.clone();
    order.extend((0..dest.paths.len()).filter(|i| !sel.multipath.contains(i)));
    let mut old: Vec<Option<Path>> = std::mem::take(&mut dest.paths)
        .into_vec()
        .into_iter()
        .map(Some)
        .collect();
    dest.paths = Paths::from_vec(order.into_iter().filter_map(|i| old[i].take()).collect());
    dest.set_selected(sel.multipath.len());
}
