//! The OPEN message (RFC 4271 §4.2) with capabilities (RFC 5492) and extended optional parameters (RFC 9072).
//!
//! Role: decode and check a peer's OPEN, encode ours.
//! Inputs: the message body after the header, or an [`Open`] value.
//! Outputs: an [`Open`] or the OPEN Message Error NOTIFICATION of RFC 4271 §6.2 (version 2/1, peer AS 2/2,
//! identifier 2/3, optional parameter 2/4, hold time 2/6, malformed parameters 2/0). Checks that need the
//! session's configuration (expected peer AS, our own identifier, required capabilities → 2/7) belong to the
//! session; [`Notification`] helpers for them live here.

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};
use nom::{
    bytes::complete::take, number::complete::be_u16, number::complete::be_u32,
    number::complete::be_u8, Parser,
};

use super::capability::{decode_capabilities, Capability};
use super::error::{code, DecodeError, EncodeError};
use super::notification::Notification;

/// The BGP version this speaker implements.
pub const BGP_VERSION: u8 = 4;
/// AS_TRANS, the 2-byte stand-in for a 4-byte AS (RFC 6793 §9).
pub const AS_TRANS: u16 = 23456;
/// Optional parameter type of capabilities (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;
/// Marker of the RFC 9072 extended optional parameters format.
const PARAM_EXTENDED: u8 = 255;

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Open {
    /// The 2-byte My Autonomous System field (AS_TRANS when the real AS needs 4 bytes).
    pub my_as: u16,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// All capabilities, in order, from all Capabilities parameters.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn`, setting My AS to AS_TRANS when it does not fit in 2 bytes (RFC 6793 §3). The caller
    /// adds [`Capability::FourOctetAs`] to `capabilities`.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Self {
        Open {
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            capabilities,
        }
    }

    /// The speaker's AS: the 4-octet AS capability if present, else My AS (RFC 6793 §3).
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Decode an OPEN body.
    pub fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        type E<'a> = nom::Err<nom::error::Error<&'a [u8]>>;
        let unspecific = || Notification::new(code::OPEN_MESSAGE, code::UNSPECIFIC, Vec::new());
        let (rest, (version, my_as, hold_time, bgp_id, opt_len)) =
            (be_u8, be_u16, be_u16, be_u32, be_u8)
                .parse(body)
                .map_err(|_: E| {
                    super::notification::bad_length(body.len() + super::header::HEADER_LEN)
                })?;
        // RFC 4271 §6.2: the data is the largest supported version, 2 octets.
        if version != BGP_VERSION {
            return Err(Notification::new(
                code::OPEN_MESSAGE,
                code::open::UNSUPPORTED_VERSION,
                u16::from(BGP_VERSION).to_be_bytes().to_vec(),
            )
            .into());
        }
        // RFC 4271 §6.2: a hold time of 1 or 2 seconds is unacceptable.
        if hold_time == 1 || hold_time == 2 {
            return Err(Notification::new(
                code::OPEN_MESSAGE,
                code::open::UNACCEPTABLE_HOLD_TIME,
                Vec::new(),
            )
            .into());
        }
        // RFC 6286 §2.2: the identifier is a non-zero 4-octet value.
        if bgp_id == 0 {
            return Err(Notification::new(
                code::OPEN_MESSAGE,
                code::open::BAD_BGP_IDENTIFIER,
                Vec::new(),
            )
            .into());
        }
        // RFC 9072 §2: Non-Ext OP Len 255 followed by Non-Ext OP Type 255 announces 2-byte lengths.
        let (params, extended) = match rest {
            [PARAM_EXTENDED, l0, l1, params @ ..] if opt_len == PARAM_EXTENDED => {
                (params, Some(usize::from(u16::from_be_bytes([*l0, *l1]))))
            }
            _ => (rest, None),
        };
        let total = extended.unwrap_or(usize::from(opt_len));
        if total != params.len() {
            return Err(unspecific().into());
        }
        let mut capabilities = Vec::new();
        let mut input = params;
        while !input.is_empty() {
            let parsed: Result<_, E> = if extended.is_some() {
                (be_u8, be_u16)
                    .parse(input)
                    .map(|(r, (t, l))| (r, (t, usize::from(l))))
            } else {
                (be_u8, be_u8)
                    .parse(input)
                    .map(|(r, (t, l))| (r, (t, usize::from(l))))
            };
            let (r, (ptype, plen)) = parsed.map_err(|_| unspecific())?;
            let (r, value) = take(plen).parse(r).map_err(|_: E| unspecific())?;
            input = r;
            if ptype != PARAM_CAPABILITIES {
                // RFC 4271 §6.2: an unrecognized optional parameter.
                return Err(Notification::new(
                    code::OPEN_MESSAGE,
                    code::open::UNSUPPORTED_OPTIONAL_PARAMETER,
                    Vec::new(),
                )
                .into());
            }
            capabilities.extend(decode_capabilities(value)?);
        }
        let open = Open {
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(bgp_id),
            capabilities,
        };
        // RFC 7607 §2: AS 0 in My AS or the 4-octet AS capability is Bad Peer AS.
        if open.my_as == 0 || open.asn() == 0 {
            return Err(
                Notification::new(code::OPEN_MESSAGE, code::open::BAD_PEER_AS, Vec::new()).into(),
            );
        }
        Ok(open)
    }

    /// Append the OPEN body. Capabilities go in one parameter; the RFC 9072 extended format is used only when
    /// they do not fit in the classic one.
    pub fn encode_body(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let mut caps = BytesMut::new();
        for c in &self.capabilities {
            c.encode(&mut caps)?;
        }
        out.put_u8(BGP_VERSION);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_u32(u32::from(self.bgp_id));
        // RFC 9072 §2: the classic format holds at most 255 bytes; a length of 255 followed by type 255
        // announces the extended one, so 255 is left to the extended format.
        let classic_total = caps.len() + 2;
        match (u8::try_from(classic_total), u8::try_from(caps.len())) {
            _ if caps.is_empty() => out.put_u8(0),
            (Ok(total), Ok(value_len)) if total != PARAM_EXTENDED => {
                out.put_u8(total);
                out.put_u8(PARAM_CAPABILITIES);
                out.put_u8(value_len);
                out.put_slice(&caps);
            }
            _ => self.encode_extended(&caps, out)?,
        }
        Ok(())
    }

    fn encode_extended(&self, caps: &[u8], out: &mut BytesMut) -> Result<(), EncodeError> {
        let too_long = EncodeError::OptionalParametersTooLong {
            len: caps.len() + 3,
        };
        let value_len = u16::try_from(caps.len()).map_err(|_| too_long.clone())?;
        let total = u16::try_from(caps.len() + 3).map_err(|_| too_long)?;
        out.put_u8(PARAM_EXTENDED);
        out.put_u8(PARAM_EXTENDED);
        out.put_u16(total);
        out.put_u8(PARAM_CAPABILITIES);
        out.put_u16(value_len);
        out.put_slice(caps);
        Ok(())
    }
}

impl Notification {
    /// OPEN Message Error / Unsupported Capability listing the capabilities we require but the peer lacks
    /// (RFC 5492 §5: the data is the list of capabilities, code, length and value).
    pub fn unsupported_capability(missing: &[Capability]) -> Self {
        let mut data = BytesMut::new();
        for c in missing {
            // A capability too long to encode cannot have been negotiated: it is left out of the list.
            if c.encode(&mut data).is_err() {
                continue;
            }
        }
        Notification::new(
            code::OPEN_MESSAGE,
            code::open::UNSUPPORTED_CAPABILITY,
            data.to_vec(),
        )
    }

    /// OPEN Message Error / Bad Peer AS (RFC 4271 §6.2), e.g. when the AS differs from the configured one.
    pub fn bad_peer_as() -> Self {
        Notification::new(code::OPEN_MESSAGE, code::open::BAD_PEER_AS, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::capability::{AddPathFamily, GracefulRestart, GracefulRestartFamily};
    use crate::wire::prefix::AfiSafi;

    /// An OPEN body laid out as BIRD 2 writes it (its capability order; a real capture is in
    /// `captured.rs`), with ADD-PATH for both families: AS 4200000001, hold 240, router id 192.0.2.1.
    const BIRD_OPEN_BODY: [u8; 58] = [
        0x04, // version 4
        0x5b, 0xa0, // My AS: AS_TRANS 23456
        0x00, 0xf0, // hold time 240
        0xc0, 0x00, 0x02, 0x01, // BGP identifier 192.0.2.1
        0x30, // optional parameters length 48
        0x02, 0x2e, // parameter: capabilities, length 46
        0x01, 0x04, 0x00, 0x01, 0x00, 0x01, // multiprotocol IPv4 unicast
        0x01, 0x04, 0x00, 0x02, 0x00, 0x01, // multiprotocol IPv6 unicast
        0x02, 0x00, // route refresh
        0x06, 0x00, // extended message
        0x40, 0x0a, 0x00, 0x78, // graceful restart: no flags, restart time 120
        0x00, 0x01, 0x01, 0x00, // .. IPv4 unicast, forwarding not preserved
        0x00, 0x02, 0x01, 0x00, // .. IPv6 unicast, forwarding not preserved
        0x41, 0x04, 0xfa, 0x56, 0xea, 0x01, // 4-octet AS 4200000001
        0x45, 0x08, // ADD-PATH, length 8
        0x00, 0x01, 0x01, 0x03, // .. IPv4 unicast, send and receive
        0x00, 0x02, 0x01, 0x03, // .. IPv6 unicast, send and receive
        0x46, 0x00, // enhanced route refresh
    ];

    fn bird_open() -> Open {
        let both = |f| AddPathFamily {
            afi_safi: f,
            receive: true,
            send: true,
        };
        let gr = |f| GracefulRestartFamily {
            afi_safi: f,
            forwarding_preserved: false,
        };
        Open {
            my_as: AS_TRANS,
            hold_time: 240,
            bgp_id: Ipv4Addr::new(192, 0, 2, 1),
            capabilities: vec![
                Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
                Capability::RouteRefresh,
                Capability::ExtendedMessage,
                Capability::GracefulRestart(GracefulRestart {
                    restarting: false,
                    notification: false,
                    restart_time: 120,
                    families: vec![gr(AfiSafi::IPV4_UNICAST), gr(AfiSafi::IPV6_UNICAST)],
                }),
                Capability::FourOctetAs(4_200_000_001),
                Capability::AddPath(vec![
                    both(AfiSafi::IPV4_UNICAST),
                    both(AfiSafi::IPV6_UNICAST),
                ]),
                Capability::EnhancedRouteRefresh,
            ],
        }
    }

    fn reset(code: u8, subcode: u8, data: &[u8]) -> Result<Open, DecodeError> {
        Err(DecodeError::SessionReset(Notification::new(
            code,
            subcode,
            data.to_vec(),
        )))
    }

    #[test]
    fn decodes_bird_open() {
        let open = Open::decode_body(&BIRD_OPEN_BODY).unwrap();
        assert_eq!(open, bird_open());
        assert_eq!(open.asn(), 4_200_000_001);
        let mut out = BytesMut::new();
        open.encode_body(&mut out).unwrap();
        assert_eq!(&out[..], &BIRD_OPEN_BODY);
    }

    #[test]
    fn new_uses_as_trans_for_4_byte_asn() {
        assert_eq!(
            Open::new(4_200_000_001, 90, Ipv4Addr::LOCALHOST, vec![]).my_as,
            AS_TRANS
        );
        assert_eq!(
            Open::new(65001, 90, Ipv4Addr::LOCALHOST, vec![]).my_as,
            65001
        );
        assert_eq!(
            Open::new(65001, 90, Ipv4Addr::LOCALHOST, vec![]).asn(),
            65001
        );
    }

    #[test]
    fn minimal_open_without_parameters() {
        let body = [
            0x04, // version
            0xfd, 0xe9, // AS 65001
            0x00, 0x00, // hold time 0 (no keepalives)
            0x0a, 0x00, 0x00, 0x01, // identifier 10.0.0.1
            0x00, // no optional parameters
        ];
        let open = Open::decode_body(&body).unwrap();
        assert_eq!(
            open,
            Open::new(65001, 0, Ipv4Addr::new(10, 0, 0, 1), vec![])
        );
        let mut out = BytesMut::new();
        open.encode_body(&mut out).unwrap();
        assert_eq!(&out[..], &body);
    }

    #[test]
    fn extended_optional_parameters_rfc9072() {
        let body = [
            0x04, 0xfd, 0xe9, 0x00, 0x5a, 0x0a, 0x00, 0x00,
            0x01, // version, AS 65001, hold 90, id
            0xff, // Non-Ext OP Len 255
            0xff, // Non-Ext OP Type 255: extended format
            0x00, 0x05, // Extended Opt. Parm. Length 5
            0x02, 0x00, 0x02, // parameter: capabilities, 2-byte length 2
            0x02, 0x00, // route refresh
        ];
        let open = Open::decode_body(&body).unwrap();
        assert_eq!(open.capabilities, vec![Capability::RouteRefresh]);
        // Many capabilities do not fit in 255 bytes: the encoder switches to the extended format.
        let big = Open::new(
            65001,
            90,
            Ipv4Addr::new(10, 0, 0, 1),
            (0..40)
                .map(|i| Capability::Unknown {
                    code: 200,
                    value: vec![i; 8],
                })
                .collect(),
        );
        let mut out = BytesMut::new();
        big.encode_body(&mut out).unwrap();
        assert_eq!(&out[9..11], &[0xff, 0xff]);
        assert_eq!(Open::decode_body(&out).unwrap(), big);
    }

    #[test]
    fn several_capability_parameters_are_merged() {
        let body = [
            0x04, 0xfd, 0xe9, 0x00, 0xb4, 0x0a, 0x00, 0x00, 0x01, // version, AS, hold 180, id
            0x08, // optional parameters length 8
            0x02, 0x02, 0x02, 0x00, // capabilities: route refresh
            0x02, 0x02, 0x46, 0x00, // capabilities: enhanced route refresh
        ];
        let open = Open::decode_body(&body).unwrap();
        assert_eq!(
            open.capabilities,
            vec![Capability::RouteRefresh, Capability::EnhancedRouteRefresh]
        );
    }

    #[test]
    fn open_errors() {
        let mut b = BIRD_OPEN_BODY;
        b[0] = 3; // version 3
        assert_eq!(Open::decode_body(&b), reset(2, 1, &[0x00, 0x04]));
        let mut b = BIRD_OPEN_BODY;
        b[3] = 0;
        b[4] = 2; // hold time 2
        assert_eq!(Open::decode_body(&b), reset(2, 6, &[]));
        let mut b = BIRD_OPEN_BODY;
        b[5..9].copy_from_slice(&[0, 0, 0, 0]); // identifier 0.0.0.0
        assert_eq!(Open::decode_body(&b), reset(2, 3, &[]));
        let mut b = BIRD_OPEN_BODY;
        b[1..3].copy_from_slice(&[0, 0]); // My AS 0 (RFC 7607)
        assert_eq!(Open::decode_body(&b), reset(2, 2, &[]));
        let mut b = BIRD_OPEN_BODY;
        b[10] = 1; // parameter type 1 (authentication, deprecated)
        assert_eq!(Open::decode_body(&b), reset(2, 4, &[]));
        let mut b = BIRD_OPEN_BODY;
        b[9] = 0x31; // optional parameters length one too many
        assert_eq!(Open::decode_body(&b), reset(2, 0, &[]));
        // A body shorter than the fixed fields: Bad Message Length with the total length.
        assert_eq!(
            Open::decode_body(&BIRD_OPEN_BODY[..5]),
            reset(1, 2, &[0x00, 24])
        );
    }

    #[test]
    fn unsupported_capability_lists_them() {
        let n = Notification::unsupported_capability(&[Capability::Multiprotocol(
            AfiSafi::IPV6_UNICAST,
        )]);
        assert_eq!(
            n,
            Notification::new(2, 7, vec![0x01, 0x04, 0x00, 0x02, 0x00, 0x01])
        );
    }
}
