//! Decoding the path attribute list with RFC 7606 revised error handling.
//!
//! Role: walk the Path Attributes field of an UPDATE, decode each attribute and decide, per attribute and per
//! RFC 7606 §7, whether a malformed one is discarded, makes the UPDATE treat-as-withdraw, or resets the
//! session.
//! Inputs: the Path Attributes field (its length already checked against the message, RFC 7606 §4) and the
//! [`Codec`] (AS number width, ADD-PATH).
//! Outputs: [`DecodedAttributes`] — the attribute set, the MP attributes, and the issues found, split into
//! discarded and treat-as-withdraw — or the NOTIFICATION for a session reset.

use nom::{bytes::complete::take, number::complete::be_u16, number::complete::be_u8, Parser};

use super::mp::{MpReach, MpUnreach};
use super::types::{flags, type_code as tc, PathAttributes};
use super::value::{decode_one, Fail};
use crate::wire::error::code;
use crate::wire::notification::Notification;
use crate::wire::prefix::AfiSafi;
use crate::wire::Codec;

/// What was wrong with an attribute that did not reset the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Problem {
    /// The Optional or Transitive flag conflicts with the attribute's definition (RFC 7606 §3).
    FlagsConflict {
        /// The flags received.
        flags: u8,
    },
    /// The length does not fit the attribute's definition.
    BadLength {
        /// The length received.
        length: usize,
    },
    /// The value is invalid (an ORIGIN above 2, a malformed AS path).
    InvalidValue,
    /// A second occurrence of the attribute (RFC 7606 §3): all but the first are discarded.
    Duplicate,
    /// A well-known mandatory attribute is missing while the UPDATE carries NLRI (RFC 7606 §3).
    Missing,
    /// The attribute list ends inside an attribute (RFC 7606 §4).
    ListOverrun,
    /// An MP attribute of a family this codec does not parse.
    UnsupportedFamily(AfiSafi),
    /// AS4_PATH or AS4_AGGREGATOR from a speaker that negotiated 4-octet AS numbers (RFC 6793 §3).
    As4FromFourOctetSpeaker,
}

/// One attribute problem, with the attribute's type code and bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttributeIssue {
    /// The attribute type code (for [`Problem::ListOverrun`], the type of the cut attribute if known, else 0).
    pub type_code: u8,
    /// What was wrong.
    pub problem: Problem,
    /// The attribute as received (flags, type, length, value); for [`Problem::ListOverrun`] the bytes left in
    /// the list; empty for [`Problem::Missing`].
    pub attribute: Vec<u8>,
}

impl AttributeIssue {
    /// An issue without attribute bytes.
    pub fn new(type_code: u8, problem: Problem) -> Self {
        AttributeIssue {
            type_code,
            problem,
            attribute: Vec::new(),
        }
    }

    /// The NOTIFICATION RFC 4271 §6.3 prescribes for this problem, for a session that resets rather than
    /// applying RFC 7606 (e.g. by configuration) and for logs: flags 3/4 and length 3/5 with the attribute as
    /// data, invalid ORIGIN 3/6 with the attribute, malformed AS_PATH 3/11, missing well-known 3/3 with the
    /// type code, a list overrun or duplicate 3/1, anything else on an optional attribute 3/9 with it.
    pub fn notification(&self) -> Notification {
        use code::update::*;
        let attr = || self.attribute.clone();
        let (subcode, data) = match self.problem {
            Problem::FlagsConflict { .. } => (ATTRIBUTE_FLAGS, attr()),
            Problem::BadLength { .. } => (ATTRIBUTE_LENGTH, attr()),
            Problem::InvalidValue if self.type_code == tc::ORIGIN => (INVALID_ORIGIN, attr()),
            Problem::InvalidValue if self.type_code == tc::AS_PATH => {
                (MALFORMED_AS_PATH, Vec::new())
            }
            Problem::Missing => (MISSING_WELL_KNOWN, vec![self.type_code]),
            Problem::ListOverrun | Problem::Duplicate => (MALFORMED_ATTRIBUTE_LIST, Vec::new()),
            Problem::InvalidValue
            | Problem::UnsupportedFamily(_)
            | Problem::As4FromFourOctetSpeaker => (OPTIONAL_ATTRIBUTE, attr()),
        };
        Notification::new(code::UPDATE_MESSAGE, subcode, data)
    }
}

/// The attribute list of one UPDATE, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedAttributes {
    /// The attributes that were well-formed.
    pub attributes: PathAttributes,
    /// MP_REACH_NLRI, if present and of a supported family.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI, if present and of a supported family.
    pub mp_unreach: Option<MpUnreach>,
    /// Attributes dropped by "attribute discard".
    pub discarded: Vec<AttributeIssue>,
    /// Problems that make the whole UPDATE "treat-as-withdraw".
    pub withdraw: Vec<AttributeIssue>,
}

type NomErr<'a> = nom::Err<nom::error::Error<&'a [u8]>>;

/// One attribute split off the front of the list: (flags, type, value, whole attribute, rest).
type Split<'a> = (u8, u8, &'a [u8], &'a [u8], &'a [u8]);

fn split_attribute(input: &[u8]) -> Option<Split<'_>> {
    let split = |input| -> Result<_, NomErr> {
        let (r, (fl, t)) = (be_u8, be_u8).parse(input)?;
        let (r, len) = if fl & flags::EXTENDED_LENGTH != 0 {
            let (r, l) = be_u16.parse(r)?;
            (r, usize::from(l))
        } else {
            let (r, l) = be_u8.parse(r)?;
            (r, usize::from(l))
        };
        let (r, value) = take(len).parse(r)?;
        Ok((fl, t, value, r))
    };
    let (fl, t, value, rest) = split(input).ok()?;
    let whole = input.get(..input.len() - rest.len())?;
    Some((fl, t, value, whole, rest))
}

/// Decode the Path Attributes field.
pub fn decode_attributes(input: &[u8], codec: &Codec) -> Result<DecodedAttributes, Notification> {
    let mut out = DecodedAttributes::default();
    let mut seen = [false; 256];
    let mut rest = input;
    while !rest.is_empty() {
        let Some((fl, t, value, whole, next)) = split_attribute(rest) else {
            // RFC 7606 §4: an attribute running past the Total Attribute Length, or too few octets left for
            // an attribute header, is treat-as-withdraw; the Total Attribute Length still locates the NLRI.
            out.withdraw.push(AttributeIssue {
                type_code: rest.get(1).copied().unwrap_or(0),
                problem: Problem::ListOverrun,
                attribute: rest.to_vec(),
            });
            break;
        };
        rest = next;
        let Some(seen_slot) = seen.get_mut(usize::from(t)) else {
            continue;
        };
        if *seen_slot {
            // RFC 7606 §3: a repeated MP_REACH_NLRI or MP_UNREACH_NLRI is Malformed Attribute List; any
            // other repeated attribute is discarded, keeping the first.
            if t == tc::MP_REACH_NLRI || t == tc::MP_UNREACH_NLRI {
                return Err(Notification::new(
                    code::UPDATE_MESSAGE,
                    code::update::MALFORMED_ATTRIBUTE_LIST,
                    Vec::new(),
                ));
            }
            out.discarded.push(AttributeIssue {
                type_code: t,
                problem: Problem::Duplicate,
                attribute: whole.to_vec(),
            });
            continue;
        }
        *seen_slot = true;
        match decode_one(fl, t, value, whole, codec, &mut out) {
            Ok(()) => {}
            Err(Fail::Discard(problem)) => out.discarded.push(AttributeIssue {
                type_code: t,
                problem,
                attribute: whole.to_vec(),
            }),
            Err(Fail::Withdraw(problem)) => out.withdraw.push(AttributeIssue {
                type_code: t,
                problem,
                attribute: whole.to_vec(),
            }),
            Err(Fail::Reset(n)) => return Err(n),
        }
    }
    Ok(out)
}

/// RFC 7606 cases about the attribute list as a whole, through the whole UPDATE decoder.
#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::types::RawAttribute;
    use super::*;
    use crate::wire::update::{TreatAsWithdraw, Update, UpdateOutcome};

    #[test]
    fn well_formed_base_is_parsed() {
        let UpdateOutcome::Parsed(u) = decode(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP]) else {
            panic!("base update not parsed")
        };
        assert_eq!(u.nlri, vec![n("203.0.113.0", 24)]);
        assert_eq!(u.withdrawn, vec![n("198.51.100.0", 24)]);
    }

    #[test]
    fn duplicates() {
        let med1 = [0x80, 0x04, 0x04, 0, 0, 0, 1];
        let med2 = [0x80, 0x04, 0x04, 0, 0, 0, 2];
        let (u, issues) = discarded(decode(&[
            &ORIGIN_IGP,
            &AS_PATH_65001,
            &NEXT_HOP,
            &med1,
            &med2,
        ]));
        assert_eq!(u.attributes.med, Some(1));
        assert_eq!(issues, vec![AttributeIssue::new(4, Problem::Duplicate)]);
        let eor = [0x80, 0x0f, 0x03, 0x00, 0x02, 0x01]; // MP_UNREACH_NLRI IPv6, empty
        assert_eq!(decode(&[&eor, &eor]), reset(1, &[]));
    }

    #[test]
    fn missing_well_known_attributes() {
        assert_eq!(
            decode(&[&AS_PATH_65001, &NEXT_HOP]),
            withdraw(1, Problem::Missing)
        );
        assert_eq!(
            decode(&[&ORIGIN_IGP, &NEXT_HOP]),
            withdraw(2, Problem::Missing)
        );
        assert_eq!(
            decode(&[&ORIGIN_IGP, &AS_PATH_65001]),
            withdraw(3, Problem::Missing)
        );
        // Without NLRI nothing is mandatory: a withdrawal-only UPDATE.
        let only_withdrawn = [0x00, 0x04, 0x18, 0xc6, 0x33, 0x64, 0x00, 0x00];
        assert!(matches!(
            Update::decode_body(&only_withdrawn, &Codec::default()),
            UpdateOutcome::Parsed(_)
        ));
        // NEXT_HOP is not needed when the routes come in MP_REACH_NLRI (RFC 4760 §3).
        let reach = [
            0x80, 0x0e, 0x0c, // MP_REACH_NLRI, length 12
            0x00, 0x01, 0x01, 0x04, 0xc0, 0x00, 0x02, 0x01,
            0x00, // IPv4 unicast, next hop 192.0.2.1
            0x10, 0x0a, 0x01, // 10.1.0.0/16
        ];
        let mut b = vec![0x00, 0x00, 0x00, 26];
        b.extend_from_slice(&[&ORIGIN_IGP[..], &AS_PATH_65001, &reach].concat());
        assert!(matches!(
            Update::decode_body(&b, &Codec::default()),
            UpdateOutcome::Parsed(_)
        ));
    }

    #[test]
    fn treat_as_withdraw_includes_mp_prefixes() {
        let reach = [
            0x80, 0x0e, 0x1a, // MP_REACH_NLRI, length 26
            0x00, 0x02, 0x01, 0x10, // IPv6 unicast, next hop length 16
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // 2001:db8::1
            0x00, // reserved
            0x20, 0x20, 0x01, 0x0d, 0xb8, // 2001:db8::/32
        ];
        let bad_origin = [0x40, 0x01, 0x01, 0x09];
        let mut b = vec![0x00, 0x00, 0x00, 40];
        b.extend_from_slice(&[&bad_origin[..], &AS_PATH_65001, &reach].concat());
        let issue = AttributeIssue {
            type_code: 1,
            problem: Problem::InvalidValue,
            attribute: bad_origin.to_vec(),
        };
        assert_eq!(
            Update::decode_body(&b, &Codec::default()),
            UpdateOutcome::TreatAsWithdraw(TreatAsWithdraw {
                withdrawn: vec![n("2001:db8::", 32)],
                reasons: vec![issue.clone()],
            })
        );
        // What RFC 4271 alone would have sent: Invalid ORIGIN with the attribute.
        assert_eq!(
            issue.notification(),
            Notification::new(3, 6, bad_origin.to_vec())
        );
    }

    #[test]
    fn rfc4271_notifications_for_issues() {
        let attr = vec![0x40, 0x05, 0x01, 0x00]; // some attribute bytes
        let with = |t, p| AttributeIssue {
            type_code: t,
            problem: p,
            attribute: attr.clone(),
        };
        let cases = [
            (
                with(1, Problem::FlagsConflict { flags: 0xc0 }),
                4,
                attr.clone(),
            ),
            (with(5, Problem::BadLength { length: 1 }), 5, attr.clone()),
            (with(1, Problem::InvalidValue), 6, attr.clone()),
            (with(2, Problem::InvalidValue), 11, vec![]),
            (with(17, Problem::InvalidValue), 9, attr.clone()),
            (AttributeIssue::new(3, Problem::Missing), 3, vec![3]),
            (with(4, Problem::ListOverrun), 1, vec![]),
            (with(4, Problem::Duplicate), 1, vec![]),
            (
                with(15, Problem::UnsupportedFamily(AfiSafi::new(1, 128))),
                9,
                attr.clone(),
            ),
            (with(18, Problem::As4FromFourOctetSpeaker), 9, attr.clone()),
        ];
        for (issue, subcode, data) in cases {
            assert_eq!(
                issue.notification(),
                Notification::new(3, subcode, data),
                "{issue:?}"
            );
        }
    }

    #[test]
    fn unknown_attributes() {
        let well_known = [0x40, 0x32, 0x01, 0xaa]; // type 50, well-known: unrecognized
        assert_eq!(
            decode(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP, &well_known]),
            reset(2, &well_known)
        );
        let non_transitive = [0x80, 0x33, 0x01, 0xaa]; // type 51, optional non-transitive: ignored
        let transitive = [0xc0, 0x34, 0x01, 0xbb]; // type 52, optional transitive: kept
        let UpdateOutcome::Parsed(u) = decode(&[
            &ORIGIN_IGP,
            &AS_PATH_65001,
            &NEXT_HOP,
            &non_transitive,
            &transitive,
        ]) else {
            panic!("not parsed")
        };
        assert_eq!(
            u.attributes.unknown,
            vec![RawAttribute {
                flags: 0xc0,
                type_code: 52,
                value: vec![0xbb]
            }]
        );
    }

    #[test]
    fn attribute_list_overrun_treats_as_withdraw() {
        let cut = [0x80, 0x04, 0x08, 0, 0, 0, 1]; // MED claiming 8 bytes, 4 left
        assert_eq!(
            decode(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP, &cut]),
            withdraw(4, Problem::ListOverrun)
        );
        let stub = [0x40, 0x05]; // two octets: not even an attribute header
        assert_eq!(
            decode(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP, &stub]),
            withdraw(5, Problem::ListOverrun)
        );
    }

    #[test]
    fn inconsistent_lengths_reset() {
        // Total path attribute length beyond the message: Malformed Attribute List.
        let b = [0x00, 0x00, 0x00, 0x10, 0x40, 0x01, 0x01, 0x00];
        assert_eq!(Update::decode_body(&b, &Codec::default()), reset(1, &[]));
        // Withdrawn routes length beyond the message.
        let b = [0x00, 0x09, 0x18, 0xc6, 0x33, 0x64, 0x00, 0x00];
        assert_eq!(Update::decode_body(&b, &Codec::default()), reset(1, &[]));
        // Body too short for the length fields.
        assert_eq!(
            Update::decode_body(&[0x00], &Codec::default()),
            reset(1, &[])
        );
    }

    #[test]
    fn bad_nlri_fields_reset_with_invalid_network_field() {
        let mut b = body(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP]);
        let last = b.len() - 4;
        b[last] = 33; // NLRI length 33
        assert_eq!(Update::decode_body(&b, &Codec::default()), reset(10, &[]));
        let mut b = body(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP]);
        b[2] = 0x19; // withdrawn /25 needs 4 bytes, 3 remain
        assert_eq!(Update::decode_body(&b, &Codec::default()), reset(10, &[]));
    }
}
