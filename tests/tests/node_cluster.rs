//! The Getting Started story end to end: a master, calico-node on two lab hosts, the five containers
//! started with the ordinary `docker` CLI through each host's proxy (A, B, C on h1; D, E on h2; profiles
//! {A, C, E}, {B}, {D}), dual stack, and traffic asserted both ways; then a live policy change. Once on
//! the embedded store and once on a real etcd.

use std::time::Duration;

use anyhow::{bail, Result};
use calico_lab::cluster::{demo, Cluster, Datastore};
use calico_lab::wait::wait_until;
use calico_lab::Lab;

fn ip(name: &str, v6: bool) -> &'static str {
    let d = demo(name);
    if v6 {
        d.v6
    } else {
        d.v4
    }
}

fn getting_started(lab: &Lab, store: Datastore<'_>) -> Result<()> {
    let mut c = Cluster::start(lab, store)?;
    c.add_pools_and_profiles()?;
    c.start_all_nodes(&[])?;
    // The mesh: each node has one IPv4 and one IPv6 session with the other.
    for h in lab.hosts() {
        c.wait_sessions(h, 2, Duration::from_secs(30))?;
    }
    c.run_getting_started()?;
    let within = Duration::from_secs(20);
    for v6 in [false, true] {
        c.assert_reaches("a", ip("c", v6), within)?;
        c.assert_reaches("a", ip("e", v6), within)?;
        c.assert_reaches("e", ip("a", v6), within)?;
        c.assert_denied("a", ip("b", v6))?;
        c.assert_denied("a", ip("d", v6))?;
        c.assert_denied("b", ip("a", v6))?;
    }
    // `calicoctl status` shows the real sessions, with the routes each side learned.
    let status = c.status(lab.host(1))?;
    let sessions = status["bgp"].as_array().cloned().unwrap_or_default();
    if sessions.len() != 2
        || sessions
            .iter()
            .any(|s| s["type"] != "mesh" || s["state"] != "Established")
    {
        bail!("unexpected sessions on h1: {status}");
    }
    if status["felix"]["programmed"] != 3 {
        bail!("Felix on h1 should have programmed 3 endpoints: {status}");
    }

    // Policy live: B may reach A once A's profile allows tag B, and not after the rule is removed.
    c.ctl(&[
        "profile", "A_C_E", "rule", "add", "inbound", "allow", "from", "tag", "B",
    ])
    .run()?;
    wait_until(
        Duration::from_secs(3),
        "b reaches a after the rule is added",
        || c.ping("b", ip("a", false)),
    )?;
    c.ctl(&[
        "profile", "A_C_E", "rule", "remove", "inbound", "allow", "from", "tag", "B",
    ])
    .run()?;
    wait_until(Duration::from_secs(3), "b no longer reaches a", || {
        Ok(!c.ping("b", ip("a", false))?)
    })?;
    c.assert_denied("b", ip("a", false))?;
    Ok(())
}

#[test]
fn getting_started_on_the_embedded_master() -> Result<()> {
    Lab::builder("gsembed")
        .hosts(2)
        .run(|lab| getting_started(lab, Datastore::Embedded))
}

#[test]
fn getting_started_on_etcd() -> Result<()> {
    Lab::builder("gsetcd").hosts(2).run(|lab| {
        let etcd = lab.etcd()?;
        getting_started(lab, Datastore::Etcd(&etcd))
    })
}
