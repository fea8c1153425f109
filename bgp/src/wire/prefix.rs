//! Address families and NLRI prefixes (RFC 4271 §4.3, RFC 4760 §5, RFC 7911 §3).
//!
//! Role: the (AFI, SAFI) pair, IPv4/IPv6 prefixes normalised to their length (host bits beyond the length
//! are masked off, as RFC 4271 §4.3 says they are irrelevant), and the NLRI list codec with the optional
//! ADD-PATH path identifier.
//! Inputs: the bytes of a Withdrawn Routes or NLRI field (or the NLRI part of MP_REACH/MP_UNREACH), the
//! family and whether ADD-PATH is in force for it.
//! Outputs: `Vec<Nlri>` or [`NlriError`] (a syntactically incorrect field, RFC 7606 §5.3); encoding appends to
//! a `BytesMut`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use nom::{bytes::complete::take, number::complete::be_u32, number::complete::be_u8, Parser};

use super::error::EncodeError;

/// Address Family Identifier of IPv4.
pub const AFI_IPV4: u16 = 1;
/// Address Family Identifier of IPv6.
pub const AFI_IPV6: u16 = 2;
/// Subsequent Address Family Identifier of unicast.
pub const SAFI_UNICAST: u8 = 1;

/// An (AFI, SAFI) pair as carried in capabilities and MP attributes; unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AfiSafi {
    /// The AFI.
    pub afi: u16,
    /// The SAFI.
    pub safi: u8,
}

impl AfiSafi {
    /// IPv4 unicast (1/1).
    pub const IPV4_UNICAST: AfiSafi = AfiSafi {
        afi: AFI_IPV4,
        safi: SAFI_UNICAST,
    };
    /// IPv6 unicast (2/1).
    pub const IPV6_UNICAST: AfiSafi = AfiSafi {
        afi: AFI_IPV6,
        safi: SAFI_UNICAST,
    };

    /// The pair.
    pub const fn new(afi: u16, safi: u8) -> Self {
        AfiSafi { afi, safi }
    }

    /// Whether this codec can parse NLRI of this family (IPv4 or IPv6 unicast).
    pub fn is_supported(self) -> bool {
        self == Self::IPV4_UNICAST || self == Self::IPV6_UNICAST
    }

    fn max_len(self) -> u8 {
        if self.afi == AFI_IPV6 {
            128
        } else {
            32
        }
    }
}

impl fmt::Display for AfiSafi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4_UNICAST => f.write_str("ipv4-unicast"),
            Self::IPV6_UNICAST => f.write_str("ipv6-unicast"),
            AfiSafi { afi, safi } => write!(f, "afi {afi}/safi {safi}"),
        }
    }
}

/// An IPv4 or IPv6 prefix whose bits beyond the length are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// The prefix `addr/len` with host bits masked off, or `None` if `len` exceeds 32 (IPv4) or 128 (IPv6).
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        match addr {
            IpAddr::V4(a) if len <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                Some(Prefix {
                    addr: IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask)),
                    len,
                })
            }
            IpAddr::V6(a) if len <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                Some(Prefix {
                    addr: IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask)),
                    len,
                })
            }
            _ => None,
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is a default route (length 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// IPv4 or IPv6 unicast.
    pub fn afi_safi(&self) -> AfiSafi {
        match self.addr {
            IpAddr::V4(_) => AfiSafi::IPV4_UNICAST,
            IpAddr::V6(_) => AfiSafi::IPV6_UNICAST,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// One NLRI entry: a prefix, with its ADD-PATH path identifier when ADD-PATH is in force (RFC 7911 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri {
    /// The path identifier, present exactly when ADD-PATH is negotiated for this direction and family.
    pub path_id: Option<u32>,
    /// The prefix.
    pub prefix: Prefix,
}

impl Nlri {
    /// An NLRI without a path identifier.
    pub fn new(prefix: Prefix) -> Self {
        Nlri {
            path_id: None,
            prefix,
        }
    }

    /// Its length on the wire: the path identifier with `add_path`, the length octet and the significant
    /// octets of the address ([`encode_nlri`]).
    #[inline]
    pub fn encoded_len(&self, add_path: bool) -> usize {
        4 * usize::from(add_path) + 1 + usize::from(self.prefix.len).div_ceil(8)
    }
}

/// A syntactically incorrect NLRI list (RFC 7606 §5.3): a length above the address size, or a prefix that
/// runs past the end of the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NlriError;

type NomErr<'a> = nom::Err<nom::error::Error<&'a [u8]>>;

/// Decode a list of prefixes of `family` (IPv4 or IPv6 unicast) filling `input` exactly.
pub fn decode_nlri(input: &[u8], family: AfiSafi, add_path: bool) -> Result<Vec<Nlri>, NlriError> {
    let max = family.max_len();
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let path_id = if add_path {
            let (r, id) = be_u32.parse(rest).map_err(|_: NomErr| NlriError)?;
            rest = r;
            Some(id)
        } else {
            None
        };
        let (r, len) = be_u8.parse(rest).map_err(|_: NomErr| NlriError)?;
        if len > max {
            return Err(NlriError);
        }
        let (r, bytes) = take(usize::from(len).div_ceil(8))
            .parse(r)
            .map_err(|_: NomErr| NlriError)?;
        rest = r;
        let addr = if max == 32 {
            let mut a = [0u8; 4];
            a.iter_mut().zip(bytes).for_each(|(d, s)| *d = *s);
            IpAddr::V4(Ipv4Addr::from(a))
        } else {
            let mut a = [0u8; 16];
            a.iter_mut().zip(bytes).for_each(|(d, s)| *d = *s);
            IpAddr::V6(Ipv6Addr::from(a))
        };
        let prefix = Prefix::new(addr, len).ok_or(NlriError)?;
        out.push(Nlri { path_id, prefix });
    }
    Ok(out)
}

/// Append prefixes of `family`, each with a path identifier (0 if absent) when `add_path` is set.
pub fn encode_nlri(
    nlri: &[Nlri],
    family: AfiSafi,
    add_path: bool,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    for n in nlri {
        if n.prefix.afi_safi() != family {
            return Err(EncodeError::WrongFamily);
        }
        if add_path {
            out.put_u32(n.path_id.unwrap_or(0));
        }
        out.put_u8(n.prefix.len);
        let nbytes = usize::from(n.prefix.len).div_ceil(8);
        match n.prefix.addr {
            IpAddr::V4(a) => out.put_slice(a.octets().get(..nbytes).unwrap_or_default()),
            IpAddr::V6(a) => out.put_slice(a.octets().get(..nbytes).unwrap_or_default()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, len: u8) -> Prefix {
        Prefix::new(s.parse().unwrap(), len).unwrap()
    }

    #[test]
    fn decodes_ipv4_prefixes() {
        let bytes = [
            0x18, 0xc0, 0x00, 0x02, // 192.0.2.0/24
            0x20, 0xc6, 0x33, 0x64, 0x07, // 198.51.100.7/32
            0x00, // 0.0.0.0/0
            0x09, 0x0a, 0x80, // 10.128.0.0/9
        ];
        let got = decode_nlri(&bytes, AfiSafi::IPV4_UNICAST, false).unwrap();
        let want: Vec<Nlri> = [
            p("192.0.2.0", 24),
            p("198.51.100.7", 32),
            p("0.0.0.0", 0),
            p("10.128.0.0", 9),
        ]
        .into_iter()
        .map(Nlri::new)
        .collect();
        assert_eq!(got, want);
        let mut out = BytesMut::new();
        encode_nlri(&want, AfiSafi::IPV4_UNICAST, false, &mut out).unwrap();
        assert_eq!(&out[..], &bytes);
    }

    #[test]
    fn masks_trailing_bits() {
        let bytes = [
            0x17, 0xc0, 0x00, 0x03, // 192.0.3.0/23: bit 24 set beyond the length
        ];
        let got = decode_nlri(&bytes, AfiSafi::IPV4_UNICAST, false).unwrap();
        assert_eq!(got, vec![Nlri::new(p("192.0.2.0", 23))]);
        assert_eq!(got[0].prefix.to_string(), "192.0.2.0/23");
    }

    #[test]
    fn decodes_ipv6_with_path_ids() {
        let bytes = [
            0x00, 0x00, 0x00, 0x07, // path id 7
            0x30, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, // 2001:db8:1::/48
            0x00, 0x00, 0x00, 0x08, // path id 8
            0x80, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0x01, // 2001:db8::1/128
        ];
        let got = decode_nlri(&bytes, AfiSafi::IPV6_UNICAST, true).unwrap();
        assert_eq!(
            got,
            vec![
                Nlri {
                    path_id: Some(7),
                    prefix: p("2001:db8:1::", 48)
                },
                Nlri {
                    path_id: Some(8),
                    prefix: p("2001:db8::1", 128)
                },
            ]
        );
        let mut out = BytesMut::new();
        encode_nlri(&got, AfiSafi::IPV6_UNICAST, true, &mut out).unwrap();
        assert_eq!(&out[..], &bytes);
    }

    #[test]
    fn rejects_bad_lengths_and_overruns() {
        assert_eq!(
            decode_nlri(&[33, 1, 2, 3, 4, 5], AfiSafi::IPV4_UNICAST, false),
            Err(NlriError)
        );
        assert_eq!(
            decode_nlri(&[129], AfiSafi::IPV6_UNICAST, false),
            Err(NlriError)
        );
        assert_eq!(
            decode_nlri(&[24, 10, 0], AfiSafi::IPV4_UNICAST, false),
            Err(NlriError)
        );
        assert_eq!(
            decode_nlri(&[0, 0, 1], AfiSafi::IPV4_UNICAST, true),
            Err(NlriError)
        );
        assert_eq!(decode_nlri(&[], AfiSafi::IPV4_UNICAST, true), Ok(vec![]));
    }

    #[test]
    fn prefix_new_checks_length() {
        assert!(Prefix::new("10.0.0.0".parse().unwrap(), 33).is_none());
        assert!(Prefix::new("::".parse().unwrap(), 129).is_none());
        assert_eq!(p("10.1.2.3", 8), p("10.0.0.0", 8));
        assert_eq!(
            p("2001:db8::ff", 32).addr(),
            "2001:db8::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn encode_rejects_wrong_family() {
        let mut out = BytesMut::new();
        assert_eq!(
            encode_nlri(
                &[Nlri::new(p("10.0.0.0", 8))],
                AfiSafi::IPV6_UNICAST,
                false,
                &mut out
            ),
            Err(EncodeError::WrongFamily)
        );
    }
}
