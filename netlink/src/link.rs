//! rtnetlink links and addresses: veth pairs whose peer is born inside another network namespace,
//! link changes by name (up, delete), interface addresses, and routes through a gateway on one
//! interface; plus the two I/O helpers the wiring needs: looking links and addresses up over a
//! [`Socket`], and running a closure on a short-lived thread inside another network namespace.
//!
//! Inputs: names, indexes, addresses, namespace file descriptors. Outputs: finished messages (pure
//! builders, batched by the caller over one [`Socket`]), parsed link and address facts, or the result of
//! the closure run in the namespace. It knows nothing of containers or Calico.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use crate::error::Error;
use crate::route::RTM_NEWLINK;
use crate::socket::Socket;
use crate::{parse_attrs, Message, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST};

pub const RTM_DELLINK: u16 = 17;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_DUMP: u16 = 0x300;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
/// `IFF_UP`.
pub const IFF_UP: u32 = 0x1;
/// `IFA_F_NODAD`: the address is usable at once, without duplicate address detection.
pub const IFA_F_NODAD: u32 = 0x02;
/// `RTPROT_BOOT`: what `ip route add` marks its routes with.
pub const RTPROT_BOOT: u8 = 3;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const RT_TABLE_MAIN: u8 = 254;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
/// `ENODEV`: no such interface.
pub const ENODEV: i32 = 19;
/// `EEXIST`.
pub const EEXIST: i32 = 17;

fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn family(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}

/// The far end of a new veth pair: its name, MAC and the namespace (an open file descriptor of e.g.
/// `/proc/PID/ns/net`) it is created in.
#[derive(Debug, Clone, Copy)]
pub struct VethPeer<'a> {
    pub name: &'a str,
    pub mac: [u8; 6],
    pub netns_fd: i32,
}

/// Creates the veth pair `name` ↔ `peer`, `name` up; the peer is created directly in its namespace,
/// so its name never clashes with one in ours (set it up there). Fails with `EEXIST` if a name exists.
pub fn new_veth(name: &str, peer: &VethPeer<'_>, seq: u32) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    let mut m = Message::new(RTM_NEWLINK, flags, seq);
    m.push_raw(&ifinfomsg(0, IFF_UP, IFF_UP));
    m.attr_str(IFLA_IFNAME, name);
    m.begin_nest(IFLA_LINKINFO);
    m.attr_str(IFLA_INFO_KIND, "veth");
    m.begin_nest(IFLA_INFO_DATA);
    m.begin_nest(VETH_INFO_PEER);
    // Not up here: the kernel configures the peer before the pair is linked, and a veth without its
    // peer refuses to open (ENOTCONN). Set it up in its namespace afterwards.
    m.push_raw(&ifinfomsg(0, 0, 0));
    m.attr_str(IFLA_IFNAME, peer.name);
    m.attr(IFLA_ADDRESS, &peer.mac);
    m.attr(IFLA_NET_NS_FD, &(peer.netns_fd as u32).to_ne_bytes());
    m.end_nest().end_nest().end_nest();
    m.finish()
}

/// Deletes the link called `name` (for a veth: the pair). Fails with `ENODEV` if there is none.
pub fn del_link(name: &str, seq: u32) -> Vec<u8> {
    let mut m = Message::new(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
    m.push_raw(&ifinfomsg(0, 0, 0));
    m.attr_str(IFLA_IFNAME, name);
    m.finish()
}

/// Sets the link called `name` up.
pub fn set_up(name: &str, seq: u32) -> Vec<u8> {
    let mut m = Message::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
    m.push_raw(&ifinfomsg(0, IFF_UP, IFF_UP));
    m.attr_str(IFLA_IFNAME, name);
    m.finish()
}

fn ifaddrmsg(ip: IpAddr, prefix_len: u8, flags: u32, ifindex: u32) -> [u8; 8] {
    let i = ifindex.to_ne_bytes();
    // The header's flag byte holds the low 8 bits; IFA_FLAGS carries all 32.
    [
        family(ip),
        prefix_len,
        (flags & 0xff) as u8,
        RT_SCOPE_UNIVERSE,
        i[0],
        i[1],
        i[2],
        i[3],
    ]
}

/// Adds (or replaces) `ip/prefix_len` on interface `ifindex` with `flags` (e.g. [`IFA_F_NODAD`]).
pub fn add_address(ip: IpAddr, prefix_len: u8, flags: u32, ifindex: u32, seq: u32) -> Vec<u8> {
    let mut m = Message::new(
        RTM_NEWADDR,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        seq,
    );
    m.push_raw(&ifaddrmsg(ip, prefix_len, flags, ifindex));
    m.attr(IFA_LOCAL, &octets(ip));
    m.attr(IFA_ADDRESS, &octets(ip));
    m.attr(IFA_FLAGS, &flags.to_ne_bytes());
    m.finish()
}

/// Removes `ip/prefix_len` from interface `ifindex`.
pub fn del_address(ip: IpAddr, prefix_len: u8, ifindex: u32, seq: u32) -> Vec<u8> {
    let mut m = Message::new(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, seq);
    m.push_raw(&ifaddrmsg(ip, prefix_len, 0, ifindex));
    m.attr(IFA_LOCAL, &octets(ip));
    m.attr(IFA_ADDRESS, &octets(ip));
    m.finish()
}

/// Dumps every address of every interface.
pub fn dump_addresses(seq: u32) -> Vec<u8> {
    let mut m = Message::new(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq);
    m.push_raw(&[AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0]);
    m.finish()
}

/// An address read from a dump: the interface index and the address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub ifindex: u32,
    pub ip: IpAddr,
    pub prefix_len: u8,
}

/// Parses an `RTM_NEWADDR` body (`IFA_LOCAL` for IPv4, `IFA_ADDRESS` for IPv6).
pub fn parse_address(body: &[u8]) -> Option<Address> {
    let h = body.get(..8)?;
    let (fam, prefix_len) = (h[0], h[1]);
    let ifindex = u32::from_ne_bytes([h[4], h[5], h[6], h[7]]);
    let mut local = None;
    let mut address = None;
    for (ty, value) in parse_attrs(body.get(8..)?) {
        let ip = match (fam, value.len()) {
            (AF_INET, 4) => IpAddr::from(<[u8; 4]>::try_from(value).ok()?),
            (AF_INET6, 16) => IpAddr::from(<[u8; 16]>::try_from(value).ok()?),
            _ => continue,
        };
        match ty {
            IFA_LOCAL => local = Some(ip),
            IFA_ADDRESS => address = Some(ip),
            _ => {}
        }
    }
    Some(Address {
        ifindex,
        ip: local.or(address)?,
        prefix_len,
    })
}

/// What a link lookup tells: the interface index and its MAC (if it has one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub mac: Option<[u8; 6]>,
}

/// A link's index and MAC from an `RTM_NEWLINK` body.
pub fn parse_link(body: &[u8]) -> Option<Link> {
    let index = body
        .get(4..8)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))?;
    let mac = parse_attrs(body.get(16..)?)
        .into_iter()
        .find(|(ty, _)| *ty == IFLA_ADDRESS)
        .and_then(|(_, v)| <[u8; 6]>::try_from(v).ok());
    Some(Link { index, mac })
}

/// A route in the main table to `dst/prefix_len` out of `oif`, through `gateway` (scope universe) or,
/// without one, directly on the link (scope link). A prefix length of 0 is the default route.
pub fn set_route_on(
    dst: IpAddr,
    prefix_len: u8,
    gateway: Option<IpAddr>,
    oif: u32,
    protocol: u8,
    seq: u32,
) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    let mut m = Message::new(RTM_NEWROUTE, flags, seq);
    let scope = if gateway.is_some() {
        RT_SCOPE_UNIVERSE
    } else {
        RT_SCOPE_LINK
    };
    m.push_raw(&[
        family(dst),
        prefix_len,
        0,
        0,
        RT_TABLE_MAIN,
        protocol,
        scope,
        RTN_UNICAST,
        0,
        0,
        0,
        0,
    ]);
    if prefix_len > 0 {
        m.attr(RTA_DST, &octets(dst));
    }
    if let Some(gw) = gateway {
        m.attr(RTA_GATEWAY, &octets(gw));
    }
    m.attr(RTA_OIF, &oif.to_ne_bytes());
    m.finish()
}

/// The index and MAC of the link called `name` in the socket's namespace; `None` when there is none.
pub fn find_link(sock: &mut Socket, name: &str) -> Result<Option<Link>, Error> {
    let seq = sock.next_seq();
    let msg = crate::route::get_link(name, seq);
    match sock.request_each(&msg, &[seq])?.remove(&seq) {
        Some(Ok(body)) => Ok(parse_link(&body)),
        Some(Err(ENODEV)) | None => Ok(None),
        Some(Err(errno)) => Err(Error::Refused {
            what: format!("looking up interface {name}"),
            errno,
        }),
    }
}

/// Every address on interface `ifindex` in the socket's namespace.
pub fn addresses_of(sock: &mut Socket, ifindex: u32) -> Result<Vec<Address>, Error> {
    let seq = sock.next_seq();
    Ok(sock
        .dump(&dump_addresses(seq), RTM_NEWADDR)?
        .iter()
        .filter_map(|b| parse_address(b))
        .filter(|a| a.ifindex == ifindex)
        .collect())
}

/// Deletes the link `name` in the socket's namespace; `Ok(false)` when there was none.
pub fn delete_link(sock: &mut Socket, name: &str) -> Result<bool, Error> {
    let seq = sock.next_seq();
    match sock.transact_each(&del_link(name, seq), &[seq])?.first() {
        None => Ok(true),
        Some(&(_, ENODEV)) => Ok(false),
        Some(&(_, errno)) => Err(Error::Refused {
            what: format!("deleting interface {name}"),
            errno,
        }),
    }
}

/// Runs `f` on a short-lived thread inside the network namespace at `netns` (e.g. `/proc/PID/ns/net`),
/// so that sockets it opens and `/proc/sys/net` paths it writes belong to that namespace; the caller's
/// threads never change namespace.
pub fn in_netns<T, F>(netns: &Path, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    let ns = std::fs::File::open(netns).map_err(|source| Error::Netns {
        path: netns.display().to_string(),
        source,
    })?;
    let path = netns.display().to_string();
    std::thread::spawn(move || {
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| Error::Netns {
            path,
            source: e.into(),
        })?;
        f()
    })
    .join()
    .unwrap_or_else(|_| Err(Error::Io(std::io::Error::other("netns thread panicked"))))
}

/// An open network namespace, to hand to [`new_veth`] as the peer's home.
#[derive(Debug)]
pub struct NetnsFd(std::fs::File);

impl NetnsFd {
    /// Opens the namespace file at `path`.
    pub fn open(path: &Path) -> Result<NetnsFd, Error> {
        std::fs::File::open(path)
            .map(NetnsFd)
            .map_err(|source| Error::Netns {
                path: path.display().to_string(),
                source,
            })
    }

    /// The descriptor number, valid while `self` lives.
    pub fn raw(&self) -> i32 {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_messages;

    fn attrs_of(msg: &[u8], header: usize) -> Vec<(u16, Vec<u8>)> {
        let body = parse_messages(msg)[0].body;
        parse_attrs(&body[header..])
            .into_iter()
            .map(|(t, v)| (t, v.to_vec()))
            .collect()
    }

    #[test]
    fn a_veth_with_its_peer_in_another_namespace() {
        let peer = VethPeer {
            name: "eth0",
            mac: [0xee, 1, 2, 3, 4, 5],
            netns_fd: 9,
        };
        let msg = new_veth("cali0123456789a", &peer, 3);
        let m = &parse_messages(&msg)[0];
        assert_eq!(m.ty, RTM_NEWLINK);
        assert_eq!(m.flags & NLM_F_EXCL, NLM_F_EXCL);
        assert_eq!(
            u32::from_ne_bytes(m.body[8..12].try_into().unwrap()),
            IFF_UP
        );
        let attrs = attrs_of(&msg, 16);
        assert_eq!(attrs[0], (IFLA_IFNAME, b"cali0123456789a\0".to_vec()));
        let (ty, linkinfo) = &attrs[1];
        assert_eq!(*ty, IFLA_LINKINFO);
        let info = parse_attrs(linkinfo);
        assert_eq!(info[0], (IFLA_INFO_KIND, &b"veth\0"[..]));
        let data = parse_attrs(info[1].1);
        assert_eq!(data[0].0, VETH_INFO_PEER);
        let peer_attrs = parse_attrs(&data[0].1[16..]);
        assert_eq!(peer_attrs[0], (IFLA_IFNAME, &b"eth0\0"[..]));
        assert_eq!(peer_attrs[1], (IFLA_ADDRESS, &[0xee, 1, 2, 3, 4, 5][..]));
        assert_eq!(peer_attrs[2], (IFLA_NET_NS_FD, &9u32.to_ne_bytes()[..]));
    }

    #[test]
    fn addresses_parse_back_with_their_flags() {
        let msg = add_address("fd00:65::2".parse().unwrap(), 128, IFA_F_NODAD, 4, 1);
        let body = parse_messages(&msg)[0].body;
        assert_eq!(body[2], IFA_F_NODAD as u8);
        assert_eq!(
            parse_address(body),
            Some(Address {
                ifindex: 4,
                ip: "fd00:65::2".parse().unwrap(),
                prefix_len: 128
            })
        );
        let v4 = del_address("10.65.0.2".parse().unwrap(), 32, 7, 2);
        assert_eq!(parse_messages(&v4)[0].ty, RTM_DELADDR);
        assert_eq!(
            parse_address(parse_messages(&v4)[0].body).map(|a| a.ip),
            Some("10.65.0.2".parse().unwrap())
        );
        assert_eq!(parse_address(&[2, 32, 0]), None);
    }

    #[test]
    fn default_and_link_routes() {
        let gw: IpAddr = "10.250.0.11".parse().unwrap();
        let default = set_route_on("0.0.0.0".parse().unwrap(), 0, Some(gw), 5, RTPROT_BOOT, 1);
        let body = parse_messages(&default)[0].body;
        assert_eq!((body[1], body[6]), (0, RT_SCOPE_UNIVERSE));
        assert_eq!(crate::route::route_gateways(body), vec![gw]);
        assert!(
            crate::route::parse_route(body).is_none(),
            "no RTA_DST on a default route"
        );
        let link = set_route_on(gw, 32, None, 5, RTPROT_BOOT, 2);
        let r = crate::route::parse_route(parse_messages(&link)[0].body).unwrap();
        assert_eq!((r.dst, r.prefix_len, r.oif), (gw, 32, Some(5)));
        assert_eq!(parse_messages(&link)[0].body[6], RT_SCOPE_LINK);
    }

    #[test]
    fn links_by_name() {
        let d = del_link("cali1", 1);
        assert_eq!(parse_messages(&d)[0].ty, RTM_DELLINK);
        assert_eq!(attrs_of(&d, 16)[0], (IFLA_IFNAME, b"cali1\0".to_vec()));
        let up = set_up("lo", 2);
        assert_eq!(parse_messages(&up)[0].ty, RTM_NEWLINK);
        let mut body = ifinfomsg(12, 0, 0).to_vec();
        body.extend_from_slice(&[10, 0, 1, 0, 1, 2, 3, 4, 5, 6, 0, 0]);
        assert_eq!(
            parse_link(&body),
            Some(Link {
                index: 12,
                mac: Some([1, 2, 3, 4, 5, 6])
            })
        );
    }
}
