//! Property tests of the whole codec.
//!
//! Role: check that encode → decode is the identity for generated OPEN (random capabilities), UPDATE (random
//! attributes and prefixes, with and without 4-octet AS and ADD-PATH), NOTIFICATION, KEEPALIVE and
//! ROUTE-REFRESH messages, and that decoding arbitrary or mutated bytes never panics.
//! Inputs: proptest strategies. Outputs: test results only.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::BytesMut;
use proptest::prelude::*;

use super::*;

fn v4_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u32>(), 0u8..=32)
        .prop_map(|(a, l)| Prefix::new(IpAddr::V4(Ipv4Addr::from(a)), l).expect("length in range"))
}

fn v6_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| Prefix::new(IpAddr::V6(Ipv6Addr::from(a)), l).expect("length in range"))
}

fn nlri_list(prefix: BoxedStrategy<Prefix>, add_path: bool) -> impl Strategy<Value = Vec<Nlri>> {
    prop::collection::vec((prefix, any::<u32>()), 0..8).prop_map(move |v| {
        v.into_iter()
            .map(|(prefix, id)| Nlri {
                path_id: add_path.then_some(id),
                prefix,
            })
            .collect()
    })
}

fn as_path(four_byte: bool) -> impl Strategy<Value = AsPath> {
    let asn = if four_byte {
        any::<u32>().boxed()
    } else {
        (0u32..=65535).boxed()
    };
    let kind = prop_oneof![
        Just(SegmentType::Set),
        Just(SegmentType::Sequence),
        Just(SegmentType::ConfedSequence),
        Just(SegmentType::ConfedSet)
    ];
    prop::collection::vec((kind, prop::collection::vec(asn, 1..12)), 0..4).prop_map(|segs| AsPath {
        segments: segs
            .into_iter()
            .map(|(kind, asns)| AsSegment { kind, asns })
            .collect(),
    })
}

fn aggregator(four_byte: bool) -> impl Strategy<Value = Aggregator> {
    let asn = if four_byte {
        any::<u32>().boxed()
    } else {
        (0u32..=65535).boxed()
    };
    (asn, any::<u32>()).prop_map(|(asn, a)| Aggregator {
        asn,
        address: Ipv4Addr::from(a),
    })
}

/// Attribute type codes this codec does not interpret (so they round-trip as raw attributes).
fn unknown_type() -> impl Strategy<Value = u8> {
    prop_oneof![11u8..=13, Just(16u8), 19u8..=31, 33u8..=255]
}

fn attributes(four_byte: bool) -> impl Strategy<Value = PathAttributes> {
    let origin = prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ];
    let ip = || any::<u32>().prop_map(Ipv4Addr::from);
    let large = (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(g, l1, l2)| LargeCommunity {
        global_admin: g,
        local1: l1,
        local2: l2,
    });
    let unknown = prop::collection::btree_map(
        unknown_type(),
        (
            prop_oneof![Just(0xc0u8), Just(0xe0u8)],
            prop::collection::vec(any::<u8>(), 0..20),
        ),
        0..3,
    )
    .prop_map(|m: BTreeMap<u8, (u8, Vec<u8>)>| {
        m.into_iter()
            .map(|(type_code, (flags, value))| RawAttribute {
                flags,
                type_code,
                value,
            })
            .collect::<Vec<_>>()
    });
    // AS4_* are only kept from speakers without 4-octet AS support.
    let as4 = (
        prop::option::of(as_path(true)).prop_map(move |p| if four_byte { None } else { p }),
        prop::option::of(aggregator(true)).prop_map(move |a| if four_byte { None } else { a }),
    );
    (
        (
            prop::option::of(origin),
            prop::option::of(as_path(four_byte)),
            prop::option::of(ip()),
        ),
        (
            prop::option::of(any::<u32>()),
            prop::option::of(any::<u32>()),
            any::<bool>(),
        ),
        (
            prop::option::of(aggregator(four_byte)),
            prop::collection::vec(any::<u32>(), 0..6),
        ),
        (prop::option::of(ip()), prop::collection::vec(ip(), 0..4)),
        as4,
        (prop::collection::vec(large, 0..3), unknown),
    )
        .prop_map(
            |(
                (origin, as_path, next_hop),
                (med, local_pref, atomic_aggregate),
                (aggregator, communities),
                (originator_id, cluster_list),
                (as4_path, as4_aggregator),
                (large_communities, unknown),
            )| {
                PathAttributes {
                    origin,
                    as_path,
                    next_hop,
                    med,
                    local_pref,
                    atomic_aggregate,
                    aggregator,
                    communities,
                    originator_id,
                    cluster_list,
                    as4_path,
                    as4_aggregator,
                    large_communities,
                    unknown,
                }
            },
        )
}

fn next_hop(family: AfiSafi) -> BoxedStrategy<NextHop> {
    let v6 = (any::<u128>(), prop::option::of(any::<u128>())).prop_map(|(g, l)| NextHop::V6 {
        global: Ipv6Addr::from(g),
        link_local: l.map(Ipv6Addr::from),
    });
    if family == AfiSafi::IPV4_UNICAST {
        prop_oneof![
            any::<u32>().prop_map(|a| NextHop::V4(Ipv4Addr::from(a))),
            v6
        ]
        .boxed()
    } else {
        v6.boxed()
    }
}

fn codec() -> impl Strategy<Value = Codec> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(four_byte_as, ap4, ap6)| Codec {
        four_byte_as,
        extended_message: false,
        add_path: [(ap4, AfiSafi::IPV4_UNICAST), (ap6, AfiSafi::IPV6_UNICAST)]
            .into_iter()
            .filter_map(|(on, f)| on.then_some(f))
            .collect(),
    })
}

fn family_prefix(family: AfiSafi) -> BoxedStrategy<Prefix> {
    if family == AfiSafi::IPV4_UNICAST {
        v4_prefix().boxed()
    } else {
        v6_prefix().boxed()
    }
}

fn update(codec: &Codec) -> impl Strategy<Value = Update> {
    let v4 = AfiSafi::IPV4_UNICAST;
    let family = prop_oneof![Just(AfiSafi::IPV4_UNICAST), Just(AfiSafi::IPV6_UNICAST)];
    let c = codec.clone();
    let reach = family.clone().prop_flat_map(move |f| {
        (next_hop(f), nlri_list(family_prefix(f), c.add_path(f))).prop_map(
            move |(next_hop, nlri)| MpReach {
                afi_safi: f,
                next_hop,
                nlri,
            },
        )
    });
    let c = codec.clone();
    let unreach = family.prop_flat_map(move |f| {
        nlri_list(family_prefix(f), c.add_path(f)).prop_map(move |withdrawn| MpUnreach {
            afi_safi: f,
            withdrawn,
        })
    });
    (
        nlri_list(v4_prefix().boxed(), codec.add_path(v4)),
        attributes(codec.four_byte_as),
        nlri_list(v4_prefix().boxed(), codec.add_path(v4)),
        prop::option::of(reach),
        prop::option::of(unreach),
    )
        .prop_map(|(withdrawn, mut attributes, nlri, mp_reach, mp_unreach)| {
            // A well-formed UPDATE with NLRI carries the well-known mandatory attributes (RFC 4271 §5).
            let has_nlri =
                !nlri.is_empty() || mp_reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
            if has_nlri {
                attributes.origin.get_or_insert(Origin::Igp);
                attributes.as_path.get_or_insert_with(AsPath::default);
            }
            if !nlri.is_empty() {
                attributes
                    .next_hop
                    .get_or_insert(Ipv4Addr::new(192, 0, 2, 1));
            }
            Update {
                withdrawn,
                attributes,
                nlri,
                mp_reach,
                mp_unreach,
            }
        })
}

fn capability() -> impl Strategy<Value = Capability> {
    let fam = (any::<u16>(), any::<u8>()).prop_map(|(a, s)| AfiSafi::new(a, s));
    let gr = (
        any::<bool>(),
        any::<bool>(),
        0u16..4096,
        prop::collection::vec((fam.clone(), any::<bool>()), 0..4),
    )
        .prop_map(|(restarting, notification, restart_time, fams)| {
            Capability::GracefulRestart(GracefulRestart {
                restarting,
                notification,
                restart_time,
                families: fams
                    .into_iter()
                    .map(|(afi_safi, forwarding_preserved)| GracefulRestartFamily {
                        afi_safi,
                        forwarding_preserved,
                    })
                    .collect(),
            })
        });
    let add_path = prop::collection::vec((fam.clone(), 1u8..=3), 1..4).prop_map(|v| {
        Capability::AddPath(
            v.into_iter()
                .map(|(afi_safi, mode)| AddPathFamily {
                    afi_safi,
                    receive: mode & 1 != 0,
                    send: mode & 2 != 0,
                })
                .collect(),
        )
    });
    let unknown_code = prop_oneof![3u8..=5, 7u8..=63, 66u8..=68, 71u8..=255];
    prop_oneof![
        fam.prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        Just(Capability::ExtendedMessage),
        (1u32..).prop_map(Capability::FourOctetAs),
        gr,
        add_path,
        (unknown_code, prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        1u16..,
        prop_oneof![Just(0u16), 3u16..],
        1u32..,
        prop::collection::vec(capability(), 0..16),
    )
        .prop_map(|(my_as, hold_time, id, capabilities)| Open {
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            capabilities,
        })
}

fn other_message() -> impl Strategy<Value = Message> {
    let family = (any::<u16>(), any::<u8>()).prop_map(|(a, s)| AfiSafi::new(a, s));
    let subtype = any::<u8>().prop_map(|v| match v {
        0 => RefreshSubtype::Normal,
        1 => RefreshSubtype::Begin,
        2 => RefreshSubtype::End,
        v => RefreshSubtype::Unknown(v),
    });
    prop_oneof![
        Just(Message::Keepalive),
        (
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(c, s, d)| Message::Notification(Notification::new(c, s, d))),
        (family, subtype).prop_map(|(afi_safi, subtype)| Message::RouteRefresh(RouteRefresh {
            afi_safi,
            subtype
        })),
    ]
}

fn assert_round_trip(msg: &Message, codec: &Codec) -> Result<(), TestCaseError> {
    let mut out = BytesMut::new();
    encode_message(msg, codec, &mut out)
        .map_err(|e| TestCaseError::fail(format!("encode: {e}")))?;
    let decoded = decode_message(&out, codec);
    prop_assert_eq!(decoded, Ok((Decoded::Message(msg.clone()), out.len())));
    Ok(())
}

proptest! {
    #[test]
    fn update_round_trips((codec, update) in codec().prop_flat_map(|c| (Just(c.clone()), update(&c)))) {
        assert_round_trip(&Message::Update(update), &codec)?;
    }

    #[test]
    fn open_round_trips(open in open()) {
        assert_round_trip(&Message::Open(open), &Codec::default())?;
    }

    #[test]
    fn other_messages_round_trip(msg in other_message(), codec in codec()) {
        assert_round_trip(&msg, &codec)?;
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), codec in codec()) {
        let _outcome = decode_message(&bytes, &codec);
    }

    #[test]
    fn decode_never_panics_on_framed_bodies(
        kind in 1u8..=5,
        body in prop::collection::vec(any::<u8>(), 0..512),
        codec in codec(),
    ) {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&u16::try_from(HEADER_LEN + body.len()).unwrap_or(u16::MAX).to_be_bytes());
        m.push(kind);
        m.extend_from_slice(&body);
        if let Ok((_, used)) = decode_message(&m, &codec) {
            prop_assert_eq!(used, m.len());
        }
    }

    #[test]
    fn decode_never_panics_on_mutated_updates(
        (codec, update) in codec().prop_flat_map(|c| (Just(c.clone()), update(&c))),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut out = BytesMut::new();
        encode_message(&Message::Update(update), &codec, &mut out)
            .map_err(|e| TestCaseError::fail(format!("encode: {e}")))?;
        let mut bytes = out.to_vec();
        // Keep the header intact so the mutations reach the body decoders.
        let body_len = bytes.len() - HEADER_LEN;
        if body_len > 0 {
            for (i, v) in flips {
                let at = HEADER_LEN + i.index(body_len);
                bytes[at] = v;
            }
        }
        let _outcome = decode_message(&bytes, &codec);
    }
}
