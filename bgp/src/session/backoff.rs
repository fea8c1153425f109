//! Connect-retry backoff: exponential growth, a cap, and deterministic jitter.
//!
//! Role: the delay before the next connection attempt or automatic restart after `attempt` consecutive
//! failures: `base * 2^attempt`, capped at `max`, then scaled by a jitter factor in [0.75, 1.0] (RFC 4271 §10)
//! drawn from a hash of the seed and the attempt number, so runs with the same seed are repeatable.
//! Inputs: base, cap, attempt count, seed. Outputs: a [`Duration`].

use std::time::Duration;

/// The delay after `attempt` consecutive failures (0 for the first try).
pub fn delay(base: Duration, max: Duration, attempt: u32, seed: u64) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    let raw = base.checked_mul(factor).unwrap_or(max).min(max);
    // 750..=1000 thousandths.
    let permille = 750 + u32::try_from(splitmix64(seed ^ u64::from(attempt)) % 251).unwrap_or(0);
    raw.checked_mul(permille)
        .map(|d| d / 1000)
        .unwrap_or(raw)
        .min(max)
}

/// SplitMix64: a small, well-mixed hash for the jitter (not for anything secret).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_with_bounded_jitter() {
        let (base, max) = (Duration::from_secs(5), Duration::from_secs(120));
        let delays: Vec<Duration> = (0..12).map(|a| delay(base, max, a, 42)).collect();
        for (a, d) in delays.iter().enumerate() {
            let nominal = (base * (1u32 << a)).min(max);
            assert!(*d <= nominal, "attempt {a}: {d:?} above {nominal:?}");
            assert!(*d >= nominal * 3 / 4, "attempt {a}: {d:?} below 75%");
        }
        // Strictly growing until the cap (75% of the doubled value beats 100% of the previous one).
        for w in delays[..5].windows(2) {
            assert!(w[1] > w[0], "{delays:?}");
        }
        assert!(delays[5..].iter().all(|d| *d >= max * 3 / 4 && *d <= max));
        // Huge attempt counts neither overflow nor exceed the cap.
        assert!(delay(base, max, u32::MAX, 1) <= max);
        assert!(delay(Duration::MAX, Duration::MAX, 3, 1) <= Duration::MAX);
    }

    #[test]
    fn deterministic_per_seed_and_jittered_across_seeds() {
        let (base, max) = (Duration::from_secs(5), Duration::from_secs(120));
        assert_eq!(delay(base, max, 3, 7), delay(base, max, 3, 7));
        let distinct: std::collections::HashSet<Duration> =
            (0..20).map(|seed| delay(base, max, 2, seed)).collect();
        assert!(
            distinct.len() > 10,
            "jitter spreads peers apart: {distinct:?}"
        );
    }
}
