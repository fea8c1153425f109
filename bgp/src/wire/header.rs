//! The 19-byte message header (RFC 4271 §4.1) and message framing.
//!
//! Role: find where a message ends in a byte stream and check the header before the body is decoded.
//! Inputs: the start of a byte stream and the maximum message length in force (4096, or 65535 once extended
//! messages are negotiated, RFC 8654).
//! Outputs: a [`Header`] (type and total length) or the Message Header Error NOTIFICATION of RFC 4271 §6.1;
//! [`encode_header`] writes a header with a placeholder length that [`finish_message`] patches.

use bytes::{BufMut, BytesMut};
use nom::{bytes::complete::take, number::complete::be_u16, number::complete::be_u8, Parser};

use super::error::{code, DecodeError, EncodeError};
use super::notification::{bad_length, Notification};

/// Length of the header: 16-byte marker, 2-byte length, 1-byte type.
pub const HEADER_LEN: usize = 19;
/// The maximum message length without extended messages (RFC 4271 §4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The maximum message length with extended messages (RFC 8654 §3).
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

/// Message type codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1.
    Open,
    /// 2.
    Update,
    /// 3.
    Notification,
    /// 4.
    Keepalive,
    /// 5 (RFC 2918).
    RouteRefresh,
}

impl MessageType {
    /// The type code on the wire.
    pub fn code(self) -> u8 {
        match self {
            MessageType::Open => 1,
            MessageType::Update => 2,
            MessageType::Notification => 3,
            MessageType::Keepalive => 4,
            MessageType::RouteRefresh => 5,
        }
    }

    /// The type for a code, if known.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }

    /// The smallest valid total length of this message type (RFC 4271 §4, RFC 2918 §3).
    fn min_len(self) -> usize {
        match self {
            MessageType::Open => 29,
            MessageType::Update => 23,
            MessageType::Notification => 21,
            MessageType::Keepalive => 19,
            // RFC 7313 §5: a wrong ROUTE-REFRESH length has its own error, reported by the body decoder.
            MessageType::RouteRefresh => 19,
        }
    }
}

/// A checked header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The message type.
    pub kind: MessageType,
    /// Total message length including the header.
    pub length: usize,
}

/// Decode and check the header at the start of `input`, given the maximum message length in force.
///
/// Returns [`DecodeError::Incomplete`] if fewer than 19 bytes are available, otherwise the checks of
/// RFC 4271 §6.1 in order: marker (1/1), length (1/2 with the length as data), type (1/3 with the type as data).
pub fn decode_header(input: &[u8], max_len: usize) -> Result<Header, DecodeError> {
    let mut parser = (take(16usize), be_u16, be_u8);
    let (_, (marker, length, kind)): (&[u8], (&[u8], u16, u8)) =
        parser
            .parse(input)
            .map_err(
                |_: nom::Err<nom::error::Error<&[u8]>>| DecodeError::Incomplete {
                    needed: HEADER_LEN.saturating_sub(input.len()),
                },
            )?;
    if marker.iter().any(|&b| b != 0xff) {
        return Err(Notification::new(
            code::MESSAGE_HEADER,
            code::header::CONNECTION_NOT_SYNCHRONIZED,
            Vec::new(),
        )
        .into());
    }
    let length = usize::from(length);
    let Some(kind) = MessageType::from_code(kind) else {
        return Err(Notification::new(
            code::MESSAGE_HEADER,
            code::header::BAD_MESSAGE_TYPE,
            vec![kind],
        )
        .into());
    };
    // RFC 8654 §3: OPEN and KEEPALIVE stay within 4096 even when extended messages are negotiated.
    let max = match kind {
        MessageType::Open | MessageType::Keepalive => max_len.min(MAX_MESSAGE_LEN),
        _ => max_len,
    };
    // RFC 4271 §6.1: length below 19 or above the maximum, or wrong for the type, is Bad Message Length.
    let bad = length < kind.min_len()
        || length > max
        || (kind == MessageType::Keepalive && length != HEADER_LEN);
    if bad {
        return Err(bad_length(length).into());
    }
    Ok(Header { kind, length })
}

/// Start a message: marker, a zero length to be patched, and the type.
pub fn encode_header(kind: MessageType, out: &mut BytesMut) -> usize {
    let start = out.len();
    out.put_bytes(0xff, 16);
    out.put_u16(0);
    out.put_u8(kind.code());
    start
}

/// Patch the length of the message that began at `start`, checking it against `max_len`. On error the
/// partial message is removed from `out`.
pub fn finish_message(out: &mut BytesMut, start: usize, max_len: usize) -> Result<(), EncodeError> {
    let len = out.len().saturating_sub(start);
    match u16::try_from(len) {
        Ok(l) if len <= max_len => {
            if let Some(slot) = out.get_mut(start + 16..start + 18) {
                slot.copy_from_slice(&l.to_be_bytes());
            }
            Ok(())
        }
        _ => {
            out.truncate(start);
            Err(EncodeError::MessageTooLong { len, max: max_len })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEPALIVE: [u8; 19] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
        0x00, 0x13, // length 19
        0x04, // type KEEPALIVE
    ];

    fn reset(code: u8, subcode: u8, data: &[u8]) -> DecodeError {
        DecodeError::SessionReset(Notification::new(code, subcode, data.to_vec()))
    }

    #[test]
    fn decodes_keepalive_header() {
        let h = decode_header(&KEEPALIVE, MAX_MESSAGE_LEN).unwrap();
        assert_eq!(
            h,
            Header {
                kind: MessageType::Keepalive,
                length: 19
            }
        );
    }

    #[test]
    fn short_input_is_incomplete() {
        assert_eq!(
            decode_header(&KEEPALIVE[..10], MAX_MESSAGE_LEN),
            Err(DecodeError::Incomplete { needed: 9 })
        );
    }

    #[test]
    fn bad_marker_is_1_1() {
        let mut m = KEEPALIVE;
        m[3] = 0;
        assert_eq!(decode_header(&m, MAX_MESSAGE_LEN), Err(reset(1, 1, &[])));
    }

    #[test]
    fn bad_lengths_are_1_2_with_length_data() {
        let mut m = KEEPALIVE;
        m[17] = 18; // below the minimum
        assert_eq!(
            decode_header(&m, MAX_MESSAGE_LEN),
            Err(reset(1, 2, &[0x00, 0x12]))
        );
        m[17] = 20; // KEEPALIVE must be exactly 19
        assert_eq!(
            decode_header(&m, MAX_MESSAGE_LEN),
            Err(reset(1, 2, &[0x00, 0x14]))
        );
        // UPDATE of 4097 bytes: too long without extended messages, fine with them.
        let mut u = KEEPALIVE;
        u[16] = 0x10;
        u[17] = 0x01;
        u[18] = 2;
        assert_eq!(
            decode_header(&u, MAX_MESSAGE_LEN),
            Err(reset(1, 2, &[0x10, 0x01]))
        );
        assert_eq!(
            decode_header(&u, MAX_EXTENDED_MESSAGE_LEN),
            Ok(Header {
                kind: MessageType::Update,
                length: 4097
            })
        );
        // OPEN stays limited to 4096 (RFC 8654 §3).
        u[18] = 1;
        assert_eq!(
            decode_header(&u, MAX_EXTENDED_MESSAGE_LEN),
            Err(reset(1, 2, &[0x10, 0x01]))
        );
        // UPDATE shorter than 23.
        let mut s = KEEPALIVE;
        s[17] = 22;
        s[18] = 2;
        assert_eq!(
            decode_header(&s, MAX_MESSAGE_LEN),
            Err(reset(1, 2, &[0x00, 22]))
        );
    }

    #[test]
    fn bad_type_is_1_3_with_type_data() {
        let mut m = KEEPALIVE;
        m[18] = 9;
        assert_eq!(decode_header(&m, MAX_MESSAGE_LEN), Err(reset(1, 3, &[9])));
    }

    #[test]
    fn encode_patches_length() {
        let mut out = BytesMut::new();
        let start = encode_header(MessageType::Keepalive, &mut out);
        finish_message(&mut out, start, MAX_MESSAGE_LEN).unwrap();
        assert_eq!(&out[..], &KEEPALIVE);
        let start = encode_header(MessageType::Update, &mut out);
        out.put_bytes(0, 5000);
        assert_eq!(
            finish_message(&mut out, start, MAX_MESSAGE_LEN),
            Err(EncodeError::MessageTooLong {
                len: 5019,
                max: 4096
            })
        );
        assert_eq!(out.len(), 19);
    }
}
