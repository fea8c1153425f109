//! Scenario 2b: three hosts on one fabric, the node-to-node mesh off, h1 a BGP route reflector
//! (`calicoctl node route-reflector on`) and h2, h3 its clients (every other node, by default). Each
//! client has one session per address family, to h1; h1 has one per client and family. h3 learns h2's
//! blocks through h1 with h2 still the next hop (iBGP reflection leaves it alone), and containers on
//! h2 and h3 in one profile reach each other (IPv4 and IPv6) while another profile stays denied. BGP
//! timers are short (hold 9 s, graceful restart 30 s) through the BGP configuration.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use calico_lab::cluster::{Cluster, Datastore};
use calico_lab::wait::wait_until;
use calico_lab::{Host, Lab};

const WITHIN: Duration = Duration::from_secs(30);

/// A container of this test: its host, short name and addresses.
struct Workload {
    host: usize,
    name: &'static str,
    v4: &'static str,
    v6: &'static str,
    profile: &'static str,
}

/// P on h2 and Q on h3 share a profile; R on h3 is in another. Each host's addresses are in blocks of
/// their own (10.65.2.0/26 and fd00:65::1:0/122 on h2; 10.65.3.0/26 and fd00:65::2:0/122 on h3).
const WORKLOADS: [Workload; 3] = [
    Workload {
        host: 2,
        name: "p",
        v4: "10.65.2.2",
        v6: "fd00:65::1:2",
        profile: "A_C_E",
    },
    Workload {
        host: 3,
        name: "q",
        v4: "10.65.3.2",
        v6: "fd00:65::2:2",
        profile: "A_C_E",
    },
    Workload {
        host: 3,
        name: "r",
        v4: "10.65.3.3",
        v6: "fd00:65::2:3",
        profile: "B",
    },
];

fn workload(name: &str) -> &'static Workload {
    WORKLOADS
        .iter()
        .find(|w| w.name == name)
        .unwrap_or_else(|| panic!("no workload {name}"))
}

/// One ping from workload `from` to `ip`.
fn ping(c: &Cluster<'_>, lab: &Lab, from: &str, ip: &str) -> Result<bool> {
    let w = workload(from);
    let docker_name = format!("lab-{}-{}", lab.name(), w.name);
    let mut argv = vec!["ping"];
    if ip.contains(':') {
        argv.push("-6");
    }
    argv.extend_from_slice(&["-c", "1", "-W", "1", ip]);
    c.exec(lab.host(w.host), &docker_name, &argv).succeeds()
}

fn assert_reaches(c: &Cluster<'_>, lab: &Lab, from: &str, ip: &str) -> Result<()> {
    wait_until(WITHIN, &format!("{from} pings {ip}"), || {
        ping(c, lab, from, ip)
    })
}

fn assert_denied(c: &Cluster<'_>, lab: &Lab, from: &str, ip: &str) -> Result<()> {
    for _ in 0..2 {
        if ping(c, lab, from, ip)? {
            bail!("{from} reached {ip}, which policy denies");
        }
    }
    Ok(())
}

/// The peers of `host`'s reported sessions; each must be an Established node session.
fn session_peers(c: &Cluster<'_>, host: &Host) -> Result<BTreeSet<String>> {
    let status = c.status(host)?;
    let list = status["bgp"]
        .as_array()
        .with_context(|| format!("no sessions in {status}"))?;
    let mut peers = BTreeSet::new();
    for s in list {
        if s["state"] != "Established" || s["type"] != "node" {
            bail!(
                "{}: every session should be an Established node session: {status}",
                host.name
            );
        }
        peers.insert(s["peer"].as_str().unwrap_or("?").to_owned());
    }
    Ok(peers)
}

fn addresses(hosts: &[&Host]) -> BTreeSet<String> {
    hosts
        .iter()
        .flat_map(|h| [h.ip.to_string(), h.ip6.to_string()])
        .collect()
}

/// `ip route` output without the `nhid N` of routes through nexthop objects (the speaker's, where the
/// kernel has them), so a line reads `PREFIX via GATEWAY ...` either way.
fn without_nhid(routes: &str) -> String {
    routes
        .lines()
        .map(|line| {
            let mut words = line.split(' ');
            let mut kept = Vec::new();
            while let Some(w) = words.next() {
                if w == "nhid" {
                    words.next();
                } else {
                    kept.push(w);
                }
            }
            kept.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until `host`'s kernel has a BGP route (protocol 186) containing `want`.
fn wait_route(host: &Host, v6: bool, want: &str) -> Result<()> {
    let argv: &[&str] = if v6 {
        &["ip", "-6", "route", "show", "proto", "186"]
    } else {
        &["ip", "route", "show", "proto", "186"]
    };
    let mut last = String::new();
    let found = wait_until(WITHIN, &format!("{} has `{want}`", host.name), || {
        last = without_nhid(&host.cmd(argv).stdout()?);
        Ok(last.contains(want))
    });
    found.with_context(|| format!("{}'s BGP routes: {last}", host.name))
}

#[test]
fn a_node_reflects_routes_between_its_clients() -> Result<()> {
    Lab::builder("noderr").hosts(3).run(|lab| {
        let (h1, h2, h3) = (
            lab.host(1).clone(),
            lab.host(2).clone(),
            lab.host(3).clone(),
        );
        let mut c = Cluster::start(lab, Datastore::Embedded)?;
        c.short_bgp_timers()?;
        c.ctl(&["bgp", "node-mesh", "off"]).run()?;
        c.add_pools_and_profiles()?;
        c.start_all_nodes(&[])?;
        // Nodes register themselves when they start; then h1 becomes the reflector.
        let rr = c.node_name(&h1);
        let answer = c.ctl_json(&["node", "route-reflector", "on", "--hostname", &rr])?;
        if answer[0]["changed"] != true {
            bail!("route-reflector on changed nothing: {answer}");
        }
        let nodes = c.ctl_json(&["node", "show"])?;
        let row = nodes
            .as_array()
            .and_then(|l| l.iter().find(|n| n["name"] == rr.as_str()))
            .with_context(|| format!("{rr} is not in {nodes}"))?;
        if row["route_reflector"] != format!("cluster {}, clients all", h1.ip) {
            bail!("node show should show {rr} as the reflector: {nodes}");
        }

        // One session per family from each client to h1; h1 has both clients on both families.
        c.wait_sessions(&h1, 4, WITHIN)?;
        c.wait_sessions(&h2, 2, WITHIN)?;
        c.wait_sessions(&h3, 2, WITHIN)?;
        for (h, want) in [
            (&h1, addresses(&[&h2, &h3])),
            (&h2, addresses(&[&h1])),
            (&h3, addresses(&[&h1])),
        ] {
            let got = session_peers(&c, h)?;
            if got != want {
                bail!("{}'s sessions go to {got:?}, expected {want:?}", h.name);
            }
        }

        for w in &WORKLOADS {
            let ips = format!("{},{}", w.v4, w.v6);
            c.run_container(lab.host(w.host), w.name, &ips, w.profile)?;
        }
        // h3 learned h2's blocks through the reflector, with h2 (not h1) as the next hop; and back.
        wait_route(&h3, false, &format!("10.65.2.0/26 via {} ", h2.ip))?;
        wait_route(&h3, true, &format!("fd00:65::1:0/122 via {} ", h2.ip6))?;
        wait_route(&h2, false, &format!("10.65.3.0/26 via {} ", h3.ip))?;
        wait_route(&h2, true, &format!("fd00:65::2:0/122 via {} ", h3.ip6))?;

        for v6 in [false, true] {
            let ip = |n: &str| {
                let w = workload(n);
                if v6 {
                    w.v6
                } else {
                    w.v4
                }
            };
            assert_reaches(&c, lab, "p", ip("q"))?;
            assert_reaches(&c, lab, "q", ip("p"))?;
            assert_denied(&c, lab, "r", ip("p"))?;
            assert_denied(&c, lab, "p", ip("r"))?;
        }
        Ok(())
    })
}
