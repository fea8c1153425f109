//! BGP capabilities (RFC 5492) carried in the OPEN message.
//!
//! Role: the capability values this speaker understands — multiprotocol (RFC 4760), route refresh (RFC 2918),
//! extended message (RFC 8654), graceful restart (RFC 4724), 4-octet AS (RFC 6793), ADD-PATH (RFC 7911),
//! enhanced route refresh (RFC 7313) — and every other one kept raw so it can be reported and ignored.
//! Inputs: the value of a Capabilities optional parameter (a sequence of code, length, value).
//! Outputs: `Vec<Capability>`, or the OPEN Message Error NOTIFICATION (2/0) for a malformed known capability;
//! encoding appends code, length and value to a buffer.

use bytes::{BufMut, BytesMut};
use nom::{bytes::complete::take, number::complete::be_u16, number::complete::be_u8, Parser};

use super::error::{code, EncodeError};
use super::notification::Notification;
use super::prefix::AfiSafi;

/// Capability codes.
pub mod cap_code {
    /// Multiprotocol Extensions (RFC 4760).
    pub const MULTIPROTOCOL: u8 = 1;
    /// Route Refresh (RFC 2918).
    pub const ROUTE_REFRESH: u8 = 2;
    /// Extended Message (RFC 8654).
    pub const EXTENDED_MESSAGE: u8 = 6;
    /// Graceful Restart (RFC 4724).
    pub const GRACEFUL_RESTART: u8 = 64;
    /// Support for 4-octet AS numbers (RFC 6793).
    pub const FOUR_OCTET_AS: u8 = 65;
    /// ADD-PATH (RFC 7911).
    pub const ADD_PATH: u8 = 69;
    /// Enhanced Route Refresh (RFC 7313).
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
}

/// One capability.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Multiprotocol: the speaker can carry this (AFI, SAFI).
    Multiprotocol(AfiSafi),
    /// Route refresh (RFC 2918).
    RouteRefresh,
    /// Enhanced route refresh (RFC 7313).
    EnhancedRouteRefresh,
    /// 4-octet AS numbers, with the speaker's real AS (RFC 6793).
    FourOctetAs(u32),
    /// Graceful restart (RFC 4724).
    GracefulRestart(GracefulRestart),
    /// ADD-PATH per (AFI, SAFI) (RFC 7911).
    AddPath(Vec<AddPathFamily>),
    /// Extended messages up to 65535 bytes (RFC 8654).
    ExtendedMessage,
    /// Any other capability, kept as received.
    Unknown {
        /// The capability code.
        code: u8,
        /// The value bytes.
        value: Vec<u8>,
    },
}

/// The graceful restart capability (RFC 4724 §3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// Restart State (R) bit: the speaker has restarted.
    pub restarting: bool,
    /// Graceful Notification (N) bit (RFC 8538).
    pub notification: bool,
    /// Restart time in seconds (12 bits, 0..=4095).
    pub restart_time: u16,
    /// Families whose forwarding state may be preserved.
    pub families: Vec<GracefulRestartFamily>,
}

/// One family of the graceful restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// The family.
    pub afi_safi: AfiSafi,
    /// Forwarding State (F) bit: forwarding was preserved across the restart.
    pub forwarding_preserved: bool,
}

/// One family of the ADD-PATH capability (RFC 7911 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddPathFamily {
    /// The family.
    pub afi_safi: AfiSafi,
    /// The speaker can receive multiple paths.
    pub receive: bool,
    /// The speaker can send multiple paths.
    pub send: bool,
}

const GR_RESTART_BIT: u16 = 0x8000;
const GR_NOTIFICATION_BIT: u16 = 0x4000;
const GR_FORWARDING_BIT: u8 = 0x80;

type NomErr<'a> = nom::Err<nom::error::Error<&'a [u8]>>;

fn malformed() -> Notification {
    // RFC 5492 gives no subcode for a malformed capability: Unspecific (RFC 4271 §4.5).
    Notification::new(code::OPEN_MESSAGE, code::UNSPECIFIC, Vec::new())
}

fn afi_safi(i: &[u8]) -> Result<(&[u8], AfiSafi), NomErr<'_>> {
    let (i, afi) = be_u16.parse(i)?;
    let (i, safi) = be_u8.parse(i)?;
    Ok((i, AfiSafi::new(afi, safi)))
}

/// Decode the value of a Capabilities optional parameter.
pub fn decode_capabilities(mut input: &[u8]) -> Result<Vec<Capability>, Notification> {
    let mut caps = Vec::new();
    while !input.is_empty() {
        let (rest, (code, len)) = (be_u8, be_u8)
            .parse(input)
            .map_err(|_: NomErr| malformed())?;
        let (rest, value) = take(len).parse(rest).map_err(|_: NomErr| malformed())?;
        input = rest;
        caps.push(decode_one(code, value)?);
    }
    Ok(caps)
}

fn decode_one(code: u8, value: &[u8]) -> Result<Capability, Notification> {
    use cap_code::*;
    let cap = match (code, value) {
        (MULTIPROTOCOL, [a0, a1, _reserved, safi]) => {
            Capability::Multiprotocol(AfiSafi::new(u16::from_be_bytes([*a0, *a1]), *safi))
        }
        (ROUTE_REFRESH, []) => Capability::RouteRefresh,
        (ENHANCED_ROUTE_REFRESH, []) => Capability::EnhancedRouteRefresh,
        (EXTENDED_MESSAGE, []) => Capability::ExtendedMessage,
        (FOUR_OCTET_AS, [a, b, c, d]) => {
            Capability::FourOctetAs(u32::from_be_bytes([*a, *b, *c, *d]))
        }
        (GRACEFUL_RESTART, [h0, h1, rest @ ..]) if rest.len() % 4 == 0 => {
            let head = u16::from_be_bytes([*h0, *h1]);
            let mut families = Vec::with_capacity(rest.len() / 4);
            for chunk in rest.chunks_exact(4) {
                let (tail, fam) = afi_safi(chunk).map_err(|_| malformed())?;
                let flags = tail.first().copied().unwrap_or(0);
                families.push(GracefulRestartFamily {
                    afi_safi: fam,
                    forwarding_preserved: flags & GR_FORWARDING_BIT != 0,
                });
            }
            Capability::GracefulRestart(GracefulRestart {
                restarting: head & GR_RESTART_BIT != 0,
                notification: head & GR_NOTIFICATION_BIT != 0,
                restart_time: head & 0x0fff,
                families,
            })
        }
        (ADD_PATH, v) if !v.is_empty() && v.len() % 4 == 0 => {
            let mut families = Vec::with_capacity(v.len() / 4);
            for chunk in v.chunks_exact(4) {
                let (tail, fam) = afi_safi(chunk).map_err(|_| malformed())?;
                // RFC 7911 §4: Send/Receive is 1 (receive), 2 (send) or 3 (both).
                let mode = tail.first().copied().unwrap_or(0);
                if !(1..=3).contains(&mode) {
                    return Err(malformed());
                }
                families.push(AddPathFamily {
                    afi_safi: fam,
                    receive: mode & 1 != 0,
                    send: mode & 2 != 0,
                });
            }
            Capability::AddPath(families)
        }
        (
            MULTIPROTOCOL
            | ROUTE_REFRESH
            | ENHANCED_ROUTE_REFRESH
            | EXTENDED_MESSAGE
            | FOUR_OCTET_AS
            | GRACEFUL_RESTART
            | ADD_PATH,
            _,
        ) => return Err(malformed()),
        (code, value) => Capability::Unknown {
            code,
            value: value.to_vec(),
        },
    };
    Ok(cap)
}

impl Capability {
    /// The capability code.
    pub fn code(&self) -> u8 {
        use cap_code::*;
        match self {
            Capability::Multiprotocol(_) => MULTIPROTOCOL,
            Capability::RouteRefresh => ROUTE_REFRESH,
            Capability::EnhancedRouteRefresh => ENHANCED_ROUTE_REFRESH,
            Capability::FourOctetAs(_) => FOUR_OCTET_AS,
            Capability::GracefulRestart(_) => GRACEFUL_RESTART,
            Capability::AddPath(_) => ADD_PATH,
            Capability::ExtendedMessage => EXTENDED_MESSAGE,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Append code, length and value.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let mut value = BytesMut::new();
        match self {
            Capability::Multiprotocol(f) => {
                value.put_u16(f.afi);
                value.put_u8(0);
                value.put_u8(f.safi);
            }
            Capability::RouteRefresh
            | Capability::EnhancedRouteRefresh
            | Capability::ExtendedMessage => {}
            Capability::FourOctetAs(asn) => value.put_u32(*asn),
            Capability::GracefulRestart(gr) => {
                let mut head = gr.restart_time & 0x0fff;
                if gr.restarting {
                    head |= GR_RESTART_BIT;
                }
                if gr.notification {
                    head |= GR_NOTIFICATION_BIT;
                }
                value.put_u16(head);
                for f in &gr.families {
                    value.put_u16(f.afi_safi.afi);
                    value.put_u8(f.afi_safi.safi);
                    value.put_u8(if f.forwarding_preserved {
                        GR_FORWARDING_BIT
                    } else {
                        0
                    });
                }
            }
            Capability::AddPath(families) => {
                for f in families {
                    value.put_u16(f.afi_safi.afi);
                    value.put_u8(f.afi_safi.safi);
                    value.put_u8(u8::from(f.receive) | (u8::from(f.send) << 1));
                }
            }
            Capability::Unknown { value: v, .. } => value.put_slice(v),
        }
        let len = u8::try_from(value.len()).map_err(|_| EncodeError::CapabilityTooLong {
            code: self.code(),
            len: value.len(),
        })?;
        out.put_u8(self.code());
        out.put_u8(len);
        out.put_slice(&value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(bytes: &[u8], want: Capability) {
        let got = decode_capabilities(bytes).unwrap();
        assert_eq!(got, vec![want.clone()]);
        let mut out = BytesMut::new();
        want.encode(&mut out).unwrap();
        assert_eq!(&out[..], bytes);
    }

    #[test]
    fn multiprotocol() {
        round_trip(
            &[
                0x01, 0x04, // code 1, length 4
                0x00, 0x02, // AFI IPv6
                0x00, // reserved
                0x01, // SAFI unicast
            ],
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
        );
    }

    #[test]
    fn empty_capabilities() {
        round_trip(&[0x02, 0x00], Capability::RouteRefresh); // code 2, length 0
        round_trip(&[0x46, 0x00], Capability::EnhancedRouteRefresh); // code 70, length 0
        round_trip(&[0x06, 0x00], Capability::ExtendedMessage); // code 6, length 0
    }

    #[test]
    fn four_octet_as() {
        round_trip(
            &[
                0x41, 0x04, // code 65, length 4
                0x00, 0x01, 0x00, 0x00, // AS 65536
            ],
            Capability::FourOctetAs(65536),
        );
    }

    #[test]
    fn graceful_restart() {
        round_trip(
            &[
                0x40, 0x0a, // code 64, length 10
                0xc0, 0x78, // R and N bits set, restart time 120
                0x00, 0x01, 0x01, 0x80, // IPv4 unicast, forwarding preserved
                0x00, 0x02, 0x01, 0x00, // IPv6 unicast, not preserved
            ],
            Capability::GracefulRestart(GracefulRestart {
                restarting: true,
                notification: true,
                restart_time: 120,
                families: vec![
                    GracefulRestartFamily {
                        afi_safi: AfiSafi::IPV4_UNICAST,
                        forwarding_preserved: true,
                    },
                    GracefulRestartFamily {
                        afi_safi: AfiSafi::IPV6_UNICAST,
                        forwarding_preserved: false,
                    },
                ],
            }),
        );
    }

    #[test]
    fn add_path() {
        round_trip(
            &[
                0x45, 0x08, // code 69, length 8
                0x00, 0x01, 0x01, 0x03, // IPv4 unicast, send + receive
                0x00, 0x02, 0x01, 0x01, // IPv6 unicast, receive only
            ],
            Capability::AddPath(vec![
                AddPathFamily {
                    afi_safi: AfiSafi::IPV4_UNICAST,
                    receive: true,
                    send: true,
                },
                AddPathFamily {
                    afi_safi: AfiSafi::IPV6_UNICAST,
                    receive: true,
                    send: false,
                },
            ]),
        );
    }

    #[test]
    fn unknown_kept_raw() {
        round_trip(
            &[
                0x49, 0x03, // code 73 (FQDN), length 3
                0x01, 0x61, 0x00, // value
            ],
            Capability::Unknown {
                code: 73,
                value: vec![0x01, 0x61, 0x00],
            },
        );
    }

    #[test]
    fn malformed_known_capabilities_are_2_0() {
        let reset = Err(Notification::new(2, 0, vec![]));
        assert_eq!(decode_capabilities(&[0x01, 0x03, 0, 1, 1]), reset); // MP of length 3
        assert_eq!(decode_capabilities(&[0x02, 0x01, 0]), reset); // route refresh with a value
        assert_eq!(decode_capabilities(&[0x41, 0x02, 0, 1]), reset); // 4-octet AS of length 2
        assert_eq!(decode_capabilities(&[0x45, 0x04, 0, 1, 1, 4]), reset); // ADD-PATH mode 4
        assert_eq!(decode_capabilities(&[0x40, 0x03, 0, 0, 0]), reset); // GR with a partial family
        assert_eq!(decode_capabilities(&[0x41, 0x04, 0, 1]), reset); // value runs past the end
        assert_eq!(decode_capabilities(&[0x41]), reset); // header cut short
    }

    #[test]
    fn too_long_capability_does_not_encode() {
        let cap = Capability::Unknown {
            code: 200,
            value: vec![0; 256],
        };
        assert_eq!(
            cap.encode(&mut BytesMut::new()),
            Err(EncodeError::CapabilityTooLong {
                code: 200,
                len: 256
            })
        );
    }
}
