//! Per-endpoint routing state, the I/O edge: for each endpoint interface, the sysctls that make it a
//! routed port (proxy ARP, `route_localnet`, no proxy delay, IPv6 proxy NDP), a /32 (/128) route to each
//! of the endpoint's addresses with Felix's own protocol number, a permanent neighbour entry for its MAC,
//! and a proxy neighbour for the IPv6 gateway.
//!
//! Everything goes to the kernel in batches of [`CHUNK`] requests per send (interface lookups, then routes
//! and neighbours), and one bad
//! endpoint (its interface not there yet) fails alone: [`Routes::program`] reports it and programs the
//! others. [`Routes::resync`] compares the kernel's routes of Felix's protocol with the desired ones and
//! repairs the difference, leaving every other owner's routes alone.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::model::{DesiredState, Endpoint};
use calico_netlink::route::{self, RTM_NEWROUTE};
use calico_netlink::socket::Socket;

/// The routing protocol number on Felix's endpoint routes (the BGP speaker uses another).
pub const FELIX_PROTOCOL: u8 = 80;

/// Requests per send. The kernel handles a whole send before the first reply is read and drops the
/// replies that do not fit the socket's receive buffer (212 KiB by default), failing the socket with
/// `ENOBUFS`: 1,000 link lookups in one send (about 1.5 KiB of reply each) overflow it. 64 requests per
/// send is as fast as larger sends (lab notes: 217–232k routes/s).
pub const CHUNK: usize = 64;

/// Why one endpoint could not be programmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFailure {
    pub endpoint: String,
    pub reason: String,
}

/// Felix's routes and neighbours in one network namespace.
#[derive(Debug)]
pub struct Routes {
    socket: Socket,
    netns: Option<PathBuf>,
}

impl Routes {
    /// Routes for the namespace at `netns` (`None`: the caller's own).
    pub fn new(netns: Option<&Path>) -> Result<Routes, Error> {
        let protocol = None; // NETLINK_ROUTE is protocol 0
        let socket = Socket::open_at(netns, protocol)?;
        Ok(Routes {
            socket,
            netns: netns.map(Path::to_path_buf),
        })
    }

    /// The interface index of each name; names the kernel does not know are left out.
    fn indexes<'a>(
        &mut self,
        names: impl Iterator<Item = &'a str>,
    ) -> Result<BTreeMap<String, u32>, Error> {
        let names: Vec<&str> = names.collect();
        let mut found = BTreeMap::new();
        for chunk in names.chunks(CHUNK) {
            let mut batch = Vec::new();
            let mut seqs = BTreeMap::new();
            for name in chunk {
                let seq = self.socket.next_seq();
                batch.extend(route::get_link(name, seq));
                seqs.insert(seq, *name);
            }
            let keys: Vec<u32> = seqs.keys().copied().collect();
            for (seq, answer) in self.socket.request_each(&batch, &keys)? {
                let index = answer.ok().and_then(|body| route::link_index(&body));
                if let (Some(index), Some(name)) = (index, seqs.get(&seq)) {
                    found.insert(name.to_string(), index);
                }
            }
        }
        Ok(found)
    }

    /// Sends `requests` (message, sequence number) in sends of [`CHUNK`]; returns the ones that failed
    /// as (sequence number, errno).
    fn transact_chunked(&mut self, requests: &[(Vec<u8>, u32)]) -> Result<Vec<(u32, i32)>, Error> {
        let mut failed = Vec::new();
        for chunk in requests.chunks(CHUNK) {
            let batch: Vec<u8> = chunk.iter().flat_map(|(m, _)| m.iter().copied()).collect();
            let seqs: Vec<u32> = chunk.iter().map(|(_, seq)| *seq).collect();
            failed.extend(self.socket.transact_each(&batch, &seqs)?);
        }
        Ok(failed)
    }

    /// Programs `endpoints` (id, endpoint); returns the ones that failed and why.
    pub fn program(
        &mut self,
        endpoints: &[(&str, &Endpoint)],
        state: &DesiredState,
    ) -> Result<Vec<EndpointFailure>, Error> {
        let mut failures = Vec::new();
        let indexes = self.indexes(endpoints.iter().map(|(_, ep)| ep.iface.as_str()))?;
        let mut ready = Vec::new();
        for (id, ep) in endpoints {
            match indexes.get(&ep.iface) {
                Some(index) => ready.push((*id, *ep, *index)),
                None => failures.push(EndpointFailure {
                    endpoint: id.to_string(),
                    reason: format!("interface {} does not exist (yet)", ep.iface),
                }),
            }
        }
        let sysctl_failures = write_sysctls(self.netns.as_deref(), &ready);
        let mut requests = Vec::new();
        let mut owner: BTreeMap<u32, &str> = BTreeMap::new();
        for (id, ep, index) in &ready {
            let ips = ep.addresses();
            for ip in ips {
                let seq = self.socket.next_seq();
                requests.push((route::set_route(ip, *index, FELIX_PROTOCOL, seq), seq));
                owner.insert(seq, id);
                let seq = self.socket.next_seq();
                requests.push((route::set_neighbour(ip, ep.mac.0, *index, seq), seq));
                owner.insert(seq, id);
            }
            if let (Some(gw), false) = (state.config.ipv6_gateway, ep.ipv6.is_empty()) {
                let seq = self.socket.next_seq();
                requests.push((route::set_proxy_neighbour(IpAddr::V6(gw), *index, seq), seq));
                owner.insert(seq, id);
            }
        }
        let refused = self.transact_chunked(&requests)?;
        if !refused.is_empty() {
            let mut failed: BTreeMap<&str, i32> = BTreeMap::new();
            for (seq, errno) in refused {
                if let Some(id) = owner.get(&seq) {
                    failed.entry(*id).or_insert(errno);
                }
            }
            failures.extend(failed.into_iter().map(|(id, errno)| EndpointFailure {
                endpoint: id.to_string(),
                reason: format!(
                    "the kernel refused its routes: {}",
                    std::io::Error::from_raw_os_error(errno)
                ),
            }));
        }
        failures.extend(sysctl_failures);
        Ok(failures)
    }

    /// Deletes Felix's routes to `ips` (already gone is fine).
    pub fn remove(&mut self, ips: &[IpAddr]) -> Result<(), Error> {
        let mut requests = Vec::new();
        for ip in ips {
            let seq = self.socket.next_seq();
            requests.push((route::del_route(*ip, FELIX_PROTOCOL, seq), seq));
        }
        if requests.is_empty() {
            return Ok(());
        }
        const ESRCH: i32 = 3;
        const ENOENT: i32 = 2;
        const ENODEV: i32 = 19;
        match self
            .transact_chunked(&requests)?
            .into_iter()
            .find(|(_, errno)| ![ESRCH, ENOENT, ENODEV].contains(errno))
        {
            Some((_, errno)) => Err(Error::Refused {
                what: "a route deletion".into(),
                errno,
            }),
            None => Ok(()),
        }
    }

    /// Felix's routes in the kernel: destination → interface index.
    pub fn ours(&mut self) -> Result<BTreeMap<IpAddr, u32>, Error> {
        let mut found = BTreeMap::new();
        for v6 in [false, true] {
            let seq = self.socket.next_seq();
            for body in self
                .socket
                .dump(&route::dump_routes(v6, seq), RTM_NEWROUTE)?
            {
                if let Some(r) = route::parse_route(&body) {
                    let host_len = if r.dst.is_ipv4() { 32 } else { 128 };
                    if r.protocol == FELIX_PROTOCOL && r.prefix_len == host_len {
                        found.insert(r.dst, r.oif.unwrap_or(0));
                    }
                }
            }
        }
        Ok(found)
    }

    /// Brings Felix's routes in line with `state`: deletes strays, re-programs endpoints whose routes are
    /// missing or point elsewhere. Returns the number of routes repaired and the endpoints that failed.
    pub fn resync(&mut self, state: &DesiredState) -> Result<(usize, Vec<EndpointFailure>), Error> {
        let have = self.ours()?;
        let indexes = self.indexes(state.endpoints.values().map(|ep| ep.iface.as_str()))?;
        let mut wanted: BTreeSet<IpAddr> = BTreeSet::new();
        let mut redo = Vec::new();
        let mut repairs = 0;
        for (id, ep) in &state.endpoints {
            let ips: Vec<IpAddr> = ep.addresses().collect();
            let index = indexes.get(&ep.iface).copied();
            let wrong = ips
                .iter()
                .filter(|ip| have.get(*ip).copied() != index || index.is_none())
                .count();
            wanted.extend(ips);
            if wrong > 0 {
                repairs += wrong;
                redo.push((id.as_str(), ep));
            }
        }
        let strays: Vec<IpAddr> = have
            .keys()
            .filter(|ip| !wanted.contains(*ip))
            .copied()
            .collect();
        repairs += strays.len();
        self.remove(&strays)?;
        let failures = self.program(&redo, state)?;
        Ok((repairs, failures))
    }
}

/// Writes the per-interface sysctls, inside `netns` when given (a short-lived thread enters it: the
/// values under /proc/sys/net are those of the writing thread's namespace).
fn write_sysctls(netns: Option<&Path>, ready: &[(&str, &Endpoint, u32)]) -> Vec<EndpointFailure> {
    let work: Vec<(String, String, bool)> = ready
        .iter()
        .map(|(id, ep, _)| (id.to_string(), ep.iface.clone(), !ep.ipv6.is_empty()))
        .collect();
    let netns = netns.map(Path::to_path_buf);
    let run = move || -> Vec<EndpointFailure> {
        if let Some(path) = &netns {
            let entered = std::fs::File::open(path).and_then(|f| {
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&f),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(std::io::Error::from)
            });
            if let Err(e) = entered {
                return work
                    .iter()
                    .map(|(id, ..)| EndpointFailure {
                        endpoint: id.clone(),
                        reason: format!("cannot enter {}: {e}", path.display()),
                    })
                    .collect();
            }
        }
        let mut failures = Vec::new();
        for (id, iface, v6) in &work {
            let mut settings = vec![
                (format!("ipv4/conf/{iface}/proxy_arp"), "1"),
                (format!("ipv4/conf/{iface}/route_localnet"), "1"),
                (format!("ipv4/neigh/{iface}/proxy_delay"), "0"),
            ];
            if *v6 {
                settings.push((format!("ipv6/conf/{iface}/proxy_ndp"), "1"));
            }
            for (key, value) in settings {
                if let Err(e) = std::fs::write(format!("/proc/sys/net/{key}"), value) {
                    failures.push(EndpointFailure {
                        endpoint: id.clone(),
                        reason: format!("sysctl {key}: {e}"),
                    });
                    break;
                }
            }
        }
        failures
    };
    std::thread::spawn(run).join().unwrap_or_else(|_| {
        ready
            .iter()
            .map(|(id, ..)| EndpointFailure {
                endpoint: id.to_string(),
                reason: "sysctl thread panicked".into(),
            })
            .collect()
    })
}
