//! Serializable views of the Loc-RIB for `calico-bgp routes` and the embedding program.
//!
//! Role: turn [`crate::rib::RouteView`]s into plain [`RouteEntry`]s (prefix, paths with their source,
//! next hop, AS path, communities and best/ECMP/stale marks), and convert between the RIB's prefix and
//! next-hop types and the standard ones. Pure.
//! Inputs: the RIB's views. Outputs: [`RouteEntry`]s, prefixes, addresses.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::rib::{RouteView, Source};
use crate::wire::{LargeCommunity, NextHop, Origin, Prefix};

/// One prefix of the Loc-RIB.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEntry {
    /// The prefix.
    pub prefix: IpNet,
    /// Its paths: the best first, then the rest of the ECMP set, then the others.
    pub paths: Vec<RoutePath>,
}

/// One path of a prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutePath {
    /// The peer it came from; `None` for a route we originate.
    pub peer: Option<IpAddr>,
    /// Its next hop (`None`: ours, for a local route without one).
    pub next_hop: Option<IpAddr>,
    /// The AS path, flattened (sets in order).
    pub as_path: Vec<u32>,
    /// "igp", "egp" or "incomplete".
    pub origin: String,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// MED.
    pub med: Option<u32>,
    /// Standard communities as "A:B".
    pub communities: Vec<String>,
    /// Large communities as "A:B:C".
    pub large_communities: Vec<String>,
    /// The best path.
    pub best: bool,
    /// In the ECMP set (the best path included).
    pub multipath: bool,
    /// Kept through the peer's graceful restart.
    pub stale: bool,
}

/// The entries of the whole Loc-RIB.
pub(super) fn entries(views: Vec<RouteView>) -> Vec<RouteEntry> {
    views.into_iter().filter_map(entry).collect()
}

fn entry(v: RouteView) -> Option<RouteEntry> {
    Some(RouteEntry {
        prefix: to_ipnet(&v.prefix)?,
        paths: v
            .paths
            .iter()
            .map(|p| {
                let a = &p.attrs.attrs;
                RoutePath {
                    peer: match p.source {
                        Source::Local => None,
                        Source::Peer(addr) => Some(addr),
                    },
                    next_hop: p.attrs.next_hop.map(next_hop_ip),
                    as_path: a
                        .as_path
                        .iter()
                        .flat_map(|path| path.segments.iter())
                        .flat_map(|s| s.asns.iter().copied())
                        .collect(),
                    origin: match a.origin {
                        Some(Origin::Igp) => "igp",
                        Some(Origin::Egp) => "egp",
                        _ => "incomplete",
                    }
                    .to_string(),
                    local_pref: a.local_pref,
                    med: a.med,
                    communities: a.communities.iter().map(|c| community(*c)).collect(),
                    large_communities: a.large_communities.iter().map(large).collect(),
                    best: p.best,
                    multipath: p.multipath,
                    stale: p.stale,
                }
            })
            .collect(),
    })
}

/// "A:B" for a standard community.
pub fn community(c: u32) -> String {
    format!("{}:{}", c >> 16, c & 0xffff)
}

/// "A:B:C" for a large community.
pub fn large(c: &LargeCommunity) -> String {
    format!("{}:{}:{}", c.global_admin, c.local1, c.local2)
}

/// The address of a next hop (the global one for IPv6).
pub(super) fn next_hop_ip(nh: NextHop) -> IpAddr {
    match nh {
        NextHop::V4(a) => IpAddr::V4(a),
        NextHop::V6 { global, link_local } => match link_local {
            Some(ll) if global.is_unspecified() => IpAddr::V6(ll),
            _ => IpAddr::V6(global),
        },
    }
}

/// The RIB's prefix for an `IpNet` (host bits masked off).
pub(super) fn to_prefix(net: &IpNet) -> Option<Prefix> {
    Prefix::new(net.addr(), net.prefix_len())
}

/// The `IpNet` of a RIB prefix.
pub(super) fn to_ipnet(p: &Prefix) -> Option<IpNet> {
    IpNet::new(p.addr(), p.len()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities_print_as_bgp_tools_do() {
        assert_eq!(community((65001 << 16) | 42), "65001:42");
        let l = LargeCommunity {
            global_admin: 4_200_000_001,
            local1: 1,
            local2: 2,
        };
        assert_eq!(large(&l), "4200000001:1:2");
        let net: IpNet = "10.65.1.7/24".parse().unwrap();
        let p = to_prefix(&net).unwrap();
        assert_eq!(p.to_string(), "10.65.1.0/24");
        assert_eq!(to_ipnet(&p).unwrap().to_string(), "10.65.1.0/24");
    }
}
