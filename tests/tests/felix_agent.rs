//! Felix as a whole on a lab host: policy and routes from one stream of changes, flows of departed
//! addresses flushed, an endpoint whose interface comes late retried until it works, and drift (a chain
//! flushed and a route deleted by hand) found and repaired by a resync, all checked with traffic.

mod support;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use calico_felix::agent::{EndpointStatus, Felix};
use calico_felix::changes::Change;
use calico_felix::flows::Flows;
use calico_felix::model::{Config, Endpoint, Mac, Pool, Port, Profile, Protocol, Rule};
use calico_lab::lab::iface_name;
use calico_lab::reach::{assert_no_ping, assert_ping};
use calico_lab::Lab;
use support::{allow, endpoint, ip, CONVERGE};

#[test]
fn felix_programs_flushes_retries_and_repairs() -> Result<()> {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run the README's test command"
    );
    Lab::builder("felixagent").hosts(2).run(|lab| {
        let h1 = lab.host(1);
        h1.place()
            .sysctl(&["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])
            .run()?;
        let w1 = lab.workload_unrouted(
            h1,
            "w1",
            Some("10.65.0.11".parse()?),
            Some("fd00:65::11".parse()?),
        )?;
        let w2 = lab.workload_unrouted(
            h1,
            "w2",
            Some("10.65.0.12".parse()?),
            Some("fd00:65::12".parse()?),
        )?;
        let w3 = lab.workload_unrouted(h1, "w3", Some("10.65.0.13".parse()?), None)?;
        // Docker sets the FORWARD policy to DROP: everything forwarded below relies on the rule Felix
        // adds for the traffic its policy allowed.
        h1.cmd(&["iptables", "-P", "FORWARD", "DROP"]).run()?;
        h1.cmd(&["ip6tables", "-P", "FORWARD", "DROP"]).run()?;
        let mut felix = Felix::in_named_netns(&h1.ns)?;
        let pool = |nat| {
            vec![Pool {
                cidr: "10.65.0.0/16".parse().unwrap(),
                nat_outgoing: nat,
            }]
        };
        felix.set_config(Config {
            ipv6_gateway: Some(h1.ip6),
            pools: pool(true),
            ..Config::default()
        });
        let mut changes = vec![
            Change::Profile(
                "web".into(),
                Some(Profile {
                    inbound: vec![Rule {
                        src_tag: Some("web".into()),
                        ..allow()
                    }],
                    outbound: vec![allow()],
                }),
            ),
            Change::Profile(
                "db".into(),
                Some(Profile {
                    inbound: vec![Rule {
                        protocol: Some(Protocol::Tcp),
                        src_tag: Some("web".into()),
                        dst_ports: vec![Port::One(5432)],
                        ..allow()
                    }],
                    outbound: vec![allow()],
                }),
            ),
        ];
        for (id, w, p) in [("w1", &w1, "web"), ("w2", &w2, "web"), ("w3", &w3, "db")] {
            changes.push(Change::Endpoint(id.into(), Some(endpoint(w, &[p])?)));
        }
        for a in ["10.65.0.11", "10.65.0.12", "fd00:65::11", "fd00:65::12"] {
            changes.push(Change::TagMember("web".into(), ip(a), true));
        }
        let report = felix.apply(&changes, Instant::now())?;
        ensure!(
            report.programmed == 3 && report.failed.is_empty(),
            "{report:?}"
        );
        assert_ping(&w1, ip("10.65.0.12"), CONVERGE)?;
        assert_ping(&w1, ip("fd00:65::12"), CONVERGE)?;
        assert_no_ping(&w3, ip("10.65.0.11"))?;
        ensure!(felix.counts() == (3, 0));

        // A flow to w2 exists; removing w2 removes its routes and flushes its flows.
        let netns = PathBuf::from("/run/netns").join(&h1.ns);
        let mut flows = Flows::new(Some(&netns))?;
        ensure!(flows.count(ip("10.65.0.12"))? > 0, "the pings left a flow");
        let report = felix.apply(
            &[
                Change::Endpoint("w2".into(), None),
                Change::TagMember("web".into(), ip("10.65.0.12"), false),
                Change::TagMember("web".into(), ip("fd00:65::12"), false),
            ],
            Instant::now(),
        )?;
        ensure!(report.flows_flushed > 0, "{report:?}");
        ensure!(flows.count(ip("10.65.0.12"))? == 0);
        assert_no_ping(h1, ip("10.65.0.12"))?;
        ensure!(!felix.status().contains_key("w2"));

        // An endpoint whose interface is not there yet fails, and is retried until it works.
        let late_iface = iface_name(&format!("{}-w4", h1.ns));
        let late = Endpoint {
            iface: late_iface.clone(),
            mac: Mac([2, 0, 0, 0, 0, 4]),
            ipv4: vec!["10.65.0.14".parse()?],
            ipv6: vec![],
            profiles: vec!["web".into()],
        };
        let t0 = Instant::now();
        let report = felix.apply(
            &[
                Change::Endpoint("w4".into(), Some(late.clone())),
                Change::TagMember("web".into(), ip("10.65.0.14"), true),
            ],
            t0,
        )?;
        ensure!(
            report.failed.len() == 1
                && matches!(felix.status()["w4"], EndpointStatus::Failed { .. }),
            "{report:?}"
        );
        let due = felix.next_retry().expect("a retry is scheduled");
        ensure!(due > t0 && due <= t0 + Duration::from_secs(1));
        ensure!(
            felix.retry_due(t0)?.is_empty(),
            "not due yet: nothing retried"
        );
        ensure!(matches!(
            felix.status()["w4"],
            EndpointStatus::Failed { .. }
        ));
        let w4 = lab.workload_unrouted(h1, "w4", Some("10.65.0.14".parse()?), None)?;
        ensure!(w4.host_iface == late_iface);
        // The workload's real MAC: Felix learns it through the endpoint update the proxy would send.
        felix.apply(
            &[Change::Endpoint(
                "w4".into(),
                Some(Endpoint {
                    mac: Mac(w4.mac()?),
                    ..late
                }),
            )],
            t0,
        )?;
        ensure!(
            felix.status()["w4"] == EndpointStatus::Programmed,
            "{:?}",
            felix.status()
        );
        assert_ping(&w4, ip("10.65.0.11"), CONVERGE)?;

        // Drift: a chain flushed and a route deleted by hand; a resync repairs both.
        h1.cmd(&["nft", "flush", "chain", "inet", "calico", "p-in-web"])
            .run()?;
        h1.cmd(&["ip", "route", "del", "10.65.0.11"]).run()?;
        assert_no_ping(&w4, ip("10.65.0.11"))?;
        let resync = felix.resync(Instant::now())?;
        ensure!(resync.route_repairs == 1, "{resync:?}");
        ensure!(
            resync
                .firewall_drift
                .as_deref()
                .is_some_and(|d| d.contains("p-in-web")),
            "{resync:?}"
        );
        assert_ping(&w4, ip("10.65.0.11"), CONVERGE)?;
        let again = felix.resync(Instant::now())?;
        ensure!(
            again.route_repairs == 0 && again.firewall_drift.is_none(),
            "{again:?}"
        );
        // nat-outgoing: h2 has no route to the pool, so w1 reaches it only masqueraded as h1.
        let h2 = lab.host(2);
        assert_ping(&w1, IpAddr::V4(h2.ip), CONVERGE)?;
        let forward = h1.cmd(&["iptables", "-S", "FORWARD"]).stdout()?;
        ensure!(
            forward.contains("0x2000000/0x2000000") && forward.contains("-j ACCEPT"),
            "{forward}"
        );
        felix.set_config(Config {
            ipv6_gateway: Some(h1.ip6),
            pools: pool(false),
            ..Config::default()
        });
        ensure!(felix.apply(&[], Instant::now()).is_ok());
        assert_no_ping(&w1, IpAddr::V4(h2.ip))?;
        assert_ping(&w4, ip("10.65.0.11"), CONVERGE)?;
        let metrics = felix.metrics_text();
        ensure!(
            metrics.contains("felix_resyncs_total 2")
                && metrics.contains("felix_firewall_repairs_total 1"),
            "{metrics}"
        );
        Ok(())
    })
}
