//! Felix's input: the desired state of one host, as the node glue hands it over.
//!
//! Endpoints are the workloads on this host (their host-side interface, MAC, addresses and ordered
//! profiles); profiles carry compiled rules whose tags are already resolved to tag ids; tags carry the
//! addresses of every endpoint in the cluster that has them. Plain data, ordered maps so that rendering
//! is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// A workload endpoint on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host side of the workload's veth (`cali…`).
    pub iface: String,
    pub mac: Mac,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    /// Profiles in order: the first whose rules decide a packet wins.
    pub profiles: Vec<String>,
}

impl Endpoint {
    /// Its IPv4 and IPv6 addresses.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ipv4
            .iter()
            .map(|a| IpAddr::V4(*a))
            .chain(self.ipv6.iter().map(|a| IpAddr::V6(*a)))
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Allow,
    Deny,
}

/// The IP protocol a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    /// Any other protocol, by number.
    Number(u8),
}

/// A port or an inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Port {
    One(u16),
    Range(u16, u16),
}

/// A compiled rule: every field optional; an absent field matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    pub action: Option<Action>,
    pub protocol: Option<Protocol>,
    pub src_net: Option<IpNet>,
    pub src_tag: Option<String>,
    pub src_ports: Vec<Port>,
    pub dst_net: Option<IpNet>,
    pub dst_tag: Option<String>,
    pub dst_ports: Vec<Port>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    /// 4 or 6; absent means both, unless a net or the protocol says otherwise.
    pub ip_version: Option<u8>,
}

/// A profile's compiled rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Rules for traffic to the endpoint.
    pub inbound: Vec<Rule>,
    /// Rules for traffic from the endpoint.
    pub outbound: Vec<Rule>,
}

/// The addresses of every endpoint whose profiles carry a tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagMembers {
    pub ipv4: BTreeSet<Ipv4Addr>,
    pub ipv6: BTreeSet<Ipv6Addr>,
}

/// What to do with traffic from an endpoint to the host itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointToHost {
    /// Drop it (the default, as in Calico).
    #[default]
    Drop,
    /// Accept it.
    Accept,
    /// Leave it to the host's other rules.
    Return,
}

/// Host-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The prefix of endpoint interfaces (`cali`).
    pub iface_prefix: String,
    pub endpoint_to_host: EndpointToHost,
    /// The host's IPv6 address, which IPv6 endpoints use as their gateway (answered by a proxy neighbour
    /// on each endpoint interface).
    pub ipv6_gateway: Option<Ipv6Addr>,
    /// The IP pools: traffic from a pool with nat-outgoing to anywhere outside every pool is masqueraded.
    pub pools: Vec<Pool>,
    /// The pools that ask for IP-in-IP between hosts. Felix builds no tunnels: it checks the kernel and
    /// reports each such pool's IPIP part as refused ([`crate::agent::Felix::refused_pools`]); the
    /// pools' other settings are applied as usual.
    pub ipip_pools: Vec<IpNet>,
}

/// An IP pool as Felix needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub cidr: IpNet,
    pub nat_outgoing: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            iface_prefix: "cali".to_string(),
            endpoint_to_host: EndpointToHost::Drop,
            ipv6_gateway: None,
            pools: Vec::new(),
            ipip_pools: Vec::new(),
        }
    }
}

/// Everything Felix makes the kernel hold on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// Local endpoints by endpoint id.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// Tag members by tag name.
    pub tags: BTreeMap<String, TagMembers>,
    pub config: Config,
}
