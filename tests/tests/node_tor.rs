//! Scenario 2: hosts in two subnets behind a ToR running BIRD 2, the node-to-node mesh off, each host in
//! its own AS. Once with a per-node eBGP peer at the ToR's address on each host's subnet (`calicoctl
//! node bgp peer add`), once with one global peer (`calicoctl bgp peer add`) at the one ToR address
//! every host reaches (its subnet-A address; hosts in subnet B reach it through the ToR itself), signed
//! with TCP MD5 (`--password-file`). The
//! ToR learns each host's block and passes it to the other with its own address on that host's subnet
//! as next hop, and containers in one profile reach each other across the ToR (IPv4 and IPv6) while
//! other profiles stay denied. BGP timers are short (hold 9 s, graceful restart 30 s) through the BGP
//! configuration.

#[path = "support/bird.rs"]
mod bird;

use std::time::Duration;

use anyhow::Result;
use bird::{bird_bgp, bird_head, need_bird, Bird};
use calico_lab::cluster::{demo, Cluster, Datastore};
use calico_lab::{Host, Lab, Subnet};

const TOR_AS: u32 = 65000;
const MD5_KEY: &str = "calico-tor-key";

/// The ToR as a lab host (its namespace, its address on subnet A) so BIRD can run there.
fn tor_host(lab: &Lab) -> Host {
    let plan = lab.plan();
    Host {
        name: "tor".into(),
        ns: format!("lab-{}-tor", lab.name()),
        subnet: Subnet::A,
        ip: plan.tor_v4(Subnet::A),
        ip6: plan.tor_v6(Subnet::A),
    }
}

/// How the hosts peer with the ToR.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peering {
    /// Each node its own peer: the ToR's address on the node's subnet.
    PerNode,
    /// One global peer for all nodes: the ToR's subnet-A address.
    Global,
}

/// BIRD on the ToR: one eBGP session per host and family, passing BGP routes on and into its kernel.
/// With one global address, the sessions all use it, and the routes sent to a host carry the ToR's
/// address on that host's subnet as next hop (the one the host reaches directly).
fn tor_config(lab: &Lab, hosts: &[(&Host, u32)], peering: Peering) -> String {
    let plan = lab.plan();
    let mut conf = bird_head(&plan.tor_v4(Subnet::A).to_string());
    for (h, asn) in hosts {
        let local = match peering {
            Peering::PerNode => h.subnet,
            Peering::Global => Subnet::A,
        };
        let v4 = format!(
            "ipv4 {{ import all; export where source = RTS_BGP; next hop address {}; }};",
            plan.tor_v4(h.subnet)
        );
        let v6 = format!(
            "ipv6 {{ import all; export where source = RTS_BGP; next hop address {}; }};",
            plan.tor_v6(h.subnet)
        );
        // The global peering is signed with TCP MD5 (the key given to calicoctl in a file).
        let extra = match peering {
            Peering::PerNode => "graceful restart on;".to_string(),
            Peering::Global => format!("graceful restart on; password \"{MD5_KEY}\";"),
        };
        let name = &h.name;
        conf += &bird_bgp(
            &format!("{name}_v4"),
            &plan.tor_v4(local).to_string(),
            TOR_AS,
            &h.ip.to_string(),
            *asn,
            &v4,
            &extra,
        );
        conf += &bird_bgp(
            &format!("{name}_v6"),
            &plan.tor_v6(local).to_string(),
            TOR_AS,
            &h.ip6.to_string(),
            *asn,
            &v6,
            &extra,
        );
    }
    conf
}

#[test]
fn per_node_ebgp_peers_to_the_tor() -> Result<()> {
    tor_scenario("torebgp", Peering::PerNode)
}

#[test]
fn one_global_ebgp_peer_at_the_tor() -> Result<()> {
    tor_scenario("torglobal", Peering::Global)
}

fn tor_scenario(name: &str, peering: Peering) -> Result<()> {
    need_bird()?;
    Lab::builder(name).hosts(1).hosts_behind_tor(1).run(|lab| {
        let (h1, h2) = (lab.host(1).clone(), lab.host(2).clone());
        let plan = lab.plan();
        let mut c = Cluster::start(lab, Datastore::Embedded)?;
        c.short_bgp_timers()?;
        c.ctl(&["bgp", "node-mesh", "off"]).run()?;
        c.add_pools_and_profiles()?;
        let tor = Bird::start(
            lab,
            &tor_host(lab),
            "tor",
            &tor_config(lab, &[(&h1, 65001), (&h2, 65002)], peering),
        )?;
        if peering == Peering::Global {
            let key = lab.dir().join("tor-md5");
            std::fs::write(&key, format!("{MD5_KEY}\n"))?;
            let key = key.display().to_string();
            for ip in [
                plan.tor_v4(Subnet::A).to_string(),
                plan.tor_v6(Subnet::A).to_string(),
            ] {
                c.ctl(&[
                    "bgp",
                    "peer",
                    "add",
                    &ip,
                    "as",
                    "65000",
                    "--password-file",
                    &key,
                ])
                .run()?;
            }
        }
        for (h, asn) in [(&h1, "65001"), (&h2, "65002")] {
            c.start_node(h, &["--as", asn])?;
            c.wait_ready(h, Duration::from_secs(30))?;
            if peering == Peering::Global {
                continue;
            }
            // The node registered itself; now its own peers: the ToR on its subnet.
            for ip in [
                plan.tor_v4(h.subnet).to_string(),
                plan.tor_v6(h.subnet).to_string(),
            ] {
                let name = c.node_name(h);
                c.ctl(&[
                    "node",
                    "bgp",
                    "peer",
                    "add",
                    &ip,
                    "as",
                    "65000",
                    "--hostname",
                    &name,
                ])
                .run()?;
            }
        }
        for h in [&h1, &h2] {
            c.wait_sessions(h, 2, Duration::from_secs(30))?;
            tor.wait_established(&format!("{}_v4", h.name))?;
            tor.wait_established(&format!("{}_v6", h.name))?;
        }
        let kind = match peering {
            Peering::PerNode => "node",
            Peering::Global => "global",
        };
        for h in [&h1, &h2] {
            let status = c.status(h)?;
            anyhow::ensure!(
                status["bgp"]
                    .as_array()
                    .is_some_and(|l| l.iter().all(|s| s["type"] == kind && s["asn"] == 65000)),
                "{}'s sessions should be {kind} peers to AS 65000: {status}",
                h.name
            );
        }
        c.run_demo(&["a", "b", "e"])?;
        let within = Duration::from_secs(30);
        for v6 in [false, true] {
            let ip = |n: &str| if v6 { demo(n).v6 } else { demo(n).v4 };
            c.assert_reaches("a", ip("e"), within)?;
            c.assert_reaches("e", ip("a"), within)?;
            c.assert_denied("b", ip("e"))?;
        }
        // Each host learned the other's block through the ToR, with the ToR's address on its
        // own subnet as the next hop.
        for h in [&h1, &h2] {
            let routes = h.cmd(&["ip", "route", "show", "proto", "186"]).stdout()?;
            anyhow::ensure!(
                routes.contains(&format!("via {}", plan.tor_v4(h.subnet))),
                "{}'s BGP routes should go via the ToR on its subnet: {routes}",
                h.name
            );
        }
        Ok(())
    })
}
