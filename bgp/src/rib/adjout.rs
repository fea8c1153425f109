//! A peer's Adj-RIB-Out: per prefix, the (path id, attributes) pairs it was sent, compactly.
//!
//! Role: remember what each up peer was last sent, so an export sends only the difference. Every prefix
//! exported to a peer has an entry, so with a full table and several peers this is the speaker's largest
//! structure after the Loc-RIB. The common entry, an IPv4 prefix sent one path without a path id, is 16
//! bytes (address, length, the attributes' pointer) in hashbrown tables found by those fields: 17 bytes
//! a bucket with the control byte, against 49 for a `HashMap<Prefix, Sent>`. Everything else (IPv6,
//! ADD-PATH ids, several paths) lives in a map keyed by [`Prefix`]. The IPv4 tables are split into
//! shards as the Loc-RIB's are ([`super::loc`]), so growing one costs a sixteenth of the whole at a time.
//! Inputs: what a prefix was sent now ([`AdjOut::set`]). Outputs: what it was sent ([`AdjOut::get`]),
//! and iteration in no particular order.

use std::mem::size_of;
use std::sync::Arc;

use super::export::Sent;
use super::hash::FastMap;
use super::loc::{table_bytes, v4_key, V4Entry, V4Key, V4Tables, SHRINK_ABOVE};
use super::RouteAttrs;
use crate::wire::Prefix;

/// An IPv4 prefix sent one path with path id 0.
#[derive(Debug)]
struct V4Sent {
    addr: u32,
    len: u8,
    attrs: Arc<RouteAttrs>,
}

impl V4Entry for V4Sent {
    #[inline]
    fn v4_key(&self) -> V4Key {
        (self.addr, self.len)
    }
}

/// What a prefix was sent: borrowed from either kind of entry.
#[derive(Debug, Clone, Copy)]
pub(super) enum SentRef<'a> {
    /// One path, path id 0.
    One(&'a Arc<RouteAttrs>),
    Pairs(&'a [(u32, Arc<RouteAttrs>)]),
}

impl<'a> SentRef<'a> {
    /// The (path id, attributes) pairs.
    pub fn iter(self) -> impl Iterator<Item = (u32, &'a Arc<RouteAttrs>)> {
        let (one, pairs) = match self {
            SentRef::One(a) => (Some((0, a)), &[][..]),
            SentRef::Pairs(p) => (None, p),
        };
        one.into_iter().chain(pairs.iter().map(|(id, a)| (*id, a)))
    }

    /// How many pairs.
    #[cfg(test)]
    pub fn len(self) -> usize {
        match self {
            SentRef::One(_) => 1,
            SentRef::Pairs(p) => p.len(),
        }
    }
}

/// A peer's Adj-RIB-Out. See the module docs.
#[derive(Debug, Default)]
pub(super) struct AdjOut {
    v4: V4Tables<V4Sent>,
    other: FastMap<Prefix, Sent>,
}

impl AdjOut {
    /// What `prefix` was sent, if anything.
    #[inline]
    pub fn get(&self, prefix: &Prefix) -> Option<SentRef<'_>> {
        if let Some(k) = v4_key(prefix) {
            if let Some(e) = self.v4.get(k) {
                return Some(SentRef::One(&e.attrs));
            }
        }
        self.other.get(prefix).map(|s| SentRef::Pairs(s))
    }

    /// Records what `prefix` was sent now (`None`: nothing, it was withdrawn).
    pub fn set(&mut self, prefix: Prefix, sent: Option<Sent>) {
        let Some(k) = v4_key(&prefix) else {
            match sent {
                Some(s) => {
                    self.other.insert(prefix, s);
                }
                None => self.remove_other(&prefix),
            }
            return;
        };
        match sent {
            Some(Sent::One((0, attrs))) => {
                if !self.other.is_empty() {
                    self.remove_other(&prefix);
                }
                self.v4.insert(V4Sent {
                    addr: k.0,
                    len: k.1,
                    attrs,
                });
            }
            Some(s) => {
                self.v4.remove(k);
                self.other.insert(prefix, s);
            }
            None => {
                self.v4.remove(k);
                if !self.other.is_empty() {
                    self.remove_other(&prefix);
                }
            }
        }
    }

    fn remove_other(&mut self, prefix: &Prefix) {
        if self.other.remove(prefix).is_some()
            && self.other.capacity() > SHRINK_ABOVE
            && self.other.len() < self.other.capacity() / 4
        {
            self.other.shrink_to(self.other.len() * 2);
        }
    }

    /// The number of prefixes sent.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }

    /// The number of (prefix, path) pairs sent.
    pub fn paths(&self) -> usize {
        self.v4.len() + self.other.values().map(|s| s.len()).sum::<usize>()
    }

    /// Forgets everything (the session went down) and gives the memory back.
    pub fn clear(&mut self) {
        *self = AdjOut::default();
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Prefix, SentRef<'_>)> {
        let v4 = self.v4.iter().map(|e| {
            // The key came from a valid IPv4 prefix.
            let p = Prefix::new(std::net::Ipv4Addr::from(e.addr).into(), e.len)
                .expect("an IPv4 key holds a valid prefix");
            (p, SentRef::One(&e.attrs))
        });
        v4.chain(self.other.iter().map(|(p, s)| (*p, SentRef::Pairs(s))))
    }

    /// The bytes of its allocations: the tables at their capacity and the slices of several paths.
    pub fn heap_bytes(&self) -> usize {
        self.v4.allocation_size()
            + table_bytes(self.other.capacity(), size_of::<(Prefix, Sent)>())
            + self.other.values().map(Sent::heap_bytes).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::loc::SHARDS;
    use crate::wire::PathAttributes;

    fn pfx(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    fn attrs(med: u32) -> Arc<RouteAttrs> {
        Arc::new(RouteAttrs {
            attrs: PathAttributes {
                med: Some(med),
                ..PathAttributes::default()
            },
            next_hop: None,
        })
    }

    fn pairs(a: &AdjOut, p: &str) -> Vec<(u32, u32)> {
        a.get(&pfx(p))
            .map(|s| {
                s.iter()
                    .map(|(id, at)| (id, at.attrs.med.unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn entries_move_between_the_compact_and_the_general_table() {
        assert_eq!(size_of::<V4Sent>(), 16);
        let mut a = AdjOut::default();
        // One path without an id: compact.
        a.set(pfx("10.0.0.0/8"), Some(Sent::One((0, attrs(1)))));
        assert_eq!(pairs(&a, "10.0.0.0/8"), [(0, 1)]);
        assert!(a.other.is_empty());
        // ADD-PATH ids, several paths: general; the compact entry goes.
        a.set(
            pfx("10.0.0.0/8"),
            Some(Sent::Many(vec![(1, attrs(2)), (2, attrs(3))].into())),
        );
        assert_eq!(pairs(&a, "10.0.0.0/8"), [(1, 2), (2, 3)]);
        assert_eq!(a.v4.len(), 0);
        a.set(pfx("10.0.0.0/8"), Some(Sent::One((7, attrs(4)))));
        assert_eq!(pairs(&a, "10.0.0.0/8"), [(7, 4)]);
        // Back to compact, and the general entry goes.
        a.set(pfx("10.0.0.0/8"), Some(Sent::One((0, attrs(5)))));
        assert_eq!(pairs(&a, "10.0.0.0/8"), [(0, 5)]);
        assert!(a.other.is_empty());
        // IPv6: general.
        a.set(pfx("2001:db8::/32"), Some(Sent::One((0, attrs(6)))));
        assert_eq!(pairs(&a, "2001:db8::/32"), [(0, 6)]);
        assert_eq!((a.len(), a.paths()), (2, 2));
        let mut all: Vec<(Prefix, usize)> = a.iter().map(|(p, s)| (p, s.len())).collect();
        all.sort();
        assert_eq!(all, [(pfx("10.0.0.0/8"), 1), (pfx("2001:db8::/32"), 1)]);
        // Withdrawn.
        a.set(pfx("10.0.0.0/8"), None);
        a.set(pfx("2001:db8::/32"), None);
        assert!(a.get(&pfx("10.0.0.0/8")).is_none() && a.len() == 0);
    }

    #[test]
    fn a_full_table_costs_17_bytes_a_bucket_and_is_given_back() {
        let mut a = AdjOut::default();
        let shared = attrs(1);
        let n = 100_000u32;
        for i in 0..n {
            let p = Prefix::new(std::net::Ipv4Addr::from(0x0a60_0000 + i).into(), 32).unwrap();
            a.set(p, Some(Sent::One((0, Arc::clone(&shared)))));
        }
        assert_eq!(a.len(), n as usize);
        // At most two buckets an entry (a table grows past 7/8 full), 17 bytes each.
        assert!(
            a.heap_bytes() < n as usize * 2 * 17 + 4096,
            "{}",
            a.heap_bytes()
        );
        for i in 0..n {
            let p = Prefix::new(std::net::Ipv4Addr::from(0x0a60_0000 + i).into(), 32).unwrap();
            a.set(p, None);
        }
        // What the tables keep at least (they shrink no further than 64 buckets).
        assert!(
            a.heap_bytes() <= SHARDS * (64 * 17 + 16),
            "{}",
            a.heap_bytes()
        );
        assert_eq!(Arc::strong_count(&shared), 1);
    }
}
