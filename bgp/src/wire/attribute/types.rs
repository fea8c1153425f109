//! Path attribute value types (RFC 4271 §5, RFC 1997, RFC 4456, RFC 6793, RFC 8092).
//!
//! Role: the owned, hashable [`PathAttributes`] set that the RIB interns, and the value types it is made of.
//! Inputs: none (plain data, built by the decoder or by the caller). Outputs: the types, their well-known
//! constants (type codes, flags, well-known communities) and small helpers such as [`AsPath::route_length`]
//! and [`RawAttribute::for_propagation`].

use std::net::Ipv4Addr;

/// Attribute type codes.
pub mod type_code {
    /// ORIGIN (RFC 4271).
    pub const ORIGIN: u8 = 1;
    /// AS_PATH (RFC 4271).
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP (RFC 4271).
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC (RFC 4271).
    pub const MED: u8 = 4;
    /// LOCAL_PREF (RFC 4271).
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE (RFC 4271).
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR (RFC 4271).
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997).
    pub const COMMUNITIES: u8 = 8;
    /// ORIGINATOR_ID (RFC 4456).
    pub const ORIGINATOR_ID: u8 = 9;
    /// CLUSTER_LIST (RFC 4456).
    pub const CLUSTER_LIST: u8 = 10;
    /// MP_REACH_NLRI (RFC 4760).
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760).
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// AS4_PATH (RFC 6793).
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793).
    pub const AS4_AGGREGATOR: u8 = 18;
    /// LARGE_COMMUNITY (RFC 8092).
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// Attribute flag bits (RFC 4271 §4.3).
pub mod flags {
    /// Optional (1) or well-known (0).
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive.
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial: some speaker on the path did not recognise this optional transitive attribute.
    pub const PARTIAL: u8 = 0x20;
    /// The length field has two bytes.
    pub const EXTENDED_LENGTH: u8 = 0x10;
    /// Well-known attributes: transitive, not optional.
    pub const WELL_KNOWN: u8 = TRANSITIVE;
    /// Optional transitive.
    pub const OPTIONAL_TRANSITIVE: u8 = OPTIONAL | TRANSITIVE;
    /// Optional non-transitive.
    pub const OPTIONAL_NON_TRANSITIVE: u8 = OPTIONAL;
}

/// Well-known communities (RFC 1997).
pub mod community {
    /// Do not advertise outside the AS (or confederation).
    pub const NO_EXPORT: u32 = 0xFFFF_FF01;
    /// Do not advertise to any peer.
    pub const NO_ADVERTISE: u32 = 0xFFFF_FF02;
    /// Do not advertise to external peers, even within a confederation.
    pub const NO_EXPORT_SUBCONFED: u32 = 0xFFFF_FF03;
}

/// ORIGIN values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// 0: learned from an interior protocol.
    Igp,
    /// 1: learned via EGP.
    Egp,
    /// 2: learned some other way.
    Incomplete,
}

impl Origin {
    /// The value for a wire byte, if valid.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Origin::Igp),
            1 => Some(Origin::Egp),
            2 => Some(Origin::Incomplete),
            _ => None,
        }
    }

    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        match self {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        }
    }
}

/// AS_PATH segment types (RFC 4271 §4.3, RFC 5065 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SegmentType {
    /// 1: unordered set.
    Set,
    /// 2: ordered sequence.
    Sequence,
    /// 3: ordered confederation sequence.
    ConfedSequence,
    /// 4: unordered confederation set.
    ConfedSet,
}

impl SegmentType {
    /// The type for a wire byte, if valid.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(SegmentType::Set),
            2 => Some(SegmentType::Sequence),
            3 => Some(SegmentType::ConfedSequence),
            4 => Some(SegmentType::ConfedSet),
            _ => None,
        }
    }

    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        match self {
            SegmentType::Set => 1,
            SegmentType::Sequence => 2,
            SegmentType::ConfedSequence => 3,
            SegmentType::ConfedSet => 4,
        }
    }
}

/// One AS_PATH segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsSegment {
    /// Its type.
    pub kind: SegmentType,
    /// The AS numbers (at least one on the wire; longer runs are split into several segments when encoded).
    pub asns: Vec<u32>,
}

/// An AS_PATH (or AS4_PATH): a list of segments. An empty path is valid (routes originated inside the AS).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsPath {
    /// The segments, in order.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE.
    pub fn sequence(asns: impl Into<Vec<u32>>) -> Self {
        let asns = asns.into();
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![AsSegment {
                kind: SegmentType::Sequence,
                asns,
            }],
        }
    }

    /// The path length for route selection (RFC 4271 §9.1.2.2 a): an AS_SET counts 1, confederation
    /// segments count 0 (RFC 5065 §5.3).
    pub fn route_length(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                SegmentType::ConfedSequence | SegmentType::ConfedSet => 0,
            })
            .sum()
    }

    /// Whether `asn` occurs anywhere in the path (loop detection, RFC 4271 §9.1.2).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// The first AS of the first AS_SEQUENCE, i.e. the neighbouring AS (RFC 4271 §9.1.2.2 c).
    pub fn first_as(&self) -> Option<u32> {
        match self.segments.first() {
            Some(AsSegment {
                kind: SegmentType::Sequence,
                asns,
            }) => asns.first().copied(),
            _ => None,
        }
    }
}

/// AGGREGATOR or AS4_AGGREGATOR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aggregator {
    /// The AS of the aggregating speaker (AS_TRANS in a 2-byte AGGREGATOR when it needs 4 bytes).
    pub asn: u32,
    /// Its BGP identifier.
    pub address: Ipv4Addr,
}

/// A large community (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global Administrator (an AS).
    pub global_admin: u32,
    /// Local Data Part 1.
    pub local1: u32,
    /// Local Data Part 2.
    pub local2: u32,
}

/// An attribute this codec does not interpret, kept as received so it can be passed on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawAttribute {
    /// Flags: Optional, Transitive and Partial bits (the Extended Length bit is chosen when encoding).
    pub flags: u8,
    /// The type code.
    pub type_code: u8,
    /// The value.
    pub value: Vec<u8>,
}

impl RawAttribute {
    /// The attribute to pass on to other peers, or `None` if it must not be: an unrecognized optional
    /// transitive attribute is passed on with the Partial bit set; an optional non-transitive one is not
    /// (RFC 4271 §5; the Partial bit is defined in §4.3).
    pub fn for_propagation(&self) -> Option<RawAttribute> {
        if self.flags & flags::OPTIONAL_TRANSITIVE == flags::OPTIONAL_TRANSITIVE {
            Some(RawAttribute {
                flags: self.flags | flags::PARTIAL,
                ..self.clone()
            })
        } else {
            None
        }
    }
}

/// The path attributes of an UPDATE, without the NLRI (and without MP_REACH/MP_UNREACH, which carry NLRI),
/// so that many routes can share one interned copy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH (`Some` with no segments is an empty path, as sent over iBGP).
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (IPv4 unicast routes of the NLRI field).
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE present.
    pub atomic_aggregate: bool,
    /// AGGREGATOR.
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES (empty: attribute absent).
    pub communities: Vec<u32>,
    /// ORIGINATOR_ID.
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (empty: attribute absent).
    pub cluster_list: Vec<Ipv4Addr>,
    /// AS4_PATH (only from or towards speakers without 4-octet AS support).
    pub as4_path: Option<AsPath>,
    /// AS4_AGGREGATOR (likewise).
    pub as4_aggregator: Option<Aggregator>,
    /// LARGE_COMMUNITY (empty: attribute absent).
    pub large_communities: Vec<LargeCommunity>,
    /// Unrecognized optional transitive attributes, in the order received.
    pub unknown: Vec<RawAttribute>,
}

impl PathAttributes {
    /// Whether a community is attached.
    pub fn has_community(&self, community: u32) -> bool {
        self.communities.contains(&community)
    }

    /// The unrecognized attributes to pass on, each with the Partial bit set.
    pub fn unknown_for_propagation(&self) -> Vec<RawAttribute> {
        self.unknown
            .iter()
            .filter_map(RawAttribute::for_propagation)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_length_counts_sets_once_and_confeds_zero() {
        let path = AsPath {
            segments: vec![
                AsSegment {
                    kind: SegmentType::ConfedSequence,
                    asns: vec![64512, 64513],
                },
                AsSegment {
                    kind: SegmentType::Sequence,
                    asns: vec![65001, 65002, 65003],
                },
                AsSegment {
                    kind: SegmentType::Set,
                    asns: vec![65010, 65011],
                },
            ],
        };
        assert_eq!(path.route_length(), 4);
        assert!(path.contains(65011));
        assert!(!path.contains(65004));
        assert_eq!(path.first_as(), None);
        assert_eq!(AsPath::sequence(vec![65001, 65002]).first_as(), Some(65001));
        assert_eq!(AsPath::sequence(Vec::new()), AsPath::default());
    }

    #[test]
    fn propagation_sets_partial_only_for_optional_transitive() {
        let t = RawAttribute {
            flags: 0xc0,
            type_code: 99,
            value: vec![1],
        };
        assert_eq!(
            t.for_propagation(),
            Some(RawAttribute {
                flags: 0xe0,
                type_code: 99,
                value: vec![1]
            })
        );
        let nt = RawAttribute {
            flags: 0x80,
            type_code: 98,
            value: vec![],
        };
        assert_eq!(nt.for_propagation(), None);
        let attrs = PathAttributes {
            unknown: vec![t, nt],
            ..Default::default()
        };
        assert_eq!(attrs.unknown_for_propagation().len(), 1);
    }

    #[test]
    fn well_known_communities() {
        assert_eq!(community::NO_EXPORT, 0xFFFFFF01);
        assert_eq!(community::NO_ADVERTISE, 0xFFFFFF02);
        assert_eq!(community::NO_EXPORT_SUBCONFED, 0xFFFFFF03);
        let attrs = PathAttributes {
            communities: vec![community::NO_EXPORT],
            ..Default::default()
        };
        assert!(attrs.has_community(community::NO_EXPORT));
        assert!(!attrs.has_community(community::NO_ADVERTISE));
    }
}
