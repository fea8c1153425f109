//! Vectors captured from a real BIRD 2.0.12 session (test builds only).
//!
//! Role: check the codec against bytes written by an independent implementation, not by us.
//! How they were captured: two network namespaces joined by a veth pair (192.0.2.1/24 + 2001:db8::1/64 with
//! link-local fe80::5eff:fe00:5301 for BIRD; 192.0.2.2 + 2001:db8::2 for the capturing peer), BIRD as AS
//! 4200000001 peering over IPv6 with a small script as AS 65002 that sent an OPEN with multiprotocol
//! IPv4+IPv6, route refresh, 4-octet AS, ADD-PATH (both, IPv4 and IPv6) and extended message, then recorded
//! every message BIRD sent. BIRD's channels: `ipv4 { add paths on; next hop address 192.0.2.1; }` exporting
//! 203.0.113.0/24 with community (65001,100) and large community (4200000001,1,2); `ipv6 {}` exporting
//! 2001:db8:a::/64; graceful restart on; extended messages on.
//! Inputs: the captured bytes. Outputs: test results only.

use std::net::Ipv4Addr;

use bytes::BytesMut;

use super::*;

const BIRD_OPEN: [u8; 75] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, // marker
    0x00, 0x4b, // length 75
    0x01, // OPEN
    0x04, // version 4
    0x5b, 0xa0, // My AS: AS_TRANS
    0x00, 0x5a, // hold time 90
    0xc0, 0x00, 0x02, 0x01, // BGP identifier 192.0.2.1
    0x2e, // optional parameters length 46
    0x02, 0x2c, // capabilities parameter, length 44
    0x01, 0x04, 0x00, 0x01, 0x00, 0x01, // multiprotocol IPv4 unicast
    0x01, 0x04, 0x00, 0x02, 0x00, 0x01, // multiprotocol IPv6 unicast
    0x02, 0x00, // route refresh
    0x06, 0x00, // extended message
    0x40, 0x0a, 0x00, 0x78, // graceful restart, no flags, restart time 120
    0x00, 0x01, 0x01, 0x00, // .. IPv4 unicast, forwarding not preserved
    0x00, 0x02, 0x01, 0x00, // .. IPv6 unicast, forwarding not preserved
    0x41, 0x04, 0xfa, 0x56, 0xea, 0x01, // 4-octet AS 4200000001
    0x45, 0x04, 0x00, 0x01, 0x01, 0x03, // ADD-PATH IPv4 unicast send + receive
    0x46, 0x00, // enhanced route refresh
    0x47, 0x00, // long-lived graceful restart (71), empty: kept as unknown
];

/// The OPEN our capturing peer sent.
fn peer_open() -> Open {
    let both = |f| AddPathFamily {
        afi_safi: f,
        receive: true,
        send: true,
    };
    Open::new(
        65002,
        90,
        Ipv4Addr::new(10, 0, 0, 2),
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65002),
            Capability::AddPath(vec![
                both(AfiSafi::IPV4_UNICAST),
                both(AfiSafi::IPV6_UNICAST),
            ]),
            Capability::ExtendedMessage,
        ],
    )
}

const BIRD_UPDATE_V4: [u8; 73] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, // marker
    0x00, 0x49, // length 73
    0x02, // UPDATE
    0x00, 0x00, // no withdrawn routes
    0x00, 0x2a, // path attributes length 42
    0x40, 0x01, 0x01, 0x00, // ORIGIN IGP
    0x40, 0x02, 0x06, 0x02, 0x01, 0xfa, 0x56, 0xea, 0x01, // AS_PATH AS_SEQUENCE 4200000001
    0x40, 0x03, 0x04, 0xc0, 0x00, 0x02, 0x01, // NEXT_HOP 192.0.2.1
    0xc0, 0x08, 0x04, 0xfd, 0xe9, 0x00, 0x64, // COMMUNITIES 65001:100
    0xc0, 0x20, 0x0c, // LARGE_COMMUNITY, length 12
    0xfa, 0x56, 0xea, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x02, // .. 4200000001:1:2
    0x00, 0x00, 0x00, 0x02, 0x18, 0xcb, 0x00, 0x71, // NLRI path id 2, 203.0.113.0/24
];

const BIRD_UPDATE_V6: [u8; 86] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, // marker
    0x00, 0x56, // length 86
    0x02, // UPDATE
    0x00, 0x00, // no withdrawn routes
    0x00, 0x3f, // path attributes length 63
    0x90, 0x0e, 0x00,
    0x2e, // MP_REACH_NLRI, optional, extended length 46 (BIRD sets it on short values)
    0x00, 0x02, 0x01, // .. AFI IPv6, SAFI unicast
    0x20, // .. next hop length 32
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // .. global 2001:db8::1
    0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0x5e, 0xff, 0xfe, 0x00, 0x53,
    0x01, // .. link-local fe80::5eff:fe00:5301
    0x00, // .. reserved
    0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0a, 0x00, 0x00, // .. 2001:db8:a::/64
    0x40, 0x01, 0x01, 0x00, // ORIGIN IGP
    0x40, 0x02, 0x06, 0x02, 0x01, 0xfa, 0x56, 0xea, 0x01, // AS_PATH AS_SEQUENCE 4200000001
];

fn framed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(
        &u16::try_from(HEADER_LEN + body.len())
            .unwrap()
            .to_be_bytes(),
    );
    m.push(kind);
    m.extend_from_slice(body);
    m
}

fn prefix(s: &str, len: u8) -> Prefix {
    Prefix::new(s.parse().unwrap(), len).unwrap()
}

fn decode_ok(bytes: &[u8], codec: &Codec) -> Message {
    match decode_message(bytes, codec) {
        Ok((Decoded::Message(m), used)) if used == bytes.len() => m,
        other => panic!("captured message did not decode cleanly: {other:?}"),
    }
}

fn encode(msg: &Message, codec: &Codec) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_message(msg, codec, &mut out).unwrap();
    out.to_vec()
}

/// Our receive codec for this session.
fn rx_codec() -> Codec {
    let Message::Open(bird) = decode_ok(&BIRD_OPEN, &Codec::default()) else {
        panic!("not an OPEN")
    };
    Codec::negotiate(&peer_open(), &bird).0
}

#[test]
fn bird_open() {
    let Message::Open(open) = decode_ok(&BIRD_OPEN, &Codec::default()) else {
        panic!("not an OPEN")
    };
    assert_eq!(open.asn(), 4_200_000_001);
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.hold_time, 90);
    assert_eq!(open.bgp_id, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(open.capabilities.len(), 9);
    assert_eq!(open.capabilities[6].code(), 69);
    assert_eq!(
        open.capabilities[8],
        Capability::Unknown {
            code: 71,
            value: vec![]
        }
    );
    // Our encoder writes the same single Capabilities parameter: identical bytes.
    assert_eq!(encode(&Message::Open(open), &Codec::default()), BIRD_OPEN);
}

#[test]
fn negotiated_codec() {
    let rx = rx_codec();
    assert!(rx.four_byte_as);
    assert!(rx.extended_message);
    // BIRD sends path ids for IPv4 only (its ADD-PATH capability lists IPv4).
    assert_eq!(rx.add_path, vec![AfiSafi::IPV4_UNICAST]);
}

#[test]
fn bird_ipv4_update_with_path_id() {
    let codec = rx_codec();
    let Message::Update(u) = decode_ok(&BIRD_UPDATE_V4, &codec) else {
        panic!("not an UPDATE")
    };
    let want = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![4_200_000_001])),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            communities: vec![0xfde9_0064],
            large_communities: vec![LargeCommunity {
                global_admin: 4_200_000_001,
                local1: 1,
                local2: 2,
            }],
            ..PathAttributes::default()
        },
        nlri: vec![Nlri {
            path_id: Some(2),
            prefix: prefix("203.0.113.0", 24),
        }],
        ..Update::default()
    };
    assert_eq!(u, want);
    assert_eq!(encode(&Message::Update(u), &codec), BIRD_UPDATE_V4);
}

#[test]
fn bird_ipv6_update_with_link_local_next_hop() {
    let codec = rx_codec();
    let Message::Update(u) = decode_ok(&BIRD_UPDATE_V6, &codec) else {
        panic!("not an UPDATE")
    };
    let reach = u.mp_reach.clone().unwrap();
    assert_eq!(reach.afi_safi, AfiSafi::IPV6_UNICAST);
    assert_eq!(
        reach.next_hop,
        NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: Some("fe80::5eff:fe00:5301".parse().unwrap()),
        }
    );
    assert_eq!(reach.nlri, vec![Nlri::new(prefix("2001:db8:a::", 64))]);
    assert_eq!(
        u.attributes.as_path,
        Some(AsPath::sequence(vec![4_200_000_001]))
    );
    assert_eq!(u.attributes.next_hop, None);
    // We order attributes by type code and use the 1-byte length: 1 byte shorter, same meaning.
    let ours = encode(&Message::Update(u.clone()), &codec);
    assert_eq!(ours.len(), BIRD_UPDATE_V6.len() - 1);
    assert_eq!(decode_ok(&ours, &codec), Message::Update(u));
}

#[test]
fn bird_end_of_rib_markers_keepalive_and_cease() {
    let codec = rx_codec();
    let eor4 = framed(2, &[0x00, 0x00, 0x00, 0x00]);
    let Message::Update(u) = decode_ok(&eor4, &codec) else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.end_of_rib_family(), Some(AfiSafi::IPV4_UNICAST));
    let eor6 = framed(
        2,
        &[
            0x00, 0x00, // no withdrawn routes
            0x00, 0x06, // path attributes length 6
            0x80, 0x0f, 0x03, 0x00, 0x02, 0x01, // MP_UNREACH_NLRI IPv6 unicast, empty
        ],
    );
    let Message::Update(u) = decode_ok(&eor6, &codec) else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.end_of_rib_family(), Some(AfiSafi::IPV6_UNICAST));
    assert_eq!(encode(&Message::Update(u), &codec), eor6);
    assert_eq!(decode_ok(&framed(4, &[]), &codec), Message::Keepalive);
    // BIRD's Cease / Administrative Shutdown carries no shutdown communication.
    let cease = framed(3, &[0x06, 0x02]);
    let Message::Notification(n) = decode_ok(&cease, &codec) else {
        panic!("not a NOTIFICATION")
    };
    assert_eq!(
        (n.code, n.subcode, n.shutdown_communication()),
        (6, 2, None)
    );
}
