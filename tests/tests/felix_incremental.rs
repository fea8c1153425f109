//! Felix's firewall applied incrementally in a real kernel: the first apply loads the table, then adding
//! an endpoint is netlink element changes only, a rule change rewrites one profile's chains, and
//! removing an endpoint cuts its traffic, each asserted with traffic.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Result};
use calico_felix::changes::Change;
use calico_felix::firewall::Firewall;
use calico_felix::model::{Action, DesiredState, Port, Profile, Protocol, Rule};
use calico_lab::reach::{assert_no_ping, assert_no_tcp, assert_ping, assert_tcp};
use calico_lab::Lab;
use support::{endpoint, ip, CONVERGE};

fn web_profile(inbound: Vec<Rule>) -> Profile {
    Profile {
        inbound,
        outbound: vec![Rule {
            action: Some(Action::Allow),
            ..Rule::default()
        }],
    }
}

fn from_tag_web() -> Rule {
    Rule {
        action: Some(Action::Allow),
        src_tag: Some("web".into()),
        ..Rule::default()
    }
}

fn with_members(mut s: DesiredState) -> DesiredState {
    let mut members = calico_felix::model::TagMembers::default();
    for ep in s
        .endpoints
        .values()
        .filter(|e| e.profiles.iter().any(|p| p == "web"))
    {
        members.ipv4.extend(ep.ipv4.iter().copied());
        members.ipv6.extend(ep.ipv6.iter().copied());
    }
    s.tags.insert("web".into(), members);
    s
}

#[test]
fn endpoints_and_rules_change_incrementally() -> Result<()> {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run the README's test command"
    );
    Lab::builder("felixinc").hosts(1).run(|lab| {
        let h1 = lab.host(1);
        h1.place().sysctl(&["net.ipv4.ip_forward=1"]).run()?;
        let w1 = lab.workload(
            h1,
            "w1",
            Some("10.65.0.11".parse()?),
            Some("fd00:65::11".parse()?),
        )?;
        let w2 = lab.workload(
            h1,
            "w2",
            Some("10.65.0.12".parse()?),
            Some("fd00:65::12".parse()?),
        )?;
        let w3 = lab.workload(h1, "w3", Some("10.65.0.13".parse()?), None)?;
        let bin = calico_lab::lab_bin().display().to_string();
        let _echo = lab.spawn(
            "echo",
            &w2.place(),
            &[bin.as_str(), "serve", "tcp", "[::]:7000"],
        )?;
        let mut fw = Firewall::in_named_netns(&h1.ns)?;

        let mut state = DesiredState::default();
        state
            .profiles
            .insert("web".into(), web_profile(vec![from_tag_web()]));
        state
            .endpoints
            .insert("w1".into(), endpoint(&w1, &["web"])?);
        state
            .endpoints
            .insert("w2".into(), endpoint(&w2, &["web"])?);
        let state = with_members(state);
        let first = fw.apply(&state)?;
        ensure!(first.full, "{first:?}");
        assert_ping(&w1, ip("10.65.0.12"), CONVERGE)?;
        assert_ping(&w1, ip("fd00:65::12"), CONVERGE)?;
        // w3 has no endpoint yet: anti-spoofing drops everything from its interface.
        assert_no_ping(&w3, ip("10.65.0.11"))?;

        // Add w3 to web: element changes only, through netlink (its source, its interface in web's
        // interface set, its address in the tag).
        let w3_ep = endpoint(&w3, &["web"])?;
        let delta = fw.apply_changes(&[
            Change::Endpoint("w3".into(), Some(w3_ep)),
            Change::TagMember("web".into(), ip("10.65.0.13"), true),
        ])?;
        ensure!(
            !delta.full && delta.scripts == 0 && delta.elements == 3,
            "{delta:?}"
        );
        assert_ping(&w3, ip("10.65.0.11"), CONVERGE)?;
        assert_ping(&w1, ip("10.65.0.13"), CONVERGE)?;
        let added = fw.state().clone();

        // A rule change: web now only takes TCP 7000 from web. One script, no elements.
        let mut tcp_only = added.clone();
        tcp_only.profiles.insert(
            "web".into(),
            web_profile(vec![Rule {
                protocol: Some(Protocol::Tcp),
                dst_ports: vec![Port::One(7000)],
                ..from_tag_web()
            }]),
        );
        let change = fw.apply(&tcp_only)?;
        ensure!(change.scripts == 1 && change.elements == 0, "{change:?}");
        assert_no_ping(&w1, ip("10.65.0.12"))?;
        assert_tcp(&w1, SocketAddr::new(ip("10.65.0.12"), 7000), CONVERGE)?;
        assert_tcp(&w1, SocketAddr::new(ip("fd00:65::12"), 7000), CONVERGE)?;

        // Remove w3: its traffic stops, the others' goes on.
        let gone = fw.apply_changes(&[
            Change::Endpoint("w3".into(), None),
            Change::TagMember("web".into(), ip("10.65.0.13"), false),
        ])?;
        ensure!(!gone.full && gone.elements == 3, "{gone:?}");
        let removed = fw.state().clone();
        assert_no_tcp(&w3, SocketAddr::new(ip("10.65.0.12"), 7000))?;
        assert_tcp(&w1, SocketAddr::new(ip("10.65.0.12"), 7000), CONVERGE)?;

        // A new Firewall (a restarted Felix) replaces the table atomically and converges, and a
        // connection established before keeps flowing through the restart.
        let bin = calico_lab::lab_bin().display().to_string();
        let mut held = lab.spawn(
            "held",
            &w1.place(),
            &[
                bin.as_str(),
                "probe",
                "stream",
                "10.65.0.12:7000",
                "--seconds",
                "4",
            ],
        )?;
        calico_lab::wait::wait_until(CONVERGE, "the held connection", || {
            Ok(held.log_text().contains("connected"))
        })?;
        drop(fw);
        let mut restarted = Firewall::in_named_netns(&h1.ns)?;
        ensure!(restarted.apply(&removed)?.full);
        assert_tcp(&w1, SocketAddr::new(ip("10.65.0.12"), 7000), CONVERGE)?;
        assert_no_ping(&w1, ip("10.65.0.12"))?;
        calico_lab::wait::wait_until(
            Duration::from_secs(15),
            "the held connection to finish",
            || Ok(!held.running()),
        )?;
        ensure!(
            held.log_text().contains("held 10.65.0.12:7000 for 4 s"),
            "{}",
            held.log_text()
        );
        Ok(())
    })
}
