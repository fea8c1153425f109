//! The key layout: where each model object lives in the store, and which object a key names.
//!
//! Role: the original's etcd layout, exactly (`etcdctl get --prefix /calico` on our etcd reads like the
//! original's), shared by every backend. Inputs: model values or their identities ([`Key`]'s variants);
//! stored key strings for [`Key::parse`], which the sync stream uses to route each change. Outputs: key
//! strings and prefixes. Values are not handled here.
//!
//! ```text
//! /calico/v1/Ready
//! /calico/v1/config/<Key>                       /calico/v1/host/<h>/config/<Key>
//! /calico/v1/host/<h>/workload/<orch>/<workload>/endpoint/<endpoint>
//! /calico/v1/policy/profile/<name>/tags         /calico/v1/policy/profile/<name>/rules
//! /calico/v1/ipam/v4/pool/<cidr-dashed>         /calico/v1/ipam/v6/pool/<cidr-dashed>
//! /calico/bgp/v1/global/{as_num, node_mesh, loglevel, timers, peer_v4/<ip>, peer_v6/<ip>}
//! /calico/bgp/v1/host/<h>/{ip_addr_v4, ip_addr_v6, as_num, peer_v4/<ip>, peer_v6/<ip>, route_reflector}
//! /calico/bgp/v1/rr_v4/<ip>                     /calico/bgp/v1/rr_v6/<ip>
//! /calico/ipam/v2/assignment/ipv4/block/<cidr-dashed>   (and ipv6)
//! /calico/v1/index/endpoint/<endpoint>          (value: the endpoint's full key)
//! ```
//! `global/timers` and `host/<h>/route_reflector` (`{"cluster_id", "clients"}`: this node reflects
//! routes) are this project's additions (the original had neither timer settings nor node reflectors),
//! and so is the endpoint-id index under [`ENDPOINT_INDEX_PREFIX`] (the API's lookups by endpoint id;
//! not a model object, so [`Key::parse`] ignores it); every other key is the original's. Pool and block keys come from [`IpPool::etcd_key_for`] and [`Block::etcd_key_for`].

use std::{fmt, net::IpAddr};

use ipnet::IpNet;

use crate::{
    acl::EndpointKey,
    ipam::Block,
    model::{Endpoint, IpPool, IpVersion},
};

/// Everything Calico stores.
pub const ROOT: &str = "/calico/";
/// Set to `"true"` once the datastore is initialised.
pub const READY: &str = "/calico/v1/Ready";
/// Cluster-wide Felix configuration.
pub const CONFIG_PREFIX: &str = "/calico/v1/config/";
/// Per-host data (host config and endpoints).
pub const HOST_PREFIX: &str = "/calico/v1/host/";
/// Profiles.
pub const PROFILE_PREFIX: &str = "/calico/v1/policy/profile/";
/// Cluster-wide BGP settings and peers.
pub const BGP_GLOBAL_PREFIX: &str = "/calico/bgp/v1/global/";
/// Per-host BGP settings.
pub const BGP_HOST_PREFIX: &str = "/calico/bgp/v1/host/";
/// The default AS number.
pub const BGP_AS_NUM: &str = "/calico/bgp/v1/global/as_num";
/// The node-to-node mesh switch, `{"enabled": bool}` (on when absent).
pub const BGP_NODE_MESH: &str = "/calico/bgp/v1/global/node_mesh";
/// BIRD's log level in the original.
pub const BGP_LOG_LEVEL: &str = "/calico/bgp/v1/global/loglevel";
/// Cluster-wide BGP timers (this project's addition).
pub const BGP_TIMERS: &str = "/calico/bgp/v1/global/timers";

/// The endpoint-id index: `<prefix><endpoint id>` holds the endpoint's full key (this project's
/// addition; see `api/endpoint_index.rs`).
pub const ENDPOINT_INDEX_PREFIX: &str = "/calico/v1/index/endpoint/";

/// The index entry of an endpoint id: `/calico/v1/index/endpoint/<id>`.
pub fn endpoint_index_key(endpoint_id: &str) -> String {
    format!("{ENDPOINT_INDEX_PREFIX}{endpoint_id}")
}

/// The pools of one family: `/calico/v1/ipam/v4/pool/`.
pub fn pool_prefix(version: IpVersion) -> String {
    format!("/calico/v1/ipam/v{}/pool/", version.number())
}

/// The IPAM blocks of one family: `/calico/ipam/v2/assignment/ipv4/block/`.
pub fn block_prefix(version: IpVersion) -> String {
    format!("/calico/ipam/v2/assignment/ipv{}/block/", version.number())
}

/// The endpoints of one host: `/calico/v1/host/<h>/workload/`.
pub fn host_workloads_prefix(host: &str) -> String {
    format!("{HOST_PREFIX}{host}/workload/")
}

/// The BGP settings of one host: `/calico/bgp/v1/host/<h>/`.
pub fn host_bgp_prefix(host: &str) -> String {
    format!("{BGP_HOST_PREFIX}{host}/")
}

/// Everything of one profile: `/calico/v1/policy/profile/<name>/`.
pub fn profile_prefix(name: &str) -> String {
    format!("{PROFILE_PREFIX}{name}/")
}

/// The route reflectors of one family: `/calico/bgp/v1/rr_v4/`.
pub fn route_reflector_prefix(version: IpVersion) -> String {
    format!("/calico/bgp/v1/rr_v{}/", version.number())
}

/// A parsed key: which object it names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// `/calico/v1/Ready`.
    Ready,
    /// `/calico/v1/config/<name>`.
    Config {
        /// The setting.
        name: String,
    },
    /// `/calico/v1/host/<host>/config/<name>`.
    HostConfig {
        /// The host.
        host: String,
        /// The setting.
        name: String,
    },
    /// `/calico/v1/host/<h>/workload/<orch>/<workload>/endpoint/<endpoint>`.
    Endpoint(EndpointKey),
    /// `/calico/v1/policy/profile/<profile>/tags`.
    ProfileTags {
        /// The profile.
        profile: String,
    },
    /// `/calico/v1/policy/profile/<profile>/rules`.
    ProfileRules {
        /// The profile.
        profile: String,
    },
    /// `/calico/v1/ipam/v4/pool/<cidr-dashed>` (or v6).
    Pool {
        /// The pool's CIDR.
        cidr: IpNet,
    },
    /// [`BGP_AS_NUM`].
    GlobalAsNum,
    /// [`BGP_NODE_MESH`].
    GlobalNodeMesh,
    /// [`BGP_LOG_LEVEL`].
    GlobalLogLevel,
    /// [`BGP_TIMERS`].
    GlobalTimers,
    /// `/calico/bgp/v1/global/peer_v4/<ip>` (or peer_v6).
    GlobalPeer {
        /// The peer's address.
        ip: IpAddr,
    },
    /// `/calico/bgp/v1/host/<host>/ip_addr_v4` (or ip_addr_v6).
    HostIp {
        /// The host.
        host: String,
        /// Which address.
        version: IpVersion,
    },
    /// `/calico/bgp/v1/host/<host>/as_num`.
    HostAsNum {
        /// The host.
        host: String,
    },
    /// `/calico/bgp/v1/host/<host>/route_reflector`: the node is a route reflector.
    HostRouteReflector {
        /// The host.
        host: String,
    },
    /// `/calico/bgp/v1/host/<host>/peer_v4/<ip>` (or peer_v6).
    HostPeer {
        /// The host.
        host: String,
        /// The peer's address.
        ip: IpAddr,
    },
    /// `/calico/bgp/v1/rr_v4/<ip>` (or rr_v6).
    RouteReflector {
        /// The reflector's address.
        ip: IpAddr,
    },
    /// `/calico/ipam/v2/assignment/ipv4/block/<cidr-dashed>` (or ipv6).
    Block {
        /// The block's CIDR.
        cidr: IpNet,
    },
}

fn family(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 6,
    }
}

fn parse_dashed(s: &str) -> Option<IpNet> {
    let (addr, len) = s.rsplit_once('-')?;
    let net: IpNet = format!("{addr}/{len}").parse().ok()?;
    (net.trunc() == net).then_some(net)
}

impl Key {
    /// The key of an endpoint.
    pub fn endpoint(ep: &Endpoint) -> Key {
        Key::Endpoint(EndpointKey::of(ep))
    }

    /// The key of a pool.
    pub fn pool(pool: &IpPool) -> Key {
        Key::Pool { cidr: pool.cidr }
    }

    /// The key of an IPAM block.
    pub fn block(block: &Block) -> Key {
        Key::Block { cidr: block.cidr }
    }

    /// The key string.
    pub fn path(&self) -> String {
        match self {
            Key::Ready => READY.to_owned(),
            Key::Config { name } => format!("{CONFIG_PREFIX}{name}"),
            Key::HostConfig { host, name } => format!("{HOST_PREFIX}{host}/config/{name}"),
            Key::Endpoint(k) => format!(
                "{}{}/{}/endpoint/{}",
                host_workloads_prefix(&k.hostname),
                k.orchestrator,
                k.workload_id,
                k.endpoint_id
            ),
            Key::ProfileTags { profile } => format!("{}tags", profile_prefix(profile)),
            Key::ProfileRules { profile } => format!("{}rules", profile_prefix(profile)),
            Key::Pool { cidr } => IpPool::etcd_key_for(cidr),
            Key::GlobalAsNum => BGP_AS_NUM.to_owned(),
            Key::GlobalNodeMesh => BGP_NODE_MESH.to_owned(),
            Key::GlobalLogLevel => BGP_LOG_LEVEL.to_owned(),
            Key::GlobalTimers => BGP_TIMERS.to_owned(),
            Key::GlobalPeer { ip } => format!("{BGP_GLOBAL_PREFIX}peer_v{}/{ip}", family(ip)),
            Key::HostIp { host, version } => {
                format!("{}ip_addr_v{}", host_bgp_prefix(host), version.number())
            }
            Key::HostAsNum { host } => format!("{}as_num", host_bgp_prefix(host)),
            Key::HostRouteReflector { host } => {
                format!("{}route_reflector", host_bgp_prefix(host))
            }
            Key::HostPeer { host, ip } => {
                format!("{}peer_v{}/{ip}", host_bgp_prefix(host), family(ip))
            }
            Key::RouteReflector { ip } => format!("/calico/bgp/v1/rr_v{}/{ip}", family(ip)),
            Key::Block { cidr } => Block::etcd_key_for(cidr),
        }
    }

    /// Which object `path` names; `None` for keys outside the layout (which callers ignore), and for
    /// keys not in canonical form (an address family that does not match its segment, a CIDR with
    /// host bits, an empty segment), so that `Key::parse(p).map(|k| k.path())` is `Some(p)` or `None`.
    pub fn parse(path: &str) -> Option<Key> {
        let rest = path.strip_prefix(ROOT)?;
        let seg: Vec<&str> = rest.split('/').collect();
        if seg.iter().any(|s| s.is_empty()) {
            return None;
        }
        let s = |x: &str| x.to_owned();
        let key = match seg.as_slice() {
            ["v1", "Ready"] => Key::Ready,
            ["v1", "config", name] => Key::Config { name: s(name) },
            ["v1", "host", host, "config", name] => Key::HostConfig {
                host: s(host),
                name: s(name),
            },
            ["v1", "host", host, "workload", orch, workload, "endpoint", ep] => {
                Key::Endpoint(EndpointKey {
                    hostname: s(host),
                    orchestrator: s(orch),
                    workload_id: s(workload),
                    endpoint_id: s(ep),
                })
            }
            ["v1", "policy", "profile", name, "tags"] => Key::ProfileTags { profile: s(name) },
            ["v1", "policy", "profile", name, "rules"] => Key::ProfileRules { profile: s(name) },
            ["v1", "ipam", "v4" | "v6", "pool", cidr] => Key::Pool {
                cidr: parse_dashed(cidr)?,
            },
            ["bgp", "v1", "global", "as_num"] => Key::GlobalAsNum,
            ["bgp", "v1", "global", "node_mesh"] => Key::GlobalNodeMesh,
            ["bgp", "v1", "global", "loglevel"] => Key::GlobalLogLevel,
            ["bgp", "v1", "global", "timers"] => Key::GlobalTimers,
            ["bgp", "v1", "global", "peer_v4" | "peer_v6", ip] => Key::GlobalPeer {
                ip: ip.parse().ok()?,
            },
            ["bgp", "v1", "host", host, "ip_addr_v4"] => Key::HostIp {
                host: s(host),
                version: IpVersion::V4,
            },
            ["bgp", "v1", "host", host, "ip_addr_v6"] => Key::HostIp {
                host: s(host),
                version: IpVersion::V6,
            },
            ["bgp", "v1", "host", host, "as_num"] => Key::HostAsNum { host: s(host) },
            ["bgp", "v1", "host", host, "route_reflector"] => {
                Key::HostRouteReflector { host: s(host) }
            }
            ["bgp", "v1", "host", host, "peer_v4" | "peer_v6", ip] => Key::HostPeer {
                host: s(host),
                ip: ip.parse().ok()?,
            },
            ["bgp", "v1", "rr_v4" | "rr_v6", ip] => Key::RouteReflector {
                ip: ip.parse().ok()?,
            },
            ["ipam", "v2", "assignment", "ipv4" | "ipv6", "block", cidr] => Key::Block {
                cidr: parse_dashed(cidr)?,
            },
            _ => return None,
        };
        // The family segments (v4/ipv6/peer_v6…) must match the address, and addresses must be in
        // their canonical text form: both hold exactly when the key prints back to `path`.
        (key.path() == path).then_some(key)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EndpointState, ORCHESTRATOR_DOCKER};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Every example of the reference's layout, as (key, path).
    fn reference_examples() -> Vec<(Key, &'static str)> {
        let h = || "core-01".to_owned();
        vec![
            (Key::Ready, "/calico/v1/Ready"),
            (
                Key::Config {
                    name: "LogSeverityFile".into(),
                },
                "/calico/v1/config/LogSeverityFile",
            ),
            (
                Key::HostConfig {
                    host: h(),
                    name: "DefaultEndpointToHostAction".into(),
                },
                "/calico/v1/host/core-01/config/DefaultEndpointToHostAction",
            ),
            (
                Key::Endpoint(EndpointKey {
                    hostname: h(),
                    orchestrator: "docker".into(),
                    workload_id: "3f2a9c".into(),
                    endpoint_id: "0123456789abcdef".into(),
                }),
                "/calico/v1/host/core-01/workload/docker/3f2a9c/endpoint/0123456789abcdef",
            ),
            (
                Key::ProfileTags {
                    profile: "WEB".into(),
                },
                "/calico/v1/policy/profile/WEB/tags",
            ),
            (
                Key::ProfileRules {
                    profile: "WEB".into(),
                },
                "/calico/v1/policy/profile/WEB/rules",
            ),
            (
                Key::Pool {
                    cidr: net("192.168.0.0/16"),
                },
                "/calico/v1/ipam/v4/pool/192.168.0.0-16",
            ),
            (
                Key::Pool {
                    cidr: net("fd80:24e2:f998:72d6::/64"),
                },
                "/calico/v1/ipam/v6/pool/fd80:24e2:f998:72d6::-64",
            ),
            (Key::GlobalAsNum, "/calico/bgp/v1/global/as_num"),
            (Key::GlobalNodeMesh, "/calico/bgp/v1/global/node_mesh"),
            (Key::GlobalLogLevel, "/calico/bgp/v1/global/loglevel"),
            (Key::GlobalTimers, "/calico/bgp/v1/global/timers"),
            (
                Key::GlobalPeer {
                    ip: ip("172.17.8.200"),
                },
                "/calico/bgp/v1/global/peer_v4/172.17.8.200",
            ),
            (
                Key::GlobalPeer { ip: ip("fd00::1") },
                "/calico/bgp/v1/global/peer_v6/fd00::1",
            ),
            (
                Key::HostIp {
                    host: h(),
                    version: IpVersion::V4,
                },
                "/calico/bgp/v1/host/core-01/ip_addr_v4",
            ),
            (
                Key::HostIp {
                    host: h(),
                    version: IpVersion::V6,
                },
                "/calico/bgp/v1/host/core-01/ip_addr_v6",
            ),
            (
                Key::HostAsNum { host: h() },
                "/calico/bgp/v1/host/core-01/as_num",
            ),
            (
                Key::HostRouteReflector { host: h() },
                "/calico/bgp/v1/host/core-01/route_reflector",
            ),
            (
                Key::HostPeer {
                    host: h(),
                    ip: ip("10.0.0.1"),
                },
                "/calico/bgp/v1/host/core-01/peer_v4/10.0.0.1",
            ),
            (
                Key::HostPeer {
                    host: h(),
                    ip: ip("2001:db8::1"),
                },
                "/calico/bgp/v1/host/core-01/peer_v6/2001:db8::1",
            ),
            (
                Key::RouteReflector {
                    ip: ip("172.17.8.10"),
                },
                "/calico/bgp/v1/rr_v4/172.17.8.10",
            ),
            (
                Key::RouteReflector { ip: ip("fd00::a") },
                "/calico/bgp/v1/rr_v6/fd00::a",
            ),
            (
                Key::Block {
                    cidr: net("192.168.0.64/26"),
                },
                "/calico/ipam/v2/assignment/ipv4/block/192.168.0.64-26",
            ),
            (
                Key::Block {
                    cidr: net("fd80:24e2:f998:72d6::40/122"),
                },
                "/calico/ipam/v2/assignment/ipv6/block/fd80:24e2:f998:72d6::40-122",
            ),
        ]
    }

    #[test]
    fn layout_matches_reference_and_round_trips() {
        for (key, path) in reference_examples() {
            assert_eq!(key.path(), path);
            assert_eq!(key.to_string(), path);
            assert_eq!(Key::parse(path), Some(key), "{path}");
        }
    }

    #[test]
    fn model_helpers_agree_with_the_layout() {
        let mut pool = IpPool::new(net("192.168.0.0/16"));
        pool.ipip = true;
        assert_eq!(Key::pool(&pool).path(), pool.etcd_key());
        let block: Block = serde_json::from_value(serde_json::json!({
            "cidr": "10.65.0.0/30", "affinity": "host:core-01", "allocations": [null, null, null, null]
        }))
        .unwrap();
        assert_eq!(Key::block(&block).path(), block.etcd_key());
        assert_eq!(
            Key::parse(&block.etcd_key()),
            Some(Key::Block { cidr: block.cidr })
        );
        let ep = Endpoint {
            hostname: "core-02".into(),
            orchestrator: ORCHESTRATOR_DOCKER.into(),
            workload_id: "w1".into(),
            endpoint_id: "e1".into(),
            state: EndpointState::Active,
            name: "cali0123456789a".into(),
            mac: None,
            if_name: None,
            profile_ids: vec![],
            ipv4_nets: vec![],
            ipv6_nets: vec![],
            ipv4_gateway: None,
            ipv6_gateway: None,
        };
        let path = Key::endpoint(&ep).path();
        assert_eq!(
            path,
            "/calico/v1/host/core-02/workload/docker/w1/endpoint/e1"
        );
        assert!(path.starts_with(&host_workloads_prefix("core-02")));
        assert!(path.starts_with(HOST_PREFIX));
    }

    #[test]
    fn prefixes_contain_their_keys() {
        assert_eq!(pool_prefix(IpVersion::V4), "/calico/v1/ipam/v4/pool/");
        assert_eq!(pool_prefix(IpVersion::V6), "/calico/v1/ipam/v6/pool/");
        assert_eq!(
            block_prefix(IpVersion::V4),
            "/calico/ipam/v2/assignment/ipv4/block/"
        );
        assert_eq!(
            block_prefix(IpVersion::V6),
            "/calico/ipam/v2/assignment/ipv6/block/"
        );
        assert_eq!(
            route_reflector_prefix(IpVersion::V4),
            "/calico/bgp/v1/rr_v4/"
        );
        assert_eq!(profile_prefix("WEB"), "/calico/v1/policy/profile/WEB/");
        assert_eq!(host_bgp_prefix("h"), "/calico/bgp/v1/host/h/");
        for (key, path) in reference_examples() {
            assert!(path.starts_with(ROOT));
            let inside = |p: &str| path.starts_with(p);
            match key {
                Key::Pool { cidr } => assert!(inside(&pool_prefix(IpVersion::of_net(&cidr)))),
                Key::Block { cidr } => assert!(inside(&block_prefix(IpVersion::of_net(&cidr)))),
                Key::ProfileTags { .. } | Key::ProfileRules { .. } => {
                    assert!(inside(PROFILE_PREFIX))
                }
                Key::GlobalPeer { .. } | Key::GlobalAsNum | Key::GlobalNodeMesh => {
                    assert!(inside(BGP_GLOBAL_PREFIX))
                }
                Key::HostIp { .. }
                | Key::HostAsNum { .. }
                | Key::HostPeer { .. }
                | Key::HostRouteReflector { .. } => {
                    assert!(inside(&host_bgp_prefix("core-01")))
                }
                Key::Config { .. } => assert!(inside(CONFIG_PREFIX)),
                _ => {}
            }
        }
    }

    #[test]
    fn foreign_and_non_canonical_keys_are_rejected() {
        for p in [
            "",
            "/calico",
            "/calico/",
            "/calico/v1",
            "/calico/v1/Ready/x",
            "/calico/v1/host/h/workload/docker/w/endpoint",
            "/calico/v1/host//workload/docker/w/endpoint/e",
            "/calico/v1/policy/profile/WEB/other",
            "/calico/v1/policy/profile/WEB",
            "/calico/v1/ipam/v4/pool/192.168.0.0/16",
            "/calico/v1/ipam/v6/pool/192.168.0.0-16",
            "/calico/v1/ipam/v4/pool/192.168.0.1-16",
            "/calico/v1/ipam/v4/pool/not-a-cidr",
            "/calico/bgp/v1/global/peer_v6/10.0.0.1",
            "/calico/bgp/v1/global/peer_v4/010.0.0.1",
            "/calico/bgp/v1/global/peer_v6/FD00::1",
            "/calico/bgp/v1/host/h/ip_addr_v5",
            "/calico/bgp/v1/host/h/route_reflector/x",
            "/calico/bgp/v1/host//route_reflector",
            "/calico/bgp/v1/rr_v4/fd00::1",
            "/calico/ipam/v2/assignment/ipv6/block/10.0.0.0-26",
            "/calico/ipam/v1/assignment/ipv4/block/10.0.0.0-26",
            "/other/v1/Ready",
            "/calico/v2/Ready",
        ] {
            assert_eq!(Key::parse(p), None, "{p}");
        }
    }
}
