//! NOTIFICATION messages (RFC 4271 §4.5) with the RFC 8203/9003 shutdown communication.
//!
//! Role: the value type every decoder uses to say "reset the session with this", and the body codec of the
//! NOTIFICATION message itself.
//! Inputs: a message body (after the 19-byte header) or a [`Notification`] value.
//! Outputs: a [`Notification`] (code, subcode, raw data) or its body bytes appended to a buffer. The shutdown
//! communication of Cease subcodes 2 and 4 is built with [`Notification::shutdown`] and read back with
//! [`Notification::shutdown_communication`]; a malformed one is ignored, never an error (RFC 9003 §4).

use std::fmt;

use bytes::{BufMut, BytesMut};

use super::error::{code, DecodeError, EncodeError};

/// A NOTIFICATION: error code, subcode and data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// The error code (see [`code`]).
    pub code: u8,
    /// The error subcode.
    pub subcode: u8,
    /// The data field, whose meaning depends on code and subcode.
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION with the given code, subcode and data.
    pub fn new(code: u8, subcode: u8, data: impl Into<Vec<u8>>) -> Self {
        Notification {
            code,
            subcode,
            data: data.into(),
        }
    }

    /// A Cease with a shutdown communication (RFC 9003 §2): `subcode` should be
    /// [`code::cease::ADMINISTRATIVE_SHUTDOWN`] or [`code::cease::ADMINISTRATIVE_RESET`]; the data is a length
    /// octet and up to 255 bytes of UTF-8.
    pub fn shutdown(subcode: u8, message: &str) -> Result<Self, EncodeError> {
        let len = u8::try_from(message.len())
            .map_err(|_| EncodeError::ShutdownMessageTooLong { len: message.len() })?;
        let mut data = Vec::with_capacity(message.len() + 1);
        data.push(len);
        data.extend_from_slice(message.as_bytes());
        Ok(Notification::new(code::CEASE, subcode, data))
    }

    /// The shutdown communication of a Cease/Administrative Shutdown or Reset, if present and well-formed
    /// (RFC 9003 §2; §4: a length beyond the data or invalid UTF-8 is ignored, not an error).
    pub fn shutdown_communication(&self) -> Option<&str> {
        if self.code != code::CEASE
            || !matches!(
                self.subcode,
                code::cease::ADMINISTRATIVE_SHUTDOWN | code::cease::ADMINISTRATIVE_RESET
            )
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok()
    }

    /// Decode a NOTIFICATION body (everything after the header).
    pub fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        match body {
            [code, subcode, data @ ..] => Ok(Notification::new(*code, *subcode, data)),
            // RFC 4271 §4.5: the minimum length is 21; shorter is a header error (§6.1).
            _ => Err(bad_length(body.len() + super::header::HEADER_LEN).into()),
        }
    }

    /// Append the body (code, subcode, data) to `out`.
    pub fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(self.code);
        out.put_u8(self.subcode);
        out.put_slice(&self.data);
    }

    /// The human name of the code and subcode, e.g. "UPDATE Message Error / Malformed AS_PATH".
    pub fn describe(&self) -> (&'static str, &'static str) {
        use code::*;
        let c = match self.code {
            MESSAGE_HEADER => "Message Header Error",
            OPEN_MESSAGE => "OPEN Message Error",
            UPDATE_MESSAGE => "UPDATE Message Error",
            HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            FSM => "Finite State Machine Error",
            CEASE => "Cease",
            ROUTE_REFRESH => "ROUTE-REFRESH Message Error",
            _ => "Unknown",
        };
        let s = match (self.code, self.subcode) {
            (_, 0) => "Unspecific",
            (MESSAGE_HEADER, 1) => "Connection Not Synchronized",
            (MESSAGE_HEADER, 2) => "Bad Message Length",
            (MESSAGE_HEADER, 3) => "Bad Message Type",
            (OPEN_MESSAGE, 1) => "Unsupported Version Number",
            (OPEN_MESSAGE, 2) => "Bad Peer AS",
            (OPEN_MESSAGE, 3) => "Bad BGP Identifier",
            (OPEN_MESSAGE, 4) => "Unsupported Optional Parameter",
            (OPEN_MESSAGE, 6) => "Unacceptable Hold Time",
            (OPEN_MESSAGE, 7) => "Unsupported Capability",
            (UPDATE_MESSAGE, 1) => "Malformed Attribute List",
            (UPDATE_MESSAGE, 2) => "Unrecognized Well-known Attribute",
            (UPDATE_MESSAGE, 3) => "Missing Well-known Attribute",
            (UPDATE_MESSAGE, 4) => "Attribute Flags Error",
            (UPDATE_MESSAGE, 5) => "Attribute Length Error",
            (UPDATE_MESSAGE, 6) => "Invalid ORIGIN Attribute",
            (UPDATE_MESSAGE, 8) => "Invalid NEXT_HOP Attribute",
            (UPDATE_MESSAGE, 9) => "Optional Attribute Error",
            (UPDATE_MESSAGE, 10) => "Invalid Network Field",
            (UPDATE_MESSAGE, 11) => "Malformed AS_PATH",
            (CEASE, 1) => "Maximum Number of Prefixes Reached",
            (CEASE, 2) => "Administrative Shutdown",
            (CEASE, 3) => "Peer De-configured",
            (CEASE, 4) => "Administrative Reset",
            (CEASE, 5) => "Connection Rejected",
            (CEASE, 6) => "Other Configuration Change",
            (CEASE, 7) => "Connection Collision Resolution",
            (CEASE, 8) => "Out of Resources",
            (CEASE, 9) => "Hard Reset",
            (ROUTE_REFRESH, 1) => "Invalid Message Length",
            _ => "Unknown",
        };
        (c, s)
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, s) = self.describe();
        write!(f, "{c} / {s} ({}/{})", self.code, self.subcode)?;
        if let Some(msg) = self.shutdown_communication() {
            write!(f, ": {msg:?}")?;
        } else if !self.data.is_empty() {
            write!(f, ", {} bytes of data", self.data.len())?;
        }
        Ok(())
    }
}

/// Message Header Error / Bad Message Length with the erroneous length as data (RFC 4271 §6.1).
pub(crate) fn bad_length(len: usize) -> Notification {
    let field = u16::try_from(len).unwrap_or(u16::MAX);
    Notification::new(
        code::MESSAGE_HEADER,
        code::header::BAD_MESSAGE_LENGTH,
        field.to_be_bytes().to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_body_with_data() {
        let body = [
            0x03, // code: UPDATE Message Error
            0x0b, // subcode: Malformed AS_PATH
            0xde, 0xad, // data
        ];
        let n = Notification::decode_body(&body).unwrap();
        assert_eq!(n, Notification::new(3, 11, vec![0xde, 0xad]));
        assert_eq!(
            n.to_string(),
            "UPDATE Message Error / Malformed AS_PATH (3/11), 2 bytes of data"
        );
        let mut out = BytesMut::new();
        n.encode_body(&mut out);
        assert_eq!(&out[..], &body);
    }

    #[test]
    fn too_short_body_is_bad_length() {
        let err = Notification::decode_body(&[0x06]).unwrap_err();
        // 19 + 1 = 20 bytes: Bad Message Length with the length 20 as data.
        assert_eq!(
            err,
            DecodeError::SessionReset(Notification::new(1, 2, vec![0x00, 0x14]))
        );
    }

    #[test]
    fn shutdown_communication_round_trip() {
        let n =
            Notification::shutdown(code::cease::ADMINISTRATIVE_SHUTDOWN, "maintenance ✓").unwrap();
        let mut expected = vec![15u8]; // length octet: 12 ASCII bytes + 3 bytes for the check mark
        expected.extend_from_slice("maintenance ✓".as_bytes());
        assert_eq!(n.data, expected);
        assert_eq!(n.shutdown_communication(), Some("maintenance ✓"));
        assert_eq!(
            n.to_string(),
            "Cease / Administrative Shutdown (6/2): \"maintenance ✓\""
        );
        let reset = Notification::shutdown(code::cease::ADMINISTRATIVE_RESET, "").unwrap();
        assert_eq!(reset.data, vec![0]);
        assert_eq!(reset.shutdown_communication(), Some(""));
    }

    #[test]
    fn shutdown_communication_limits() {
        let long = "x".repeat(256);
        assert_eq!(
            Notification::shutdown(2, &long),
            Err(EncodeError::ShutdownMessageTooLong { len: 256 })
        );
        assert!(Notification::shutdown(2, &long[..255]).is_ok());
        // Length beyond the data: ignored (RFC 9003 §4).
        assert_eq!(
            Notification::new(6, 2, vec![5, b'a']).shutdown_communication(),
            None
        );
        // Invalid UTF-8: ignored.
        assert_eq!(
            Notification::new(6, 4, vec![1, 0xff]).shutdown_communication(),
            None
        );
        // Other subcodes carry no communication.
        assert_eq!(
            Notification::new(6, 3, vec![1, b'a']).shutdown_communication(),
            None
        );
    }
}
