//! The kernel FIB: best routes (and ECMP sets as multipath routes) in a configurable table with the
//! speaker's own routing protocol number, level-triggered.
//!
//! [`plan`] is pure: (what the kernel holds of ours, what the RIB wants) → routes to set and prefixes to
//! delete. [`Fib`] is the I/O edge: it reads the kernel's routes of our protocol in our table (adopting
//! those a previous run left), writes changes in batches of many requests per `sendmsg` with every
//! acknowledgement checked, and reports per prefix what the kernel refused. Other owners' routes are
//! never touched.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use calico_netlink::route::{
    self, del_prefix_route, set_gateway_route, GatewayRoute, RTM_NEWROUTE,
};
use calico_netlink::socket::Socket;
use calico_netlink::Error;

/// The routing protocol number of the speaker's routes (`bgp` in /etc/iproute2/rt_protos).
pub const DEFAULT_PROTOCOL: u8 = 186;
/// The main table.
pub const DEFAULT_TABLE: u32 = 254;
/// Requests per `sendmsg`.
const BATCH: usize = 256;

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
}

impl Fib {
    /// The FIB of the namespace at `netns` (`None`: the caller's own).
    pub fn new(netns: Option<&Path>, table: u32, protocol: u8) -> Result<Fib, Error> {
        let socket = Socket::open_at(netns, None)?;
        Ok(Fib {
            socket,
            table,
            protocol,
        })
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
        for v6 in [false, true] {
            let seq = self.socket.next_seq();
            self.socket
                .dump_each(&route::dump_routes(v6, seq), RTM_NEWROUTE, |body| {
                    if let Some(r) = route::parse_route(body) {
                        if r.protocol == protocol && r.table == table {
                            each((r.dst, r.prefix_len), route::route_gateways(body));
                        }
                    }
                })?;
        }
        Ok(())
    }

    /// Carries out `plan`, batch by batch; every request's acknowledgement is checked.
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
    /// requests per `sendmsg`, every acknowledgement checked. Returns the index and errno of each change
    /// the kernel refused.
    pub fn write<G: AsRef<[IpAddr]>>(
        &mut self,
        changes: &[(Prefix, Option<G>)],
    ) -> Result<Vec<(usize, i32)>, Error> {
        let mut failed = Vec::new();
        let mut batch = Vec::with_capacity(BATCH * 96);
        let mut seqs = Vec::with_capacity(BATCH);
        for (n, chunk) in changes.chunks(BATCH).enumerate() {
            batch.clear();
            seqs.clear();
            for (prefix, gws) in chunk {
                let seq = self.socket.next_seq();
                batch.extend(match gws {
                    Some(gws) => set_gateway_route(
                        &GatewayRoute {
                            dst: prefix.0,
                            prefix_len: prefix.1,
                            gateways: gws.as_ref().to_vec(),
                            table: self.table,
                            protocol: self.protocol,
                        },
                        seq,
                    ),
                    None => del_prefix_route(prefix.0, prefix.1, self.table, self.protocol, seq),
                });
                seqs.push(seq);
            }
            for (seq, errno) in self.socket.transact_each(&batch, &seqs)? {
                // Sequence numbers are consecutive within a batch, except where they wrap.
                let i = seq.wrapping_sub(seqs[0]) as usize;
                let i = if seqs.get(i) == Some(&seq) {
                    Some(i)
                } else {
                    seqs.iter().position(|s| *s == seq)
                };
                if let Some(i) = i {
                    failed.push((n * BATCH + i, errno));
                }
            }
        }
        Ok(failed)
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
