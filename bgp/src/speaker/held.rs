//! What the kernel holds of our routes, kept compactly by the FIB task.
//!
//! Role: answer "does the kernel hold this prefix through these gateways?" for every route the speaker
//! installed, at a few bytes per route: 100,000 /32s must not cost more memory here than the kernel's own
//! table. IPv4 keys are `(u32, u8)` (not the 18-byte `(IpAddr, u8)`), and each route stores a `u32` index
//! into a table of distinct gateway sets, which are few (one per next hop or ECMP set) and reference
//! counted so a set no route uses any more is freed and its slot reused.
//! Inputs: inserts and removals as the kernel acknowledges them. Outputs: lookups, the count, the prefixes.

use std::net::IpAddr;

use super::fibtask::Gateways;
use crate::fib::Prefix;
use crate::rib::hash::FastMap;

/// Our routes in the kernel: prefix → gateway set. See the module docs.
#[derive(Debug, Default)]
pub(super) struct Held {
    v4: FastMap<(u32, u8), u32>,
    v6: FastMap<(u128, u8), u32>,
    /// Gateway sets by slot, with the number of routes using each (0: a free slot).
    sets: Vec<(Option<Gateways>, u32)>,
    slots: FastMap<Gateways, u32>,
    free: Vec<u32>,
}

impl Held {
    /// The number of routes held.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The gateways `prefix` is held through.
    pub fn get(&self, prefix: &Prefix) -> Option<&Gateways> {
        let slot = match prefix.0 {
            IpAddr::V4(a) => self.v4.get(&(u32::from(a), prefix.1)),
            IpAddr::V6(a) => self.v6.get(&(u128::from(a), prefix.1)),
        }?;
        self.sets[*slot as usize].0.as_ref()
    }

    /// Whether `prefix` is held.
    pub fn contains(&self, prefix: &Prefix) -> bool {
        match prefix.0 {
            IpAddr::V4(a) => self.v4.contains_key(&(u32::from(a), prefix.1)),
            IpAddr::V6(a) => self.v6.contains_key(&(u128::from(a), prefix.1)),
        }
    }

    /// Record that the kernel holds `prefix` through `gws` (replacing what it held before).
    pub fn insert(&mut self, prefix: Prefix, gws: &Gateways) {
        let slot = self.acquire(gws);
        let old = match prefix.0 {
            IpAddr::V4(a) => self.v4.insert((u32::from(a), prefix.1), slot),
            IpAddr::V6(a) => self.v6.insert((u128::from(a), prefix.1), slot),
        };
        if let Some(old) = old {
            self.release(old);
        }
    }

    /// Record that the kernel holds no route for `prefix`.
    pub fn remove(&mut self, prefix: &Prefix) {
        let old = match prefix.0 {
            IpAddr::V4(a) => self.v4.remove(&(u32::from(a), prefix.1)),
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
            .keys()
            .map(|(a, l)| (IpAddr::from(std::net::Ipv4Addr::from(*a)), *l));
        let v6 = self
            .v6
            .keys()
            .map(|(a, l)| (IpAddr::from(std::net::Ipv6Addr::from(*a)), *l));
        v4.chain(v6)
    }

    /// The number of distinct gateway sets in use.
    #[cfg(test)]
    fn sets_in_use(&self) -> usize {
        self.slots.len()
    }

    fn acquire(&mut self, gws: &Gateways) -> u32 {
        if let Some(&slot) = self.slots.get(gws) {
            self.sets[slot as usize].1 += 1;
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
        slot
    }

    fn release(&mut self, slot: u32) {
        let entry = &mut self.sets[slot as usize];
        entry.1 -= 1;
        if entry.1 == 0 {
            if let Some(g) = entry.0.take() {
                self.slots.remove(&g);
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
    fn an_ipv4_route_costs_at_most_sixteen_bytes_of_table() {
        // Key and slot, without the hash table's control byte: what keeps 100,000 routes near 1.7 MB.
        assert!(std::mem::size_of::<((u32, u8), u32)>() <= 12);
    }
}
