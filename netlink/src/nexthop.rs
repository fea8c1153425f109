//! rtnetlink nexthop objects (Linux 5.3+): a gateway through a device, or a group of them (ECMP), kept by
//! the kernel under an id that routes name with `RTA_NH_ID`. A route through a nexthop object costs the
//! kernel less to install than one carrying its own gateways (the gateway is checked once, when the object
//! is made, not for every route), and a multipath route far less.
//!
//! Pure: builders return finished messages; [`parse_nexthop`] reads a dumped object.

use std::net::IpAddr;

use crate::route::{
    family, octets, rtmsg_prefix, NLM_F_DUMP, NLM_F_REPLACE, RTA_DST, RTA_TABLE, RT_SCOPE_UNIVERSE,
};
use crate::{parse_attrs, Message, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST};

pub const RTM_NEWNEXTHOP: u16 = 104;
pub const RTM_DELNEXTHOP: u16 = 105;
pub const RTM_GETNEXTHOP: u16 = 106;
const NLM_F_EXCL: u16 = 0x200;
const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
/// `RTA_NH_ID`: the nexthop object a route goes through.
pub const RTA_NH_ID: u16 = 30;
const AF_UNSPEC: u8 = 0;

/// `struct nhmsg`: family, scope, protocol, reserved, flags.
fn nhmsg(family: u8, protocol: u8) -> [u8; 8] {
    [family, 0, protocol, 0, 0, 0, 0, 0]
}

/// Creates nexthop `id`: `gateway` through interface `oif`, owned by `protocol`. Fails with `EEXIST`
/// when the id is taken (the caller picks another).
pub fn new_gateway(id: u32, gateway: IpAddr, oif: u32, protocol: u8, seq: u32) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    let mut m = Message::new(RTM_NEWNEXTHOP, flags, seq);
    m.push_raw(&nhmsg(family(gateway), protocol));
    m.attr(NHA_ID, &id.to_ne_bytes());
    m.attr(NHA_GATEWAY, &octets(gateway));
    m.attr(NHA_OIF, &oif.to_ne_bytes());
    m.finish()
}

/// Creates group `id` of the nexthops `members`, equal weights (a multipath group).
pub fn new_group(id: u32, members: &[u32], protocol: u8, seq: u32) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    let mut m = Message::new(RTM_NEWNEXTHOP, flags, seq);
    m.push_raw(&nhmsg(AF_UNSPEC, protocol));
    m.attr(NHA_ID, &id.to_ne_bytes());
    // struct nexthop_grp { id: u32, weight: u8 (weight - 1), resvd1: u8, resvd2: u16 }
    let mut group = Vec::with_capacity(members.len() * 8);
    for member in members {
        group.extend_from_slice(&member.to_ne_bytes());
        group.extend_from_slice(&[0, 0, 0, 0]);
    }
    m.attr(NHA_GROUP, &group);
    m.finish()
}

/// Deletes nexthop `id` (the kernel also deletes every route through it).
pub fn delete(id: u32, seq: u32) -> Vec<u8> {
    let mut m = Message::new(RTM_DELNEXTHOP, NLM_F_REQUEST | NLM_F_ACK, seq);
    m.push_raw(&nhmsg(AF_UNSPEC, 0));
    m.attr(NHA_ID, &id.to_ne_bytes());
    m.finish()
}

/// Dumps every nexthop object (filtered by the caller on protocol).
pub fn dump(seq: u32) -> Vec<u8> {
    let mut m = Message::new(RTM_GETNEXTHOP, NLM_F_REQUEST | NLM_F_DUMP, seq);
    m.push_raw(&nhmsg(AF_UNSPEC, 0));
    m.finish()
}

/// Adds or replaces the route to `dst/prefix_len` in `table`, owned by `protocol`, through nexthop `id`.
pub fn set_route(
    dst: IpAddr,
    prefix_len: u8,
    table: u32,
    protocol: u8,
    id: u32,
    seq: u32,
) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    let mut m = Message::new(crate::route::RTM_NEWROUTE, flags, seq);
    m.push_raw(&rtmsg_prefix(
        dst,
        prefix_len,
        table,
        protocol,
        RT_SCOPE_UNIVERSE,
    ));
    m.attr(RTA_TABLE, &table.to_ne_bytes());
    m.attr(RTA_DST, &octets(dst));
    m.attr(RTA_NH_ID, &id.to_ne_bytes());
    m.finish()
}

/// A dumped nexthop object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nexthop {
    pub id: u32,
    pub protocol: u8,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    /// The members' ids, for a group.
    pub group: Vec<u32>,
}

fn u32_at(v: &[u8]) -> Option<u32> {
    v.get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses an `RTM_NEWNEXTHOP` body; `None` when it names no id or is malformed.
pub fn parse_nexthop(body: &[u8]) -> Option<Nexthop> {
    let header = body.get(..8)?;
    let mut nh = Nexthop {
        id: 0,
        protocol: header[2],
        gateway: None,
        oif: None,
        group: Vec::new(),
    };
    for (ty, value) in parse_attrs(body.get(8..)?) {
        match ty {
            NHA_ID => nh.id = u32_at(value)?,
            NHA_OIF => nh.oif = u32_at(value),
            NHA_GATEWAY => {
                nh.gateway = match value.len() {
                    4 => <[u8; 4]>::try_from(value).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(value).ok().map(IpAddr::from),
                    _ => return None,
                }
            }
            NHA_GROUP => nh.group = value.chunks_exact(8).filter_map(u32_at).collect(),
            _ => {}
        }
    }
    (nh.id != 0).then_some(nh)
}

/// The nexthop object a dumped route goes through, if it names one.
pub fn route_nh_id(body: &[u8]) -> Option<u32> {
    parse_attrs(body.get(12..)?)
        .into_iter()
        .find(|(ty, _)| *ty == RTA_NH_ID)
        .and_then(|(_, v)| u32_at(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_messages;

    #[test]
    fn nexthops_and_groups_parse_back() {
        let gw = new_gateway(7, "10.250.0.12".parse().unwrap(), 3, 186, 1);
        let m = parse_messages(&gw);
        assert_eq!(m[0].ty, RTM_NEWNEXTHOP);
        assert_eq!(
            parse_nexthop(m[0].body),
            Some(Nexthop {
                id: 7,
                protocol: 186,
                gateway: Some("10.250.0.12".parse().unwrap()),
                oif: Some(3),
                group: vec![],
            })
        );
        let group = new_group(9, &[7, 8], 186, 2);
        let g = parse_nexthop(parse_messages(&group)[0].body).unwrap();
        assert_eq!((g.id, g.group, g.gateway), (9, vec![7, 8], None));
        let v6 = new_gateway(5, "fd00::1".parse().unwrap(), 2, 186, 3);
        let g6 = parse_nexthop(parse_messages(&v6)[0].body).unwrap();
        assert_eq!(g6.gateway, Some("fd00::1".parse().unwrap()));
        // Bodies too short or without an id are no nexthop.
        assert_eq!(parse_nexthop(&[0; 4]), None);
        assert_eq!(parse_nexthop(&nhmsg(2, 186)), None);
    }

    #[test]
    fn a_route_through_a_nexthop_names_it() {
        let r = set_route("10.96.0.1".parse().unwrap(), 32, 254, 186, 42, 1);
        let m = parse_messages(&r);
        assert_eq!(m[0].ty, crate::route::RTM_NEWROUTE);
        assert_eq!(route_nh_id(m[0].body), Some(42));
        let parsed = crate::route::parse_route(m[0].body).unwrap();
        assert_eq!(
            (parsed.prefix_len, parsed.table, parsed.protocol),
            (32, 254, 186)
        );
    }
}
