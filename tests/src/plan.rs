//! The lab's address plan: which addresses and names a lab in a given slot uses.
//!
//! Every lab takes a slot (0–15). Slot `s` owns the IPv4 subnets 10.250.(2s).0/24 (the fabric, subnet A)
//! and 10.250.(2s+1).0/24 (behind the ToR, subnet B), and the IPv6 subnets fd00:250:0:(2s)::/64 and
//! fd00:250:0:(2s+1)::/64. In subnet A, .1 / ::1 is the management address in the root namespace, host
//! `hN` is .(10+N) / ::(10+N) (written in decimal digits), and the ToR is .254 / ::254 in each subnet.
//! Slot 0 is the demo's, so its addresses are the documented ones (10.250.0.1, fd00:250::1, …); tests
//! take slots 1–15 so that several labs can run at once. Container pools (10.65.0.0/16, fd00:65::/64)
//! are never routed from the root namespace. Pure functions: no I/O.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The number of slots; tests use 1..SLOTS, the demo uses 0.
pub const SLOTS: u8 = 16;

/// One of the two L2 segments of a lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subnet {
    /// The fabric: hosts, the management address and the ToR's first leg.
    A,
    /// The second subnet, reached from A only through the ToR.
    B,
}

impl Subnet {
    fn index(self) -> u8 {
        match self {
            Subnet::A => 0,
            Subnet::B => 1,
        }
    }

    /// The bridge in the switch namespace that forms this segment.
    pub fn bridge(self) -> &'static str {
        match self {
            Subnet::A => "br0",
            Subnet::B => "br1",
        }
    }

    /// The other subnet.
    pub fn other(self) -> Subnet {
        match self {
            Subnet::A => Subnet::B,
            Subnet::B => Subnet::A,
        }
    }
}

/// The addresses of a lab in one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub slot: u8,
}

impl Plan {
    pub fn new(slot: u8) -> Plan {
        assert!(slot < SLOTS, "lab slot {slot} out of range");
        Plan { slot }
    }

    fn third_octet(self, subnet: Subnet) -> u8 {
        2 * self.slot + subnet.index()
    }

    /// The IPv4 address `.host` in `subnet`.
    pub fn v4(self, subnet: Subnet, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 250, self.third_octet(subnet), host)
    }

    /// The IPv6 address `::host` in `subnet`, the host part written with the same digits as IPv4's.
    pub fn v6(self, subnet: Subnet, host: u8) -> Ipv6Addr {
        // 11 → ::11 (hex 0x11), so h1 is 10.250.0.11 and fd00:250::11.
        let digits = u16::from_str_radix(&host.to_string(), 16).unwrap_or(u16::from(host));
        Ipv6Addr::new(
            0xfd00,
            0x250,
            0,
            u16::from(self.third_octet(subnet)),
            0,
            0,
            0,
            digits,
        )
    }

    /// The IPv4 subnet in CIDR notation.
    pub fn v4_net(self, subnet: Subnet) -> String {
        format!("{}/24", self.v4(subnet, 0))
    }

    /// The IPv6 subnet in CIDR notation.
    pub fn v6_net(self, subnet: Subnet) -> String {
        format!("{}/64", Ipv6Addr::from(u128::from(self.v6(subnet, 0))))
    }

    /// The management address in the root namespace (where the master and etcd listen).
    pub fn mgmt_v4(self) -> Ipv4Addr {
        self.v4(Subnet::A, 1)
    }

    /// The management IPv6 address in the root namespace.
    pub fn mgmt_v6(self) -> Ipv6Addr {
        self.v6(Subnet::A, 1)
    }

    /// The ToR's address on `subnet`.
    pub fn tor_v4(self, subnet: Subnet) -> Ipv4Addr {
        self.v4(subnet, 254)
    }

    /// The ToR's IPv6 address on `subnet`.
    pub fn tor_v6(self, subnet: Subnet) -> Ipv6Addr {
        self.v6(subnet, 254)
    }

    /// The address of host `hN` (N from 1) in `subnet`.
    pub fn host_v4(self, subnet: Subnet, n: u8) -> Ipv4Addr {
        self.v4(subnet, 10 + n)
    }

    /// The IPv6 address of host `hN` in `subnet`.
    pub fn host_v6(self, subnet: Subnet, n: u8) -> Ipv6Addr {
        self.v6(subnet, 10 + n)
    }

    /// The root namespace's end of the management link (unique per slot, within IFNAMSIZ).
    pub fn mgmt_link(self) -> String {
        format!("lab{}mgmt", self.slot)
    }
}

/// The most hosts a lab may have (their addresses are .11 to .99).
pub const MAX_HOSTS: u8 = 89;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_zero_has_the_documented_addresses() {
        let p = Plan::new(0);
        assert_eq!(p.mgmt_v4().to_string(), "10.250.0.1");
        assert_eq!(p.mgmt_v6().to_string(), "fd00:250::1");
        assert_eq!(p.host_v4(Subnet::A, 1).to_string(), "10.250.0.11");
        assert_eq!(p.host_v6(Subnet::A, 1).to_string(), "fd00:250::11");
        assert_eq!(p.tor_v4(Subnet::B).to_string(), "10.250.1.254");
        assert_eq!(p.tor_v6(Subnet::B).to_string(), "fd00:250:0:1::254");
        assert_eq!(p.v4_net(Subnet::A), "10.250.0.0/24");
        assert_eq!(p.v6_net(Subnet::B), "fd00:250:0:1::/64");
        assert_eq!(p.mgmt_link(), "lab0mgmt");
    }

    #[test]
    fn slots_never_overlap() {
        let mut seen = std::collections::HashSet::new();
        for slot in 0..SLOTS {
            let p = Plan::new(slot);
            for subnet in [Subnet::A, Subnet::B] {
                assert!(seen.insert(p.v4_net(subnet)), "{slot} {subnet:?}");
                assert!(seen.insert(p.v6_net(subnet)), "{slot} {subnet:?}");
            }
            assert!(p.mgmt_link().len() <= 15);
        }
        assert_eq!(
            Plan::new(15).host_v4(Subnet::B, MAX_HOSTS).to_string(),
            "10.250.31.99"
        );
    }
}
