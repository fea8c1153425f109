//! UPDATE decode throughput of the BGP wire codec (the Felix-issue style "reported" figure, goal 5 of
//! the BGP issue): 100,000 IPv4 /32s in UPDATEs of up to 4,096 bytes, as a peer sends them after the
//! session comes up, decoded from one buffer; routes per second over repeated runs (median).
//!
//! Run: `cargo run --release -p calico-bench --bin bgp-decode -- [--routes 100000] [--runs 9]`

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::BytesMut;
use calico_bgp::wire::{
    decode_message, encode_message, AsPath, Codec, Decoded, Message, Nlri, Origin, PathAttributes,
    Prefix, Update,
};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    routes: u32,
    #[arg(long, default_value_t = 9)]
    runs: usize,
}

/// /32s per UPDATE: 5 bytes each, leaving room for the header and attributes in 4,096 bytes.
const PER_UPDATE: u32 = 780;

fn main() -> Result<()> {
    let args = Args::parse();
    let codec = Codec {
        four_byte_as: true,
        ..Codec::default()
    };
    let attributes = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(vec![65001])),
        next_hop: Some(Ipv4Addr::new(10, 250, 0, 12)),
        communities: vec![(65001 << 16) | 1],
        ..PathAttributes::default()
    };
    let mut stream = BytesMut::new();
    let base = u32::from(Ipv4Addr::new(10, 64, 0, 0));
    let mut n = 0;
    while n < args.routes {
        let count = PER_UPDATE.min(args.routes - n);
        let nlri = (n..n + count)
            .filter_map(|i| Prefix::new(IpAddr::V4(Ipv4Addr::from(base + i)), 32))
            .map(Nlri::new)
            .collect();
        let update = Update {
            attributes: attributes.clone(),
            nlri,
            ..Update::default()
        };
        encode_message(&Message::Update(update), &codec, &mut stream)?;
        n += count;
    }
    let bytes = stream.freeze();
    let mut times = Vec::new();
    for _ in 0..args.runs {
        let t = Instant::now();
        let mut at = 0;
        let mut routes = 0usize;
        while at < bytes.len() {
            let (decoded, used) = decode_message(&bytes[at..], &codec)?;
            match decoded {
                Decoded::Message(Message::Update(u)) => routes += u.nlri.len(),
                other => bail!("unexpected {other:?}"),
            }
            at += used;
        }
        times.push(t.elapsed());
        if routes != args.routes as usize {
            bail!("decoded {routes} routes, not {}", args.routes);
        }
    }
    times.sort();
    let median: Duration = times[times.len() / 2];
    println!(
        "decoded {} routes ({} bytes in {} UPDATEs) in {:.2} ms median of {} runs: {:.2} M routes/s",
        args.routes,
        bytes.len(),
        args.routes.div_ceil(PER_UPDATE),
        median.as_secs_f64() * 1e3,
        args.runs,
        f64::from(args.routes) / median.as_secs_f64() / 1e6
    );
    Ok(())
}
