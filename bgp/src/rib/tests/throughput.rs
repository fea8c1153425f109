//! Throughput and memory: 100,000 IPv4 /32s from one eBGP peer, inserted and withdrawn in UPDATEs of 800
//! prefixes (about what fits in 4096 bytes), with and without a second peer to export to.
//!
//! Prints prefixes/s and bytes/route (run with `--nocapture`; figures from a debug build are several times
//! slower than release). Asserts the outcome and a generous bound on memory per route.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::*;

const N: u32 = 100_000;
const PER_UPDATE: u32 = 800;

fn prefixes(from: u32) -> Vec<Nlri> {
    (from..(from + PER_UPDATE).min(N))
        .map(|i| {
            let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + i);
            Nlri::new(Prefix::new(IpAddr::V4(a), 32).unwrap())
        })
        .collect()
}

/// The process's resident set in bytes, from /proc (informational: other tests run in parallel).
fn rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Insert and withdraw; returns (insert seconds, withdraw seconds, bytes per route after insert).
fn run(export_peer: bool) -> (f64, f64, f64) {
    let mut rib = new_rib(1);
    add_up(&mut rib, 6, 65001, false);
    if export_peer {
        add_up(&mut rib, 4, LOCAL_AS, false);
    }
    let empty = rib.memory_estimate();
    let rss_before = rss();
    let attributes = PathAttributes {
        communities: vec![0xfde9_0001, 0xfde9_0002],
        ..attrs(&[65001, 64900, 64901], v4(6))
    };
    let t = Instant::now();
    let mut installed = 0;
    let mut advertised = 0;
    for from in (0..N).step_by(PER_UPDATE as usize) {
        let u = Update {
            attributes: attributes.clone(),
            nlri: prefixes(from),
            ..Update::default()
        };
        let c = rib.update(ip(6), &u).unwrap();
        installed += c.fib.len();
        advertised += c
            .peer(ip(4))
            .map_or(0, |p| p.families.values().map(|f| f.announced()).sum());
    }
    let insert = t.elapsed().as_secs_f64();
    assert_eq!(installed, N as usize);
    assert_eq!(rib.len(), N as usize);
    assert_eq!(advertised, if export_peer { N as usize } else { 0 });
    // One attribute set as received, one as exported to the iBGP peer.
    assert!(rib.attribute_sets() <= 2, "{} sets", rib.attribute_sets());
    let bytes = (rib.memory_estimate() - empty) as f64 / f64::from(N);
    if let (Some(a), Some(b)) = (rss_before, rss()) {
        println!(
            "rib rss growth: {:.0} bytes/route (whole process; exact only when run alone)",
            b.saturating_sub(a) as f64 / f64::from(N)
        );
    }
    let t = Instant::now();
    let mut removed = 0;
    for from in (0..N).step_by(PER_UPDATE as usize) {
        let u = Update {
            withdrawn: prefixes(from),
            ..Update::default()
        };
        removed += rib.update(ip(6), &u).unwrap().fib.len();
    }
    let withdraw = t.elapsed().as_secs_f64();
    assert_eq!(removed, N as usize);
    assert!(rib.is_empty());
    assert_eq!(rib.counters(ip(6)).unwrap().accepted, 0);
    (insert, withdraw, bytes)
}

#[test]
fn hundred_thousand_slash_32s() {
    for export_peer in [false, true] {
        let (insert, withdraw, bytes) = run(export_peer);
        println!(
            "rib throughput ({}): insert {:.0} prefixes/s ({:.3} s), withdraw {:.0} prefixes/s ({:.3} s), {:.0} bytes/route",
            if export_peer { "with one iBGP peer to export to" } else { "no export" },
            f64::from(N) / insert,
            insert,
            f64::from(N) / withdraw,
            withdraw,
            bytes
        );
        // One Loc-RIB entry (about 43 bytes, see `layout`), plus the Adj-RIB-Out entry with an export peer.
        assert!(
            bytes < if export_peer { 200.0 } else { 100.0 },
            "{bytes} bytes/route"
        );
    }
}
