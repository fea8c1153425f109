//! A compact map from IPv4 prefixes to small numbers, for the FIB task's records of 100,000s of routes.
//!
//! Role: hold (address, length) → a value below 2^24 in one `u64` per entry: the 40-bit key in the high bits,
//! the value in the low 24. A `hashbrown` `HashTable` of those costs 9 bytes a bucket with its control byte,
//! where a `HashMap<(u32, u8), u32>` costs 13 and a `HashMap<u64, u32>` 17. The table is split into
//! [`SHARDS`] by a hash of the key, so growing (a new table twice the size while the old one is still
//! resident) costs a sixteenth of the whole at a time.
//! Inputs: inserts, lookups and removals by (address, length). Outputs: values, the entries in no order.

use std::hash::BuildHasher;

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;

use crate::rib::hash::FastState;

/// The largest value a [`V4Map`] holds.
pub(super) const MAX_VALUE: u32 = (1 << VALUE_BITS) - 1;
const VALUE_BITS: u32 = 24;
/// The number of tables.
const SHARDS: usize = 16;
/// Tables of this capacity or less never shrink.
const SHRINK_ABOVE: usize = 64;

/// The 40-bit key of an IPv4 prefix.
#[inline]
pub(super) fn key(addr: u32, len: u8) -> u64 {
    u64::from(addr) << 8 | u64::from(len)
}

/// The (address, length) of a key.
#[inline]
pub(super) fn unkey(key: u64) -> (u32, u8) {
    ((key >> 8) as u32, key as u8)
}

/// A key and a value in one word.
#[inline]
pub(super) fn pack(key: u64, value: u32) -> u64 {
    debug_assert!(value <= MAX_VALUE);
    key << VALUE_BITS | u64::from(value & MAX_VALUE)
}

/// The key and the value of a word.
#[inline]
pub(super) fn unpack(word: u64) -> (u64, u32) {
    (word >> VALUE_BITS, (word as u32) & MAX_VALUE)
}

#[inline]
fn hash(key: u64) -> u64 {
    FastState.hash_one(key)
}

#[inline]
fn shard(key: u64) -> usize {
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SHARDS.trailing_zeros())) as usize
}

/// IPv4 prefix → value (at most [`MAX_VALUE`]). See the module docs.
#[derive(Debug)]
pub(super) struct V4Map {
    shards: Box<[HashTable<u64>]>,
}

impl Default for V4Map {
    fn default() -> Self {
        V4Map {
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
        }
    }
}

impl V4Map {
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.shards.iter().map(HashTable::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(HashTable::is_empty)
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: u64) -> Option<u32> {
        self.shards[shard(key)]
            .find(hash(key), |w| unpack(*w).0 == key)
            .map(|w| unpack(*w).1)
    }

    /// Sets the value of `key`; returns the one it replaced.
    #[inline]
    pub fn insert(&mut self, key: u64, value: u32) -> Option<u32> {
        let word = pack(key, value);
        let table = &mut self.shards[shard(key)];
        match table.entry(hash(key), |w| unpack(*w).0 == key, |w| hash(unpack(*w).0)) {
            Entry::Occupied(mut e) => Some(unpack(std::mem::replace(e.get_mut(), word)).1),
            Entry::Vacant(e) => {
                e.insert(word);
                None
            }
        }
    }

    /// Removes `key`; returns its value. A table left a quarter full shrinks to half full, so the map
    /// gives back memory as a burst drains (each entry moves at most once per halving: amortised O(1)).
    #[inline]
    pub fn remove(&mut self, key: u64) -> Option<u32> {
        let table = &mut self.shards[shard(key)];
        let (word, _) = table
            .find_entry(hash(key), |w| unpack(*w).0 == key)
            .ok()?
            .remove();
        if table.capacity() > SHRINK_ABOVE && table.len() < table.capacity() / 4 {
            table.shrink_to(table.len() * 2, |w| hash(unpack(*w).0));
        }
        Some(unpack(word).1)
    }

    /// Every (key, value), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.shards.iter().flatten().map(|w| unpack(*w))
    }

    /// The bytes of the tables' allocations.
    #[cfg(test)]
    pub fn allocation_size(&self) -> usize {
        self.shards.iter().map(HashTable::allocation_size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip_in_one_word() {
        for (addr, len, value) in [
            (0u32, 0u8, 0u32),
            (u32::MAX, 32, MAX_VALUE),
            (0x0a60_0001, 32, 7),
        ] {
            let k = key(addr, len);
            assert_eq!(unkey(k), (addr, len));
            assert_eq!(unpack(pack(k, value)), (k, value));
        }
    }

    #[test]
    fn a_map_of_100000_slash_32s_costs_nine_bytes_a_bucket() {
        let mut m = V4Map::default();
        for i in 0..100_000u32 {
            assert_eq!(m.insert(key(0x0a60_0000 + i, 32), i & 3), None);
        }
        assert_eq!(m.insert(key(0x0a60_0005, 32), 9), Some(1));
        assert_eq!(m.get(key(0x0a60_0005, 32)), Some(9));
        assert_eq!(m.get(key(0x0a60_0005, 31)), None);
        assert_eq!(m.len(), 100_000);
        // 16 tables of 8,192 buckets, 9 bytes each (and a few trailing control bytes).
        let bytes = m.allocation_size();
        assert!(bytes <= 131_072 * 9 + 16 * 32, "{bytes}");
        assert_eq!(m.remove(key(0x0a60_0005, 32)), Some(9));
        assert_eq!(m.remove(key(0x0a60_0005, 32)), None);
        assert_eq!(m.iter().filter(|(_, v)| *v == 3).count(), 25_000);
        assert!(!m.is_empty());
        // Draining gives the room back as it goes.
        for i in 0..99_000u32 {
            m.remove(key(0x0a60_0000 + i, 32));
        }
        assert_eq!(m.len(), 1_000);
        assert!(
            m.allocation_size() <= 16 * 256 * 9 + 16 * 32,
            "{}",
            m.allocation_size()
        );
        assert_eq!(m.get(key(0x0a60_0000 + 99_999, 32)), Some(3));
    }
}
