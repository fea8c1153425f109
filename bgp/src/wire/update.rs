//! The UPDATE message (RFC 4271 §4.3) and its RFC 7606 outcome.
//!
//! Role: split an UPDATE into withdrawn routes, path attributes and NLRI, and decide what the session must
//! do with it: use it ([`UpdateOutcome::Parsed`]), use it without some attributes
//! ([`UpdateOutcome::AttributeDiscard`]), withdraw every route it mentions ([`UpdateOutcome::TreatAsWithdraw`])
//! or reset ([`UpdateOutcome::SessionReset`]).
//! Inputs: the message body after the header and the [`Codec`] of the session's receive direction.
//! Outputs: an [`UpdateOutcome`]; encoding appends an [`Update`] body to a buffer.

use bytes::{BufMut, BytesMut};
use nom::{bytes::complete::take, number::complete::be_u16, Parser};

use super::attribute::{
    decode_attributes, encode_attributes, type_code as tc, AttributeIssue, MpReach, MpUnreach,
    PathAttributes, Problem,
};
use super::error::{code, EncodeError};
use super::notification::Notification;
use super::prefix::{decode_nlri, encode_nlri, AfiSafi, Nlri};
use super::Codec;

/// An UPDATE.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Update {
    /// IPv4 unicast routes withdrawn in the Withdrawn Routes field.
    pub withdrawn: Vec<Nlri>,
    /// The path attributes shared by the reachable routes.
    pub attributes: PathAttributes,
    /// IPv4 unicast routes in the NLRI field.
    pub nlri: Vec<Nlri>,
    /// MP_REACH_NLRI: reachable routes of another family (or IPv4) with their next hop.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI: withdrawn routes of another family (or IPv4).
    pub mp_unreach: Option<MpUnreach>,
}

/// An UPDATE to be handled as if it withdrew every route it carries (RFC 7606 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreatAsWithdraw {
    /// Every prefix found: the Withdrawn Routes and NLRI fields and MP_UNREACH/MP_REACH (if parsed).
    pub withdrawn: Vec<Nlri>,
    /// Why (one entry per problem).
    pub reasons: Vec<AttributeIssue>,
}

/// What decoding an UPDATE body yields (RFC 7606 §2, §3).
#[derive(Debug, Clone, PartialEq, Eq)]
// UPDATE dominates the traffic: boxing it would add an allocation per UPDATE to spare the rare others.
#[allow(clippy::large_enum_variant)]
pub enum UpdateOutcome {
    /// A well-formed UPDATE.
    Parsed(Update),
    /// An UPDATE usable without the attributes listed (RFC 7606 §2 "attribute discard").
    AttributeDiscard {
        /// The UPDATE without them.
        update: Update,
        /// What was discarded and why.
        discarded: Vec<AttributeIssue>,
    },
    /// Withdraw the routes listed (RFC 7606 §2 "treat-as-withdraw").
    TreatAsWithdraw(TreatAsWithdraw),
    /// Send this NOTIFICATION and reset the session (RFC 4271 §6.3 where RFC 7606 keeps it).
    SessionReset(Notification),
}

fn update_error(subcode: u8) -> UpdateOutcome {
    UpdateOutcome::SessionReset(Notification::new(code::UPDATE_MESSAGE, subcode, Vec::new()))
}

type NomErr<'a> = nom::Err<nom::error::Error<&'a [u8]>>;

impl Update {
    /// An End-of-RIB marker for `family` (RFC 4724 §2): an empty UPDATE for IPv4 unicast, an empty
    /// MP_UNREACH_NLRI otherwise.
    pub fn end_of_rib(family: AfiSafi) -> Self {
        if family == AfiSafi::IPV4_UNICAST {
            Update::default()
        } else {
            Update {
                mp_unreach: Some(MpUnreach {
                    afi_safi: family,
                    withdrawn: Vec::new(),
                }),
                ..Update::default()
            }
        }
    }

    /// The family this UPDATE marks the End-of-RIB of, if it is such a marker.
    pub fn end_of_rib_family(&self) -> Option<AfiSafi> {
        let bare = self.withdrawn.is_empty()
            && self.nlri.is_empty()
            && self.mp_reach.is_none()
            && self.attributes == PathAttributes::default();
        match &self.mp_unreach {
            _ if !bare => None,
            None => Some(AfiSafi::IPV4_UNICAST),
            Some(u) if u.withdrawn.is_empty() => Some(u.afi_safi),
            Some(_) => None,
        }
    }

    /// Decode an UPDATE body.
    pub fn decode_body(body: &[u8], codec: &Codec) -> UpdateOutcome {
        let split = |body| -> Result<_, NomErr> {
            let (r, wlen) = be_u16.parse(body)?;
            let (r, w) = take(wlen).parse(r)?;
            let (r, alen) = be_u16.parse(r)?;
            let (n, a) = take(alen).parse(r)?;
            Ok((w, a, n))
        };
        let parsed = split(body);
        // RFC 4271 §6.3 / RFC 7606 §4: lengths that overrun the message are Malformed Attribute List.
        let Ok((w, a, n)) = parsed else {
            return update_error(code::update::MALFORMED_ATTRIBUTE_LIST);
        };
        // RFC 7606 §5.3: syntactically incorrect Withdrawn Routes or NLRI fields reset the session.
        let v4 = AfiSafi::IPV4_UNICAST;
        let (Ok(withdrawn), Ok(nlri)) = (
            decode_nlri(w, v4, codec.add_path(v4)),
            decode_nlri(n, v4, codec.add_path(v4)),
        ) else {
            return update_error(code::update::INVALID_NETWORK_FIELD);
        };
        let decoded = match decode_attributes(a, codec) {
            Ok(d) => d,
            Err(n) => return UpdateOutcome::SessionReset(n),
        };
        let mut reasons = decoded.withdraw;
        let update = Update {
            withdrawn,
            attributes: decoded.attributes,
            nlri,
            mp_reach: decoded.mp_reach,
            mp_unreach: decoded.mp_unreach,
        };
        // RFC 7606 §3: a missing well-known mandatory attribute with NLRI present is treat-as-withdraw.
        // NEXT_HOP is mandatory only for the NLRI field (RFC 4760 §3). A present but malformed one is already
        // listed.
        let has_nlri =
            !update.nlri.is_empty() || update.mp_reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
        let attrs = &update.attributes;
        let missing = [
            (tc::ORIGIN, has_nlri && attrs.origin.is_none()),
            (tc::AS_PATH, has_nlri && attrs.as_path.is_none()),
            (
                tc::NEXT_HOP,
                !update.nlri.is_empty() && attrs.next_hop.is_none(),
            ),
        ];
        for (t, is_missing) in missing {
            if is_missing && !reasons.iter().any(|r| r.type_code == t) {
                reasons.push(AttributeIssue::new(t, Problem::Missing));
            }
        }
        if !reasons.is_empty() {
            let mut all = update.withdrawn;
            all.extend(update.nlri);
            all.extend(update.mp_unreach.into_iter().flat_map(|u| u.withdrawn));
            all.extend(update.mp_reach.into_iter().flat_map(|r| r.nlri));
            return UpdateOutcome::TreatAsWithdraw(TreatAsWithdraw {
                withdrawn: all,
                reasons,
            });
        }
        if decoded.discarded.is_empty() {
            UpdateOutcome::Parsed(update)
        } else {
            UpdateOutcome::AttributeDiscard {
                update,
                discarded: decoded.discarded,
            }
        }
    }

    /// Append the UPDATE body.
    pub fn encode_body(&self, codec: &Codec, out: &mut BytesMut) -> Result<(), EncodeError> {
        let v4 = AfiSafi::IPV4_UNICAST;
        let at = out.len();
        out.put_u16(0);
        encode_nlri(&self.withdrawn, v4, codec.add_path(v4), out)?;
        patch_len(out, at, "withdrawn routes")?;
        let at = out.len();
        out.put_u16(0);
        encode_attributes(
            &self.attributes,
            self.mp_reach.as_ref(),
            self.mp_unreach.as_ref(),
            codec,
            out,
        )?;
        patch_len(out, at, "path attributes")?;
        encode_nlri(&self.nlri, v4, codec.add_path(v4), out)
    }
}

fn patch_len(out: &mut BytesMut, at: usize, what: &'static str) -> Result<(), EncodeError> {
    let len = out.len().saturating_sub(at + 2);
    let field = u16::try_from(len).map_err(|_| EncodeError::FieldTooLong { what, len })?;
    if let Some(slot) = out.get_mut(at..at + 2) {
        slot.copy_from_slice(&field.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::wire::attribute::{
        community, Aggregator, AsPath, LargeCommunity, NextHop, Origin, RawAttribute,
    };
    use crate::wire::prefix::Prefix;

    fn n(s: &str, len: u8) -> Nlri {
        Nlri::new(Prefix::new(s.parse().unwrap(), len).unwrap())
    }

    fn four() -> Codec {
        Codec {
            four_byte_as: true,
            ..Codec::default()
        }
    }

    fn round_trip(body: &[u8], codec: &Codec, want: &Update) {
        assert_eq!(
            Update::decode_body(body, codec),
            UpdateOutcome::Parsed(want.clone())
        );
        let mut out = BytesMut::new();
        want.encode_body(codec, &mut out).unwrap();
        assert_eq!(&out[..], body);
    }

    /// An IPv4 UPDATE with every attribute this codec knows, over a 4-octet AS session.
    const FULL_IPV4_BODY: [u8; 109] = [
        0x00, 0x04, // withdrawn routes length 4
        0x18, 0xc6, 0x33, 0x64, // withdrawn 198.51.100.0/24
        0x00, 0x61, // total path attribute length 97
        0x40, 0x01, 0x01, 0x00, // ORIGIN IGP
        0x40, 0x02, 0x0a, // AS_PATH, length 10
        0x02, 0x02, 0x00, 0x00, 0xfd, 0xe9, 0xfa, 0x56, 0xea,
        0x01, // .. AS_SEQUENCE 65001 4200000001
        0x40, 0x03, 0x04, 0xc0, 0x00, 0x02, 0x01, // NEXT_HOP 192.0.2.1
        0x80, 0x04, 0x04, 0x00, 0x00, 0x00, 0x64, // MED 100
        0x40, 0x05, 0x04, 0x00, 0x00, 0x00, 0xc8, // LOCAL_PREF 200
        0x40, 0x06, 0x00, // ATOMIC_AGGREGATE
        0xc0, 0x07, 0x08, 0x00, 0x00, 0xfd, 0xe9, 0xc0, 0x00, 0x02,
        0x01, // AGGREGATOR 65001 192.0.2.1
        0xc0, 0x08, 0x08, 0xfd, 0xe9, 0x00, 0x64, 0xff, 0xff, 0xff,
        0x01, // COMMUNITIES 65001:100 NO_EXPORT
        0x80, 0x09, 0x04, 0x0a, 0x00, 0x00, 0x01, // ORIGINATOR_ID 10.0.0.1
        0x80, 0x0a, 0x04, 0x0a, 0x00, 0x00, 0x02, // CLUSTER_LIST 10.0.0.2
        0xc0, 0x20, 0x0c, // LARGE_COMMUNITY, length 12
        0x00, 0x00, 0xfd, 0xe9, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x02, // .. 65001:1:2
        0xe0, 0x63, 0x02, 0xab,
        0xcd, // unknown type 99, optional transitive partial, value abcd
        0x18, 0xcb, 0x00, 0x71, // NLRI 203.0.113.0/24
    ];

    fn full_ipv4_update() -> Update {
        Update {
            withdrawn: vec![n("198.51.100.0", 24)],
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(vec![65001, 4_200_000_001])),
                next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
                med: Some(100),
                local_pref: Some(200),
                atomic_aggregate: true,
                aggregator: Some(Aggregator {
                    asn: 65001,
                    address: Ipv4Addr::new(192, 0, 2, 1),
                }),
                communities: vec![0xfde9_0064, community::NO_EXPORT],
                originator_id: Some(Ipv4Addr::new(10, 0, 0, 1)),
                cluster_list: vec![Ipv4Addr::new(10, 0, 0, 2)],
                large_communities: vec![LargeCommunity {
                    global_admin: 65001,
                    local1: 1,
                    local2: 2,
                }],
                unknown: vec![RawAttribute {
                    flags: 0xe0,
                    type_code: 99,
                    value: vec![0xab, 0xcd],
                }],
                ..PathAttributes::default()
            },
            nlri: vec![n("203.0.113.0", 24)],
            mp_reach: None,
            mp_unreach: None,
        }
    }

    #[test]
    fn full_ipv4_update_round_trips() {
        round_trip(&FULL_IPV4_BODY, &four(), &full_ipv4_update());
    }

    const IPV6_BODY: [u8; 66] = [
        0x00, 0x00, // no withdrawn routes
        0x00, 0x3e, // total path attribute length 62
        0x40, 0x01, 0x01, 0x00, // ORIGIN IGP
        0x40, 0x02, 0x06, 0x02, 0x01, 0x00, 0x00, 0xfd,
        0xe9, // AS_PATH AS_SEQUENCE 65001 (4-byte)
        0x80, 0x0e, 0x2e, // MP_REACH_NLRI, length 46
        0x00, 0x02, 0x01, // .. AFI IPv6, SAFI unicast
        0x20, // .. next hop length 32
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x01, // .. global 2001:db8::1
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x00, 0x5e, 0xff, 0xfe, 0x00, 0x53,
        0x01, // .. fe80::200:5eff:fe00:5301
        0x00, // .. reserved
        0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0a, 0x00, 0x00, // .. 2001:db8:a::/64
    ];

    fn ipv6_update() -> Update {
        Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(vec![65001])),
                ..PathAttributes::default()
            },
            mp_reach: Some(MpReach {
                afi_safi: AfiSafi::IPV6_UNICAST,
                next_hop: NextHop::V6 {
                    global: "2001:db8::1".parse().unwrap(),
                    link_local: Some("fe80::200:5eff:fe00:5301".parse().unwrap()),
                },
                nlri: vec![n("2001:db8:a::", 64)],
            }),
            ..Update::default()
        }
    }

    #[test]
    fn ipv6_mp_reach_with_link_local_round_trips() {
        round_trip(&IPV6_BODY, &four(), &ipv6_update());
    }

    #[test]
    fn mp_reach_first_as_bird_orders_it_decodes_the_same() {
        // BIRD writes MP_REACH_NLRI before the other attributes: same meaning, other order.
        let mut body = vec![0x00, 0x00, 0x00, 0x3e];
        body.extend_from_slice(&IPV6_BODY[17..]); // MP_REACH_NLRI
        body.extend_from_slice(&IPV6_BODY[4..17]); // ORIGIN, AS_PATH
        assert_eq!(
            Update::decode_body(&body, &four()),
            UpdateOutcome::Parsed(ipv6_update())
        );
    }

    #[test]
    fn two_byte_session_with_as4_attributes() {
        let body = [
            0x00, 0x00, // no withdrawn routes
            0x00, 0x35, // total path attribute length 53
            0x40, 0x01, 0x01, 0x02, // ORIGIN INCOMPLETE
            0x40, 0x02, 0x06, 0x02, 0x02, 0x5b, 0xa0, 0xfd,
            0xe9, // AS_PATH AS_SEQUENCE AS_TRANS 65001
            0x40, 0x03, 0x04, 0xc0, 0x00, 0x02, 0x01, // NEXT_HOP 192.0.2.1
            0xc0, 0x07, 0x06, 0x5b, 0xa0, 0xc0, 0x00, 0x02,
            0x01, // AGGREGATOR AS_TRANS 192.0.2.1
            0xc0, 0x11, 0x0a, // AS4_PATH, length 10
            0x02, 0x02, 0xfa, 0x56, 0xea, 0x01, 0x00, 0x00, 0xfd,
            0xe9, // .. AS_SEQUENCE 4200000001 65001
            0xc0, 0x12, 0x08, 0xfa, 0x56, 0xea, 0x01, 0xc0, 0x00, 0x02,
            0x01, // AS4_AGGREGATOR
            0x10, 0x0a, 0x00, // NLRI 10.0.0.0/16
        ];
        let agg = |asn| {
            Some(Aggregator {
                asn,
                address: Ipv4Addr::new(192, 0, 2, 1),
            })
        };
        let want = Update {
            attributes: PathAttributes {
                origin: Some(Origin::Incomplete),
                as_path: Some(AsPath::sequence(vec![
                    u32::from(crate::wire::AS_TRANS),
                    65001,
                ])),
                next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
                aggregator: agg(u32::from(crate::wire::AS_TRANS)),
                as4_path: Some(AsPath::sequence(vec![4_200_000_001, 65001])),
                as4_aggregator: agg(4_200_000_001),
                ..PathAttributes::default()
            },
            nlri: vec![n("10.0.0.0", 16)],
            ..Update::default()
        };
        round_trip(&body, &Codec::default(), &want);
    }

    #[test]
    fn extended_length_attribute() {
        let mut body = vec![
            0x00, 0x00, // no withdrawn routes
            0x01, 0x30, // total path attribute length 304
            0xd0, 0x63, 0x01,
            0x2c, // unknown type 99, optional transitive, extended length 300
        ];
        body.extend(std::iter::repeat_n(0x5a, 300));
        let want = Update {
            attributes: PathAttributes {
                unknown: vec![RawAttribute {
                    flags: 0xc0,
                    type_code: 99,
                    value: vec![0x5a; 300],
                }],
                ..PathAttributes::default()
            },
            ..Update::default()
        };
        round_trip(&body, &Codec::default(), &want);
        // A short value with the Extended Length bit is accepted, and re-encoded with a 1-byte length.
        let short = [0x00, 0x00, 0x00, 0x05, 0x50, 0x01, 0x00, 0x01, 0x00]; // ORIGIN IGP, extended length 1
        let UpdateOutcome::Parsed(u) = Update::decode_body(&short, &Codec::default()) else {
            panic!("short extended-length ORIGIN not parsed")
        };
        assert_eq!(u.attributes.origin, Some(Origin::Igp));
    }

    #[test]
    fn add_path_nlri_and_withdrawn() {
        let body = [
            0x00, 0x08, // withdrawn routes length 8
            0x00, 0x00, 0x00, 0x01, 0x18, 0xc6, 0x33, 0x64, // path 1: 198.51.100.0/24
            0x00, 0x0e, // total path attribute length 14
            0x40, 0x01, 0x01, 0x00, // ORIGIN IGP
            0x40, 0x02, 0x00, // AS_PATH empty
            0x40, 0x03, 0x04, 0xc0, 0x00, 0x02, 0x01, // NEXT_HOP 192.0.2.1
            0x00, 0x00, 0x00, 0x02, 0x20, 0xcb, 0x00, 0x71, 0x05, // path 2: 203.0.113.5/32
        ];
        let codec = Codec {
            add_path: vec![AfiSafi::IPV4_UNICAST],
            ..Codec::default()
        };
        let want = Update {
            withdrawn: vec![Nlri {
                path_id: Some(1),
                ..n("198.51.100.0", 24)
            }],
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::default()),
                next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
                ..PathAttributes::default()
            },
            nlri: vec![Nlri {
                path_id: Some(2),
                ..n("203.0.113.5", 32)
            }],
            ..Update::default()
        };
        round_trip(&body, &codec, &want);
    }

    #[test]
    fn end_of_rib_markers() {
        let v4 = [0x00, 0x00, 0x00, 0x00]; // no withdrawn routes, no attributes, no NLRI
        round_trip(
            &v4,
            &Codec::default(),
            &Update::end_of_rib(AfiSafi::IPV4_UNICAST),
        );
        assert_eq!(
            Update::end_of_rib(AfiSafi::IPV4_UNICAST).end_of_rib_family(),
            Some(AfiSafi::IPV4_UNICAST)
        );
        let v6 = [
            0x00, 0x00, // no withdrawn routes
            0x00, 0x06, // total path attribute length 6
            0x80, 0x0f, 0x03, 0x00, 0x02,
            0x01, // MP_UNREACH_NLRI IPv6 unicast, nothing withdrawn
        ];
        round_trip(
            &v6,
            &Codec::default(),
            &Update::end_of_rib(AfiSafi::IPV6_UNICAST),
        );
        assert_eq!(
            Update::end_of_rib(AfiSafi::IPV6_UNICAST).end_of_rib_family(),
            Some(AfiSafi::IPV6_UNICAST)
        );
        assert_eq!(full_ipv4_update().end_of_rib_family(), None);
    }

    #[test]
    fn too_long_fields_do_not_encode() {
        let many: Vec<Nlri> = (0..20000u32)
            .map(|i| n(&Ipv4Addr::from(i << 8).to_string(), 24))
            .collect();
        let u = Update {
            withdrawn: many,
            ..Update::default()
        };
        assert!(matches!(
            u.encode_body(&Codec::default(), &mut BytesMut::new()),
            Err(EncodeError::FieldTooLong {
                what: "withdrawn routes",
                len: 80000
            })
        ));
    }
}
