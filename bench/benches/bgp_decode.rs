//! UPDATE decode throughput of the BGP wire codec (goal 5 of the BGP issue): 100,000 IPv4 /32s in
//! UPDATEs of up to 4,096 bytes, as a peer sends them after the session comes up, decoded from one
//! buffer. divan reports the time per pass and routes per second.
//!
//! Run: `cargo bench -p calico-bench --bench bgp_decode`

use std::net::{IpAddr, Ipv4Addr};

use bytes::{Bytes, BytesMut};
use calico_bgp::wire::{
    decode_message, encode_message, AsPath, Codec, Decoded, Message, Nlri, Origin, PathAttributes,
    Prefix, Update,
};
use divan::counter::ItemsCount;
use divan::Bencher;

/// Routes in the stream.
const ROUTES: u32 = 100_000;
/// /32s per UPDATE: 5 bytes each, leaving room for the header and attributes in 4,096 bytes.
const PER_UPDATE: u32 = 780;

fn main() {
    divan::main();
}

fn codec() -> Codec {
    Codec {
        four_byte_as: true,
        ..Codec::default()
    }
}

/// The UPDATEs of `routes` /32s with one set of attributes, back to back.
fn stream(routes: u32) -> Bytes {
    let attributes = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(vec![65001])),
        next_hop: Some(Ipv4Addr::new(10, 250, 0, 12)),
        communities: vec![(65001 << 16) | 1],
        ..PathAttributes::default()
    };
    let mut out = BytesMut::new();
    let base = u32::from(Ipv4Addr::new(10, 64, 0, 0));
    let mut n = 0;
    while n < routes {
        let count = PER_UPDATE.min(routes - n);
        let nlri = (n..n + count)
            .filter_map(|i| Prefix::new(IpAddr::V4(Ipv4Addr::from(base + i)), 32))
            .map(Nlri::new)
            .collect();
        let update = Update {
            attributes: attributes.clone(),
            nlri,
            ..Update::default()
        };
        encode_message(&Message::Update(update), &codec(), &mut out).expect("encodes");
        n += count;
    }
    out.freeze()
}

/// Decodes every message in `bytes`; the number of routes announced.
fn decode_all(bytes: &[u8], codec: &Codec) -> usize {
    let mut at = 0;
    let mut routes = 0;
    while at < bytes.len() {
        let (decoded, used) = decode_message(&bytes[at..], codec).expect("decodes");
        match decoded {
            Decoded::Message(Message::Update(u)) => routes += u.nlri.len(),
            other => panic!("unexpected {other:?}"),
        }
        at += used;
    }
    routes
}

#[divan::bench]
fn updates_of_100k_ipv4_routes(bencher: Bencher) {
    let bytes = stream(ROUTES);
    let codec = codec();
    assert_eq!(decode_all(&bytes, &codec), ROUTES as usize);
    bencher
        .counter(ItemsCount::new(ROUTES))
        .bench(|| decode_all(divan::black_box(&bytes), &codec));
}
