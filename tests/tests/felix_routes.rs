//! Felix's per-endpoint routing state in a real kernel: workloads whose host side is only a veth become
//! reachable once Felix programs their routes, neighbours and sysctls; a missing interface fails alone;
//! routes deleted or added by hand are repaired, other owners' routes are left alone.

mod support;

use std::net::IpAddr;

use anyhow::{ensure, Result};
use calico_felix::model::{DesiredState, Endpoint};
use calico_felix::routes::{Routes, FELIX_PROTOCOL};
use calico_lab::reach::{assert_no_ping, assert_ping};
use calico_lab::Lab;
use support::{endpoint, ip, CONVERGE};

#[test]
fn felix_routes_make_workloads_reachable_and_repair_drift() -> Result<()> {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run the README's test command"
    );
    Lab::builder("felixroutes").hosts(1).run(|lab| {
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
        // Nothing routes to them yet.
        assert_no_ping(h1, ip("10.65.0.11"))?;

        let mut state = DesiredState::default();
        state.config.ipv6_gateway = Some(h1.ip6);
        for (id, w) in [("w1", &w1), ("w2", &w2), ("w3", &w3)] {
            state.endpoints.insert(id.into(), endpoint(w, &[])?);
        }
        // An endpoint whose interface is not there yet fails alone.
        let mut ghost = endpoint(&w3, &[])?;
        ghost.iface = "cali0000ghost00".into();
        ghost.ipv4 = vec!["10.65.0.14".parse()?];
        state.endpoints.insert("ghost".into(), ghost);

        let mut routes = Routes::new(Some(&std::path::PathBuf::from("/run/netns").join(&h1.ns)))?;
        let eps: Vec<(&str, &Endpoint)> = state
            .endpoints
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        let failures = routes.program(&eps, &state)?;
        ensure!(
            failures.len() == 1
                && failures[0].endpoint == "ghost"
                && failures[0].reason.contains("does not exist"),
            "{failures:?}"
        );
        state.endpoints.remove("ghost");

        assert_ping(h1, ip("10.65.0.11"), CONVERGE)?;
        assert_ping(h1, ip("fd00:65::12"), CONVERGE)?;
        assert_ping(&w1, ip("10.65.0.12"), CONVERGE)?;
        assert_ping(&w2, ip("fd00:65::11"), CONVERGE)?;
        assert_ping(&w1, IpAddr::V6(h1.ip6), CONVERGE)?;
        let shown = h1
            .cmd(&["ip", "route", "show", "proto", &FELIX_PROTOCOL.to_string()])
            .stdout()?;
        ensure!(
            shown.contains("10.65.0.11") && shown.contains("10.65.0.13"),
            "{shown}"
        );
        let neigh = h1
            .cmd(&["ip", "neigh", "show", "dev", &w1.host_iface])
            .stdout()?;
        ensure!(
            neigh.contains("10.65.0.11") && neigh.contains("PERMANENT"),
            "{neigh}"
        );
        let proxy = h1
            .cmd(&[
                "sysctl",
                "-n",
                &format!("net.ipv4.conf.{}.proxy_arp", w1.host_iface),
            ])
            .stdout()?;
        ensure!(proxy == "1", "proxy_arp={proxy}");

        // Drift: w2's route deleted by hand, a stray route of Felix's protocol added, and another
        // owner's route that must survive.
        h1.cmd(&["ip", "route", "del", "10.65.0.12"]).run()?;
        h1.cmd(&[
            "ip",
            "route",
            "add",
            "10.65.0.99",
            "dev",
            &w1.host_iface,
            "proto",
            "80",
        ])
        .run()?;
        h1.cmd(&[
            "ip",
            "route",
            "add",
            "10.65.0.98",
            "dev",
            &w1.host_iface,
            "proto",
            "static",
        ])
        .run()?;
        assert_no_ping(h1, ip("10.65.0.12"))?;
        let (repairs, failures) = routes.resync(&state)?;
        ensure!(
            repairs == 2 && failures.is_empty(),
            "{repairs} {failures:?}"
        );
        assert_ping(h1, ip("10.65.0.12"), CONVERGE)?;
        let all = h1.cmd(&["ip", "route", "show"]).stdout()?;
        ensure!(
            !all.contains("10.65.0.99") && all.contains("10.65.0.98"),
            "{all}"
        );
        // Nothing left to repair.
        ensure!(routes.resync(&state)?.0 == 0);

        // Removing an endpoint's routes cuts it off.
        routes.remove(&[ip("10.65.0.13"), ip("10.65.0.77")])?;
        assert_no_ping(h1, ip("10.65.0.13"))?;
        Ok(())
    })
}
