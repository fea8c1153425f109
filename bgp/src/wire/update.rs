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
use super::header::HEADER_LEN;
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

impl Update {
    /// This UPDATE as UPDATEs that each fit the maximum message length of `codec` (RFC 4271 §4.3, RFC 8654),
    /// carrying the same routes: itself when it fits; otherwise its IPv4 withdrawals, its MP_UNREACH_NLRI
    /// withdrawals, its IPv4 NLRI and its MP_REACH_NLRI NLRI, in that order, each list cut into runs that fill
    /// messages as far as they go (the reachable ones with the path attributes, the withdrawals without).
    /// Only lengths are computed: nothing is encoded twice. Fails when the path attributes with a single
    /// prefix exceed the maximum.
    pub fn into_fitting(self, codec: &Codec) -> Result<Vec<Update>, EncodeError> {
        let max = codec.max_message_len();
        let v4 = AfiSafi::IPV4_UNICAST;
        let ap4 = codec.add_path(v4);
        let reach0 = self.mp_reach.as_ref().map(|r| MpReach {
            afi_safi: r.afi_safi,
            next_hop: r.next_hop,
            nlri: Vec::new(),
        });
        let unreach0 = self.mp_unreach.as_ref().map(|u| MpUnreach {
            afi_safi: u.afi_safi,
            withdrawn: Vec::new(),
        });
        let reach_ap = reach0.as_ref().is_some_and(|r| codec.add_path(r.afi_safi));
        let unreach_ap = unreach0
            .as_ref()
            .is_some_and(|u| codec.add_path(u.afi_safi));
        let reach_value = reach0
            .as_ref()
            .map(|r| mp_value_len(|b| r.encode_value(codec, b)))
            .transpose()?;
        let unreach_value = unreach0
            .as_ref()
            .map(|u| mp_value_len(|b| u.encode_value(codec, b)))
            .transpose()?;
        let reach_room = |base| Room {
            base,
            mp_value: reach_value,
            max,
        };
        let unreach_room = |base| Room {
            base,
            mp_value: unreach_value,
            max,
        };
        let fixed = HEADER_LEN + 4;
        let reach_nlri = self.mp_reach.as_ref().map_or(&[][..], |r| &r.nlri[..]);
        let unreach_nlri = self
            .mp_unreach
            .as_ref()
            .map_or(&[][..], |u| &u.withdrawn[..]);
        let all = fixed
            + attributes_len(&self.attributes, reach0.as_ref(), unreach0.as_ref(), codec)?
            + list_len(&self.withdrawn, ap4)
            + list_len(&self.nlri, ap4)
            + reach_room(0).extra(list_len(reach_nlri, reach_ap))
            + unreach_room(0).extra(list_len(unreach_nlri, unreach_ap));
        if all <= max {
            return Ok(vec![self]);
        }
        let mut out = Vec::new();
        let room = Room {
            base: fixed,
            mp_value: None,
            max,
        };
        for run in runs(&self.withdrawn, ap4, &room)? {
            out.push(Update {
                withdrawn: run.to_vec(),
                ..Update::default()
            });
        }
        if let Some(u) = &unreach0 {
            let base = fixed + attributes_len(&PathAttributes::default(), None, Some(u), codec)?;
            for run in runs(unreach_nlri, unreach_ap, &unreach_room(base))? {
                out.push(Update {
                    mp_unreach: Some(MpUnreach {
                        afi_safi: u.afi_safi,
                        withdrawn: run.to_vec(),
                    }),
                    ..Update::default()
                });
            }
        }
        if !self.nlri.is_empty() {
            let room = Room {
                base: fixed + attributes_len(&self.attributes, None, None, codec)?,
                mp_value: None,
                max,
            };
            for run in runs(&self.nlri, ap4, &room)? {
                out.push(Update {
                    attributes: self.attributes.clone(),
                    nlri: run.to_vec(),
                    ..Update::default()
                });
            }
        }
        if let Some(r) = &reach0 {
            let base = fixed + attributes_len(&self.attributes, Some(r), None, codec)?;
            for run in runs(reach_nlri, reach_ap, &reach_room(base))? {
                out.push(Update {
                    attributes: self.attributes.clone(),
                    mp_reach: Some(MpReach {
                        afi_safi: r.afi_safi,
                        next_hop: r.next_hop,
                        nlri: run.to_vec(),
                    }),
                    ..Update::default()
                });
            }
        }
        Ok(out)
    }
}

/// The wire length of a list of NLRI.
fn list_len(nlri: &[Nlri], add_path: bool) -> usize {
    nlri.iter().map(|n| n.encoded_len(add_path)).sum()
}

/// The length of the Path Attributes field.
fn attributes_len(
    attrs: &PathAttributes,
    reach: Option<&MpReach>,
    unreach: Option<&MpUnreach>,
    codec: &Codec,
) -> Result<usize, EncodeError> {
    let mut b = BytesMut::new();
    encode_attributes(attrs, reach, unreach, codec, &mut b)?;
    Ok(b.len())
}

/// The length of an MP attribute's value.
fn mp_value_len(
    f: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<usize, EncodeError> {
    let mut b = BytesMut::new();
    f(&mut b)?;
    Ok(b.len())
}

/// The room for one list of NLRI in a message.
struct Room {
    /// The message's length without the list.
    base: usize,
    /// When the list lives in an MP attribute: that attribute's value length without the list (past 255
    /// bytes its length field takes two octets instead of one).
    mp_value: Option<usize>,
    max: usize,
}

impl Room {
    /// What `bytes` of NLRI add to the message.
    fn extra(&self, bytes: usize) -> usize {
        let wider = self.mp_value.is_some_and(|v| v <= 255 && v + bytes > 255);
        bytes + usize::from(wider)
    }

    fn fits(&self, bytes: usize) -> bool {
        self.base + self.extra(bytes) <= self.max
    }
}

/// `list` cut into consecutive runs, each as long as `room` allows.
fn runs<'a>(list: &'a [Nlri], add_path: bool, room: &Room) -> Result<Vec<&'a [Nlri]>, EncodeError> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, n) in list.iter().enumerate() {
        let len = n.encoded_len(add_path);
        if !room.fits(bytes + len) {
            if i > start {
                out.push(&list[start..i]);
                (start, bytes) = (i, 0);
            }
            if !room.fits(len) {
                return Err(EncodeError::MessageTooLong {
                    len: room.base + room.extra(len),
                    max: room.max,
                });
            }
        }
        bytes += len;
    }
    if start < list.len() {
        out.push(&list[start..]);
    }
    Ok(out)
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

    /// Every message of `u.into_fitting(codec)`, encoded: each at most the maximum length and each but the
    /// last of a run without room for one more prefix of the longest kind given; decoded, the same routes.
    fn check_fitting(u: &Update, codec: &Codec) -> Vec<Update> {
        let max = codec.max_message_len();
        let parts = u.clone().into_fitting(codec).unwrap();
        let mut decoded = Vec::new();
        for p in &parts {
            let mut out = BytesMut::new();
            crate::wire::encode_message(&crate::wire::Message::Update(p.clone()), codec, &mut out)
                .unwrap();
            assert!(out.len() <= max, "{} > {max}", out.len());
            let (d, used) = crate::wire::decode_message(&out, codec).unwrap();
            assert_eq!(used, out.len());
            let crate::wire::Decoded::Message(crate::wire::Message::Update(back)) = d else {
                panic!("not an UPDATE: {d:?}")
            };
            assert_eq!(&back, p);
            decoded.push((out.len(), back));
        }
        // Full: a message followed by another of the same kind had no room for the next prefix (at most
        // 4 + 1 + 16 bytes, plus one if an MP attribute's length widens).
        for w in decoded.windows(2) {
            let kind = |u: &Update| {
                (
                    !u.withdrawn.is_empty(),
                    u.mp_unreach.is_some(),
                    !u.nlri.is_empty(),
                    u.mp_reach.is_some(),
                )
            };
            if kind(&w[0].1) == kind(&w[1].1) {
                assert!(
                    w[0].0 + 22 > max,
                    "a message of {} bytes could take more",
                    w[0].0
                );
            }
        }
        // The same routes, in the same order.
        let cat = |f: &dyn Fn(&Update) -> Vec<Nlri>| -> Vec<Nlri> {
            decoded.iter().flat_map(|(_, u)| f(u)).collect()
        };
        assert_eq!(cat(&|u| u.withdrawn.clone()), u.withdrawn);
        assert_eq!(cat(&|u| u.nlri.clone()), u.nlri);
        assert_eq!(
            cat(&|u| u.mp_reach.iter().flat_map(|r| r.nlri.clone()).collect()),
            u.mp_reach
                .iter()
                .flat_map(|r| r.nlri.clone())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            cat(&|u| u
                .mp_unreach
                .iter()
                .flat_map(|r| r.withdrawn.clone())
                .collect()),
            u.mp_unreach
                .iter()
                .flat_map(|r| r.withdrawn.clone())
                .collect::<Vec<_>>()
        );
        for (_, p) in &decoded {
            let reach = !p.nlri.is_empty() || p.mp_reach.is_some();
            if reach {
                assert_eq!(p.attributes, u.attributes);
                if let (Some(a), Some(b)) = (&p.mp_reach, &u.mp_reach) {
                    assert_eq!((a.afi_safi, a.next_hop), (b.afi_safi, b.next_hop));
                }
            } else {
                assert_eq!(p.attributes, PathAttributes::default());
            }
        }
        parts
    }

    fn v4_nlri(count: u32, path_ids: bool) -> Vec<Nlri> {
        (0..count)
            .map(|i| Nlri {
                path_id: path_ids.then_some(i * 7 + 1),
                // Lengths 8..=32: 2 to 5 bytes each.
                prefix: Prefix::new(
                    Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(),
                    8 + (i % 25) as u8,
                )
                .unwrap(),
            })
            .collect()
    }

    fn v6_nlri(count: u32, path_ids: bool) -> Vec<Nlri> {
        (0..count)
            .map(|i| {
                let a = std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i) << 32);
                Nlri {
                    path_id: path_ids.then_some(i + 1),
                    prefix: Prefix::new(a.into(), [64, 96, 128, 48][i as usize % 4]).unwrap(),
                }
            })
            .collect()
    }

    fn big_attrs() -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![65001, 65002, 65003])),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            med: Some(5),
            communities: (0..40).collect(),
            ..PathAttributes::default()
        }
    }

    fn v6_reach(nlri: Vec<Nlri>) -> Option<MpReach> {
        Some(MpReach {
            afi_safi: AfiSafi::IPV6_UNICAST,
            next_hop: NextHop::V6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
            },
            nlri,
        })
    }

    #[test]
    fn a_fitting_update_stays_whole() {
        let u = full_ipv4_update();
        assert_eq!(u.clone().into_fitting(&four()).unwrap(), vec![u]);
        let eor = Update::end_of_rib(AfiSafi::IPV6_UNICAST);
        assert_eq!(eor.clone().into_fitting(&four()).unwrap(), vec![eor]);
    }

    #[test]
    fn ipv4_updates_are_packed_to_the_maximum() {
        let u = Update {
            attributes: big_attrs(),
            nlri: v4_nlri(5000, false),
            ..Update::default()
        };
        let parts = check_fitting(&u, &four());
        assert!(parts.len() >= 5, "{}", parts.len());
        // Two-byte AS sessions encode the attributes shorter; the packing follows.
        check_fitting(&u, &Codec::default());
        let w = Update {
            withdrawn: v4_nlri(5000, false),
            ..Update::default()
        };
        check_fitting(&w, &four());
        // Both in one UPDATE: the withdrawals go first, without attributes.
        let both = Update {
            withdrawn: v4_nlri(3000, false),
            ..u.clone()
        };
        let parts = check_fitting(&both, &four());
        assert!(!parts[0].withdrawn.is_empty() && parts[0].nlri.is_empty());
    }

    #[test]
    fn ipv6_updates_are_packed_to_the_maximum() {
        let u = Update {
            attributes: PathAttributes {
                next_hop: None,
                ..big_attrs()
            },
            mp_reach: v6_reach(v6_nlri(3000, false)),
            ..Update::default()
        };
        check_fitting(&u, &four());
        let w = Update {
            mp_unreach: Some(MpUnreach {
                afi_safi: AfiSafi::IPV6_UNICAST,
                withdrawn: v6_nlri(3000, false),
            }),
            ..Update::default()
        };
        check_fitting(&w, &four());
        // IPv4 routes in MP_REACH_NLRI (an IPv4 next hop over MP) too.
        let v4mp = Update {
            attributes: PathAttributes {
                next_hop: None,
                ..big_attrs()
            },
            mp_reach: Some(MpReach {
                afi_safi: AfiSafi::IPV4_UNICAST,
                next_hop: NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
                nlri: v4_nlri(3000, false),
            }),
            ..Update::default()
        };
        check_fitting(&v4mp, &four());
    }

    #[test]
    fn add_path_updates_are_packed_with_their_path_ids() {
        let codec = Codec {
            four_byte_as: true,
            add_path: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
            ..Codec::default()
        };
        let u = Update {
            attributes: big_attrs(),
            nlri: v4_nlri(3000, true),
            ..Update::default()
        };
        let parts = check_fitting(&u, &codec);
        assert!(parts
            .iter()
            .all(|p| p.nlri.iter().all(|n| n.path_id.is_some())));
        let w = Update {
            withdrawn: v4_nlri(3000, true),
            ..Update::default()
        };
        check_fitting(&w, &codec);
        let u6 = Update {
            attributes: PathAttributes {
                next_hop: None,
                ..big_attrs()
            },
            mp_reach: v6_reach(v6_nlri(2000, true)),
            ..Update::default()
        };
        check_fitting(&u6, &codec);
        let w6 = Update {
            mp_unreach: Some(MpUnreach {
                afi_safi: AfiSafi::IPV6_UNICAST,
                withdrawn: v6_nlri(2000, true),
            }),
            ..Update::default()
        };
        check_fitting(&w6, &codec);
    }

    #[test]
    fn extended_messages_are_packed_to_65535() {
        let codec = Codec {
            four_byte_as: true,
            extended_message: true,
            ..Codec::default()
        };
        let u = Update {
            attributes: big_attrs(),
            nlri: v4_nlri(40_000, false),
            ..Update::default()
        };
        let parts = check_fitting(&u, &codec);
        assert!((2..=4).contains(&parts.len()), "{}", parts.len());
        let u6 = Update {
            attributes: PathAttributes {
                next_hop: None,
                ..big_attrs()
            },
            mp_reach: v6_reach(v6_nlri(10_000, false)),
            ..Update::default()
        };
        check_fitting(&u6, &codec);
    }

    #[test]
    fn small_lists_in_mp_attributes_around_the_extended_length() {
        // Around 255 bytes of MP_REACH_NLRI value the attribute's length field widens by one byte; the
        // budget must count it whichever side of the maximum it lands.
        // With about 940 communities, some 220 bytes are left for the prefixes: that is where the value
        // (37 bytes without them) passes 255.
        for communities in 930..955 {
            for count in [1, 10, 17, 18, 19, 20, 25, 40] {
                let mut attrs = big_attrs();
                attrs.next_hop = None;
                attrs.communities = (0..communities).collect();
                let u = Update {
                    attributes: attrs,
                    mp_reach: v6_reach(v6_nlri(count, false)),
                    ..Update::default()
                };
                check_fitting(&u, &four());
            }
        }
    }

    #[test]
    fn attributes_too_long_for_one_prefix_are_an_error() {
        let mut attrs = big_attrs();
        attrs.communities = (0..1100).collect();
        let u = Update {
            attributes: attrs,
            nlri: v4_nlri(10, false),
            ..Update::default()
        };
        assert!(matches!(
            u.into_fitting(&four()),
            Err(EncodeError::MessageTooLong { .. })
        ));
    }
}
