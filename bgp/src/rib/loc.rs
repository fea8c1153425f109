//! The Loc-RIB's prefix table: prefix → [`Dest`], with IPv4 prefixes keyed compactly.
//!
//! Role: the hash table holding every prefix's paths. A [`Prefix`] is 18 bytes (an `IpAddr` and a length), so
//! a `(Prefix, Dest)` entry is 56 bytes. An IPv4 prefix's address and length fit in the padding of its
//! [`Dest`], so IPv4 prefixes live in tables of bare 32-byte `Dest`s found by those fields (a `hashbrown`
//! `HashTable`, which lets the entry hold its own key), 33 bytes a bucket with the control byte instead of 41
//! for a map from a `u64` key; the others (IPv6) in a map keyed by [`Prefix`].
//!
//! The IPv4 table is split into [`SHARDS`] tables by a hash of the key. A hash table grows by allocating one
//! twice its size and moving every entry, so while 100,000 routes arrive the old and the new table are
//! both resident for a moment: half as much again as the table itself (2.1 MB on top of 4.3 MB). Split, each
//! shard grows on its own and the moment's extra is a sixteenth of that.
//! Inputs: lookups, inserts and removals by [`Prefix`]. Outputs: the [`Dest`]s, and iteration yielding
//! `(Prefix, Dest)` in no particular order.

use std::hash::BuildHasher;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr};

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;

use super::dest::Dest;
use super::hash::{FastMap, FastState};
use crate::wire::Prefix;

/// An IPv4 prefix's key: (address, length).
pub(super) type V4Key = (u32, u8);

#[inline]
pub(super) fn v4_key(prefix: &Prefix) -> Option<V4Key> {
    match prefix.addr() {
        IpAddr::V4(a) => Some((u32::from(a), prefix.len())),
        IpAddr::V6(_) => None,
    }
}

#[inline]
fn packed((addr, len): V4Key) -> u64 {
    u64::from(addr) << 8 | u64::from(len)
}

/// The table hash of a key.
#[inline]
pub(super) fn hash(key: V4Key) -> u64 {
    FastState.hash_one(packed(key))
}

/// The shard of a key: the top bits of a multiplicative hash (not the tables' own hasher, so a shard's keys
/// still spread over its buckets).
#[inline]
pub(super) fn shard(key: V4Key) -> usize {
    (packed(key).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SHARDS.trailing_zeros())) as usize
}

/// The prefix of an IPv4 table entry.
#[inline]
fn v4_prefix(d: &Dest) -> Prefix {
    let (addr, len) = d.v4_key();
    // The key came from a valid IPv4 prefix: the length is at most 32 and the host bits are zero.
    Prefix::new(IpAddr::V4(Ipv4Addr::from(addr)), len).expect("an IPv4 key holds a valid prefix")
}

/// The number of IPv4 tables.
pub(super) const SHARDS: usize = 16;
/// Tables of this capacity or less never shrink.
pub(super) const SHRINK_ABOVE: usize = 64;

/// An entry that holds its own IPv4 key.
pub(super) trait V4Entry {
    fn v4_key(&self) -> V4Key;
}

impl V4Entry for Dest {
    #[inline]
    fn v4_key(&self) -> V4Key {
        Dest::v4_key(self)
    }
}

/// Entries keyed by an IPv4 prefix they hold themselves, in [`SHARDS`] hashbrown tables split by a hash of
/// the key, so growing one costs a sixteenth of the whole at a time; a table left a quarter full shrinks
/// to half full. The Loc-RIB's IPv4 table and the Adj-RIB-Out's compact one.
#[derive(Debug)]
pub(super) struct V4Tables<T> {
    tables: Box<[HashTable<T>]>,
}

impl<T> Default for V4Tables<T> {
    fn default() -> Self {
        V4Tables {
            tables: (0..SHARDS).map(|_| HashTable::new()).collect(),
        }
    }
}

impl<T: V4Entry> V4Tables<T> {
    #[inline]
    pub fn get(&self, k: V4Key) -> Option<&T> {
        self.tables[shard(k)].find(hash(k), |e| e.v4_key() == k)
    }

    #[inline]
    pub fn get_mut(&mut self, k: V4Key) -> Option<&mut T> {
        self.tables[shard(k)].find_mut(hash(k), |e| e.v4_key() == k)
    }

    /// The entry of `k`, made by `make` if absent.
    #[inline]
    pub fn entry(&mut self, k: V4Key, make: impl FnOnce() -> T) -> &mut T {
        let table = &mut self.tables[shard(k)];
        match table.entry(hash(k), |e| e.v4_key() == k, |e| hash(e.v4_key())) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(make()).into_mut(),
        }
    }

    /// Puts `e` in, in place of the entry of its key if there is one.
    pub fn insert(&mut self, e: T) {
        let k = e.v4_key();
        let table = &mut self.tables[shard(k)];
        match table.entry(hash(k), |x| x.v4_key() == k, |x| hash(x.v4_key())) {
            Entry::Occupied(mut o) => *o.get_mut() = e,
            Entry::Vacant(v) => {
                v.insert(e);
            }
        }
    }

    /// Removes the entry of `k`; a table left a quarter full shrinks to half full, so removing most
    /// entries gives their memory back (each entry moves at most once per halving).
    pub fn remove(&mut self, k: V4Key) -> Option<T> {
        let table = &mut self.tables[shard(k)];
        let (e, _) = table
            .find_entry(hash(k), |e| e.v4_key() == k)
            .ok()?
            .remove();
        if table.capacity() > SHRINK_ABOVE && table.len() < table.capacity() / 4 {
            table.shrink_to(table.len() * 2, |e| hash(e.v4_key()));
        }
        Some(e)
    }

    pub fn len(&self) -> usize {
        self.tables.iter().map(HashTable::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(HashTable::is_empty)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.tables.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.tables.iter_mut().flatten()
    }

    /// The bytes of the tables' allocations.
    pub fn allocation_size(&self) -> usize {
        self.tables.iter().map(HashTable::allocation_size).sum()
    }
}

/// The prefix table. See the module docs.
#[derive(Debug, Default)]
pub(super) struct Loc {
    v4: V4Tables<Dest>,
    other: FastMap<Prefix, Dest>,
}

impl Loc {
    /// The entry of `prefix`.
    #[inline]
    pub fn get(&self, prefix: &Prefix) -> Option<&Dest> {
        match v4_key(prefix) {
            Some(k) => self.v4.get(k),
            None => self.other.get(prefix),
        }
    }

    /// The entry of `prefix`, mutably.
    #[inline]
    pub fn get_mut(&mut self, prefix: &Prefix) -> Option<&mut Dest> {
        match v4_key(prefix) {
            Some(k) => self.v4.get_mut(k),
            None => self.other.get_mut(prefix),
        }
    }

    /// The entry of `prefix`, created empty if absent.
    #[inline]
    pub fn entry(&mut self, prefix: Prefix) -> &mut Dest {
        match v4_key(&prefix) {
            Some(k) => self.v4.entry(k, || Dest::for_v4(k.0, k.1)),
            None => self.other.entry(prefix).or_default(),
        }
    }

    /// Remove the entry of `prefix`. A table left a quarter full shrinks to half full, so withdrawing
    /// most routes gives their memory back (each entry moves at most once per halving).
    pub fn remove(&mut self, prefix: &Prefix) -> Option<Dest> {
        match v4_key(prefix) {
            Some(k) => self.v4.remove(k),
            None => {
                let dest = self.other.remove(prefix)?;
                if self.other.capacity() > SHRINK_ABOVE
                    && self.other.len() < self.other.capacity() / 4
                {
                    self.other.shrink_to(self.other.len() * 2);
                }
                Some(dest)
            }
        }
    }

    /// The number of prefixes.
    pub fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.other.is_empty()
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Prefix, &Dest)> {
        let v4 = self.v4.iter().map(|d| (v4_prefix(d), d));
        v4.chain(self.other.iter().map(|(p, d)| (*p, d)))
    }

    /// Every entry mutably, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Prefix, &mut Dest)> {
        let v4 = self.v4.iter_mut().map(|d| (v4_prefix(d), d));
        v4.chain(self.other.iter_mut().map(|(p, d)| (*p, d)))
    }

    /// Every prefix, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = Prefix> + '_ {
        self.iter().map(|(p, _)| p)
    }

    /// Every entry's paths, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Dest> {
        self.v4.iter().chain(self.other.values())
    }

    /// The bytes of the tables' allocations (entries and control bytes of every bucket).
    pub fn table_bytes(&self) -> usize {
        self.v4.allocation_size() + table_bytes(self.other.capacity(), size_of::<(Prefix, Dest)>())
    }
}

/// The allocation of a hashbrown (std) table with this capacity and entry size: one entry and one control
/// byte per bucket, plus a group of trailing control bytes. A table with `b >= 8` buckets holds `b / 8 * 7`
/// entries; a smaller one `b - 1`.
pub(super) fn table_bytes(capacity: usize, entry: usize) -> usize {
    let buckets = match capacity {
        0 => return 0,
        c if c < 7 => c + 1,
        c => (c.div_ceil(7) * 8).next_power_of_two(),
    };
    buckets * (entry + 1) + 16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pfx(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    #[test]
    fn both_families_round_trip() {
        assert_eq!(size_of::<Dest>(), 32);
        let mut loc = Loc::default();
        let all = [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "10.0.0.0/9",
            "255.255.255.255/32",
            "::/0",
            "2001:db8::/32",
        ];
        for (i, p) in all.iter().enumerate() {
            loc.entry(pfx(p)).selected = i as u16;
        }
        assert_eq!(loc.len(), all.len());
        for (i, p) in all.iter().enumerate() {
            assert_eq!(loc.get(&pfx(p)).map(|d| d.selected), Some(i as u16), "{p}");
        }
        let mut keys: Vec<Prefix> = loc.keys().collect();
        keys.sort();
        let mut want: Vec<Prefix> = all.iter().map(|p| pfx(p)).collect();
        want.sort();
        assert_eq!(keys, want);
        assert!(loc.get(&pfx("10.0.0.0/10")).is_none());
        assert!(loc.remove(&pfx("10.0.0.0/8")).is_some());
        assert!(loc.remove(&pfx("2001:db8::/32")).is_some());
        assert_eq!(loc.len(), all.len() - 2);
        assert!(loc.get_mut(&pfx("10.0.0.0/8")).is_none());
    }

    #[test]
    fn ipv4_prefixes_spread_over_every_shard() {
        let mut loc = Loc::default();
        for i in 0..16_000u32 {
            let p = Prefix::new(IpAddr::V4(Ipv4Addr::from(0x0a60_0000 + i)), 32).unwrap();
            loc.entry(p);
        }
        for shard in loc.v4.tables.iter() {
            assert!((700..1300).contains(&shard.len()), "{}", shard.len());
        }
        // /24s (low bits zero) spread too.
        let mut loc = Loc::default();
        for i in 0..16_000u32 {
            let p = Prefix::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 8))), 24).unwrap();
            loc.entry(p);
        }
        assert!(loc.v4.tables.iter().all(|s| (700..1300).contains(&s.len())));
        assert_eq!(loc.len(), 16_000);
    }

    #[test]
    fn table_bytes_counts_buckets() {
        let mut m: FastMap<u64, u64> = FastMap::default();
        assert_eq!(table_bytes(m.capacity(), 16), 0);
        for i in 0..100_000 {
            m.insert(i, i);
        }
        // 100,000 entries need 131,072 buckets (capacity 114,688).
        assert_eq!(m.capacity(), 114_688);
        assert_eq!(table_bytes(m.capacity(), 16), 131_072 * 17 + 16);
        for (cap, buckets) in [(3, 4), (7, 8), (14, 16), (28, 32)] {
            assert_eq!(table_bytes(cap, 1), buckets * 2 + 16, "{cap}");
        }
    }
}
