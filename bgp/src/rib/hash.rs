//! A fast hasher for the RIB's tables.
//!
//! Role: std's SipHash costs more than the rest of inserting a route; prefixes are short fixed-size keys. This
//! is a multiply-xor hasher (in the style of FxHash) whose state starts from a per-process random seed taken
//! from std's `RandomState`, so bucket placement is not predictable from outside the process.
//! Inputs: bytes and integers to hash. Outputs: `u64` hashes; [`FastMap`] and [`FastSet`] aliases.
//!
//! Trade-off: unlike SipHash it is not a keyed PRF; a peer able to observe timing and adapt could still try to
//! provoke collisions. Peers are configured neighbours and the max-prefix limit bounds what each may send.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::OnceLock;

const K: u64 = 0xf135_7aea_2e62_a9c5;

/// The hasher.
#[derive(Debug, Clone, Copy)]
pub struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ (rest.len() as u64) << 59);
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Final avalanche so the high bits (hashbrown's control bytes) depend on every input bit.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^ (x >> 33)
    }
}

/// Builds [`FastHasher`]s from the process seed.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastState;

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| RandomState::new().hash_one(0x5eed_u64))
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher(seed())
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, FastState>;
/// A `HashSet` with [`FastHasher`].
pub type FastSet<K> = HashSet<K, FastState>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn distinct_keys_spread() {
        let mut seen = FastSet::default();
        let mut buckets = [0u32; 64];
        for i in 0..10_000u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0x0a80_0000 + i));
            let h = FastState.hash_one((a, 32u8));
            seen.insert(h);
            buckets[(h >> 58) as usize] += 1;
        }
        assert_eq!(seen.len(), 10_000);
        // Top bits (hashbrown's tags) well spread: every bucket within 2x of the mean.
        assert!(
            buckets.iter().all(|&b| (78..=312).contains(&b)),
            "{buckets:?}"
        );
    }
}
