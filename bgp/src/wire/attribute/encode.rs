//! Encoding the path attribute list.
//!
//! Role: write [`PathAttributes`] plus the MP attributes in ascending type-code order, the unrecognized
//! attributes last in the order they were received, setting the Extended Length flag when a value exceeds
//! 255 bytes (RFC 4271 §4.3).
//! Inputs: the attribute set, optional MP_REACH/MP_UNREACH, the [`Codec`] (AS width, ADD-PATH).
//! Outputs: the bytes of the Path Attributes field appended to a buffer, or [`EncodeError`].

use bytes::{BufMut, BytesMut};

use super::as_path::encode_as_path;
use super::mp::{MpReach, MpUnreach};
use super::types::{flags, type_code as tc, Aggregator, PathAttributes};
use crate::wire::error::EncodeError;
use crate::wire::open::AS_TRANS;
use crate::wire::Codec;

fn put_attribute(out: &mut BytesMut, fl: u8, t: u8, value: &[u8]) -> Result<(), EncodeError> {
    let fl = fl & !flags::EXTENDED_LENGTH;
    if let Ok(len) = u8::try_from(value.len()) {
        out.put_u8(fl);
        out.put_u8(t);
        out.put_u8(len);
    } else {
        let len = u16::try_from(value.len()).map_err(|_| EncodeError::AttributeTooLong {
            type_code: t,
            len: value.len(),
        })?;
        out.put_u8(fl | flags::EXTENDED_LENGTH);
        out.put_u8(t);
        out.put_u16(len);
    }
    out.put_slice(value);
    Ok(())
}

fn aggregator(agg: &Aggregator, four_byte: bool, v: &mut BytesMut) {
    if four_byte {
        v.put_u32(agg.asn);
    } else {
        // RFC 6793 §4.2.2: AS_TRANS stands in for a 4-byte aggregator AS.
        v.put_u16(u16::try_from(agg.asn).unwrap_or(AS_TRANS));
    }
    v.put_slice(&agg.address.octets());
}

/// Append the Path Attributes field.
pub fn encode_attributes(
    attrs: &PathAttributes,
    mp_reach: Option<&MpReach>,
    mp_unreach: Option<&MpUnreach>,
    codec: &Codec,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    use flags::{OPTIONAL_NON_TRANSITIVE as ONT, OPTIONAL_TRANSITIVE as OT, WELL_KNOWN as WK};
    // One scratch buffer for every value: fill it, then write flags, type, length and value.
    let mut v = BytesMut::new();
    if let Some(o) = attrs.origin {
        v.put_u8(o.to_u8());
        put_attribute(out, WK, tc::ORIGIN, &v.split())?;
    }
    if let Some(p) = &attrs.as_path {
        encode_as_path(p, codec.four_byte_as, &mut v);
        put_attribute(out, WK, tc::AS_PATH, &v.split())?;
    }
    if let Some(nh) = attrs.next_hop {
        put_attribute(out, WK, tc::NEXT_HOP, &nh.octets())?;
    }
    if let Some(med) = attrs.med {
        put_attribute(out, ONT, tc::MED, &med.to_be_bytes())?;
    }
    if let Some(lp) = attrs.local_pref {
        put_attribute(out, WK, tc::LOCAL_PREF, &lp.to_be_bytes())?;
    }
    if attrs.atomic_aggregate {
        put_attribute(out, WK, tc::ATOMIC_AGGREGATE, &[])?;
    }
    if let Some(agg) = &attrs.aggregator {
        aggregator(agg, codec.four_byte_as, &mut v);
        put_attribute(out, OT, tc::AGGREGATOR, &v.split())?;
    }
    if !attrs.communities.is_empty() {
        attrs.communities.iter().for_each(|c| v.put_u32(*c));
        put_attribute(out, OT, tc::COMMUNITIES, &v.split())?;
    }
    if let Some(id) = attrs.originator_id {
        put_attribute(out, ONT, tc::ORIGINATOR_ID, &id.octets())?;
    }
    if !attrs.cluster_list.is_empty() {
        attrs
            .cluster_list
            .iter()
            .for_each(|c| v.put_slice(&c.octets()));
        put_attribute(out, ONT, tc::CLUSTER_LIST, &v.split())?;
    }
    if let Some(r) = mp_reach {
        r.encode_value(codec, &mut v)?;
        put_attribute(out, ONT, tc::MP_REACH_NLRI, &v.split())?;
    }
    if let Some(u) = mp_unreach {
        u.encode_value(codec, &mut v)?;
        put_attribute(out, ONT, tc::MP_UNREACH_NLRI, &v.split())?;
    }
    if let Some(p) = &attrs.as4_path {
        encode_as_path(p, true, &mut v);
        put_attribute(out, OT, tc::AS4_PATH, &v.split())?;
    }
    if let Some(agg) = &attrs.as4_aggregator {
        aggregator(agg, true, &mut v);
        put_attribute(out, OT, tc::AS4_AGGREGATOR, &v.split())?;
    }
    if !attrs.large_communities.is_empty() {
        for c in &attrs.large_communities {
            v.put_u32(c.global_admin);
            v.put_u32(c.local1);
            v.put_u32(c.local2);
        }
        put_attribute(out, OT, tc::LARGE_COMMUNITIES, &v.split())?;
    }
    for raw in &attrs.unknown {
        put_attribute(out, raw.flags, raw.type_code, &raw.value)?;
    }
    Ok(())
}
