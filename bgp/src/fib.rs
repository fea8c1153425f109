//! The kernel FIB: best routes (and ECMP sets as multipath routes) in a configurable table with the
//! speaker's own routing protocol number, level-triggered.
//!
//! [`plan`] is pure: (what the kernel holds of ours, what the RIB wants) → routes to set and prefixes to
//! delete. [`Fib`] is the I/O edge: it reads the kernel's routes of our protocol in our table (adopting
//! those a previous run left), writes changes in batches of many requests per `sendmsg` (only the last
//! of each asks for an acknowledgement: the kernel reports failures unasked, and a success then costs no
//! reply), and reports per prefix what the kernel refused. Other owners' routes are
//! never touched.
//!
//! Where the kernel has nexthop objects (Linux 5.3+), routes go through them: one object per gateway and
//! one group per ECMP set, owned by our protocol, made on first use and named by id in every route, which
//! the kernel installs faster than a route carrying its own gateways (about 0.8x the time for a single
//! gateway, under half for a four-way multipath route, measured here). A gateway that is not on a
//! directly connected network, an IPv6 link-local gateway (it needs the session's interface, which the
//! FIB is not told), or any object the kernel refuses, falls back to a route with its own gateways, so
//! nothing depends on the objects. Objects no route uses are removed from time to time,
//! and all of ours when the routes are cleared.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

use calico_netlink::nexthop::{self, route_nh_id, RTM_NEWNEXTHOP};
use calico_netlink::route::{
    self, del_prefix_route, parse_route, set_gateway_route, GatewayRoute, RTM_NEWROUTE,
};
use calico_netlink::socket::Socket;
use calico_netlink::Error;

/// The routing protocol number of the speaker's routes (`bgp` in /etc/iproute2/rt_protos).
pub const DEFAULT_PROTOCOL: u8 = 186;
/// The main table.
pub const DEFAULT_TABLE: u32 = 254;
/// Requests per `sendmsg`.
const BATCH: usize = 256;
/// Nexthop objects made since the last removal of unused ones that trigger the next.
const COLLECT_AFTER: usize = 256;
const EEXIST: i32 = 17;
const EINVAL: i32 = 22;
const ENOENT: i32 = 2;

/// A prefix: its address and length.
pub type Prefix = (IpAddr, u8);
/// Routes by prefix, each with its gateways sorted (several: ECMP).
pub type Routes = BTreeMap<Prefix, Vec<IpAddr>>;

/// What to change in the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FibPlan {
    /// Routes to add or replace.
    pub set: Vec<(Prefix, Vec<IpAddr>)>,
    /// Prefixes whose route to delete.
    pub delete: Vec<Prefix>,
}

/// The changes that make `have` into `want`.
pub fn plan(have: &Routes, want: &Routes) -> FibPlan {
    let mut p = FibPlan::default();
    for (prefix, gws) in want {
        if have.get(prefix) != Some(gws) {
            p.set.push((*prefix, gws.clone()));
        }
    }
    p.delete = have
        .keys()
        .filter(|k| !want.contains_key(*k))
        .copied()
        .collect();
    p
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub set: usize,
    pub deleted: usize,
    /// Prefixes the kernel refused, with the errno.
    pub failed: Vec<(Prefix, i32)>,
}

/// The speaker's routes in one table of one network namespace.
#[derive(Debug)]
pub struct Fib {
    socket: Socket,
    table: u32,
    protocol: u8,
    /// Our nexthop objects (`None`: the kernel has none; routes carry their gateways).
    nh: Option<Nexthops>,
}

/// Our nexthop objects: gateway set → id, and back.
#[derive(Debug, Default)]
struct Nexthops {
    ids: HashMap<Vec<IpAddr>, u32>,
    sets: HashMap<u32, Vec<IpAddr>>,
    /// Gateways that cannot have an object (not directly connected, or refused): routes through them
    /// carry their gateways. Forgotten at each collection.
    plain: HashSet<IpAddr>,
    next_id: u32,
    made: usize,
}

impl Nexthops {
    /// Whether routes through `gws` may go through objects at all. Not when a gateway is an IPv6
    /// link-local address (a peer that sent no global next hop): such an address names a neighbour only
    /// together with an interface, the session's, which the FIB is not told, and every interface with IPv6
    /// has a link-local network, so the kernel's route lookup would name whichever comes first. Those
    /// routes stay plain routes carrying their gateways, as before objects were used.
    fn allowed(gws: &[IpAddr]) -> bool {
        !gws.iter()
            .any(|g| matches!(g, IpAddr::V6(a) if a.is_unicast_link_local()))
    }

    /// Whether routes through `gws` go through objects of ours (the set's or its members').
    fn knows(&self, gws: &[IpAddr]) -> bool {
        self.ids.contains_key(gws) || gws.iter().any(|g| self.ids.contains_key(&[*g][..]))
    }

    /// Forgets the objects for `gws` (the set's and its members').
    fn forget(&mut self, gws: &[IpAddr]) {
        let one: Vec<Vec<IpAddr>> = gws.iter().map(|g| vec![*g]).collect();
        for set in std::iter::once(gws.to_vec()).chain(one) {
            if let Some(id) = self.ids.remove(&set) {
                self.sets.remove(&id);
            }
        }
    }
}

impl Fib {
    /// The FIB of the namespace at `netns` (`None`: the caller's own).
    pub fn new(netns: Option<&Path>, table: u32, protocol: u8) -> Result<Fib, Error> {
        let socket = Socket::open_at(netns, None)?;
        let mut fib = Fib {
            socket,
            table,
            protocol,
            nh: None,
        };
        fib.nh = fib.read_nexthops();
        Ok(fib)
    }

    /// Whether routes go through nexthop objects.
    pub fn uses_nexthop_objects(&self) -> bool {
        self.nh.is_some()
    }

    /// Our nexthop objects a previous run left (adopted for reuse), or `None` when the kernel has no
    /// nexthop objects.
    fn read_nexthops(&mut self) -> Option<Nexthops> {
        let seq = self.socket.next_seq();
        let protocol = self.protocol;
        let mut found = Vec::new();
        self.socket
            .dump_each(&nexthop::dump(seq), RTM_NEWNEXTHOP, |body| {
                if let Some(n) = nexthop::parse_nexthop(body) {
                    if n.protocol == protocol {
                        found.push(n);
                    }
                }
            })
            .ok()?;
        // Ids of our own: our protocol number in the top byte, so other owners' low ids are never hit.
        let base = u32::from(protocol) << 24;
        let mut nh = Nexthops {
            next_id: base | 1,
            ..Nexthops::default()
        };
        let gateways: HashMap<u32, IpAddr> = found
            .iter()
            .filter_map(|n| Some((n.id, n.gateway?)))
            .collect();
        for n in &found {
            let mut set: Vec<IpAddr> = match n.gateway {
                Some(gw) => vec![gw],
                None => n
                    .group
                    .iter()
                    .filter_map(|m| gateways.get(m).copied())
                    .collect(),
            };
            set.sort();
            if set.is_empty() || (n.gateway.is_none() && set.len() != n.group.len()) {
                continue;
            }
            nh.ids.insert(set.clone(), n.id);
            nh.sets.insert(n.id, set);
            if n.id & 0xff00_0000 == base {
                nh.next_id = nh.next_id.max(n.id + 1);
            }
        }
        Some(nh)
    }

    /// Our routes as the kernel holds them.
    pub fn read(&mut self) -> Result<Routes, Error> {
        let mut have = Routes::new();
        self.scan(|prefix, gws| {
            have.insert(prefix, gws);
        })?;
        Ok(have)
    }

    /// Hands `each` our routes as the kernel holds them, one by one, keeping none.
    pub fn scan(&mut self, mut each: impl FnMut(Prefix, Vec<IpAddr>)) -> Result<(), Error> {
        let (protocol, table) = (self.protocol, self.table);
        let sets = self.nh.as_ref().map(|n| &n.sets);
        for v6 in [false, true] {
            let seq = self.socket.next_seq();
            self.socket
                .dump_each(&route::dump_routes(v6, seq), RTM_NEWROUTE, |body| {
                    if let Some(r) = route::parse_route(body) {
                        if r.protocol == protocol && r.table == table {
                            let mut gws = route::route_gateways(body);
                            // With net.ipv4.nexthop_compat_mode=0 a route names only its object.
                            if gws.is_empty() {
                                if let (Some(id), Some(sets)) = (route_nh_id(body), sets) {
                                    gws = sets.get(&id).cloned().unwrap_or_default();
                                }
                            }
                            each((r.dst, r.prefix_len), gws);
                        }
                    }
                })?;
        }
        Ok(())
    }

    /// Carries out `plan`, batch by batch; every refusal is reported.
    pub fn apply(&mut self, plan: &FibPlan) -> Result<SyncReport, Error> {
        // Sets, then deletes.
        let changes: Vec<(Prefix, Option<&Vec<IpAddr>>)> = plan
            .set
            .iter()
            .map(|(p, gws)| (*p, Some(gws)))
            .chain(plan.delete.iter().map(|p| (*p, None)))
            .collect();
        let failed = self.write(&changes)?;
        Ok(SyncReport {
            set: plan.set.len(),
            deleted: plan.delete.len(),
            failed: failed.into_iter().map(|(i, e)| (changes[i].0, e)).collect(),
        })
    }

    /// Writes `changes` in order (a prefix through its gateways, or with `None` no route for it), many
    /// requests per `sendmsg`, every refusal reported. Returns the index and errno of each change
    /// the kernel refused.
    pub fn write<G: AsRef<[IpAddr]>>(
        &mut self,
        changes: &[(Prefix, Option<G>)],
    ) -> Result<Vec<(usize, i32)>, Error> {
        let all: Vec<usize> = (0..changes.len()).collect();
        let mut failed = self.write_some(changes, &all)?;
        // A route refused because an object of ours is gone (someone deleted it): forget the objects it
        // went through and write it once more, through new ones.
        let stale: Vec<usize> = match &self.nh {
            Some(nh) => failed
                .iter()
                .filter(|(_, e)| *e == EINVAL || *e == ENOENT)
                .filter_map(|(i, _)| {
                    let gws = changes[*i].1.as_ref()?.as_ref();
                    nh.knows(gws).then_some(*i)
                })
                .collect(),
            None => Vec::new(),
        };
        if let Some(nh) = &mut self.nh {
            for i in &stale {
                if let Some(gws) = &changes[*i].1 {
                    nh.forget(gws.as_ref());
                }
            }
        }
        if !stale.is_empty() {
            failed.retain(|(i, _)| !stale.contains(i));
            failed.extend(self.write_some(changes, &stale)?);
            failed.sort_unstable();
        }
        Ok(failed)
    }

    /// Writes the changes at `which` (indices into `changes`, ascending).
    fn write_some<G: AsRef<[IpAddr]>>(
        &mut self,
        changes: &[(Prefix, Option<G>)],
        which: &[usize],
    ) -> Result<Vec<(usize, i32)>, Error> {
        let mut failed = Vec::new();
        let mut batch = Vec::with_capacity(BATCH * 96);
        let mut seqs = Vec::with_capacity(BATCH);
        // The last gateway set looked up and its object: consecutive routes mostly share one.
        let mut last: Option<(Vec<IpAddr>, Option<u32>)> = None;
        for chunk in which.chunks(BATCH) {
            batch.clear();
            seqs.clear();
            for &i in chunk {
                let (prefix, gws) = &changes[i];
                let seq = self.socket.next_seq();
                batch.extend(match gws {
                    Some(gws) => {
                        let gws = gws.as_ref();
                        let id = match &last {
                            Some((set, id)) if set[..] == gws[..] => *id,
                            _ => {
                                let id = self.nexthop_for(gws);
                                last = Some((gws.to_vec(), id));
                                id
                            }
                        };
                        match id {
                            Some(id) => nexthop::set_route(
                                prefix.0,
                                prefix.1,
                                self.table,
                                self.protocol,
                                id,
                                seq,
                            ),
                            None => set_gateway_route(
                                &GatewayRoute {
                                    dst: prefix.0,
                                    prefix_len: prefix.1,
                                    gateways: gws.to_vec(),
                                    table: self.table,
                                    protocol: self.protocol,
                                },
                                seq,
                            ),
                        }
                    }
                    None => del_prefix_route(prefix.0, prefix.1, self.table, self.protocol, seq),
                });
                seqs.push(seq);
            }
            for (seq, errno) in self.socket.transact_each(&batch, &seqs)? {
                // Sequence numbers are consecutive within a batch, except where they wrap.
                let k = seq.wrapping_sub(seqs[0]) as usize;
                let k = if seqs.get(k) == Some(&seq) {
                    Some(k)
                } else {
                    seqs.iter().position(|s| *s == seq)
                };
                if let Some(k) = k {
                    failed.push((chunk[k], errno));
                }
            }
        }
        failed.sort_unstable();
        Ok(failed)
    }

    /// The object for routes through `gws` (made now if need be), or `None`: write the gateways.
    fn nexthop_for(&mut self, gws: &[IpAddr]) -> Option<u32> {
        let nh = self.nh.as_ref()?;
        // Checked before the known objects: one a previous run made for such a gateway is not used.
        if !Nexthops::allowed(gws) {
            return None;
        }
        if let Some(id) = nh.ids.get(gws) {
            return Some(*id);
        }
        if gws.is_empty() || gws.iter().any(|g| nh.plain.contains(g)) {
            return None;
        }
        let mut members = Vec::with_capacity(gws.len());
        for gw in gws {
            members.push(self.gateway_object(*gw)?);
        }
        if let [one] = members[..] {
            return Some(one);
        }
        let protocol = self.protocol;
        self.make(gws.to_vec(), |id, seq| {
            nexthop::new_group(id, &members, protocol, seq)
        })
    }

    /// The object for one gateway, made through the interface the kernel reaches it on directly.
    fn gateway_object(&mut self, gw: IpAddr) -> Option<u32> {
        if let Some(id) = self.nh.as_ref()?.ids.get(&[gw][..]) {
            return Some(*id);
        }
        let protocol = self.protocol;
        let made = match self.on_link(gw) {
            Some(oif) => self.make(vec![gw], |id, seq| {
                nexthop::new_gateway(id, gw, oif, protocol, seq)
            }),
            None => None,
        };
        if made.is_none() {
            if let Some(nh) = self.nh.as_mut() {
                nh.plain.insert(gw);
            }
        }
        made
    }

    /// The interface through which `gw` is directly reachable, from the kernel's route to it (`None`:
    /// not directly connected, e.g. a multihop peer's next hop, which is resolved as a plain gateway).
    fn on_link(&mut self, gw: IpAddr) -> Option<u32> {
        let seq = self.socket.next_seq();
        let answers = self
            .socket
            .request_each(&route::get_route(gw, seq), &[seq])
            .ok()?;
        let body = answers.get(&seq)?.as_ref().ok()?;
        if !route::route_gateways(body).is_empty() {
            return None;
        }
        parse_route(body)?.oif
    }

    /// Makes an object for `set` under a free id of ours.
    fn make(&mut self, set: Vec<IpAddr>, message: impl Fn(u32, u32) -> Vec<u8>) -> Option<u32> {
        let base = u32::from(self.protocol) << 24;
        for _ in 0..64 {
            let nh = self.nh.as_mut()?;
            let id = nh.next_id;
            nh.next_id = if (id + 1) & 0x00ff_ffff == 0 {
                base | 1
            } else {
                id + 1
            };
            let seq = self.socket.next_seq();
            match self.socket.transact_each(&message(id, seq), &[seq]) {
                Ok(failed) if failed.is_empty() => {
                    let nh = self.nh.as_mut()?;
                    nh.ids.insert(set.clone(), id);
                    nh.sets.insert(id, set);
                    nh.made += 1;
                    return Some(id);
                }
                Ok(failed) if failed.iter().all(|(_, e)| *e == EEXIST) => continue,
                Ok(failed) => {
                    tracing::debug!(
                        ?set,
                        ?failed,
                        "nexthop object refused; routes carry their gateways"
                    );
                    return None;
                }
                Err(e) => {
                    tracing::debug!(?set, error = %e, "nexthop object not made");
                    return None;
                }
            }
        }
        None
    }

    /// Removes our objects no route uses (at most every `COLLECT_AFTER` (256) objects made, or now when
    /// `force`), and forgets which gateways could have none.
    pub fn collect_unused(&mut self, force: bool) {
        let Some(nh) = &self.nh else { return };
        if !force && nh.made < COLLECT_AFTER {
            return;
        }
        let mut used = HashSet::new();
        for v6 in [false, true] {
            let seq = self.socket.next_seq();
            let dumped =
                self.socket
                    .dump_each(&route::dump_routes(v6, seq), RTM_NEWROUTE, |body| {
                        used.extend(route_nh_id(body));
                    });
            if let Err(e) = dumped {
                tracing::warn!(error = %e, "cannot read routes to find unused nexthop objects");
                return;
            }
        }
        let Some(nh) = self.nh.as_mut() else { return };
        let members: Vec<u32> = used
            .iter()
            .filter_map(|id| nh.sets.get(id))
            .filter(|set| set.len() > 1)
            .flat_map(|set| set.iter().filter_map(|g| nh.ids.get(&[*g][..]).copied()))
            .collect();
        used.extend(members);
        let unused: Vec<u32> = nh
            .sets
            .keys()
            .filter(|id| !used.contains(id))
            .copied()
            .collect();
        nh.made = 0;
        nh.plain.clear();
        self.delete_objects(unused);
    }

    /// Removes all our objects (after our routes: a route through a deleted object goes with it).
    pub fn clear_nexthops(&mut self) {
        let all: Vec<u32> = self
            .nh
            .as_ref()
            .map(|nh| nh.sets.keys().copied().collect())
            .unwrap_or_default();
        self.delete_objects(all);
    }

    /// Deletes `ids` of ours, groups before their members.
    fn delete_objects(&mut self, mut ids: Vec<u32>) {
        let Some(nh) = self.nh.as_mut() else { return };
        ids.sort_by_key(|id| std::cmp::Reverse(nh.sets.get(id).map_or(0, Vec::len)));
        for id in &ids {
            if let Some(set) = nh.sets.remove(id) {
                nh.ids.remove(&set);
            }
        }
        for chunk in ids.chunks(BATCH) {
            let mut batch = Vec::new();
            let mut seqs = Vec::new();
            for id in chunk {
                let seq = self.socket.next_seq();
                batch.extend(nexthop::delete(*id, seq));
                seqs.push(seq);
            }
            if let Err(e) = self.socket.transact_each(&batch, &seqs) {
                tracing::warn!(error = %e, "cannot remove nexthop objects");
            }
        }
    }

    /// Makes the kernel hold exactly `want` of our routes: adopts what is already right, replaces what
    /// differs, deletes what is no longer wanted (including routes a previous run left).
    pub fn sync(&mut self, want: &Routes) -> Result<SyncReport, Error> {
        let have = self.read()?;
        self.apply(&plan(&have, want))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, len: u8) -> Prefix {
        (s.parse().unwrap(), len)
    }

    fn gw(s: &[&str]) -> Vec<IpAddr> {
        s.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn link_local_gateways_never_go_through_objects() {
        assert!(Nexthops::allowed(&gw(&["10.250.0.12"])));
        assert!(Nexthops::allowed(&gw(&["2001:db8::12", "2001:db8::13"])));
        assert!(!Nexthops::allowed(&gw(&["fe80::12"])));
        assert!(!Nexthops::allowed(&gw(&["2001:db8::12", "fe80::13"])));
        // Not link-local: fec0::/10 (old site-local) and fe00::/9.
        assert!(Nexthops::allowed(&gw(&["fec0::1", "fe00::1"])));
    }

    #[test]
    fn the_plan_touches_only_what_differs() {
        let have: Routes = [
            (p("10.65.0.0", 26), gw(&["10.250.0.12"])),
            (p("10.65.0.64", 26), gw(&["10.250.0.12"])),
            (p("10.65.1.0", 26), gw(&["10.250.0.13"])),
        ]
        .into();
        let want: Routes = [
            (p("10.65.0.0", 26), gw(&["10.250.0.12"])),
            (p("10.65.0.64", 26), gw(&["10.250.0.12", "10.250.0.13"])),
            (p("10.65.2.7", 32), gw(&["10.250.0.14"])),
        ]
        .into();
        let plan = plan(&have, &want);
        assert_eq!(
            plan.set,
            vec![
                (p("10.65.0.64", 26), gw(&["10.250.0.12", "10.250.0.13"])),
                (p("10.65.2.7", 32), gw(&["10.250.0.14"])),
            ]
        );
        assert_eq!(plan.delete, vec![p("10.65.1.0", 26)]);
        assert_eq!(super::plan(&want, &want), FibPlan::default());
    }
}
