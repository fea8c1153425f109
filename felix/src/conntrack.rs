//! ctnetlink: find the conntrack entries that involve given addresses and delete them, so a flow of a
//! removed endpoint cannot outlive its policy (its address may soon belong to another workload).
//!
//! Pure: the dump request, the parser that picks matching entries out of a dump, and the delete
//! messages (each echoes the entry's original tuple, which is how the kernel identifies it).

use std::collections::BTreeSet;
use std::net::IpAddr;

use calico_netlink::{parse_attrs, Message, NLM_F_ACK, NLM_F_REQUEST};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLM_F_DUMP: u16 = 0x300;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// The message type of a conntrack entry in a dump.
pub const CT_NEW: u16 = NFNL_SUBSYS_CTNETLINK << 8;

fn nfgenmsg(family: u8) -> [u8; 4] {
    [family, 0, 0, 0]
}

/// Dumps the conntrack table of one family.
pub fn dump(v6: bool, seq: u32) -> Vec<u8> {
    let mut m = Message::new(
        (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    );
    m.push_raw(&nfgenmsg(if v6 { AF_INET6 } else { AF_INET }));
    m.finish()
}

/// The addresses in a tuple attribute's `CTA_TUPLE_IP`.
fn tuple_addresses(tuple: &[u8]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for (ty, value) in parse_attrs(tuple) {
        if ty != CTA_TUPLE_IP {
            continue;
        }
        for (ip_ty, addr) in parse_attrs(value) {
            match (ip_ty, addr.len()) {
                (CTA_IP_V4_SRC | CTA_IP_V4_DST, 4) => {
                    if let Ok(a) = <[u8; 4]>::try_from(addr) {
                        out.push(IpAddr::from(a));
                    }
                }
                (CTA_IP_V6_SRC | CTA_IP_V6_DST, 16) => {
                    if let Ok(a) = <[u8; 16]>::try_from(addr) {
                        out.push(IpAddr::from(a));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// If the entry (a `CT_NEW` body from a dump) involves any of `ips` in either direction, the delete
/// message for it.
pub fn delete_if_involves(body: &[u8], ips: &BTreeSet<IpAddr>, seq: u32) -> Option<Vec<u8>> {
    let family = *body.first()?;
    let attrs = parse_attrs(body.get(4..)?);
    let involved = attrs
        .iter()
        .filter(|(ty, _)| *ty == CTA_TUPLE_ORIG || *ty == CTA_TUPLE_REPLY)
        .flat_map(|(_, v)| tuple_addresses(v))
        .any(|ip| ips.contains(&ip));
    if !involved {
        return None;
    }
    let (_, orig) = attrs.iter().find(|(ty, _)| *ty == CTA_TUPLE_ORIG)?;
    let mut m = Message::new(
        (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
    );
    m.push_raw(&nfgenmsg(family));
    // The original tuple, re-nested as it came (the kernel finds the entry by it), and its zone.
    m.begin_nest(CTA_TUPLE_ORIG);
    m.push_raw(orig);
    m.end_nest();
    if let Some((_, zone)) = attrs.iter().find(|(ty, _)| *ty == CTA_ZONE) {
        m.attr(CTA_ZONE, zone);
    }
    Some(m.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_netlink::parse_messages;

    /// A dump entry: nfgenmsg, then an original and a reply tuple with IPv4 addresses.
    fn entry(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut m = Message::new(CT_NEW, 0, 1);
        m.push_raw(&nfgenmsg(AF_INET));
        for (tuple, (a, b)) in [(CTA_TUPLE_ORIG, (src, dst)), (CTA_TUPLE_REPLY, (dst, src))] {
            m.begin_nest(tuple).begin_nest(CTA_TUPLE_IP);
            m.attr(CTA_IP_V4_SRC, &a).attr(CTA_IP_V4_DST, &b);
            m.end_nest().end_nest();
        }
        m.finish()
    }

    #[test]
    fn entries_involving_a_removed_address_are_deleted_by_their_original_tuple() {
        let ips: BTreeSet<IpAddr> = ["10.65.0.2".parse().unwrap()].into();
        let hit = entry([10, 65, 0, 9], [10, 65, 0, 2]);
        let body = parse_messages(&hit)[0].body;
        let del = delete_if_involves(body, &ips, 7).expect("involves 10.65.0.2");
        let parsed = parse_messages(&del);
        assert_eq!(
            parsed[0].ty,
            (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE
        );
        let attrs = parse_attrs(&parsed[0].body[4..]);
        assert_eq!(attrs[0].0, CTA_TUPLE_ORIG);
        assert_eq!(
            tuple_addresses(attrs[0].1),
            vec![IpAddr::from([10, 65, 0, 9]), IpAddr::from([10, 65, 0, 2])]
        );
        let miss = entry([10, 65, 0, 9], [10, 65, 0, 3]);
        assert!(delete_if_involves(parse_messages(&miss)[0].body, &ips, 8).is_none());
        assert!(delete_if_involves(&[2], &ips, 9).is_none());
    }
}
