//! rtnetlink messages: interface lookup by name, host routes through an interface with an owner's
//! protocol number, permanent neighbour entries and IPv6 proxy neighbours; and the parsing of route dumps.
//!
//! Pure: builders return finished messages; parsers read message bodies.

use std::net::IpAddr;

use crate::{parse_attrs, Message, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST};

pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
pub const RTM_GETROUTE: u16 = 26;
pub const RTM_NEWNEIGH: u16 = 28;
pub const RTM_DELNEIGH: u16 = 29;
pub(crate) const NLM_F_REPLACE: u16 = 0x100;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
const IFLA_IFNAME: u16 = 3;
pub(crate) const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
pub(crate) const RTA_TABLE: u16 = 15;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const RT_TABLE_MAIN: u8 = 254;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const NUD_PERMANENT: u16 = 0x80;
const NTF_PROXY: u8 = 0x08;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

pub(crate) fn family(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

pub(crate) fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// Looks up one interface by name (the reply is an `RTM_NEWLINK` carrying its index).
pub fn get_link(name: &str, seq: u32) -> Vec<u8> {
    let mut m = Message::new(RTM_GETLINK, NLM_F_REQUEST, seq);
    m.push_raw(&[0u8; 16]); // struct ifinfomsg, all zero: match by name
    m.attr_str(IFLA_IFNAME, name);
    m.finish()
}

/// The interface index in an `RTM_NEWLINK` body.
pub fn link_index(body: &[u8]) -> Option<u32> {
    body.get(4..8)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn rtmsg(ip: IpAddr, protocol: u8) -> [u8; 12] {
    let dst_len = if ip.is_ipv4() { 32 } else { 128 };
    [
        family(ip),
        dst_len,
        0,
        0,
        RT_TABLE_MAIN,
        protocol,
        RT_SCOPE_LINK,
        RTN_UNICAST,
        0,
        0,
        0,
        0,
    ]
}

/// Adds or replaces the host route to `ip` through interface `ifindex`, owned by `protocol`.
pub fn set_route(ip: IpAddr, ifindex: u32, protocol: u8, seq: u32) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    let mut m = Message::new(RTM_NEWROUTE, flags, seq);
    m.push_raw(&rtmsg(ip, protocol));
    m.attr(RTA_DST, &octets(ip));
    m.attr(RTA_OIF, &ifindex.to_ne_bytes());
    m.finish()
}

/// Deletes the host route to `ip` that `protocol` owns.
pub fn del_route(ip: IpAddr, protocol: u8, seq: u32) -> Vec<u8> {
    let mut m = Message::new(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, seq);
    m.push_raw(&rtmsg(ip, protocol));
    m.attr(RTA_DST, &octets(ip));
    m.finish()
}

pub(crate) const RTA_GATEWAY: u16 = 5;
const RTA_MULTIPATH: u16 = 9;
pub(crate) const RT_SCOPE_UNIVERSE: u8 = 0;

/// A route to a prefix through one or more gateways (several: an ECMP route) in `table`, owned by
/// `protocol`. Gateways must be of the prefix's family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRoute {
    pub dst: IpAddr,
    pub prefix_len: u8,
    pub gateways: Vec<IpAddr>,
    pub table: u32,
    pub protocol: u8,
}

pub(crate) fn rtmsg_prefix(
    dst: IpAddr,
    prefix_len: u8,
    table: u32,
    protocol: u8,
    scope: u8,
) -> [u8; 12] {
    let table8 = if table < 256 { table as u8 } else { 252 }; // RT_TABLE_COMPAT: the attribute says
    [
        family(dst),
        prefix_len,
        0,
        0,
        table8,
        protocol,
        scope,
        RTN_UNICAST,
        0,
        0,
        0,
        0,
    ]
}

/// Adds or replaces a route through gateways (a multipath route when there are several).
pub fn set_gateway_route(route: &GatewayRoute, seq: u32) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    let mut m = Message::new(RTM_NEWROUTE, flags, seq);
    m.push_raw(&rtmsg_prefix(
        route.dst,
        route.prefix_len,
        route.table,
        route.protocol,
        RT_SCOPE_UNIVERSE,
    ));
    m.attr(RTA_TABLE, &route.table.to_ne_bytes());
    m.attr(RTA_DST, &octets(route.dst));
    match route.gateways.as_slice() {
        [one] => {
            m.attr(RTA_GATEWAY, &octets(*one));
        }
        many => {
            // struct rtnexthop { len: u16, flags: u8, hops: u8, ifindex: i32 } then its attributes.
            let mut hops = Vec::new();
            for gw in many {
                let gw_bytes = octets(*gw);
                let attr_len = 4 + gw_bytes.len();
                let len = 8 + attr_len;
                hops.extend_from_slice(&(len as u16).to_ne_bytes());
                hops.extend_from_slice(&[0, 0]);
                hops.extend_from_slice(&0i32.to_ne_bytes());
                hops.extend_from_slice(&(attr_len as u16).to_ne_bytes());
                hops.extend_from_slice(&RTA_GATEWAY.to_ne_bytes());
                hops.extend_from_slice(&gw_bytes);
            }
            m.attr(RTA_MULTIPATH, &hops);
        }
    }
    m.finish()
}

/// Deletes the route to a prefix in `table` that `protocol` owns.
pub fn del_prefix_route(
    dst: IpAddr,
    prefix_len: u8,
    table: u32,
    protocol: u8,
    seq: u32,
) -> Vec<u8> {
    let mut m = Message::new(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, seq);
    m.push_raw(&rtmsg_prefix(
        dst,
        prefix_len,
        table,
        protocol,
        RT_SCOPE_UNIVERSE,
    ));
    m.attr(RTA_TABLE, &table.to_ne_bytes());
    m.attr(RTA_DST, &octets(dst));
    m.finish()
}

/// The route type of a blackhole: packets to the prefix are dropped silently.
pub const RTN_BLACKHOLE: u8 = 6;

fn blackhole_message(
    ty: u16,
    flags: u16,
    dst: IpAddr,
    prefix_len: u8,
    table: u32,
    protocol: u8,
    seq: u32,
) -> Vec<u8> {
    let mut m = Message::new(ty, flags, seq);
    let mut header = rtmsg_prefix(dst, prefix_len, table, protocol, RT_SCOPE_UNIVERSE);
    header[7] = RTN_BLACKHOLE;
    m.push_raw(&header);
    m.attr(RTA_TABLE, &table.to_ne_bytes());
    m.attr(RTA_DST, &octets(dst));
    m.finish()
}

/// Adds or replaces a blackhole route to a prefix in `table`, owned by `protocol`.
pub fn set_blackhole_route(
    dst: IpAddr,
    prefix_len: u8,
    table: u32,
    protocol: u8,
    seq: u32,
) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    blackhole_message(RTM_NEWROUTE, flags, dst, prefix_len, table, protocol, seq)
}

/// Deletes a blackhole route (the kernel matches the route type on delete, so a blackhole needs this).
pub fn del_blackhole_route(
    dst: IpAddr,
    prefix_len: u8,
    table: u32,
    protocol: u8,
    seq: u32,
) -> Vec<u8> {
    blackhole_message(
        RTM_DELROUTE,
        NLM_F_REQUEST | NLM_F_ACK,
        dst,
        prefix_len,
        table,
        protocol,
        seq,
    )
}

/// The gateways of a dumped route: its `RTA_GATEWAY`, or those of its `RTA_MULTIPATH`, sorted.
pub fn route_gateways(body: &[u8]) -> Vec<IpAddr> {
    let to_ip = |v: &[u8]| match v.len() {
        4 => <[u8; 4]>::try_from(v).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(v).ok().map(IpAddr::from),
        _ => None,
    };
    let mut out = Vec::new();
    for (ty, value) in parse_attrs(body.get(12..).unwrap_or_default()) {
        match ty {
            RTA_GATEWAY => out.extend(to_ip(value)),
            RTA_MULTIPATH => {
                let mut rest = value;
                while rest.len() >= 8 {
                    let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
                    if len < 8 || len > rest.len() {
                        break;
                    }
                    for (aty, av) in parse_attrs(&rest[8..len]) {
                        if aty == RTA_GATEWAY {
                            out.extend(to_ip(av));
                        }
                    }
                    rest = &rest[((len + 3) & !3).min(rest.len())..];
                }
            }
            _ => {}
        }
    }
    out.sort();
    out
}

/// Whether a dumped route is a default route of the main table through `gateway` out of interface
/// `oif` (what a wired workload needs to count as network-ready).
pub fn is_default_via(body: &[u8], gateway: IpAddr, oif: u32) -> bool {
    let Some(header) = body.get(..12) else {
        return false;
    };
    let mut table = u32::from(header[4]);
    let mut out = None;
    for (ty, value) in parse_attrs(&body[12..]) {
        let word = value
            .get(..4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        match ty {
            RTA_OIF => out = word,
            RTA_TABLE => table = word.unwrap_or(table),
            _ => {}
        }
    }
    header[0] == family(gateway)
        && header[1] == 0
        && table == u32::from(RT_TABLE_MAIN)
        && out == Some(oif)
        && route_gateways(body).contains(&gateway)
}

/// Asks the kernel for its route to `dst` (the answer is one `RTM_NEWROUTE`: the device, and the gateway
/// when `dst` is not directly connected).
pub fn get_route(dst: IpAddr, seq: u32) -> Vec<u8> {
    let mut m = Message::new(RTM_GETROUTE, NLM_F_REQUEST, seq);
    let bits = if dst.is_ipv4() { 32 } else { 128 };
    m.push_raw(&[family(dst), bits, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    m.attr(RTA_DST, &octets(dst));
    m.finish()
}

/// Dumps every route of one family (filtered by the caller on protocol).
pub fn dump_routes(v6: bool, seq: u32) -> Vec<u8> {
    let mut m = Message::new(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq);
    let fam = if v6 { AF_INET6 } else { AF_INET };
    m.push_raw(&[fam, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    m.finish()
}

/// A route read from a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpAddr,
    pub prefix_len: u8,
    pub protocol: u8,
    pub table: u32,
    pub oif: Option<u32>,
}

/// Parses an `RTM_NEWROUTE` body; `None` for routes without a destination (defaults) or malformed ones.
pub fn parse_route(body: &[u8]) -> Option<Route> {
    let header = body.get(..12)?;
    let (fam, prefix_len, table8, protocol) = (header[0], header[1], header[4], header[5]);
    let mut route = Route {
        dst: IpAddr::from([0u8; 4]),
        prefix_len,
        protocol,
        table: u32::from(table8),
        oif: None,
    };
    let mut has_dst = false;
    for (ty, value) in parse_attrs(body.get(12..)?) {
        match ty {
            RTA_DST => {
                route.dst = match (fam, value.len()) {
                    (AF_INET, 4) => IpAddr::from(<[u8; 4]>::try_from(value).ok()?),
                    (AF_INET6, 16) => IpAddr::from(<[u8; 16]>::try_from(value).ok()?),
                    _ => return None,
                };
                has_dst = true;
            }
            RTA_OIF => {
                route.oif = value
                    .get(..4)
                    .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            }
            RTA_TABLE => {
                if let Some(b) = value.get(..4) {
                    route.table = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            _ => {}
        }
    }
    has_dst.then_some(route)
}

fn ndmsg(ip: IpAddr, ifindex: u32, state: u16, flags: u8) -> [u8; 12] {
    let i = ifindex.to_ne_bytes();
    let s = state.to_ne_bytes();
    [
        family(ip),
        0,
        0,
        0,
        i[0],
        i[1],
        i[2],
        i[3],
        s[0],
        s[1],
        flags,
        0,
    ]
}

/// Adds or replaces a permanent neighbour entry: `ip` is at `mac` on `ifindex`.
pub fn set_neighbour(ip: IpAddr, mac: [u8; 6], ifindex: u32, seq: u32) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    let mut m = Message::new(RTM_NEWNEIGH, flags, seq);
    m.push_raw(&ndmsg(ip, ifindex, NUD_PERMANENT, 0));
    m.attr(NDA_DST, &octets(ip));
    m.attr(NDA_LLADDR, &mac);
    m.finish()
}

/// Answers neighbour solicitations for `ip` on `ifindex` (an IPv6 proxy neighbour, for the gateway).
pub fn set_proxy_neighbour(ip: IpAddr, ifindex: u32, seq: u32) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    let mut m = Message::new(RTM_NEWNEIGH, flags, seq);
    m.push_raw(&ndmsg(ip, ifindex, NUD_PERMANENT, NTF_PROXY));
    m.attr(NDA_DST, &octets(ip));
    m.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_messages;

    #[test]
    fn a_route_message_parses_back() {
        let msg = set_route("10.65.0.2".parse().unwrap(), 7, 80, 9);
        let parsed = parse_messages(&msg);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].ty, RTM_NEWROUTE);
        let route = parse_route(parsed[0].body).unwrap();
        assert_eq!(
            route,
            Route {
                dst: "10.65.0.2".parse().unwrap(),
                prefix_len: 32,
                protocol: 80,
                table: 254,
                oif: Some(7)
            }
        );
        let v6 = set_route("fd00:65::2".parse().unwrap(), 3, 80, 1);
        let r6 = parse_route(parse_messages(&v6)[0].body).unwrap();
        assert_eq!(
            (r6.prefix_len, r6.dst),
            (128, "fd00:65::2".parse().unwrap())
        );
    }

    #[test]
    fn default_routes_are_told_by_gateway_interface_and_table() {
        use crate::link::set_route_on;
        let gw: IpAddr = "10.250.0.11".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let body = |m: &[u8]| parse_messages(m)[0].body.to_vec();
        let default = body(&set_route_on(any, 0, Some(gw), 5, 3, 1));
        assert!(is_default_via(&default, gw, 5));
        assert!(!is_default_via(&default, gw, 6), "another interface");
        assert!(!is_default_via(&default, "10.250.0.12".parse().unwrap(), 5));
        let link_route = body(&set_route_on(gw, 32, None, 5, 3, 1));
        assert!(!is_default_via(&link_route, gw, 5), "not a default route");
        let gw6: IpAddr = "fd00:250::11".parse().unwrap();
        let default6 = body(&set_route_on("::".parse().unwrap(), 0, Some(gw6), 5, 3, 1));
        assert!(is_default_via(&default6, gw6, 5) && !is_default_via(&default6, gw, 5));
    }

    #[test]
    fn gateway_and_multipath_routes_parse_back() {
        let ecmp = GatewayRoute {
            dst: "10.65.3.0".parse().unwrap(),
            prefix_len: 26,
            gateways: vec![
                "10.250.0.13".parse().unwrap(),
                "10.250.0.12".parse().unwrap(),
            ],
            table: 1000,
            protocol: 186,
        };
        let msg = set_gateway_route(&ecmp, 1);
        let body = parse_messages(&msg)[0].body;
        let r = parse_route(body).unwrap();
        assert_eq!((r.prefix_len, r.protocol, r.table), (26, 186, 1000));
        assert_eq!(
            route_gateways(body),
            vec![
                "10.250.0.12".parse::<IpAddr>().unwrap(),
                "10.250.0.13".parse().unwrap()
            ]
        );
        let one = GatewayRoute {
            gateways: vec!["fd00:250::12".parse().unwrap()],
            dst: "fd00:65::".parse().unwrap(),
            prefix_len: 122,
            table: 254,
            protocol: 186,
        };
        let body1 = set_gateway_route(&one, 2);
        assert_eq!(route_gateways(parse_messages(&body1)[0].body), one.gateways);
        assert!(route_gateways(&[0u8; 3]).is_empty());
    }

    #[test]
    fn malformed_routes_are_skipped_not_trusted() {
        assert_eq!(parse_route(&[2, 32]), None);
        let mut body = rtmsg("10.0.0.1".parse().unwrap(), 80).to_vec();
        body.extend_from_slice(&[7, 0, 1, 0, 10, 0, 0]); // RTA_DST of 3 bytes for AF_INET
        body.push(0);
        assert_eq!(parse_route(&body), None);
    }

    #[test]
    fn neighbour_entries_are_permanent_and_proxies_flagged() {
        let n = set_neighbour("10.65.0.2".parse().unwrap(), [2, 0, 0, 0, 0, 1], 5, 1);
        let body = parse_messages(&n)[0].body;
        assert_eq!(u16::from_ne_bytes([body[8], body[9]]), NUD_PERMANENT);
        assert_eq!(body[10], 0);
        let p = set_proxy_neighbour("fd00:250::11".parse().unwrap(), 5, 1);
        assert_eq!(parse_messages(&p)[0].body[10], NTF_PROXY);
    }
}
