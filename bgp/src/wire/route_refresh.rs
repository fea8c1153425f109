//! The ROUTE-REFRESH message (RFC 2918 §3) with the enhanced route refresh subtypes (RFC 7313 §3).
//!
//! Role: ask a peer to re-send its routes of one family, and mark the beginning and end of a refresh.
//! Inputs: the message body after the header, or a [`RouteRefresh`] value.
//! Outputs: a [`RouteRefresh`] or the ROUTE-REFRESH Message Error / Invalid Message Length NOTIFICATION
//! (RFC 7313 §5, the data being the whole message). An unknown subtype is returned as
//! [`RefreshSubtype::Unknown`]; RFC 7313 §5 says the session ignores such a message.

use bytes::{BufMut, BytesMut};

use super::error::{code, DecodeError};
use super::header::{encode_header, MessageType, HEADER_LEN};
use super::notification::Notification;
use super::prefix::AfiSafi;

/// The Message Subtype field (the former Reserved octet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefreshSubtype {
    /// 0: a normal route refresh request.
    Normal,
    /// 1: Beginning of Route Refresh (BoRR).
    Begin,
    /// 2: End of Route Refresh (EoRR).
    End,
    /// Any other value, to be ignored.
    Unknown(u8),
}

impl RefreshSubtype {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => RefreshSubtype::Normal,
            1 => RefreshSubtype::Begin,
            2 => RefreshSubtype::End,
            v => RefreshSubtype::Unknown(v),
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            RefreshSubtype::Normal => 0,
            RefreshSubtype::Begin => 1,
            RefreshSubtype::End => 2,
            RefreshSubtype::Unknown(v) => v,
        }
    }
}

/// A ROUTE-REFRESH message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// The family to refresh.
    pub afi_safi: AfiSafi,
    /// The subtype.
    pub subtype: RefreshSubtype,
}

impl RouteRefresh {
    /// Decode a ROUTE-REFRESH body (exactly 4 bytes).
    pub fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        match body {
            [a0, a1, subtype, safi] => Ok(RouteRefresh {
                afi_safi: AfiSafi::new(u16::from_be_bytes([*a0, *a1]), *safi),
                subtype: RefreshSubtype::from_u8(*subtype),
            }),
            _ => {
                // RFC 7313 §5: Invalid Message Length, the data being the complete message.
                let mut whole = BytesMut::with_capacity(HEADER_LEN + body.len());
                encode_header(MessageType::RouteRefresh, &mut whole);
                let len = u16::try_from(HEADER_LEN + body.len()).unwrap_or(u16::MAX);
                if let Some(slot) = whole.get_mut(16..18) {
                    slot.copy_from_slice(&len.to_be_bytes());
                }
                whole.put_slice(body);
                Err(Notification::new(
                    code::ROUTE_REFRESH,
                    code::route_refresh::INVALID_MESSAGE_LENGTH,
                    whole.to_vec(),
                )
                .into())
            }
        }
    }

    /// Append the body.
    pub fn encode_body(&self, out: &mut BytesMut) {
        out.put_u16(self.afi_safi.afi);
        out.put_u8(self.subtype.to_u8());
        out.put_u8(self.afi_safi.safi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtypes_round_trip() {
        for (byte, subtype) in [
            (0u8, RefreshSubtype::Normal),
            (1, RefreshSubtype::Begin),
            (2, RefreshSubtype::End),
            (7, RefreshSubtype::Unknown(7)),
        ] {
            let body = [
                0x00, 0x02, // AFI IPv6
                byte, // subtype
                0x01, // SAFI unicast
            ];
            let rr = RouteRefresh::decode_body(&body).unwrap();
            assert_eq!(
                rr,
                RouteRefresh {
                    afi_safi: AfiSafi::IPV6_UNICAST,
                    subtype
                }
            );
            let mut out = BytesMut::new();
            rr.encode_body(&mut out);
            assert_eq!(&out[..], &body);
        }
    }

    #[test]
    fn wrong_length_is_7_1_with_the_message() {
        let err = RouteRefresh::decode_body(&[0x00, 0x01, 0x00]).unwrap_err();
        let mut want = vec![0xff; 16];
        want.extend_from_slice(&[
            0x00, 0x16, // length 22
            0x05, // type ROUTE-REFRESH
            0x00, 0x01, 0x00, // the short body
        ]);
        assert_eq!(
            err,
            DecodeError::SessionReset(Notification::new(7, 1, want))
        );
    }
}
