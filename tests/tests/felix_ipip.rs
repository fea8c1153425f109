//! IPIP on a kernel without it (this lab machine's): the probe says so and leaves nothing behind; Felix
//! refuses the IPIP part of a pool that asks for it, with a message saying what, why and what instead,
//! while endpoints, policy and the pool's nat-outgoing keep working (checked with traffic); and
//! `calicoctl pool add --ipip` is refused with that message and exit code 1, adding nothing, unless
//! `--force`, which adds the pool with a warning.

mod support;

use std::net::IpAddr;
use std::time::Instant;

use anyhow::{ensure, Result};
use calico_felix::agent::Felix;
use calico_felix::changes::Change;
use calico_felix::ipip::{self, IpipSupport};
use calico_felix::model::{Config, Pool, Profile, Rule};
use calico_lab::cluster::{Cluster, Datastore};
use calico_lab::cmd::Cmd;
use calico_lab::reach::assert_ping;
use calico_lab::Lab;
use support::{allow, endpoint, ip, CONVERGE};

const REFUSAL: &str = "pool 10.65.0.0/16 asks for IPIP, but this kernel has no IPIP support \
                       (creating an ipip link failed: Operation not supported (os error 95)); use BGP \
                       peering with the ToR for hosts in different subnets, or remove --ipip";

fn assert_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run the README's test command"
    );
}

fn netns_list() -> Result<String> {
    Cmd::new(["ip", "netns", "list"]).stdout()
}

#[test]
fn the_probe_finds_no_ipip_and_felix_refuses_only_the_ipip_part() -> Result<()> {
    assert_root();
    // The probe works in a throwaway namespace of its own: no named namespace, no link left behind.
    let before = netns_list()?;
    let support = ipip::probe();
    ensure!(
        matches!(&support, IpipSupport::Missing { reason } if reason.contains("not supported")),
        "this kernel has no IPIP (lab notes), but the probe says {support:?}"
    );
    ensure!(netns_list()? == before, "the probe left a namespace");
    ensure!(
        !Cmd::new(["ip", "link", "show", "caliipipprobe"]).succeeds()?,
        "the probe left its link in the root namespace"
    );

    Lab::builder("felixipip").hosts(2).run(|lab| {
        let h1 = lab.host(1);
        h1.place().sysctl(&["net.ipv4.ip_forward=1"]).run()?;
        let w1 = lab.workload_unrouted(h1, "w1", Some("10.65.0.21".parse()?), None)?;
        let w2 = lab.workload_unrouted(h1, "w2", Some("10.65.0.22".parse()?), None)?;
        let mut felix = Felix::in_named_netns(&h1.ns)?;
        let pool = "10.65.0.0/16".parse()?;
        felix.set_config(Config {
            pools: vec![Pool {
                cidr: pool,
                nat_outgoing: true,
            }],
            ipip_pools: vec![pool],
            ..Config::default()
        });
        ensure!(
            felix.refused_pools().get(&pool).map(String::as_str) == Some(REFUSAL),
            "{:?}",
            felix.refused_pools()
        );
        ensure!(felix.ipip_support() == Some(&support));
        ensure!(felix.metrics_text().contains("\nfelix_pools_refused 1\n"));

        // Everything else keeps working: endpoints, policy and the pool's nat-outgoing.
        let mut changes = vec![Change::Profile(
            "web".into(),
            Some(Profile {
                inbound: vec![Rule {
                    src_tag: Some("web".into()),
                    ..allow()
                }],
                outbound: vec![allow()],
            }),
        )];
        for (id, w) in [("w1", &w1), ("w2", &w2)] {
            changes.push(Change::Endpoint(id.into(), Some(endpoint(w, &["web"])?)));
        }
        for a in ["10.65.0.21", "10.65.0.22"] {
            changes.push(Change::TagMember("web".into(), ip(a), true));
        }
        let report = felix.apply(&changes, Instant::now())?;
        ensure!(
            report.programmed == 2 && report.failed.is_empty(),
            "{report:?}"
        );
        ensure!(felix.counts() == (2, 0));
        assert_ping(&w1, ip("10.65.0.22"), CONVERGE)?;
        // h2 has no route to the pool: w1 reaches it only masqueraded as h1.
        assert_ping(&w1, IpAddr::V4(lab.host(2).ip), CONVERGE)?;

        // The pool no longer asks for IPIP: nothing is refused any more.
        felix.set_config(Config {
            pools: vec![Pool {
                cidr: pool,
                nat_outgoing: true,
            }],
            ..Config::default()
        });
        ensure!(felix.refused_pools().is_empty());
        ensure!(felix.metrics_text().contains("\nfelix_pools_refused 0\n"));
        felix.apply(&[], Instant::now())?;
        assert_ping(&w1, ip("10.65.0.22"), CONVERGE)?;
        Ok(())
    })
}

#[test]
fn calicoctl_refuses_an_ipip_pool_on_this_kernel_unless_forced() -> Result<()> {
    assert_root();
    Lab::builder("ctlipip").hosts(1).run(|lab| {
        let c = Cluster::start(lab, Datastore::Embedded)?;
        let out = c.ctl(&["pool", "add", "10.65.0.0/16", "--ipip"]).output()?;
        ensure!(
            out.status.code() == Some(1),
            "exit {:?}: {}",
            out.status,
            out.stderr
        );
        ensure!(out.stderr.contains(REFUSAL), "{}", out.stderr);
        ensure!(out.stderr.contains("--force"), "{}", out.stderr);
        let pools = c.ctl_json(&["pool", "show"])?;
        ensure!(
            pools.as_array().is_some_and(|p| p.is_empty()),
            "nothing is added: {pools}"
        );

        // --ipip --force adds it, with the message as a warning.
        let forced = c
            .ctl(&["pool", "add", "10.65.0.0/16", "--ipip", "--force"])
            .run()?;
        ensure!(
            forced.stderr.starts_with("Warning: ") && forced.stderr.contains(REFUSAL),
            "{}",
            forced.stderr
        );
        let pools = c.ctl_json(&["pool", "show"])?;
        ensure!(
            pools.as_array().is_some_and(|p| p.len() == 1
                && p[0]["cidr"] == "10.65.0.0/16"
                && p[0]["ipip"] == true),
            "{pools}"
        );
        // A pool without --ipip is not checked at all: no warning.
        let plain = c.ctl(&["pool", "add", "10.66.0.0/16"]).run()?;
        ensure!(plain.stderr.trim().is_empty(), "{}", plain.stderr);
        Ok(())
    })
}
