//! AS_PATH and AS4_PATH values (RFC 4271 §4.3, RFC 6793 §3, RFC 5065 §3).
//!
//! Role: segment lists with 2-byte or 4-byte AS numbers.
//! Inputs: an attribute value and the AS number width (2 bytes unless 4-octet AS was negotiated; always 4
//! for AS4_PATH).
//! Outputs: an [`AsPath`] or [`MalformedAsPath`] (RFC 7606 §7.2: unknown segment type, zero-length segment,
//! overrun or underrun); encoding splits runs longer than 255 ASNs and writes AS_TRANS for ASNs that do not
//! fit in 2 bytes.

use bytes::{BufMut, BytesMut};
use nom::{bytes::complete::take, number::complete::be_u8, Parser};

use super::types::{AsPath, AsSegment, SegmentType};
use crate::wire::open::AS_TRANS;

/// A malformed AS path (RFC 7606 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedAsPath;

type NomErr<'a> = nom::Err<nom::error::Error<&'a [u8]>>;

/// Decode a path with `asn_len`-byte AS numbers (2 or 4).
pub fn decode_as_path(mut input: &[u8], four_byte: bool) -> Result<AsPath, MalformedAsPath> {
    let width = if four_byte { 4 } else { 2 };
    let mut segments = Vec::new();
    while !input.is_empty() {
        let (rest, (kind, count)) = (be_u8, be_u8)
            .parse(input)
            .map_err(|_: NomErr| MalformedAsPath)?;
        let kind = SegmentType::from_u8(kind).ok_or(MalformedAsPath)?;
        if count == 0 {
            return Err(MalformedAsPath);
        }
        let (rest, bytes) = take(usize::from(count) * width)
            .parse(rest)
            .map_err(|_: NomErr| MalformedAsPath)?;
        input = rest;
        let asns = bytes
            .chunks_exact(width)
            .map(|c| c.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
            .collect();
        segments.push(AsSegment { kind, asns });
    }
    Ok(AsPath { segments })
}

/// Append a path with 2- or 4-byte AS numbers.
pub fn encode_as_path(path: &AsPath, four_byte: bool, out: &mut BytesMut) {
    for seg in &path.segments {
        for chunk in seg.asns.chunks(255) {
            out.put_u8(seg.kind.to_u8());
            out.put_u8(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
            for &asn in chunk {
                if four_byte {
                    out.put_u32(asn);
                } else {
                    // RFC 6793 §4.2.2: an AS that does not fit in 2 bytes is replaced by AS_TRANS.
                    out.put_u16(u16::try_from(asn).unwrap_or(AS_TRANS));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_byte_path_with_all_segment_types() {
        let bytes = [
            0x03, 0x01, 0xfc, 0x00, // AS_CONFED_SEQUENCE (64512)
            0x04, 0x01, 0xfc, 0x01, // AS_CONFED_SET {64513}
            0x02, 0x02, 0xfd, 0xe9, 0xfd, 0xea, // AS_SEQUENCE (65001 65002)
            0x01, 0x02, 0x00, 0x64, 0x00, 0xc8, // AS_SET {100 200}
        ];
        let path = decode_as_path(&bytes, false).unwrap();
        let seg = |kind, asns: &[u32]| AsSegment {
            kind,
            asns: asns.to_vec(),
        };
        assert_eq!(
            path.segments,
            vec![
                seg(SegmentType::ConfedSequence, &[64512]),
                seg(SegmentType::ConfedSet, &[64513]),
                seg(SegmentType::Sequence, &[65001, 65002]),
                seg(SegmentType::Set, &[100, 200]),
            ]
        );
        let mut out = BytesMut::new();
        encode_as_path(&path, false, &mut out);
        assert_eq!(&out[..], &bytes);
    }

    #[test]
    fn four_byte_path_and_as_trans() {
        let bytes = [
            0x02, 0x02, // AS_SEQUENCE of 2
            0xfa, 0x56, 0xea, 0x01, // 4200000001
            0x00, 0x00, 0xfd, 0xe9, // 65001
        ];
        let path = decode_as_path(&bytes, true).unwrap();
        assert_eq!(path, AsPath::sequence(vec![4_200_000_001, 65001]));
        let mut out = BytesMut::new();
        encode_as_path(&path, true, &mut out);
        assert_eq!(&out[..], &bytes);
        let mut two = BytesMut::new();
        encode_as_path(&path, false, &mut two);
        assert_eq!(&two[..], &[0x02, 0x02, 0x5b, 0xa0, 0xfd, 0xe9]); // AS_TRANS 23456, 65001
    }

    #[test]
    fn long_runs_are_split() {
        let path = AsPath::sequence((1..=300).collect::<Vec<u32>>());
        let mut out = BytesMut::new();
        encode_as_path(&path, true, &mut out);
        assert_eq!(out.len(), 2 + 255 * 4 + 2 + 45 * 4);
        let back = decode_as_path(&out, true).unwrap();
        assert_eq!(back.segments.len(), 2);
        assert_eq!(back.route_length(), 300);
    }

    #[test]
    fn malformed_paths() {
        assert_eq!(
            decode_as_path(&[0x05, 0x01, 0, 1], false),
            Err(MalformedAsPath)
        ); // segment type 5
        assert_eq!(decode_as_path(&[0x02, 0x00], false), Err(MalformedAsPath)); // zero-length segment
        assert_eq!(
            decode_as_path(&[0x02, 0x02, 0, 1], false),
            Err(MalformedAsPath)
        ); // overrun
        assert_eq!(
            decode_as_path(&[0x02, 0x01, 0, 1, 0x02], false),
            Err(MalformedAsPath)
        ); // underrun
        assert_eq!(
            decode_as_path(&[0x02, 0x01, 0, 1], true),
            Err(MalformedAsPath)
        ); // 2-byte read as 4
        assert_eq!(decode_as_path(&[], false), Ok(AsPath::default()));
    }
}
