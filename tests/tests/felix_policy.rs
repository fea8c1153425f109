//! Felix's nftables layout in a real kernel: the rendered table loaded into a lab host with three
//! workloads in two profiles, and traffic asserted both ways (allowed and denied, anti-spoofing,
//! endpoint-to-host, and a host whose iptables FORWARD policy is DROP).

mod support;

use std::net::{IpAddr, SocketAddr};

use anyhow::Result;
use calico_felix::model::{DesiredState, Port, Profile, Protocol, Rule, TagMembers};
use calico_felix::nft::table::render_table;
use calico_lab::reach::{assert_no_ping, assert_no_tcp, assert_ping, assert_tcp};
use calico_lab::Lab;
use support::{allow, endpoint, ip, CONVERGE};

#[test]
fn profiles_tags_and_anti_spoofing_hold_in_the_kernel() -> Result<()> {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run the README's test command"
    );
    Lab::builder("felixnft").hosts(1).run(|lab| {
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
        let _db = lab.spawn(
            "db",
            &w3.place(),
            &[bin.as_str(), "serve", "tcp", "0.0.0.0:5432"],
        )?;
        let _ssh = lab.spawn(
            "ssh",
            &w3.place(),
            &[bin.as_str(), "serve", "tcp", "0.0.0.0:22"],
        )?;
        // Before Felix: everything flows.
        assert_ping(&w3, ip("10.65.0.11"), CONVERGE)?;

        let mut state = DesiredState::default();
        state.profiles.insert(
            "web".into(),
            Profile {
                inbound: vec![Rule {
                    src_tag: Some("web".into()),
                    ..allow()
                }],
                outbound: vec![allow()],
            },
        );
        state.profiles.insert(
            "db".into(),
            Profile {
                inbound: vec![Rule {
                    protocol: Some(Protocol::Tcp),
                    src_tag: Some("web".into()),
                    dst_ports: vec![Port::One(5432)],
                    ..allow()
                }],
                outbound: vec![allow()],
            },
        );
        state
            .endpoints
            .insert("w1".into(), endpoint(&w1, &["web"])?);
        state
            .endpoints
            .insert("w2".into(), endpoint(&w2, &["web"])?);
        state.endpoints.insert("w3".into(), endpoint(&w3, &["db"])?);
        state.tags.insert(
            "web".into(),
            TagMembers {
                ipv4: [ip4("10.65.0.11"), ip4("10.65.0.12")].into(),
                ipv6: ["fd00:65::11".parse()?, "fd00:65::12".parse()?].into(),
            },
        );
        let script = render_table(&state);
        h1.cmd(&["nft", "-f", "-"]).stdin(script.clone()).run()?;
        // Loading the same state again is an atomic replace, not an error.
        h1.cmd(&["nft", "-f", "-"]).stdin(script).run()?;

        // Same tag: allowed, IPv4 and IPv6.
        assert_ping(&w1, ip("10.65.0.12"), CONVERGE)?;
        assert_ping(&w2, ip("fd00:65::11"), CONVERGE)?;
        // db accepts TCP 5432 from web only; nothing else.
        assert_tcp(&w1, SocketAddr::new(ip("10.65.0.13"), 5432), CONVERGE)?;
        assert_no_tcp(&w1, SocketAddr::new(ip("10.65.0.13"), 22))?;
        assert_no_ping(&w1, ip("10.65.0.13"))?;
        // db is not tagged web: web refuses it.
        assert_no_ping(&w3, ip("10.65.0.11"))?;
        // Endpoint to host: dropped by default.
        assert_no_ping(&w1, IpAddr::V4(h1.ip))?;

        // Spoofed source IP: an extra address on w1 is not w1's endpoint address.
        w1.place()
            .cmd(&["ip", "addr", "add", "10.65.0.99/32", "dev", "eth0"])
            .run()?;
        let spoofed = w1.place().cmd(&[
            "ping",
            "-c",
            "2",
            "-W",
            "1",
            "-I",
            "10.65.0.99",
            "10.65.0.12",
        ]);
        anyhow::ensure!(!spoofed.succeeds()?, "a spoofed source IP got through");
        // Spoofed MAC: w2 changes its MAC; its traffic is dropped until Felix learns the new one.
        assert_ping(&w2, ip("10.65.0.11"), CONVERGE)?;
        w2.place()
            .cmd(&["ip", "link", "set", "eth0", "address", "02:00:00:00:99:99"])
            .run()?;
        assert_no_ping(&w2, ip("10.65.0.11"))?;

        // A host whose FORWARD policy is DROP (as Docker sets it) still forwards what policy allowed,
        // through one iptables rule matching Felix's mark.
        assert_ping(&w1, ip("10.65.0.12"), CONVERGE)?;
        h1.cmd(&["iptables", "-P", "FORWARD", "DROP"]).run()?;
        assert_no_ping(&w1, ip("10.65.0.12"))?;
        h1.cmd(&[
            "iptables",
            "-A",
            "FORWARD",
            "-m",
            "mark",
            "--mark",
            "0x2000000/0x2000000",
            "-j",
            "ACCEPT",
        ])
        .run()?;
        assert_ping(&w1, ip("10.65.0.12"), CONVERGE)?;
        assert_no_ping(&w3, ip("10.65.0.11"))?;
        Ok(())
    })
}

fn ip4(s: &str) -> std::net::Ipv4Addr {
    s.parse().unwrap()
}
