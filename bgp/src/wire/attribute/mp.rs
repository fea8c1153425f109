//! MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760 §3, §4) for IPv4 and IPv6 unicast.
//!
//! Role: the multiprotocol attributes, which carry NLRI and therefore live beside, not inside, the interned
//! [`super::PathAttributes`]. The next hop is IPv4 (4 bytes), IPv6 global (16) or global + link-local (32,
//! RFC 2545 §3); IPv4 NLRI may carry an IPv6 next hop (RFC 8950).
//! Inputs: an attribute value and the codec context (ADD-PATH per family).
//! Outputs: [`MpReach`]/[`MpUnreach`], `Ok(None)` for a family this codec does not parse (the attribute is
//! then discarded and noted), or [`MpError`] for a malformed attribute, which resets the session
//! (RFC 7606 §7.11, RFC 4760 §7).

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use nom::{bytes::complete::take, number::complete::be_u16, number::complete::be_u8, Parser};

use crate::wire::error::EncodeError;
use crate::wire::prefix::{decode_nlri, encode_nlri, AfiSafi, Nlri};
use crate::wire::Codec;

/// The next hop of an MP_REACH_NLRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHop {
    /// An IPv4 next hop.
    V4(Ipv4Addr),
    /// An IPv6 global next hop, with the link-local one when the peer shares the link.
    V6 {
        /// The global address.
        global: Ipv6Addr,
        /// The link-local address, if sent.
        link_local: Option<Ipv6Addr>,
    },
}

/// MP_REACH_NLRI: reachable prefixes of one family and their next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpReach {
    /// The family (IPv4 or IPv6 unicast).
    pub afi_safi: AfiSafi,
    /// The next hop.
    pub next_hop: NextHop,
    /// The prefixes.
    pub nlri: Vec<Nlri>,
}

/// MP_UNREACH_NLRI: withdrawn prefixes of one family. Empty `withdrawn` is the End-of-RIB marker.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// The family (IPv4 or IPv6 unicast).
    pub afi_safi: AfiSafi,
    /// The withdrawn prefixes.
    pub withdrawn: Vec<Nlri>,
}

/// A malformed MP attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpError;

type NomErr<'a> = nom::Err<nom::error::Error<&'a [u8]>>;

fn afi_safi(i: &[u8]) -> Result<(&[u8], AfiSafi), MpError> {
    let (i, (afi, safi)) = (be_u16, be_u8).parse(i).map_err(|_: NomErr| MpError)?;
    Ok((i, AfiSafi::new(afi, safi)))
}

fn next_hop(bytes: &[u8], family: AfiSafi) -> Result<NextHop, MpError> {
    let v6 = |b: &[u8]| {
        <[u8; 16]>::try_from(b)
            .map(Ipv6Addr::from)
            .map_err(|_| MpError)
    };
    match bytes.len() {
        4 if family == AfiSafi::IPV4_UNICAST => <[u8; 4]>::try_from(bytes)
            .map(|a| NextHop::V4(Ipv4Addr::from(a)))
            .map_err(|_| MpError),
        16 => Ok(NextHop::V6 {
            global: v6(bytes)?,
            link_local: None,
        }),
        32 => {
            let (g, l) = bytes.split_at(16);
            Ok(NextHop::V6 {
                global: v6(g)?,
                link_local: Some(v6(l)?),
            })
        }
        _ => Err(MpError),
    }
}

/// Decode an MP_REACH_NLRI value.
pub fn decode_mp_reach(value: &[u8], codec: &Codec) -> Result<Option<MpReach>, MpError> {
    let (rest, family) = afi_safi(value)?;
    if !family.is_supported() {
        return Ok(None);
    }
    let (rest, nh_len) = be_u8.parse(rest).map_err(|_: NomErr| MpError)?;
    let (rest, nh) = take(nh_len).parse(rest).map_err(|_: NomErr| MpError)?;
    // RFC 4760 §3: one Reserved octet (formerly the SNPA count), to be ignored.
    let (rest, _reserved) = be_u8.parse(rest).map_err(|_: NomErr| MpError)?;
    let next_hop = next_hop(nh, family)?;
    let nlri = decode_nlri(rest, family, codec.add_path(family)).map_err(|_| MpError)?;
    Ok(Some(MpReach {
        afi_safi: family,
        next_hop,
        nlri,
    }))
}

/// Decode an MP_UNREACH_NLRI value.
pub fn decode_mp_unreach(value: &[u8], codec: &Codec) -> Result<Option<MpUnreach>, MpError> {
    let (rest, family) = afi_safi(value)?;
    if !family.is_supported() {
        return Ok(None);
    }
    let withdrawn = decode_nlri(rest, family, codec.add_path(family)).map_err(|_| MpError)?;
    Ok(Some(MpUnreach {
        afi_safi: family,
        withdrawn,
    }))
}

impl MpReach {
    /// Append the attribute value.
    pub fn encode_value(&self, codec: &Codec, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.put_u16(self.afi_safi.afi);
        out.put_u8(self.afi_safi.safi);
        match self.next_hop {
            NextHop::V4(a) => {
                out.put_u8(4);
                out.put_slice(&a.octets());
            }
            NextHop::V6 {
                global,
                link_local: None,
            } => {
                out.put_u8(16);
                out.put_slice(&global.octets());
            }
            NextHop::V6 {
                global,
                link_local: Some(ll),
            } => {
                out.put_u8(32);
                out.put_slice(&global.octets());
                out.put_slice(&ll.octets());
            }
        }
        out.put_u8(0);
        encode_nlri(
            &self.nlri,
            self.afi_safi,
            codec.add_path(self.afi_safi),
            out,
        )
    }
}

impl MpUnreach {
    /// Append the attribute value.
    pub fn encode_value(&self, codec: &Codec, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.put_u16(self.afi_safi.afi);
        out.put_u8(self.afi_safi.safi);
        encode_nlri(
            &self.withdrawn,
            self.afi_safi,
            codec.add_path(self.afi_safi),
            out,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::prefix::Prefix;

    #[test]
    fn ipv6_reach_with_link_local() {
        let value = [
            0x00, 0x02, // AFI IPv6
            0x01, // SAFI unicast
            0x20, // next hop length 32
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // 2001:db8::1
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // fe80::1
            0x00, // reserved
            0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0a, 0x00, 0x00, // 2001:db8:a::/64
        ];
        let reach = decode_mp_reach(&value, &Codec::default()).unwrap().unwrap();
        assert_eq!(
            reach,
            MpReach {
                afi_safi: AfiSafi::IPV6_UNICAST,
                next_hop: NextHop::V6 {
                    global: "2001:db8::1".parse().unwrap(),
                    link_local: Some("fe80::1".parse().unwrap()),
                },
                nlri: vec![Nlri::new(
                    Prefix::new("2001:db8:a::".parse().unwrap(), 64).unwrap()
                )],
            }
        );
        let mut out = BytesMut::new();
        reach.encode_value(&Codec::default(), &mut out).unwrap();
        assert_eq!(&out[..], &value);
    }

    #[test]
    fn ipv4_reach_and_unreach_with_add_path() {
        let codec = Codec {
            add_path: vec![AfiSafi::IPV4_UNICAST],
            ..Codec::default()
        };
        let value = [
            0x00, 0x01, 0x01, // IPv4 unicast
            0x04, 0xc0, 0x00, 0x02, 0x01, // next hop 192.0.2.1
            0x00, // reserved
            0x00, 0x00, 0x00, 0x02, 0x18, 0xcb, 0x00, 0x71, // path 2: 203.0.113.0/24
        ];
        let reach = decode_mp_reach(&value, &codec).unwrap().unwrap();
        assert_eq!(reach.next_hop, NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(reach.nlri[0].path_id, Some(2));
        let mut out = BytesMut::new();
        reach.encode_value(&codec, &mut out).unwrap();
        assert_eq!(&out[..], &value);

        let unreach_value = [
            0x00, 0x01, 0x01, // IPv4 unicast
            0x00, 0x00, 0x00, 0x02, 0x18, 0xcb, 0x00, 0x71, // path 2: 203.0.113.0/24
        ];
        let unreach = decode_mp_unreach(&unreach_value, &codec).unwrap().unwrap();
        assert_eq!(unreach.withdrawn, reach.nlri);
        let mut out = BytesMut::new();
        unreach.encode_value(&codec, &mut out).unwrap();
        assert_eq!(&out[..], &unreach_value);
    }

    #[test]
    fn unsupported_family_is_none_and_malformed_is_error() {
        // AFI 1 SAFI 128 (VPN): not parsed here.
        assert_eq!(
            decode_mp_reach(&[0, 1, 128, 4, 1, 2, 3, 4, 0], &Codec::default()),
            Ok(None)
        );
        assert_eq!(decode_mp_unreach(&[0, 25, 70], &Codec::default()), Ok(None));
        // IPv6 with a 4-byte next hop.
        assert_eq!(
            decode_mp_reach(&[0, 2, 1, 4, 1, 2, 3, 4, 0], &Codec::default()),
            Err(MpError)
        );
        // Next hop length past the end.
        assert_eq!(
            decode_mp_reach(&[0, 1, 1, 16, 1, 2], &Codec::default()),
            Err(MpError)
        );
        // Missing reserved octet.
        assert_eq!(
            decode_mp_reach(&[0, 1, 1, 4, 1, 2, 3, 4], &Codec::default()),
            Err(MpError)
        );
        // Bad prefix length.
        assert_eq!(
            decode_mp_unreach(&[0, 1, 1, 33, 0, 0, 0, 0, 0], &Codec::default()),
            Err(MpError)
        );
        // Truncated AFI/SAFI.
        assert_eq!(decode_mp_unreach(&[0, 1], &Codec::default()), Err(MpError));
    }
}
