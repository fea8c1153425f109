//! Optional capabilities and transport settings against BIRD 2: extended messages (RFC 8654: UPDATEs
//! over 4,096 bytes both ways), ADD-PATH (RFC 7911: several paths per prefix received from BIRD and
//! sent to it), IPv6 routes over an IPv4 session, and sessions on ports other than 179.
//!
//! Needs root, `bird`/`birdc` (Debian's bird2) and the release `calico-bgp` binary beside the tests
//! (`cargo build --release -p calico-bgp`, or CALICO_BGP_BIN).

#[path = "support/bird.rs"]
mod bird;

use anyhow::{ensure, Result};
use bird::*;
use calico_lab::wait::wait_until;
use calico_lab::Lab;

/// Communities on one route: 1,100 of them take 4,400 bytes, more than a 4,096-byte message holds.
const MANY: u32 = 1100;

#[test]
fn extended_messages_carry_updates_over_4096_bytes_both_ways() -> Result<()> {
    preflight()?;
    Lab::builder("bgpbirdext").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let (a1, a2) = (h1.ip.to_string(), h2.ip.to_string());
        let tags: String = (1..=MANY)
            .map(|i| format!("bgp_community.add((65002,{i})); "))
            .collect();
        let conf = format!(
            "{}protocol static s4 {{ ipv4; route 10.65.2.0/24 blackhole; }}\n{}",
            bird_head(&a2),
            bird_bgp(
                "ours",
                &a2,
                65002,
                &a1,
                65001,
                &v4_channel(&tags),
                "enable extended messages on;"
            )
        );
        let bird = Bird::start(lab, h2, "bird", &conf)?;
        let ours_tags: Vec<String> = (1..=MANY).map(|i| format!("\"65001:{i}\"")).collect();
        let file = lab.dir().join("ext.toml");
        std::fs::write(
            &file,
            format!(
                "asn = 65001\nrouter_id = \"{a1}\"\n[[peer]]\naddress = \"{a2}\"\nasn = 65002\nhold = 9\n\
                 [[announce]]\nprefix = \"10.65.1.0/24\"\ncommunities = [{}]\n",
                ours_tags.join(", ")
            ),
        )?;
        let ours = Ours::start(lab, h1, "ours", &["--config", &file.display().to_string()])?;
        ours.wait_established(&a2)?;
        bird.wait_established("ours")?;
        wait_until(ROUTE, "BIRD's route with all its communities", || {
            let routes = ours.routes()?;
            Ok(routes.as_array().is_some_and(|a| {
                a.iter().any(|r| {
                    r["prefix"] == "10.65.2.0/24"
                        && r["paths"][0]["communities"].as_array().map(Vec::len)
                            == Some(MANY as usize)
                })
            }))
        })?;
        wait_kernel(h2, "10.65.1.0/24", &[])?;
        let shown = bird.route_all("10.65.1.0/24")?;
        let count = shown.matches("(65001,").count();
        ensure!(count == MANY as usize, "BIRD holds {count} of our communities");
        Ok(())
    })
}

#[test]
fn add_path_receives_and_sends_several_paths_per_prefix() -> Result<()> {
    preflight()?;
    Lab::builder("bgpbirdaddp").hosts(4).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let a1 = h1.ip.to_string();
        let a2 = h2.ip.to_string();
        // h3 and h4 each announce 10.65.9.0/24 to h2 (BIRD, ADD-PATH both ways with us) and
        // 10.65.8.0/24 to us.
        let mut birds = Vec::new();
        for (i, h) in [(3u32, lab.host(3)), (4, lab.host(4))] {
            let a = h.ip.to_string();
            let only = |net: &str| format!("ipv4 {{ import none; export where net = {net}; }};");
            let conf = format!(
                "{}protocol static s4 {{ ipv4; route 10.65.9.0/24 blackhole; route 10.65.8.0/24 blackhole; }}\n{}{}",
                bird_head(&a),
                bird_bgp("mid", &a, 65000 + i, &a2, 65002, &only("10.65.9.0/24"), ""),
                bird_bgp("ours", &a, 65000 + i, &a1, 65001, &only("10.65.8.0/24"), ""),
            );
            birds.push(Bird::start(lab, h, &format!("bird-{}", h.name), &conf)?);
        }
        let (a3, a4) = (lab.host(3).ip.to_string(), lab.host(4).ip.to_string());
        let mid = format!(
            "{}{}{}{}",
            bird_head(&a2),
            bird_bgp("e3", &a2, 65002, &a3, 65003, "ipv4 { import all; export none; };", ""),
            bird_bgp("e4", &a2, 65002, &a4, 65004, "ipv4 { import all; export none; };", ""),
            bird_bgp(
                "ours",
                &a2,
                65002,
                &a1,
                65001,
                "ipv4 { import all; export where net = 10.65.9.0/24; add paths on; };",
                ""
            ),
        );
        let bird = Bird::start(lab, h2, "bird-mid", &mid)?;
        let ours = Ours::start(
            lab,
            h1,
            "ours",
            &[
                "--asn",
                "65001",
                "--router-id",
                &a1,
                "--peer",
                &format!("{a2},as=65002,hold=9,add-path=both"),
                "--peer",
                &format!("{a3},as=65003,hold=9"),
                "--peer",
                &format!("{a4},as=65004,hold=9"),
            ],
        )?;
        for a in [&a2, &a3, &a4] {
            ours.wait_established(a)?;
        }
        bird.wait_established("ours")?;
        let paths_from = |prefix: &str, peer: &str| -> Result<usize> {
            let routes = ours.routes()?;
            Ok(routes
                .as_array()
                .and_then(|a| a.iter().find(|r| r["prefix"] == prefix))
                .and_then(|r| r["paths"].as_array())
                .map_or(0, |p| p.iter().filter(|p| p["peer"] == peer).count()))
        };
        // Received: both of BIRD's paths to 10.65.9.0/24 (through h3 and through h4), one session.
        wait_until(ROUTE, "two paths from BIRD for one prefix", || {
            Ok(paths_from("10.65.9.0/24", &a2)? == 2)
        })?;
        // Sent: both of our paths to 10.65.8.0/24 reach BIRD over our one session.
        wait_until(ROUTE, "two paths from us at BIRD", || {
            let shown = bird.birdc("show route 10.65.8.0/24 protocol ours")?;
            Ok(shown.matches("[ours ").count() == 2)
        })?;
        Ok(())
    })
}

#[test]
fn ipv6_routes_cross_an_ipv4_session_both_ways() -> Result<()> {
    preflight()?;
    Lab::builder("bgpbird64").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let (a1, a2) = (h1.ip.to_string(), h2.ip.to_string());
        let (g1, g2) = (h1.ip6.to_string(), h2.ip6.to_string());
        // One IPv4 session carrying both families; BIRD names its IPv6 next hop itself.
        let conf = format!(
            "{}protocol static s6 {{ ipv6; route fd00:65::2:0/112 blackhole; }}\n{}",
            bird_head(&a2),
            bird_bgp(
                "ours",
                &a2,
                65002,
                &a1,
                65001,
                &format!(
                    "ipv4 {{ import all; export none; }}; \
                     ipv6 {{ import all; export where source = RTS_STATIC; next hop address {g2}; }};"
                ),
                ""
            )
        );
        let bird = Bird::start(lab, h2, "bird", &conf)?;
        let ours = Ours::start(
            lab,
            h1,
            "ours",
            &[
                "--asn",
                "65001",
                "--router-id",
                &a1,
                "--peer",
                &format!("{a2},as=65002,hold=9"),
                "--announce",
                "fd00:65::1:0/112",
            ],
        )?;
        ours.wait_established(&a2)?;
        bird.wait_established("ours")?;
        // Theirs in our kernel through BIRD's IPv6 address; ours in BIRD's through the IPv6 address
        // of our interface that holds the session's IPv4 address (found without being configured).
        wait_kernel(h1, "fd00:65::2:0/112", &[&format!("via {g2}"), "proto bgp"])?;
        wait_kernel(h2, "fd00:65::1:0/112", &[&format!("via {g1}"), "proto bird"])?;
        Ok(())
    })
}

#[test]
fn sessions_on_ports_other_than_179_both_ways() -> Result<()> {
    preflight()?;
    Lab::builder("bgpbirdport").hosts(3).run(|lab| {
        let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
        let (a1, a2, a3) = (h1.ip.to_string(), h2.ip.to_string(), h3.ip.to_string());
        // h2 listens on 1791 and only waits (we must dial it there); h3 dials our 1790 (we only wait).
        let mut birds = Vec::new();
        for (h, a, extra) in [(h2, &a2, "passive on;"), (h3, &a3, "")] {
            let conf = format!(
                "{}protocol static s4 {{ ipv4; route 10.65.{}.0/24 blackhole; }}\n{}",
                bird_head(a),
                &h.name[1..],
                bird_bgp(
                    "ours",
                    &format!("{a} port 1791"),
                    65002,
                    &format!("{a1} port 1790"),
                    65001,
                    &v4_channel(""),
                    extra
                )
            );
            birds.push(Bird::start(lab, h, &format!("bird-{}", h.name), &conf)?);
        }
        let ours = Ours::start(
            lab,
            h1,
            "ours",
            &[
                "--asn",
                "65001",
                "--router-id",
                &a1,
                "--listen",
                &format!("{a1}:1790"),
                "--peer",
                &format!("{a2},as=65002,hold=9,port=1791"),
                "--peer",
                &format!("{a3},as=65002,hold=9,passive"),
            ],
        )?;
        for (bird, a) in birds.iter().zip([&a2, &a3]) {
            ours.wait_established(a)?;
            bird.wait_established("ours")?;
        }
        wait_kernel(h1, "10.65.2.0/24", &[&format!("via {a2}")])?;
        wait_kernel(h1, "10.65.3.0/24", &[&format!("via {a3}")])?;
        Ok(())
    })
}
