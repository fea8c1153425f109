//! What the kernel holds of our routes, kept compactly by the FIB task.
//!
//! Role: answer "does the kernel hold this prefix through these gateways?" for every route the speaker
//! installed, at a few bytes per route: 100,000 /32s must not cost more memory here than the kernel's own
//! table. Each route stores a `u32` index into a table of distinct gateway sets, which are few (one per next
//! hop or ECMP set) and reference counted so a set no route uses any more is freed and its slot reused. IPv4
//! routes live in a [`V4Map`]: prefix and slot in one `u64`, 9 bytes a bucket (1.2 MB for 100,000 routes,
//! where a `HashMap<(u32, u8), u32>` took 1.7 MB); a slot too large for it (more than 16 million gateway
//! sets at once) goes to a plain map.
//! Inputs: inserts and removals as the kernel acknowledges them. Outputs: lookups, the count, the prefixes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::fibtask::Gateways;
use super::v4map::{self, V4Map};
use crate::fib::Prefix;
use crate::rib::hash::FastMap;

/// Our routes in the kernel: prefix → gateway set. See the module docs.
#[derive(Debug, Default)]
pub(super) struct Held {
    v4: V4Map,
    /// IPv4 routes whose slot [`V4Map`] cannot hold.
    v4_wide: FastMap<u64, u32>,
    v6: FastMap<(u128, u8), u32>,
    /// Gateway sets by slot, with the number of routes using each (0: a free slot).
    sets: Vec<(Option<Gateways>, u32)>,
    slots: FastMap<Gateways, u32>,
    free: Vec<u32>,
    /// The last set acquired and its slot: consecutive routes mostly share one (no hashing of the set).
    last: Option<(Gateways, u32)>,
    /// Tests: treat every slot as too large for the compact table.
    #[cfg(test)]
    force_wide: bool,
}

impl Held {
    /// The number of routes held.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v4_wide.len() + self.v6.len()
    }

    /// The slot `prefix` is held through.
    fn slot(&self, prefix: &Prefix) -> Option<u32> {
        match prefix.0 {
            IpAddr::V4(a) => {
                let k = v4map::key(u32::from(a), prefix.1);
                self.v4.get(k).or_else(|| {
                    (!self.v4_wide.is_empty())
                        .then(|| self.v4_wide.get(&k).copied())
                        .flatten()
                })
            }
            IpAddr::V6(a) => self.v6.get(&(u128::from(a), prefix.1)).copied(),
        }
    }

    /// The gateways `prefix` is held through.
    pub fn get(&self, prefix: &Prefix) -> Option<&Gateways> {
        let slot = self.slot(prefix)?;
        self.sets[slot as usize].0.as_ref()
    }

    /// Whether `prefix` is held.
    pub fn contains(&self, prefix: &Prefix) -> bool {
        self.slot(prefix).is_some()
    }

    /// Record that the kernel holds `prefix` through `gws` (replacing what it held before).
    pub fn insert(&mut self, prefix: Prefix, gws: &Gateways) {
        let slot = self.acquire(gws);
        let old = match prefix.0 {
            IpAddr::V4(a) => {
                let k = v4map::key(u32::from(a), prefix.1);
                if self.fits(slot) {
                    let old = self.v4.insert(k, slot);
                    match old {
                        None if !self.v4_wide.is_empty() => self.v4_wide.remove(&k),
                        old => old,
                    }
                } else {
                    let old = self.v4_wide.insert(k, slot);
                    old.or_else(|| self.v4.remove(k))
                }
            }
            IpAddr::V6(a) => self.v6.insert((u128::from(a), prefix.1), slot),
        };
        if let Some(old) = old {
            self.release(old);
        }
    }

    /// Whether `slot` fits the compact IPv4 table.
    fn fits(&self, slot: u32) -> bool {
        #[cfg(test)]
        if self.force_wide {
            return false;
        }
        slot <= v4map::MAX_VALUE
    }

    /// Record that the kernel holds no route for `prefix`.
    pub fn remove(&mut self, prefix: &Prefix) {
        let old = match prefix.0 {
            IpAddr::V4(a) => {
                let k = v4map::key(u32::from(a), prefix.1);
                match self.v4.remove(k) {
                    None if !self.v4_wide.is_empty() => self.v4_wide.remove(&k),
                    old => old,
                }
            }
            IpAddr::V6(a) => self.v6.remove(&(u128::from(a), prefix.1)),
        };
        if let Some(old) = old {
            self.release(old);
        }
    }

    /// Every prefix held.
    pub fn prefixes(&self) -> impl Iterator<Item = Prefix> + '_ {
        let v4 = self
            .v4
            .iter()
            .map(|(k, _)| k)
            .chain(self.v4_wide.keys().copied())
            .map(|k| {
                let (a, l) = v4map::unkey(k);
                (IpAddr::from(Ipv4Addr::from(a)), l)
            });
        let v6 = self
            .v6
            .keys()
            .map(|(a, l)| (IpAddr::from(Ipv6Addr::from(*a)), *l));
        v4.chain(v6)
    }

    /// The number of distinct gateway sets in use.
    #[cfg(test)]
    fn sets_in_use(&self) -> usize {
        self.slots.len()
    }

    fn acquire(&mut self, gws: &Gateways) -> u32 {
        let known = match &self.last {
            Some((g, slot)) if Arc::ptr_eq(g, gws) => Some(*slot),
            _ => self.slots.get(gws).copied(),
        };
        if let Some(slot) = known {
            self.sets[slot as usize].1 += 1;
            self.last = Some((Arc::clone(gws), slot));
            return slot;
        }
        let slot = match self.free.pop() {
            Some(s) => {
                self.sets[s as usize] = (Some(gws.clone()), 1);
                s
            }
            None => {
                self.sets.push((Some(gws.clone()), 1));
                (self.sets.len() - 1) as u32
            }
        };
        self.slots.insert(gws.clone(), slot);
        self.last = Some((Arc::clone(gws), slot));
        slot
    }

    fn release(&mut self, slot: u32) {
        let entry = &mut self.sets[slot as usize];
        entry.1 -= 1;
        if entry.1 == 0 {
            if let Some(g) = entry.0.take() {
                self.slots.remove(&g);
            }
            if self.last.as_ref().is_some_and(|(_, s)| *s == slot) {
                self.last = None;
            }
            self.free.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, len: u8) -> Prefix {
        (s.parse().unwrap(), len)
    }

    fn g(s: &[&str]) -> Gateways {
        s.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn routes_share_gateway_sets_and_unused_sets_are_freed() {
        let mut h = Held::default();
        let a = g(&["10.0.0.1"]);
        let b = g(&["10.0.0.1", "10.0.0.2"]);
        h.insert(p("10.96.0.1", 32), &a);
        h.insert(p("10.96.0.2", 32), &a);
        h.insert(p("2001:db8::1", 128), &g(&["2001:db8::ff"]));
        assert_eq!(h.len(), 3);
        assert_eq!(h.sets_in_use(), 2);
        assert_eq!(h.get(&p("10.96.0.1", 32)), Some(&a));
        assert!(h.contains(&p("2001:db8::1", 128)));
        assert!(!h.contains(&p("10.96.0.1", 31)));

        // Replacing moves a route to another set; the last user of a set frees it.
        h.insert(p("10.96.0.1", 32), &b);
        assert_eq!(h.get(&p("10.96.0.1", 32)), Some(&b));
        h.remove(&p("2001:db8::1", 128));
        assert_eq!(h.sets_in_use(), 2);
        h.remove(&p("10.96.0.2", 32));
        assert_eq!(h.sets_in_use(), 1);
        assert_eq!(h.get(&p("10.96.0.2", 32)), None);

        // A freed slot is reused, and a new set never aliases an old one.
        let c = g(&["10.0.0.3"]);
        h.insert(p("10.96.0.3", 32), &c);
        assert_eq!(h.get(&p("10.96.0.3", 32)), Some(&c));
        assert_eq!(h.get(&p("10.96.0.1", 32)), Some(&b));
        assert_eq!(h.sets.len(), 3);
        let mut all: Vec<Prefix> = h.prefixes().collect();
        all.sort();
        assert_eq!(all, vec![p("10.96.0.1", 32), p("10.96.0.3", 32)]);
    }

    #[test]
    fn a_slot_too_large_for_the_compact_table_still_works() {
        let mut h = Held::default();
        let a = g(&["10.0.0.1"]);
        // As if 2^24 sets existed: slots beyond the compact table's values.
        h.force_wide = true;
        h.insert(p("10.96.0.1", 32), &a);
        assert_eq!(h.get(&p("10.96.0.1", 32)), Some(&a));
        assert_eq!((h.v4.len(), h.v4_wide.len()), (0, 1));
        // Moving to a set with a small slot moves the route to the compact table.
        h.force_wide = false;
        let b = g(&["10.0.0.2"]);
        h.insert(p("10.96.0.1", 32), &b);
        assert_eq!(h.get(&p("10.96.0.1", 32)), Some(&b));
        assert_eq!((h.v4.len(), h.v4_wide.len()), (1, 0));
        assert_eq!(h.prefixes().collect::<Vec<_>>(), vec![p("10.96.0.1", 32)]);
        h.remove(&p("10.96.0.1", 32));
        assert_eq!(h.len(), 0);
        assert_eq!(h.sets_in_use(), 0);
    }
}
