//! IPAM blocks: a CIDR with a host affinity and one allocation slot per address.
//!
//! Role: the stored unit of IPAM, one value per block as in the original's IPAM v2
//! (`/calico/ipam/v2/assignment/ipv4/block/192.168.0.0-26` =
//! `{"cidr":"192.168.0.0/26","affinity":"host:core-01","allocations":[null,0,...],"attributes":[...]}`):
//! `allocations[i]` is `null` when address `i` of the block is free, else an index into `attributes`,
//! the [`Owner`]s (identical owners share one entry). Inputs: the IPAM core. Outputs: slot queries and
//! copy-on-write edits; the JSON shape. Deserialization checks the slot count and owner indices.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The most host bits a block may have (a stored block larger than 2^16 addresses is rejected).
pub const MAX_BLOCK_BITS: u8 = 16;

/// Who holds an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// The holder's handle, e.g. the container (workload) id; release by handle frees all its IPs.
    pub handle_id: String,
    /// The host the address is used on (decides whether it is announced as a host route).
    pub host: String,
    /// Free-form attributes (e.g. `endpoint_id`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secondary: BTreeMap<String, String>,
}

impl Owner {
    /// An owner with no extra attributes.
    pub fn new(handle_id: impl Into<String>, host: impl Into<String>) -> Self {
        Owner {
            handle_id: handle_id.into(),
            host: host.into(),
            secondary: BTreeMap::new(),
        }
    }
}

/// One block of addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawBlock", into = "RawBlock")]
pub struct Block {
    /// The block's network.
    pub cidr: IpNet,
    /// The host that claimed it (and announces it as an aggregate route), if any.
    pub affinity: Option<String>,
    /// One slot per address: `None` = free, `Some(i)` = held by `attributes[i]`.
    pub allocations: Vec<Option<u32>>,
    /// The owners referred to by `allocations`.
    pub attributes: Vec<Owner>,
}

#[derive(Serialize, Deserialize)]
struct RawBlock {
    cidr: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    affinity: Option<String>,
    allocations: Vec<Option<u32>>,
    #[serde(default)]
    attributes: Vec<Owner>,
}

impl TryFrom<RawBlock> for Block {
    type Error = String;
    fn try_from(r: RawBlock) -> Result<Self, String> {
        let affinity = match r.affinity {
            None => None,
            Some(a) => Some(
                a.strip_prefix("host:")
                    .ok_or_else(|| {
                        format!(
                            "block {}: affinity `{a}` does not start with `host:`",
                            r.cidr
                        )
                    })?
                    .to_owned(),
            ),
        };
        if r.cidr.trunc() != r.cidr {
            return Err(format!("block {} has host bits set", r.cidr));
        }
        if r.cidr.max_prefix_len() - r.cidr.prefix_len() > MAX_BLOCK_BITS {
            return Err(format!(
                "block {} is larger than 2^{MAX_BLOCK_BITS} addresses",
                r.cidr
            ));
        }
        let b = Block {
            cidr: r.cidr,
            affinity,
            allocations: r.allocations,
            attributes: r.attributes,
        };
        if b.allocations.len() as u128 != b.size() {
            return Err(format!(
                "block {} has {} allocation slots, expected {}",
                b.cidr,
                b.allocations.len(),
                b.size()
            ));
        }
        if b.allocations
            .iter()
            .flatten()
            .any(|i| *i as usize >= b.attributes.len())
        {
            return Err(format!(
                "block {} refers to a missing attribute entry",
                b.cidr
            ));
        }
        Ok(b)
    }
}

impl From<Block> for RawBlock {
    fn from(b: Block) -> Self {
        RawBlock {
            cidr: b.cidr,
            affinity: b.affinity.map(|h| format!("host:{h}")),
            allocations: b.allocations,
            attributes: b.attributes,
        }
    }
}

/// An address as a number (IPv4 in the low 32 bits).
pub(crate) fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address `n` of the family of `like`.
pub(crate) fn u128_to_ip(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

impl Block {
    /// An empty block; the CIDR must have at most [`MAX_BLOCK_BITS`] host bits (IPAM makes /26 and /122
    /// blocks, or smaller ones clipped to a small pool).
    pub(crate) fn new(cidr: IpNet, affinity: Option<String>) -> Self {
        let size = 1u128 << (cidr.max_prefix_len() - cidr.prefix_len());
        Block {
            cidr,
            affinity,
            allocations: vec![None; size as usize],
            attributes: Vec::new(),
        }
    }

    /// The original's etcd key: `/calico/ipam/v2/assignment/ipv4/block/192.168.0.0-26`.
    pub fn etcd_key(&self) -> String {
        Self::etcd_key_for(&self.cidr)
    }

    /// The etcd key of the block with this CIDR (see [`Block::etcd_key`]).
    pub fn etcd_key_for(cidr: &IpNet) -> String {
        let family = match cidr {
            IpNet::V4(_) => "ipv4",
            IpNet::V6(_) => "ipv6",
        };
        format!(
            "/calico/ipam/v2/assignment/{family}/block/{}",
            cidr.to_string().replace('/', "-")
        )
    }

    /// Number of addresses.
    pub fn size(&self) -> u128 {
        1u128 << (self.cidr.max_prefix_len() - self.cidr.prefix_len())
    }

    /// The slot of `ip`, if it is in the block.
    pub fn ordinal(&self, ip: IpAddr) -> Option<usize> {
        self.cidr
            .contains(&ip)
            .then(|| (ip_to_u128(ip) - ip_to_u128(self.cidr.network())) as usize)
    }

    /// The address of slot `i`.
    pub fn ip_at(&self, i: usize) -> IpAddr {
        let net = self.cidr.network();
        u128_to_ip(net, ip_to_u128(net) + i as u128)
    }

    /// The owner of `ip`, if it is allocated.
    pub fn owner_of(&self, ip: IpAddr) -> Option<&Owner> {
        let idx = (*self.allocations.get(self.ordinal(ip)?)?)?;
        self.attributes.get(idx as usize)
    }

    /// Number of allocated addresses.
    pub fn used(&self) -> usize {
        self.allocations.iter().filter(|a| a.is_some()).count()
    }

    /// Allocated addresses with their owners.
    pub fn allocated(&self) -> impl Iterator<Item = (IpAddr, &Owner)> + '_ {
        self.allocations.iter().enumerate().filter_map(|(i, a)| {
            a.and_then(|idx| self.attributes.get(idx as usize))
                .map(|o| (self.ip_at(i), o))
        })
    }

    /// The first free slot whose address is not `reserved`.
    pub fn first_free(&self, reserved: Option<IpAddr>) -> Option<usize> {
        let skip = reserved.and_then(|r| self.ordinal(r));
        self.allocations
            .iter()
            .enumerate()
            .find(|(i, a)| a.is_none() && Some(*i) != skip)
            .map(|(i, _)| i)
    }

    /// A copy with slot `i` given to `owner` (sharing an identical owner entry).
    pub(crate) fn with_allocated(&self, i: usize, owner: Owner) -> Block {
        let mut b = self.clone();
        let idx = match b.attributes.iter().position(|o| *o == owner) {
            Some(p) => p,
            None => {
                b.attributes.push(owner);
                b.attributes.len() - 1
            }
        };
        b.allocations[i] = Some(idx as u32);
        b
    }

    /// A copy with slot `i` freed; owner entries no longer referred to are dropped.
    pub(crate) fn with_released(&self, i: usize) -> Block {
        let mut b = self.clone();
        let Some(idx) = b.allocations[i].take() else {
            return b;
        };
        if !b.allocations.contains(&Some(idx)) {
            b.attributes.remove(idx as usize);
            for a in b.allocations.iter_mut().flatten() {
                if *a > idx {
                    *a -= 1;
                }
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_shape_and_round_trip() {
        let b = Block::new("192.168.0.0/30".parse().unwrap(), Some("core-01".into()));
        let b = b.with_allocated(1, Owner::new("c1", "core-01"));
        let b = b.with_allocated(3, Owner::new("c2", "core-02"));
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(
            v,
            json!({"cidr": "192.168.0.0/30", "affinity": "host:core-01", "allocations": [null, 0, null, 1],
                   "attributes": [{"handle_id": "c1", "host": "core-01"}, {"handle_id": "c2", "host": "core-02"}]})
        );
        assert_eq!(serde_json::from_value::<Block>(v).unwrap(), b);
        assert_eq!(
            b.etcd_key(),
            "/calico/ipam/v2/assignment/ipv4/block/192.168.0.0-30"
        );
        let unaffine = Block::new("fd00::/126".parse().unwrap(), None);
        assert_eq!(
            serde_json::to_value(&unaffine).unwrap(),
            json!({"cidr": "fd00::/126", "allocations": [null, null, null, null], "attributes": []})
        );
    }

    #[test]
    fn bad_stored_blocks_are_rejected() {
        for v in [
            json!({"cidr": "10.0.0.0/30", "allocations": [null, null, null]}),
            json!({"cidr": "10.0.0.0/30", "allocations": [null, 0, null, null]}),
            json!({"cidr": "10.0.0.0/30", "affinity": "core-01", "allocations": [null, null, null, null]}),
            json!({"cidr": "10.0.0.1/30", "allocations": [null, null, null, null]}),
        ] {
            assert!(serde_json::from_value::<Block>(v.clone()).is_err(), "{v}");
        }
    }

    #[test]
    fn owners_are_shared_and_compacted() {
        let b = Block::new("10.0.0.0/29".parse().unwrap(), None);
        let a = Owner::new("a", "h");
        let b = b
            .with_allocated(0, a.clone())
            .with_allocated(1, Owner::new("b", "h"))
            .with_allocated(2, a.clone());
        assert_eq!(b.attributes.len(), 2);
        let b = b.with_released(1);
        assert_eq!(b.attributes, vec![a.clone()]);
        assert_eq!(b.allocations[..3], [Some(0), None, Some(0)]);
        let b = b.with_released(0).with_released(2);
        assert!(b.attributes.is_empty());
        assert_eq!(b.used(), 0);
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(b.ordinal(ip), Some(7));
        assert_eq!(b.ip_at(7), ip);
        assert_eq!(b.ordinal("10.0.0.8".parse().unwrap()), None);
        assert_eq!(b.first_free(Some("10.0.0.0".parse().unwrap())), Some(1));
    }
}
