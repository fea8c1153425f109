//! What the node's BGP speaker should do, from the master's view of the cluster.
//!
//! Pure. Inputs: a [`NodeState`]. Outputs: the speaker's peers ([`peers`]: the node-to-node mesh when
//! it is on, route-reflector sessions, global peers and this node's own peers, with their timers) and
//! the routes it announces ([`local_routes`]: the host's IPAM blocks as aggregates plus the /32 or /128
//! of each local workload outside them), and the blocks to blackhole locally ([`blackholes`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use calico_bgp::speaker::{AfiSafi, LocalRoute, PeerSettings};
use calico_master::model::{BgpPeer, BgpTimers, Host, RouteReflector};
use calico_master::sync::NodeState;
use ipnet::IpNet;

/// The session type as `calicoctl status` shows it.
pub const MESH: &str = "mesh";
/// A global peer.
pub const GLOBAL: &str = "global";
/// A per-node peer (or a route-reflector session).
pub const NODE: &str = "node";

/// The AS this node speaks, once it is registered.
pub fn local_as(state: &NodeState) -> Option<u32> {
    let me = state.host()?;
    Some(me.effective_as(&state.bgp.config).get())
}

/// The route-reflection cluster id this node stamps when it reflects (`None`: not a reflector; the
/// speaker then uses its router id, which it never needs).
pub fn cluster_id(state: &NodeState) -> Option<std::net::Ipv4Addr> {
    Some(state.host()?.route_reflector.as_ref()?.cluster_id)
}

/// The graceful-restart time this node announces (the global setting or its default).
pub fn graceful_restart(state: &NodeState) -> Duration {
    let t = BgpTimers::resolve(BgpTimers::default(), state.bgp.config.timers);
    Duration::from_secs(t.graceful_restart_time.into())
}

/// Every session this node should have, one per peer address (a per-node peer wins over a global
/// one, which wins over the mesh).
pub fn peers(state: &NodeState) -> Vec<PeerSettings> {
    let Some(me) = state.host() else {
        return Vec::new();
    };
    let config = &state.bgp.config;
    let mine = |ip: &IpAddr| match ip {
        IpAddr::V4(a) => me.ipv4 == Some(*a),
        IpAddr::V6(a) => me.ipv6 == Some(*a),
    };
    let reachable = |ip: &IpAddr| match ip {
        IpAddr::V4(_) => me.ipv4.is_some(),
        IpAddr::V6(_) => me.ipv6.is_some(),
    };
    let local_of = |ip: &IpAddr| match ip {
        IpAddr::V4(_) => me.ipv4.map(IpAddr::V4),
        IpAddr::V6(_) => me.ipv6.map(IpAddr::V6),
    };
    let mut out: BTreeMap<IpAddr, PeerSettings> = BTreeMap::new();
    // `own_family`: a session between nodes carries its addresses' family only.
    let mut add = |ip: IpAddr,
                   asn: u32,
                   timers: BgpTimers,
                   rr_client: bool,
                   password: Option<String>,
                   kind: &str,
                   own_family: bool| {
        if mine(&ip) || !reachable(&ip) {
            return;
        }
        let t = BgpTimers::resolve(timers, config.timers);
        out.insert(
            ip,
            PeerSettings {
                address: ip,
                asn,
                passive: false,
                password,
                rr_client,
                hold_time: Duration::from_secs(t.hold_time.into()),
                keepalive: Some(Duration::from_secs(t.keepalive.into())),
                multihop: None,
                graceful_restart: Some(Duration::from_secs(t.graceful_restart_time.into())),
                local_address: local_of(&ip),
                description: kind.to_owned(),
                family: own_family.then_some(if ip.is_ipv4() {
                    AfiSafi::IPV4_UNICAST
                } else {
                    AfiSafi::IPV6_UNICAST
                }),
                ..PeerSettings::default()
            },
        );
    };
    let others = || state.bgp.nodes.iter().filter(|h| h.name != me.name);
    let addresses = |h: &Host| -> Vec<IpAddr> {
        h.ipv4
            .map(IpAddr::V4)
            .into_iter()
            .chain(h.ipv6.map(IpAddr::V6))
            .collect()
    };
    if config.node_mesh {
        for h in others() {
            for ip in addresses(h) {
                add(
                    ip,
                    h.effective_as(config).get(),
                    BgpTimers::default(),
                    false,
                    None,
                    MESH,
                    true,
                );
            }
        }
    }
    // Route reflection (iBGP): a reflector peers with its clients (as rr-clients), a client with every
    // reflector that counts it as a client, and reflectors with each other as ordinary iBGP peers, so
    // what one reflector's clients send reaches the other's. A reflector with an explicit client list
    // peers on the listed addresses (and its clients with it on those families only).
    let mut reflection: Vec<(&Host, IpAddr, bool)> = Vec::new();
    for h in others() {
        if let Some(rr) = &me.route_reflector {
            if let Some(ips) = client_addresses(rr, h) {
                reflection.extend(ips.into_iter().map(|ip| (h, ip, true)));
                continue;
            }
        }
        let served_by_h = h
            .route_reflector
            .as_ref()
            .and_then(|rr| client_addresses(rr, me));
        if let Some(mine) = served_by_h {
            let families: Vec<bool> = mine.iter().map(IpAddr::is_ipv4).collect();
            for ip in addresses(h)
                .into_iter()
                .filter(|ip| families.contains(&ip.is_ipv4()))
            {
                reflection.push((h, ip, false));
            }
        } else if me.route_reflector.is_some() && h.route_reflector.is_some() {
            reflection.extend(addresses(h).into_iter().map(|ip| (h, ip, false)));
        }
    }
    for (h, ip, rr_client) in reflection {
        add(
            ip,
            h.effective_as(config).get(),
            BgpTimers::default(),
            rr_client,
            None,
            NODE,
            true,
        );
    }
    let mut explicit = |p: &BgpPeer, kind: &str| {
        add(
            p.ip,
            p.as_num.get(),
            p.timers,
            p.rr_client,
            p.password.clone(),
            kind,
            false,
        );
    };
    for p in &config.global_peers {
        explicit(p, GLOBAL);
    }
    for p in &me.peers {
        explicit(p, NODE);
    }
    out.into_values().collect()
}

/// The addresses on which reflector `rr` serves `client` (`None`: not its client). With no client
/// list, every node that is not itself a reflector is a client on all its addresses.
fn client_addresses(rr: &RouteReflector, client: &Host) -> Option<Vec<IpAddr>> {
    let all = client
        .ipv4
        .map(IpAddr::V4)
        .into_iter()
        .chain(client.ipv6.map(IpAddr::V6));
    let ips: Vec<IpAddr> = if rr.clients.is_empty() {
        if client.route_reflector.is_some() {
            return None;
        }
        all.collect()
    } else {
        all.filter(|ip| rr.clients.contains(ip)).collect()
    };
    (!ips.is_empty()).then_some(ips)
}

/// The routes this node announces: its blocks, then its workloads' addresses outside them.
pub fn local_routes(state: &NodeState) -> Vec<LocalRoute> {
    let host_routes = state.routes.host_routes.iter().map(|ip| IpNet::from(*ip));
    state
        .routes
        .blocks
        .iter()
        .copied()
        .chain(host_routes)
        .map(|prefix| LocalRoute {
            prefix,
            next_hop: None,
            communities: Vec::new(),
        })
        .collect()
}

/// The blocks to blackhole in the kernel, so traffic to an unused address of a block is dropped here.
pub fn blackholes(state: &NodeState) -> Vec<IpNet> {
    state.routes.blocks.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_master::model::AsNumber;
    use calico_master::sync::NodeRoutes;

    fn host(name: &str, v4: &str, v6: Option<&str>) -> Host {
        Host {
            name: name.into(),
            ipv4: Some(v4.parse().unwrap()),
            ipv6: v6.map(|s| s.parse().unwrap()),
            as_num: None,
            peers: vec![],
            route_reflector: None,
        }
    }

    fn state(me: &str, nodes: Vec<Host>) -> NodeState {
        let mut s = NodeState {
            node: me.into(),
            ..Default::default()
        };
        s.bgp.nodes = nodes;
        s
    }

    fn peer(ip: &str, asn: u32) -> BgpPeer {
        serde_json::from_value(serde_json::json!({"ip": ip, "as_num": asn})).unwrap()
    }

    #[test]
    fn mesh_peers_every_other_node_per_family() {
        let s = state(
            "h1",
            vec![
                host("h1", "10.0.0.1", Some("fd00::1")),
                host("h2", "10.0.0.2", Some("fd00::2")),
                host("h3", "10.0.0.3", None),
            ],
        );
        let p = peers(&s);
        let addrs: Vec<String> = p.iter().map(|p| p.address.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.2", "10.0.0.3", "fd00::2"]);
        assert!(p.iter().all(|p| p.asn == 64511 && p.description == MESH));
        assert_eq!(p[0].local_address, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(p[2].local_address, Some("fd00::1".parse().unwrap()));
        assert_eq!(p[0].hold_time, Duration::from_secs(90));
        // Each session between nodes offers its own family only.
        assert_eq!(p[0].family, Some(AfiSafi::IPV4_UNICAST));
        assert_eq!(p[2].family, Some(AfiSafi::IPV6_UNICAST));
    }

    #[test]
    fn unregistered_node_has_no_peers() {
        let s = state("h9", vec![host("h1", "10.0.0.1", None)]);
        assert!(peers(&s).is_empty());
        assert_eq!(local_as(&s), None);
    }

    #[test]
    fn mesh_off_keeps_explicit_peers_and_node_peers_win() {
        let mut me = host("h1", "10.0.0.1", None);
        me.as_num = Some(AsNumber::new(65001).unwrap());
        let mut signed = peer("10.0.0.254", 65000);
        signed.password = Some("s3cret".into());
        me.peers.push(signed);
        let mut s = state("h1", vec![me, host("h2", "10.0.0.2", None)]);
        s.bgp.config.node_mesh = false;
        s.bgp.config.global_peers.push(peer("10.0.0.254", 65009));
        s.bgp.config.global_peers.push(peer("fd00::254", 65000));
        s.bgp.config.timers.hold_time = Some(9);
        let p = peers(&s);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].asn, 65000);
        assert_eq!(p[0].description, NODE);
        assert_eq!(p[0].hold_time, Duration::from_secs(9));
        assert_eq!(p[0].keepalive, Some(Duration::from_secs(3)));
        assert_eq!(
            p[0].password.as_deref(),
            Some("s3cret"),
            "the MD5 key reaches the speaker"
        );
        assert_eq!(local_as(&s), Some(65001));
        // A router peer is offered both families.
        assert_eq!(p[0].family, None);
    }

    #[test]
    fn route_reflector_and_clients() {
        let mut rr = host("rr", "10.0.0.9", None);
        rr.route_reflector = Some(RouteReflector {
            cluster_id: "10.0.0.9".parse().unwrap(),
            clients: vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()],
        });
        let nodes = vec![
            host("h1", "10.0.0.1", None),
            host("h2", "10.0.0.2", None),
            rr,
        ];
        let mut s = state("rr", nodes.clone());
        s.bgp.config.node_mesh = false;
        let p = peers(&s);
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|p| p.rr_client));
        assert_eq!(cluster_id(&s), Some("10.0.0.9".parse().unwrap()));
        let mut c = state("h1", nodes);
        c.bgp.config.node_mesh = false;
        assert_eq!(cluster_id(&c), None, "a client reflects nothing");
        let p = peers(&c);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].address.to_string(), "10.0.0.9");
        assert!(!p[0].rr_client);
    }

    fn reflector(mut h: Host, clients: &[&str]) -> Host {
        h.route_reflector = Some(RouteReflector {
            cluster_id: h.ipv4.unwrap(),
            clients: clients.iter().map(|c| c.parse().unwrap()).collect(),
        });
        h
    }

    /// (address, rr_client) of each session, in address order.
    fn sessions(nodes: &[Host], me: &str) -> Vec<(String, bool)> {
        let mut s = state(me, nodes.to_vec());
        s.bgp.config.node_mesh = false;
        peers(&s)
            .iter()
            .map(|p| {
                assert_eq!(p.description, NODE);
                (p.address.to_string(), p.rr_client)
            })
            .collect()
    }

    #[test]
    fn reflector_without_client_list_serves_every_non_reflector() {
        let nodes = vec![
            reflector(host("h1", "10.0.0.1", Some("fd00::1")), &[]),
            host("h2", "10.0.0.2", Some("fd00::2")),
            host("h3", "10.0.0.3", None),
        ];
        let own = |a: &str| (a.to_owned(), true);
        assert_eq!(
            sessions(&nodes, "h1"),
            [own("10.0.0.2"), own("10.0.0.3"), own("fd00::2")]
        );
        let up = |a: &str| (a.to_owned(), false);
        assert_eq!(sessions(&nodes, "h2"), [up("10.0.0.1"), up("fd00::1")]);
        // h3 has no IPv6 address: only the IPv4 session.
        assert_eq!(sessions(&nodes, "h3"), [up("10.0.0.1")]);
        // The cluster's timers apply.
        let mut s = state("h2", nodes.clone());
        s.bgp.config.node_mesh = false;
        s.bgp.config.timers.hold_time = Some(9);
        assert!(peers(&s)
            .iter()
            .all(|p| p.hold_time == Duration::from_secs(9)));
    }

    #[test]
    fn reflectors_peer_with_each_other_as_non_clients() {
        let nodes = vec![
            reflector(host("r1", "10.0.0.1", None), &[]),
            reflector(host("r2", "10.0.0.2", None), &["10.0.0.4"]),
            host("c3", "10.0.0.3", None),
            host("c4", "10.0.0.4", None),
        ];
        let s = |a: &str, c: bool| (a.to_owned(), c);
        // r1 serves every non-reflector (c3, c4); r2 only c4; the reflectors peer as iBGP non-clients.
        assert_eq!(
            sessions(&nodes, "r1"),
            [
                s("10.0.0.2", false),
                s("10.0.0.3", true),
                s("10.0.0.4", true)
            ]
        );
        assert_eq!(
            sessions(&nodes, "r2"),
            [s("10.0.0.1", false), s("10.0.0.4", true)]
        );
        assert_eq!(sessions(&nodes, "c3"), [s("10.0.0.1", false)]);
        assert_eq!(
            sessions(&nodes, "c4"),
            [s("10.0.0.1", false), s("10.0.0.2", false)]
        );
    }

    #[test]
    fn explicit_clients_choose_the_families_and_can_be_reflectors() {
        let nodes = vec![
            reflector(
                host("top", "10.0.0.1", Some("fd00::1")),
                &["fd00::2", "10.0.0.3"],
            ),
            reflector(host("mid", "10.0.0.2", Some("fd00::2")), &[]),
            host("leaf", "10.0.0.3", Some("fd00::3")),
        ];
        let s = |a: &str, c: bool| (a.to_owned(), c);
        // top serves mid (a reflector itself, listed by its IPv6 address) and leaf over IPv4 only.
        assert_eq!(
            sessions(&nodes, "top"),
            [s("10.0.0.3", true), s("fd00::2", true)]
        );
        // mid: a client of top on IPv6; it serves leaf (a non-reflector) on both families.
        assert_eq!(
            sessions(&nodes, "mid"),
            [s("10.0.0.3", true), s("fd00::1", false), s("fd00::3", true)]
        );
        assert_eq!(
            sessions(&nodes, "leaf"),
            [
                s("10.0.0.1", false),
                s("10.0.0.2", false),
                s("fd00::2", false)
            ]
        );
    }

    #[test]
    fn announces_blocks_and_borrowed_addresses() {
        let mut s = state("h1", vec![]);
        s.routes = NodeRoutes {
            blocks: vec!["10.65.0.0/26".parse().unwrap()],
            host_routes: vec!["10.65.1.7".parse().unwrap()],
        };
        let r: Vec<String> = local_routes(&s)
            .iter()
            .map(|r| r.prefix.to_string())
            .collect();
        assert_eq!(r, ["10.65.0.0/26", "10.65.1.7/32"]);
        assert_eq!(blackholes(&s).len(), 1);
    }
}
