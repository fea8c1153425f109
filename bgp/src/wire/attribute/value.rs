//! Decoding one path attribute value, with the RFC 7606 §7 verdict for a malformed one.
//!
//! Role: check an attribute's Optional/Transitive flags and length against its definition, decode its value
//! into the [`DecodedAttributes`] being built, and say what a malformed one means: attribute discard,
//! treat-as-withdraw, or session reset (with the RFC 4271 §6.3 / RFC 4760 §7 NOTIFICATION).
//! Inputs: one attribute (flags, type, value, and its whole bytes for NOTIFICATION data) and the [`Codec`].
//! Outputs: the value stored in the [`DecodedAttributes`], or a [`Fail`] verdict.

use std::net::Ipv4Addr;

use super::as_path::decode_as_path;
use super::decode::{DecodedAttributes, Problem};
use super::mp::{decode_mp_reach, decode_mp_unreach};
use super::types::{flags, type_code as tc, Aggregator, LargeCommunity, Origin, RawAttribute};
use crate::wire::error::code;
use crate::wire::notification::Notification;
use crate::wire::prefix::AfiSafi;
use crate::wire::Codec;

/// The verdict on a malformed attribute.
pub(super) enum Fail {
    /// Drop the attribute, keep the UPDATE (RFC 7606 §2 "attribute discard").
    Discard(Problem),
    /// Withdraw the UPDATE's routes (RFC 7606 §2 "treat-as-withdraw").
    Withdraw(Problem),
    /// Reset the session with this NOTIFICATION.
    Reset(Notification),
}

/// The Optional/Transitive flags an attribute must have (RFC 4271 §5, RFC 4456, RFC 4760, RFC 6793,
/// RFC 8092), or `None` if this codec does not know the attribute.
fn expected_flags(t: u8) -> Option<u8> {
    match t {
        tc::ORIGIN | tc::AS_PATH | tc::NEXT_HOP | tc::LOCAL_PREF | tc::ATOMIC_AGGREGATE => {
            Some(flags::WELL_KNOWN)
        }
        tc::MED
        | tc::ORIGINATOR_ID
        | tc::CLUSTER_LIST
        | tc::MP_REACH_NLRI
        | tc::MP_UNREACH_NLRI => Some(flags::OPTIONAL_NON_TRANSITIVE),
        tc::AGGREGATOR
        | tc::COMMUNITIES
        | tc::AS4_PATH
        | tc::AS4_AGGREGATOR
        | tc::LARGE_COMMUNITIES => Some(flags::OPTIONAL_TRANSITIVE),
        _ => None,
    }
}

fn u32_of(v: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes)
}

/// Split a value into `n`-byte records; `None` unless it is a non-zero multiple of `n`.
fn records(v: &[u8], n: usize) -> Option<std::slice::ChunksExact<'_, u8>> {
    (!v.is_empty() && v.len() % n == 0).then(|| v.chunks_exact(n))
}

/// Decode one attribute into `out`, or return the verdict on a malformed one.
pub(super) fn decode_one(
    fl: u8,
    t: u8,
    value: &[u8],
    whole: &[u8],
    codec: &Codec,
    out: &mut DecodedAttributes,
) -> Result<(), Fail> {
    let attrs = &mut out.attributes;
    let Some(expected) = expected_flags(t) else {
        // RFC 4271 §6.3: an unrecognized well-known attribute resets with the attribute as data.
        if fl & flags::OPTIONAL == 0 {
            return Err(Fail::Reset(Notification::new(
                code::UPDATE_MESSAGE,
                code::update::UNRECOGNIZED_WELL_KNOWN,
                whole.to_vec(),
            )));
        }
        // RFC 4271 §5: unrecognized optional transitive attributes are kept (to be passed on with Partial
        // set); unrecognized optional non-transitive ones are quietly ignored.
        if fl & flags::TRANSITIVE != 0 {
            attrs.unknown.push(RawAttribute {
                flags: fl & (flags::OPTIONAL | flags::TRANSITIVE | flags::PARTIAL),
                type_code: t,
                value: value.to_vec(),
            });
        }
        return Ok(());
    };
    let is_mp = t == tc::MP_REACH_NLRI || t == tc::MP_UNREACH_NLRI;
    if fl & flags::OPTIONAL_TRANSITIVE != expected {
        // RFC 7606 §3: conflicting Optional/Transitive flags make the attribute malformed and the UPDATE
        // treat-as-withdraw. MP attributes carry NLRI we could then not trust: session reset (§7.11).
        if is_mp {
            return Err(Fail::Reset(Notification::new(
                code::UPDATE_MESSAGE,
                code::update::ATTRIBUTE_FLAGS,
                whole.to_vec(),
            )));
        }
        return Err(Fail::Withdraw(Problem::FlagsConflict { flags: fl }));
    }
    let bad_len = Problem::BadLength {
        length: value.len(),
    };
    match t {
        // RFC 7606 §7.1: ORIGIN of the wrong length or with an undefined value → treat-as-withdraw.
        tc::ORIGIN => match value {
            [v] => {
                attrs.origin =
                    Some(Origin::from_u8(*v).ok_or(Fail::Withdraw(Problem::InvalidValue))?)
            }
            _ => return Err(Fail::Withdraw(bad_len)),
        },
        // RFC 7606 §7.2: a malformed AS_PATH → treat-as-withdraw.
        tc::AS_PATH => {
            let path = decode_as_path(value, codec.four_byte_as)
                .map_err(|_| Fail::Withdraw(Problem::InvalidValue))?;
            attrs.as_path = Some(path);
        }
        // RFC 7606 §7.3: NEXT_HOP of a length other than 4 → treat-as-withdraw.
        tc::NEXT_HOP => {
            attrs.next_hop = Some(Ipv4Addr::from(
                u32_of(value).ok_or(Fail::Withdraw(bad_len))?,
            ))
        }
        // RFC 7606 §7.4: MULTI_EXIT_DISC of a length other than 4 → treat-as-withdraw.
        tc::MED => attrs.med = Some(u32_of(value).ok_or(Fail::Withdraw(bad_len))?),
        // RFC 7606 §7.5: LOCAL_PREF of a length other than 4 → treat-as-withdraw. (Ignoring it from an
        // external peer is the session's business.)
        tc::LOCAL_PREF => attrs.local_pref = Some(u32_of(value).ok_or(Fail::Withdraw(bad_len))?),
        // RFC 7606 §7.6: ATOMIC_AGGREGATE of a length other than 0 → attribute discard.
        tc::ATOMIC_AGGREGATE => {
            if !value.is_empty() {
                return Err(Fail::Discard(bad_len));
            }
            attrs.atomic_aggregate = true;
        }
        // RFC 7606 §7.7: AGGREGATOR of a length other than 6 (or 8 with 4-octet AS) → attribute discard.
        tc::AGGREGATOR => {
            let agg = match (codec.four_byte_as, value) {
                (false, [a0, a1, rest @ ..]) => {
                    u32_of(rest).map(|addr| (u32::from(u16::from_be_bytes([*a0, *a1])), addr))
                }
                (true, [a0, a1, a2, a3, rest @ ..]) => {
                    u32_of(rest).map(|addr| (u32::from_be_bytes([*a0, *a1, *a2, *a3]), addr))
                }
                _ => None,
            };
            let (asn, addr) = agg.ok_or(Fail::Discard(bad_len))?;
            attrs.aggregator = Some(Aggregator {
                asn,
                address: Ipv4Addr::from(addr),
            });
        }
        // RFC 7606 §7.8: COMMUNITIES whose length is not a non-zero multiple of 4 → treat-as-withdraw.
        tc::COMMUNITIES => {
            let recs = records(value, 4).ok_or(Fail::Withdraw(bad_len))?;
            attrs.communities = recs.filter_map(u32_of).collect();
        }
        // RFC 7606 §7.9: ORIGINATOR_ID of a length other than 4 → treat-as-withdraw.
        tc::ORIGINATOR_ID => {
            attrs.originator_id = Some(Ipv4Addr::from(
                u32_of(value).ok_or(Fail::Withdraw(bad_len))?,
            ));
        }
        // RFC 7606 §7.10: CLUSTER_LIST whose length is not a non-zero multiple of 4 → treat-as-withdraw.
        tc::CLUSTER_LIST => {
            let recs = records(value, 4).ok_or(Fail::Withdraw(bad_len))?;
            attrs.cluster_list = recs.filter_map(u32_of).map(Ipv4Addr::from).collect();
        }
        // RFC 7606 §7.11 / RFC 4760 §7: a malformed MP attribute hides NLRI we cannot withdraw → session reset
        // with Optional Attribute Error and the attribute as data. A family we do not parse is discarded.
        tc::MP_REACH_NLRI => {
            let reach = decode_mp_reach(value, codec).map_err(|_| mp_reset(whole))?;
            out.mp_reach = Some(reach.ok_or_else(|| Fail::Discard(unsupported(value)))?);
        }
        tc::MP_UNREACH_NLRI => {
            let unreach = decode_mp_unreach(value, codec).map_err(|_| mp_reset(whole))?;
            out.mp_unreach = Some(unreach.ok_or_else(|| Fail::Discard(unsupported(value)))?);
        }
        // RFC 6793 §3: a NEW speaker discards AS4_* from another NEW speaker; §6: a malformed AS4_PATH or
        // AS4_AGGREGATOR is discarded.
        tc::AS4_PATH => {
            if codec.four_byte_as {
                return Err(Fail::Discard(Problem::As4FromFourOctetSpeaker));
            }
            attrs.as4_path = Some(
                decode_as_path(value, true).map_err(|_| Fail::Discard(Problem::InvalidValue))?,
            );
        }
        tc::AS4_AGGREGATOR => {
            if codec.four_byte_as {
                return Err(Fail::Discard(Problem::As4FromFourOctetSpeaker));
            }
            let (asn, addr) = match value {
                [a0, a1, a2, a3, rest @ ..] => {
                    u32_of(rest).map(|addr| (u32::from_be_bytes([*a0, *a1, *a2, *a3]), addr))
                }
                _ => None,
            }
            .ok_or(Fail::Discard(bad_len))?;
            attrs.as4_aggregator = Some(Aggregator {
                asn,
                address: Ipv4Addr::from(addr),
            });
        }
        // RFC 8092 §6: LARGE_COMMUNITY whose length is not a non-zero multiple of 12 → treat-as-withdraw.
        tc::LARGE_COMMUNITIES => {
            let recs = records(value, 12).ok_or(Fail::Withdraw(bad_len))?;
            attrs.large_communities = recs
                .filter_map(|r| {
                    let (g, rest) = r.split_at_checked(4)?;
                    let (l1, l2) = rest.split_at_checked(4)?;
                    Some(LargeCommunity {
                        global_admin: u32_of(g)?,
                        local1: u32_of(l1)?,
                        local2: u32_of(l2)?,
                    })
                })
                .collect();
        }
        _ => {}
    }
    Ok(())
}

fn mp_reset(whole: &[u8]) -> Fail {
    Fail::Reset(Notification::new(
        code::UPDATE_MESSAGE,
        code::update::OPTIONAL_ATTRIBUTE,
        whole.to_vec(),
    ))
}

fn unsupported(value: &[u8]) -> Problem {
    match value {
        [a0, a1, safi, ..] => {
            Problem::UnsupportedFamily(AfiSafi::new(u16::from_be_bytes([*a0, *a1]), *safi))
        }
        _ => Problem::InvalidValue,
    }
}

/// RFC 7606 §7 per-attribute cases, through the whole UPDATE decoder.
#[cfg(test)]
mod tests {
    use super::super::decode::AttributeIssue;
    use super::super::test_util::*;
    use super::*;
    use crate::wire::update::Update;

    #[test]
    fn origin_errors_treat_as_withdraw() {
        let bad_value = [0x40, 0x01, 0x01, 0x03]; // ORIGIN 3
        assert_eq!(
            decode(&[&bad_value, &AS_PATH_65001, &NEXT_HOP]),
            withdraw(1, Problem::InvalidValue)
        );
        let bad_len = [0x40, 0x01, 0x02, 0x00, 0x00]; // ORIGIN of length 2
        assert_eq!(
            decode(&[&bad_len, &AS_PATH_65001, &NEXT_HOP]),
            withdraw(1, Problem::BadLength { length: 2 })
        );
    }

    #[test]
    fn malformed_as_path_treats_as_withdraw() {
        let seg_type = [0x40, 0x02, 0x04, 0x07, 0x01, 0xfd, 0xe9]; // segment type 7
        assert_eq!(
            decode(&[&ORIGIN_IGP, &seg_type, &NEXT_HOP]),
            withdraw(2, Problem::InvalidValue)
        );
        let overrun = [0x40, 0x02, 0x04, 0x02, 0x02, 0xfd, 0xe9]; // 2 ASNs announced, 1 present
        assert_eq!(
            decode(&[&ORIGIN_IGP, &overrun, &NEXT_HOP]),
            withdraw(2, Problem::InvalidValue)
        );
    }

    #[test]
    fn fixed_length_attributes_treat_as_withdraw() {
        let nh = [0x40, 0x03, 0x05, 0xc0, 0x00, 0x02, 0x01, 0x00]; // NEXT_HOP of length 5
        assert_eq!(
            decode(&[&ORIGIN_IGP, &AS_PATH_65001, &nh]),
            withdraw(3, Problem::BadLength { length: 5 })
        );
        let med = [0x80, 0x04, 0x03, 0x00, 0x00, 0x01]; // MED of length 3
        assert_eq!(
            decode(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP, &med]),
            withdraw(4, Problem::BadLength { length: 3 })
        );
        let lp = [0x40, 0x05, 0x05, 0x00, 0x00, 0x00, 0x64, 0x00]; // LOCAL_PREF of length 5
        assert_eq!(
            decode(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP, &lp]),
            withdraw(5, Problem::BadLength { length: 5 })
        );
        let oid = [0x80, 0x09, 0x03, 0x0a, 0x00, 0x00]; // ORIGINATOR_ID of length 3
        assert_eq!(
            decode(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP, &oid]),
            withdraw(9, Problem::BadLength { length: 3 })
        );
    }

    #[test]
    fn list_attributes_of_bad_length_treat_as_withdraw() {
        let base: [&[u8]; 3] = [&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP];
        let comm = [0xc0, 0x08, 0x05, 0, 0, 0, 1, 2]; // COMMUNITIES of length 5
        assert_eq!(
            decode(&[&base[..], &[&comm[..]]].concat()),
            withdraw(8, Problem::BadLength { length: 5 })
        );
        let empty_comm = [0xc0, 0x08, 0x00]; // COMMUNITIES of length 0
        assert_eq!(
            decode(&[&base[..], &[&empty_comm[..]]].concat()),
            withdraw(8, Problem::BadLength { length: 0 })
        );
        let cl = [0x80, 0x0a, 0x06, 10, 0, 0, 1, 10, 0]; // CLUSTER_LIST of length 6
        assert_eq!(
            decode(&[&base[..], &[&cl[..]]].concat()),
            withdraw(10, Problem::BadLength { length: 6 })
        );
        let mut lc = vec![0xc0, 0x20, 0x0d]; // LARGE_COMMUNITY of length 13
        lc.extend_from_slice(&[0; 13]);
        assert_eq!(
            decode(&[&base[..], &[&lc[..]]].concat()),
            withdraw(32, Problem::BadLength { length: 13 })
        );
    }

    #[test]
    fn atomic_aggregate_and_aggregator_are_discarded() {
        let aa = [0x40, 0x06, 0x01, 0x00]; // ATOMIC_AGGREGATE of length 1
        let agg = [0xc0, 0x07, 0x07, 0xfd, 0xe9, 0xc0, 0x00, 0x02, 0x01, 0x00]; // AGGREGATOR of length 7
        let (u, issues) = discarded(decode(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP, &aa, &agg]));
        assert!(!u.attributes.atomic_aggregate);
        assert_eq!(u.attributes.aggregator, None);
        assert_eq!(u.nlri, vec![n("203.0.113.0", 24)]);
        assert_eq!(
            issues,
            vec![
                AttributeIssue::new(6, Problem::BadLength { length: 1 }),
                AttributeIssue::new(7, Problem::BadLength { length: 7 }),
            ]
        );
    }

    #[test]
    fn malformed_mp_attributes_reset_with_optional_attribute_error() {
        let reach = [
            0x80, 0x0e, 0x09, 0x00, 0x02, 0x01, 0x04, 0xc0, 0x00, 0x02, 0x01, 0x00,
        ]; // IPv6, 4-byte NH
        assert_eq!(
            decode(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP, &reach]),
            reset(9, &reach)
        );
        let unreach = [0x80, 0x0f, 0x05, 0x00, 0x02, 0x01, 0x81, 0x20]; // IPv6 prefix length 129
        assert_eq!(decode(&[&unreach]), reset(9, &unreach));
        let reach_flags = [0x40, 0x0e, 0x03, 0x00, 0x02, 0x01]; // MP_REACH_NLRI marked well-known
        assert_eq!(decode(&[&reach_flags]), reset(4, &reach_flags));
    }

    #[test]
    fn flags_conflict_treats_as_withdraw() {
        let origin_optional = [0xc0, 0x01, 0x01, 0x00]; // ORIGIN marked optional transitive
        assert_eq!(
            decode(&[&origin_optional, &AS_PATH_65001, &NEXT_HOP]),
            withdraw(1, Problem::FlagsConflict { flags: 0xc0 })
        );
        let comm_well_known = [0x40, 0x08, 0x04, 0, 0, 0, 1]; // COMMUNITIES marked well-known
        assert_eq!(
            decode(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP, &comm_well_known]),
            withdraw(8, Problem::FlagsConflict { flags: 0x40 })
        );
    }

    #[test]
    fn as4_attributes() {
        let as4_path = [0xc0, 0x11, 0x06, 0x02, 0x01, 0xfa, 0x56, 0xea, 0x01]; // AS4_PATH 4200000001
        let four = Codec {
            four_byte_as: true,
            ..Codec::default()
        };
        let as_path4 = [0x40, 0x02, 0x06, 0x02, 0x01, 0x00, 0x00, 0xfd, 0xe9];
        let outcome = Update::decode_body(
            &body(&[&ORIGIN_IGP, &as_path4, &NEXT_HOP, &as4_path]),
            &four,
        );
        let (u, issues) = discarded(outcome);
        assert_eq!(u.attributes.as4_path, None);
        // Issues carry the attribute as received.
        assert_eq!(
            issues,
            vec![AttributeIssue {
                type_code: 17,
                problem: Problem::As4FromFourOctetSpeaker,
                attribute: as4_path.to_vec(),
            }]
        );
        let bad_as4 = [0xc0, 0x11, 0x04, 0x02, 0x01, 0xfa, 0x56]; // AS4_PATH with a 2-byte ASN
        let (_, issues) = discarded(decode(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP, &bad_as4]));
        assert_eq!(issues, vec![AttributeIssue::new(17, Problem::InvalidValue)]);
        let bad_as4_agg = [0xc0, 0x12, 0x06, 0xfd, 0xe9, 0xc0, 0, 2, 1]; // AS4_AGGREGATOR of length 6
        let (_, issues) = discarded(decode(&[
            &ORIGIN_IGP,
            &AS_PATH_65001,
            &NEXT_HOP,
            &bad_as4_agg,
        ]));
        assert_eq!(
            issues,
            vec![AttributeIssue::new(18, Problem::BadLength { length: 6 })]
        );
    }

    #[test]
    fn unsupported_mp_family_is_discarded() {
        let vpn = [0x80, 0x0f, 0x03, 0x00, 0x01, 0x80]; // MP_UNREACH_NLRI AFI 1 SAFI 128
        let (u, issues) = discarded(decode(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP, &vpn]));
        assert_eq!(u.mp_unreach, None);
        assert_eq!(
            issues,
            vec![AttributeIssue::new(
                15,
                Problem::UnsupportedFamily(AfiSafi::new(1, 128))
            )]
        );
    }
}
