//! Set element changes as one nf_tables netlink batch (one kernel transaction).
//!
//! Only plain elements (keys, no data): Felix keeps no verdict maps, so an element change never makes
//! the kernel re-validate the table's jumps on commit.
//!
//! Pure: element keys in the kernel's layout and the batch bytes. The kernel lays out a concatenated key
//! component by component, each padded to 4 bytes: an interface name is 16 bytes (IFNAMSIZ, NUL-padded),
//! an IPv4 address 4, an IPv6 address 16, a MAC 6 (+2 padding).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::TABLE;
use crate::model::Mac;
use calico_netlink::{Message, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_DATA_VALUE: u16 = 1;
/// Element bytes per message: a nested attribute's length is 16 bits.
const MAX_ELEMENTS_BYTES: usize = 48 * 1024;

/// One element change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementOp {
    /// Adds `key` to `set`.
    Add { set: String, key: Vec<u8> },
    /// Removes `key` from `set`.
    Delete { set: String, key: Vec<u8> },
}

impl ElementOp {
    fn set(&self) -> &str {
        match self {
            ElementOp::Add { set, .. } | ElementOp::Delete { set, .. } => set,
        }
    }
    fn is_add(&self) -> bool {
        matches!(self, ElementOp::Add { .. })
    }
}

/// An interface name as a key: 16 bytes, NUL-padded (longer names are cut, as the kernel's are).
pub fn key_ifname(name: &str) -> Vec<u8> {
    let mut key = vec![0u8; 16];
    let bytes = name.as_bytes();
    let n = bytes.len().min(15);
    key[..n].copy_from_slice(&bytes[..n]);
    key
}

fn mac_padded(mac: Mac) -> [u8; 8] {
    let m = mac.0;
    [m[0], m[1], m[2], m[3], m[4], m[5], 0, 0]
}

/// `ifname . ipv4_addr . ether_addr`.
pub fn key_src_v4(iface: &str, ip: Ipv4Addr, mac: Mac) -> Vec<u8> {
    let mut key = key_ifname(iface);
    key.extend_from_slice(&ip.octets());
    key.extend_from_slice(&mac_padded(mac));
    key
}

/// `ifname . ipv6_addr . ether_addr`.
pub fn key_src_v6(iface: &str, ip: Ipv6Addr, mac: Mac) -> Vec<u8> {
    let mut key = key_ifname(iface);
    key.extend_from_slice(&ip.octets());
    key.extend_from_slice(&mac_padded(mac));
    key
}

/// The bytes of one batch (begin, the element messages, end) and the sequence numbers that the kernel
/// will acknowledge. Deletes go before adds, so moving an interface from one set to another never
/// leaves it in both. `next_seq` hands out sequence numbers.
pub fn encode_batch(ops: &[ElementOp], mut next_seq: impl FnMut() -> u32) -> (Vec<u8>, Vec<u32>) {
    let mut bytes = Vec::new();
    let mut acked = Vec::new();
    let mut begin = Message::new(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, next_seq());
    begin.push_raw(&nfgenmsg(0, NFNL_SUBSYS_NFTABLES));
    bytes.extend(begin.finish());

    let mut ordered: Vec<&ElementOp> = ops.iter().filter(|o| !o.is_add()).collect();
    ordered.extend(ops.iter().filter(|o| o.is_add()));
    let mut i = 0;
    while i < ordered.len() {
        let (add, set) = (ordered[i].is_add(), ordered[i].set());
        let ty = (NFNL_SUBSYS_NFTABLES << 8)
            | if add {
                NFT_MSG_NEWSETELEM
            } else {
                NFT_MSG_DELSETELEM
            };
        let flags = NLM_F_REQUEST | NLM_F_ACK | if add { NLM_F_CREATE } else { 0 };
        let seq = next_seq();
        let mut m = Message::new(ty, flags, seq);
        m.push_raw(&nfgenmsg(NFPROTO_INET, 0));
        m.attr_str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
        m.attr_str(NFTA_SET_ELEM_LIST_SET, set);
        m.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS);
        let start = m.len();
        while i < ordered.len()
            && ordered[i].is_add() == add
            && ordered[i].set() == set
            && m.len() - start < MAX_ELEMENTS_BYTES
        {
            m.begin_nest(NFTA_LIST_ELEM);
            let (ElementOp::Add { key, .. } | ElementOp::Delete { key, .. }) = ordered[i];
            m.begin_nest(NFTA_SET_ELEM_KEY)
                .attr(NFTA_DATA_VALUE, key)
                .end_nest();
            m.end_nest();
            i += 1;
        }
        m.end_nest();
        bytes.extend(m.finish());
        acked.push(seq);
    }
    let mut end = Message::new(NFNL_MSG_BATCH_END, NLM_F_REQUEST, next_seq());
    end.push_raw(&nfgenmsg(0, NFNL_SUBSYS_NFTABLES));
    bytes.extend(end.finish());
    (bytes, acked)
}

const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NLM_F_DUMP: u16 = 0x300;

/// The message type of a rule in a rule dump.
pub const RULE_REPLY: u16 = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE;
/// The message type of an element list in an element dump.
pub const ELEMENTS_REPLY: u16 = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM;

/// Dumps every rule of Felix's table.
pub fn dump_rules(seq: u32) -> Vec<u8> {
    let mut m = Message::new(
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    );
    m.push_raw(&nfgenmsg(NFPROTO_INET, 0));
    m.attr_str(NFTA_RULE_TABLE, TABLE);
    m.finish()
}

/// The chain a dumped rule belongs to.
pub fn rule_chain(body: &[u8]) -> Option<String> {
    let (_, name) = calico_netlink::parse_attrs(body.get(4..)?)
        .into_iter()
        .find(|(ty, _)| *ty == NFTA_RULE_CHAIN)?;
    let name = name.split(|b| *b == 0).next()?;
    String::from_utf8(name.to_vec()).ok()
}

/// Dumps the elements of one of Felix's sets or maps.
pub fn dump_elements(set: &str, seq: u32) -> Vec<u8> {
    let mut m = Message::new(
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    );
    m.push_raw(&nfgenmsg(NFPROTO_INET, 0));
    m.attr_str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
    m.attr_str(NFTA_SET_ELEM_LIST_SET, set);
    m.finish()
}

/// How many elements one element-dump message carries.
pub fn element_count(body: &[u8]) -> usize {
    let Some(attrs) = body.get(4..) else { return 0 };
    calico_netlink::parse_attrs(attrs)
        .into_iter()
        .filter(|(ty, _)| *ty == NFTA_SET_ELEM_LIST_ELEMENTS)
        .map(|(_, list)| calico_netlink::parse_attrs(list).len())
        .sum()
}

/// `struct nfgenmsg`: family, version 0, resource id (big-endian).
fn nfgenmsg(family: u8, res_id: u16) -> [u8; 4] {
    let r = res_id.to_be_bytes();
    [family, 0, r[0], r[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_kernels_layout() {
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        let k = key_src_v4("cali0123456789a", "10.65.0.2".parse().unwrap(), mac);
        assert_eq!(k.len(), 28);
        assert_eq!(&k[..15], b"cali0123456789a");
        assert_eq!(k[15], 0);
        assert_eq!(&k[16..20], &[10, 65, 0, 2]);
        assert_eq!(&k[20..28], &[2, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(
            key_src_v6("x", "fd00:65::2".parse().unwrap(), mac).len(),
            40
        );
        assert_eq!(key_ifname("a-name-longer-than-15")[15], 0);
    }

    #[test]
    fn a_batch_groups_by_set_and_puts_deletes_first() {
        let mut seq = 0;
        let ops = vec![
            ElementOp::Add {
                set: "pl-ifaces-web".into(),
                key: key_ifname("cali1"),
            },
            ElementOp::Add {
                set: "pl-ifaces-web".into(),
                key: key_ifname("cali2"),
            },
            ElementOp::Delete {
                set: "pl-ifaces-web".into(),
                key: key_ifname("cali1"),
            },
            ElementOp::Add {
                set: "t4-web".into(),
                key: vec![10, 65, 0, 2],
            },
        ];
        let (bytes, acked) = encode_batch(&ops, || {
            seq += 1;
            seq
        });
        // begin (1), delete pl-ifaces-web (2), add pl-ifaces-web x2 (3), add t4-web (4), end (5)
        assert_eq!(acked, [2, 3, 4]);
        let types: Vec<u16> = messages(&bytes)
            .iter()
            .map(|m| u16::from_ne_bytes([m[4], m[5]]))
            .collect();
        assert_eq!(types, [0x10, 0x0a0e, 0x0a0c, 0x0a0c, 0x11]);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("pl-ifaces-web") && text.contains("calico"));
    }

    #[test]
    fn large_changes_split_into_messages_under_the_attribute_limit() {
        let ops: Vec<ElementOp> = (0..5000u32)
            .map(|i| ElementOp::Add {
                set: "t4-big".into(),
                key: i.to_be_bytes().to_vec(),
            })
            .collect();
        let mut seq = 0;
        let (bytes, acked) = encode_batch(&ops, || {
            seq += 1;
            seq
        });
        assert!(acked.len() > 1);
        for m in messages(&bytes) {
            assert!(m.len() < 65535, "{}", m.len());
        }
    }

    fn messages(mut bytes: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while bytes.len() >= 16 {
            let len = u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize;
            out.push(&bytes[..len]);
            bytes = &bytes[len..];
        }
        out
    }
}
