//! Wiring a workload's network namespace to the host, over netlink (blocking: call from
//! `spawn_blocking` or a plain thread).
//!
//! Input: a [`Wiring`]: the host-side interface name, the workload's namespace file (`/proc/PID/ns/net`
//! or a bare netns path), the interface name inside, its MAC, its addresses and the gateways (the
//! host's own addresses). What [`wire`] makes, in two batches:
//! - in the host's namespace (the current one, or `host_netns`): a veth pair, both ends up, whose far
//!   end is created directly inside the workload's namespace under its final name and MAC (so it never
//!   meets a same-named interface on the host, the original's "File exists" on rename);
//! - inside: `lo` up, IPv6 enabled on the interface when it gets an IPv6 address, the addresses as /32
//!   and /128 (IPv6 without duplicate address detection), a link-scope route to each gateway and the
//!   default route through it.
//!
//! Output: `Ok` or an error naming the step that failed; on failure the half-made pair is removed.
//! [`unwire`] removes the host side (the pair goes with it). [`is_wired`] tells whether the workload's
//! interface exists with the expected MAC and addresses and its default routes through the gateways
//! (network-ready); [`ensure`] wires only what is missing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use calico_netlink::link::{self, NetnsFd, VethPeer, EEXIST, IFA_F_NODAD, RTPROT_BOOT};
use calico_netlink::route;
use calico_netlink::socket::Socket;

use crate::error::{netlink, Error};
use crate::hooks::workload::WorkloadSpec;

/// Everything needed to wire one workload interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wiring {
    pub host_iface: String,
    /// The workload's network namespace file.
    pub netns: PathBuf,
    pub if_name: String,
    pub mac: [u8; 6],
    pub ips: Vec<IpAddr>,
    pub gateway_v4: Option<Ipv4Addr>,
    pub gateway_v6: Option<Ipv6Addr>,
    /// The host's namespace (`None`: the calling process's).
    pub host_netns: Option<PathBuf>,
}

impl Wiring {
    /// The wiring of `spec` into `netns`; refuses addresses of a family the node has no gateway for.
    pub fn for_spec(
        spec: &WorkloadSpec,
        netns: PathBuf,
        host_netns: Option<PathBuf>,
    ) -> Result<Wiring, Error> {
        if spec.ips.iter().any(IpAddr::is_ipv4) && spec.gateway_v4.is_none() {
            return Err(Error::Config(
                "an IPv4 address needs the node's IPv4 address as gateway (--ip); none is configured"
                    .into(),
            ));
        }
        if spec.ips.iter().any(IpAddr::is_ipv6) && spec.gateway_v6.is_none() {
            return Err(Error::Config(
                "an IPv6 address needs the node's IPv6 address as gateway (--ip6); none is configured"
                    .into(),
            ));
        }
        Ok(Wiring {
            host_iface: spec.host_iface(),
            netns,
            if_name: spec.if_name.clone(),
            mac: spec.mac(),
            ips: spec.ips.clone(),
            gateway_v4: spec.gateway_v4,
            gateway_v6: spec.gateway_v6,
            host_netns,
        })
    }
}

fn host_socket(host_netns: Option<&Path>) -> Result<Socket, Error> {
    Socket::open_at(host_netns, None).map_err(netlink("opening a netlink socket on the host"))
}

/// The prefix length of a single address.
fn host_len(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// Writes a sysctl of the calling thread's namespace.
fn sysctl(path: &str, value: &str) -> Result<(), calico_netlink::Error> {
    std::fs::write(path, value).map_err(|e| {
        calico_netlink::Error::Io(std::io::Error::new(
            e.kind(),
            format!("writing {path}: {e}"),
        ))
    })
}

/// Inside the workload's namespace: IPv6 on when needed, `lo` up, `delete` removed, `add` added, and
/// routes to the gateways of the families the interface has; each request named if the kernel refuses.
fn configure_inside(w: &Wiring, add: &[IpAddr], delete: &[IpAddr]) -> Result<(), Error> {
    let w2 = w.clone();
    let add = add.to_vec();
    let delete = delete.to_vec();
    let v6 = w.ips.iter().any(IpAddr::is_ipv6);
    let what = format!("configuring {} in {}", w.if_name, w.netns.display());
    link::in_netns(&w.netns, move || {
        if v6 {
            let conf = format!("/proc/sys/net/ipv6/conf/{}", w2.if_name);
            sysctl(&format!("{conf}/accept_dad"), "0")?;
            sysctl(&format!("{conf}/disable_ipv6"), "0")?;
        }
        let mut s = Socket::open(None)?;
        let Some(link::Link { index, .. }) = link::find_link(&mut s, &w2.if_name)? else {
            return Err(calico_netlink::Error::Refused {
                what: format!("finding {}", w2.if_name),
                errno: link::ENODEV,
            });
        };
        let mut batch = Vec::new();
        let mut names: Vec<(u32, String)> = Vec::new();
        let mut push = |s: &mut Socket, msg: &dyn Fn(u32) -> Vec<u8>, name: String| {
            let seq = s.next_seq();
            batch.extend(msg(seq));
            names.push((seq, name));
        };
        push(&mut s, &|q| link::set_up("lo", q), "setting lo up".into());
        let up = w2.if_name.clone();
        push(
            &mut s,
            &|q| link::set_up(&up, q),
            format!("setting {up} up"),
        );
        for ip in &delete {
            push(
                &mut s,
                &|q| link::del_address(*ip, host_len(ip), index, q),
                format!("removing address {ip}"),
            );
        }
        for ip in &add {
            let flags = if ip.is_ipv6() { IFA_F_NODAD } else { 0 };
            push(
                &mut s,
                &|q| link::add_address(*ip, host_len(ip), flags, index, q),
                format!("adding address {ip}"),
            );
        }
        let gateways: Vec<IpAddr> = [
            w2.gateway_v4
                .filter(|_| w2.ips.iter().any(IpAddr::is_ipv4))
                .map(IpAddr::V4),
            w2.gateway_v6
                .filter(|_| w2.ips.iter().any(IpAddr::is_ipv6))
                .map(IpAddr::V6),
        ]
        .into_iter()
        .flatten()
        .collect();
        for gw in gateways {
            let any = if gw.is_ipv4() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            };
            push(
                &mut s,
                &|q| link::set_route_on(gw, host_len(&gw), None, index, RTPROT_BOOT, q),
                format!("adding the link route to gateway {gw}"),
            );
            push(
                &mut s,
                &|q| link::set_route_on(any, 0, Some(gw), index, RTPROT_BOOT, q),
                format!("adding the default route via {gw}"),
            );
        }
        let seqs: Vec<u32> = names.iter().map(|(q, _)| *q).collect();
        let failed = s.transact_each(&batch, &seqs)?;
        match failed.first() {
            None => Ok(()),
            Some(&(seq, errno)) => Err(calico_netlink::Error::Refused {
                what: names
                    .iter()
                    .find(|(q, _)| *q == seq)
                    .map_or_else(|| "a request".into(), |(_, n)| n.clone()),
                errno,
            }),
        }
    })
    .map_err(netlink(what))
}

/// Says which of the pair's names is taken (for the error message).
fn which_exists(w: &Wiring, host: &mut Socket) -> String {
    let on_host = link::find_link(host, &w.host_iface).ok().flatten();
    let if_name = w.if_name.clone();
    let inside = link::in_netns(&w.netns, move || {
        let mut s = Socket::open(None)?;
        link::find_link(&mut s, &if_name)
    })
    .ok()
    .flatten();
    let mac = |l: Option<[u8; 6]>| {
        l.map(|m| calico_master::model::MacAddr(m).to_string())
            .unwrap_or_default()
    };
    match (on_host, inside) {
        (Some(_), Some(i)) => format!(
            "both names exist already ({} inside has MAC {})",
            w.if_name,
            mac(i.mac)
        ),
        (Some(_), None) => format!("{} exists already on the host", w.host_iface),
        (None, Some(i)) => format!("{} exists already inside (MAC {})", w.if_name, mac(i.mac)),
        (None, None) => "a name existed already (gone now)".into(),
    }
}

/// Wires `w` from scratch (see the module docs); on failure nothing of it is left.
pub fn wire(w: &Wiring) -> Result<(), Error> {
    let peer_ns = NetnsFd::open(&w.netns).map_err(netlink("opening the workload's namespace"))?;
    let mut host = host_socket(w.host_netns.as_deref())?;
    let seq = host.next_seq();
    let peer = VethPeer {
        name: &w.if_name,
        mac: w.mac,
        netns_fd: peer_ns.raw(),
    };
    let failed = host
        .transact_each(&link::new_veth(&w.host_iface, &peer, seq), &[seq])
        .map_err(netlink(format!("creating veth {}", w.host_iface)))?;
    if let Some(&(_, errno)) = failed.first() {
        let what = if errno == EEXIST {
            format!(
                "creating veth {} (host) / {} (in {}): {}",
                w.host_iface,
                w.if_name,
                w.netns.display(),
                which_exists(w, &mut host)
            )
        } else {
            format!("creating veth {} / {}", w.host_iface, w.if_name)
        };
        return Err(Error::Netlink {
            what,
            source: calico_netlink::Error::Refused {
                what: "the veth pair".into(),
                errno,
            },
        });
    }
    drop(peer_ns);
    if let Err(e) = configure_inside(w, &w.ips, &[]) {
        if let Err(undo) = link::delete_link(&mut host, &w.host_iface) {
            tracing::warn!(iface = %w.host_iface, "could not remove the half-made interface: {undo}");
        }
        return Err(e);
    }
    Ok(())
}

/// Removes the host side of a workload interface (the pair goes with it); `Ok(false)` if it was gone.
pub fn unwire(host_iface: &str, host_netns: Option<&Path>) -> Result<bool, Error> {
    let mut host = host_socket(host_netns)?;
    link::delete_link(&mut host, host_iface).map_err(netlink(format!("removing {host_iface}")))
}

/// What is found of a workload's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Host side present, workload side with its MAC, every address and its default routes.
    Complete,
    /// Something of ours, but not all of it.
    Partial,
    /// Nothing of ours.
    Absent,
}

/// Looks at the host side and at the workload's interface.
pub fn inspect(w: &Wiring) -> Result<Found, Error> {
    let mut host = host_socket(w.host_netns.as_deref())?;
    let host_side = link::find_link(&mut host, &w.host_iface)
        .map_err(netlink(format!("looking up {}", w.host_iface)))?
        .is_some();
    let (if_name, mac, ips) = (w.if_name.clone(), w.mac, w.ips.clone());
    // The default route of each family the workload has an address of.
    let defaults: Vec<IpAddr> = [
        w.gateway_v4
            .map(IpAddr::V4)
            .filter(|_| ips.iter().any(IpAddr::is_ipv4)),
        w.gateway_v6
            .map(IpAddr::V6)
            .filter(|_| ips.iter().any(IpAddr::is_ipv6)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let inside = link::in_netns(&w.netns, move || {
        let mut s = Socket::open(None)?;
        let Some(link::Link {
            index,
            mac: found_mac,
        }) = link::find_link(&mut s, &if_name)?
        else {
            return Ok(None);
        };
        if found_mac != Some(mac) {
            return Ok(Some(false));
        }
        let have: Vec<IpAddr> = link::addresses_of(&mut s, index)?
            .iter()
            .map(|a| a.ip)
            .collect();
        if !ips.iter().all(|ip| have.contains(ip)) {
            return Ok(Some(false));
        }
        for gw in &defaults {
            let seq = s.next_seq();
            let mut found = false;
            s.dump_each(
                &route::dump_routes(gw.is_ipv6(), seq),
                route::RTM_NEWROUTE,
                |b| found |= route::is_default_via(b, *gw, index),
            )?;
            if !found {
                return Ok(Some(false));
            }
        }
        Ok(Some(true))
    })
    .map_err(netlink(format!(
        "looking at {} in {}",
        w.if_name,
        w.netns.display()
    )))?;
    Ok(match (host_side, inside) {
        (true, Some(true)) => Found::Complete,
        (false, None) => Found::Absent,
        _ => Found::Partial,
    })
}

/// True when the workload's interface is complete.
pub fn is_wired(w: &Wiring) -> Result<bool, Error> {
    Ok(inspect(w)? == Found::Complete)
}

/// Wires `w` unless it is complete already; a partial wiring is removed and made again. Returns true
/// when it wired.
pub fn ensure(w: &Wiring) -> Result<bool, Error> {
    match inspect(w)? {
        Found::Complete => return Ok(false),
        Found::Partial => {
            unwire(&w.host_iface, w.host_netns.as_deref())?;
            let if_name = w.if_name.clone();
            let mac = w.mac;
            // The host side may be gone while ours lingers inside: remove it there too.
            link::in_netns(&w.netns, move || {
                let mut s = Socket::open(None)?;
                if let Some(found) = link::find_link(&mut s, &if_name)? {
                    if found.mac == Some(mac) {
                        link::delete_link(&mut s, &if_name)?;
                    }
                }
                Ok(())
            })
            .map_err(netlink(format!("removing a stale {}", w.if_name)))?;
        }
        Found::Absent => {}
    }
    wire(w)?;
    Ok(true)
}

/// Changes the addresses of a wired interface: removes `remove`, adds `add` (`w.ips` must already be
/// the resulting list, so the gateway routes of each family it has are (re)made).
pub fn change_addresses(w: &Wiring, add: &[IpAddr], remove: &[IpAddr]) -> Result<(), Error> {
    configure_inside(w, add, remove)
}
