//! Interop with BIRD 2: our `calico-bgp` daemon and BIRD peer in lab hosts, and routes must reach both
//! kernels: eBGP over IPv4 and IPv6 (MP-BGP), iBGP, 4-byte AS numbers, withdrawals, ECMP from two BIRD
//! peers, route reflection between two BIRD clients, communities and large communities both ways, MD5,
//! GTSM, and the hold timer. Graceful restart has its own file (bgp_bird_gr.rs).
//!
//! Needs root, `bird`/`birdc` (Debian's bird2) and the release `calico-bgp` binary beside the tests
//! (`cargo build --release -p calico-bgp`, or CALICO_BGP_BIN).

#[path = "support/bird.rs"]
mod bird;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bird::*;
use calico_lab::cmd::Cmd;
use calico_lab::wait::wait_until;
use calico_lab::Lab;

/// The nexthop object a route line of `ip route` names (`nhid N`).
fn nhid(line: &str) -> Result<String> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == "nhid");
    words
        .next()
        .map(String::from)
        .ok_or_else(|| anyhow::anyhow!("no nexthop object in {line:?}"))
}

#[test]
fn ebgp_ipv4_routes_reach_both_kernels_and_withdrawals_follow() -> Result<()> {
    preflight()?;
    Lab::builder("bgpbird4").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let (a1, a2) = (h1.ip.to_string(), h2.ip.to_string());
        let conf = |routes: &str| {
            format!(
                "{}protocol static s4 {{ ipv4; {routes} }}\n{}",
                bird_head(&a2),
                bird_bgp("ours", &a2, THEIRS, &a1, OURS, &v4_channel(""), "")
            )
        };
        let bird = Bird::start(
            lab,
            h2,
            "bird",
            &conf("route 10.65.2.0/24 blackhole; route 10.65.3.0/24 blackhole;"),
        )?;
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
                "10.65.1.0/24",
            ],
        )?;
        ours.wait_established(&a2)?;
        bird.wait_established("ours")?;

        // BIRD's routes in our kernel, with our protocol number; ours in BIRD's kernel.
        let line = wait_kernel(h1, "10.65.2.0/24", &[&format!("via {a2}"), "proto bgp"])?;
        ensure!(line.contains("dev eth0"), "{line}");
        wait_kernel(h1, "10.65.3.0/24", &[&format!("via {a2}")])?;
        wait_kernel(h2, "10.65.1.0/24", &[&format!("via {a1}"), "proto bird"])?;
        // Our own route is announced but never installed by us.
        ensure!(kernel_route(h1, "10.65.1.0/24")?.is_empty());
        let shown = bird.route_all("10.65.1.0/24")?;
        ensure!(
            shown.contains("BGP.origin: IGP") && shown.contains("BGP.as_path: 65001"),
            "{shown}"
        );

        // Status counts what was exchanged.
        let peer = ours.peer(&a2)?;
        ensure!(
            peer["asn"] == 65002 && peer["routes_received"] == 2,
            "{peer}"
        );
        ensure!(
            peer["routes_accepted"] == 2 && peer["routes_advertised"] == 1,
            "{peer}"
        );
        let table = calico_lab::cmd::Cmd::new([
            bgp_bin()?.display().to_string(),
            "status".into(),
            "--control".into(),
            ours.control.display().to_string(),
        ])
        .stdout()?;
        ensure!(
            table.starts_with("PEER") && table.contains("Established"),
            "{table}"
        );

        // A withdrawal reaches our kernel; the other route stays.
        bird.reconfigure(&conf("route 10.65.3.0/24 blackhole;"))?;
        wait_no_kernel(h1, "10.65.2.0/24")?;
        ensure!(!kernel_route(h1, "10.65.3.0/24")?.is_empty());

        // Our route goes through a nexthop object of ours.
        let id = nhid(&kernel_route(h1, "10.65.3.0/24")?)?;
        let object = h1.cmd(&["ip", "nexthop", "show", "id", &id]).stdout()?;
        ensure!(
            object.contains(&format!("via {a2} dev eth0")) && object.contains("proto bgp"),
            "{object}"
        );

        // A clean stop withdraws our routes from BIRD's kernel and leaves none of ours behind, routes
        // or nexthop objects.
        let mut ours = ours;
        ours.daemon.stop(Duration::from_secs(5));
        wait_no_kernel(h2, "10.65.1.0/24")?;
        let left = h1.cmd(&["ip", "route", "show", "proto", "186"]).stdout()?;
        ensure!(
            left.is_empty(),
            "our routes were left in the kernel: {left}"
        );
        let objects = h1.cmd(&["ip", "nexthop", "show"]).stdout()?;
        ensure!(
            !objects.contains("proto bgp"),
            "our nexthop objects were left in the kernel: {objects}"
        );
        Ok(())
    })
}

#[test]
fn ebgp_ipv6_over_mp_bgp() -> Result<()> {
    preflight()?;
    Lab::builder("bgpbird6").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let (a1, a2) = (h1.ip6.to_string(), h2.ip6.to_string());
        let conf = format!(
            "{}protocol static s6 {{ ipv6; route fd00:65::2:0/112 blackhole; }}\n{}",
            bird_head(&h2.ip.to_string()),
            bird_bgp("ours", &a2, THEIRS, &a1, OURS, &v6_channel(""), "")
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
                &h1.ip.to_string(),
                "--peer",
                &format!("{a2},as=65002,hold=9"),
                "--announce",
                "fd00:65::1:0/112",
            ],
        )?;
        ours.wait_established(&a2)?;
        bird.wait_established("ours")?;
        wait_kernel(h1, "fd00:65::2:0/112", &[&format!("via {a2}"), "proto bgp"])?;
        wait_kernel(
            h2,
            "fd00:65::1:0/112",
            &[&format!("via {a1}"), "proto bird"],
        )?;
        let routes = ours.routes()?;
        let entry = routes
            .as_array()
            .and_then(|a| a.iter().find(|r| r["prefix"] == "fd00:65::2:0/112"))
            .cloned()
            .unwrap_or_default();
        ensure!(entry["paths"][0]["best"] == true, "{routes}");
        ensure!(
            entry["paths"][0]["as_path"] == serde_json::json!([65002]),
            "{entry}"
        );
        Ok(())
    })
}

#[test]
fn ibgp_and_four_byte_as() -> Result<()> {
    preflight()?;
    // h2: an iBGP BIRD in our AS 4200000001; h3: an eBGP BIRD in 65002.
    Lab::builder("bgpbirdibgp").hosts(3).run(|lab| {
        let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
        let (a1, a2, a3) = (h1.ip.to_string(), h2.ip.to_string(), h3.ip.to_string());
        const BIG: u32 = 4_200_000_001;
        let ibgp = format!(
            "{}protocol static s4 {{ ipv4; route 10.65.2.0/24 blackhole; }}\n{}",
            bird_head(&a2),
            bird_bgp("ours", &a2, BIG, &a1, BIG, &v4_channel(""), "")
        );
        let ebgp = format!(
            "{}protocol static s4 {{ ipv4; route 10.65.3.0/24 blackhole; }}\n{}",
            bird_head(&a3),
            bird_bgp("ours", &a3, THEIRS, &a1, BIG, &v4_channel(""), "")
        );
        let b2 = Bird::start(lab, h2, "bird-ibgp", &ibgp)?;
        let b3 = Bird::start(lab, h3, "bird-ebgp", &ebgp)?;
        let ours = Ours::start(
            lab,
            h1,
            "ours",
            &[
                "--asn",
                "4200000001",
                "--router-id",
                &a1,
                "--peer",
                &format!("{a2},as=4200000001,hold=9"),
                "--peer",
                &format!("{a3},as=65002,hold=9"),
                "--announce",
                "10.65.1.0/24",
            ],
        )?;
        for a in [&a2, &a3] {
            ours.wait_established(a)?;
        }
        b2.wait_established("ours")?;
        b3.wait_established("ours")?;
        // iBGP both ways.
        wait_kernel(h1, "10.65.2.0/24", &[&format!("via {a2}"), "proto bgp"])?;
        wait_kernel(h2, "10.65.1.0/24", &[&format!("via {a1}")])?;
        let shown = b2.route_all("10.65.1.0/24")?;
        ensure!(shown.contains("BGP.local_pref: 100"), "{shown}");
        // The 4-byte AS in BIRD's view of our route and in our view of the eBGP route.
        wait_kernel(h3, "10.65.1.0/24", &[&format!("via {a1}")])?;
        let shown = b3.route_all("10.65.1.0/24")?;
        ensure!(shown.contains("BGP.as_path: 4200000001"), "{shown}");
        // The eBGP route goes on to the iBGP peer with its AS path, our AS prepended only towards eBGP.
        wait_kernel(h2, "10.65.3.0/24", &[])?;
        let shown = b2.route_all("10.65.3.0/24")?;
        ensure!(shown.contains("BGP.as_path: 65002"), "{shown}");
        // The iBGP route goes to the eBGP peer with our 4-byte AS in front.
        wait_kernel(h3, "10.65.2.0/24", &[&format!("via {a1}")])?;
        let shown = b3.route_all("10.65.2.0/24")?;
        ensure!(shown.contains("BGP.as_path: 4200000001"), "{shown}");
        Ok(())
    })
}

#[test]
fn ecmp_from_two_bird_peers_is_one_multipath_route() -> Result<()> {
    preflight()?;
    Lab::builder("bgpbirdecmp").hosts(3).run(|lab| {
        let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
        let a1 = h1.ip.to_string();
        let mut birds = Vec::new();
        for h in [h2, h3] {
            let a = h.ip.to_string();
            let conf = format!(
                "{}protocol static s4 {{ ipv4; route 10.65.9.0/24 blackhole; }}\n{}",
                bird_head(&a),
                bird_bgp("ours", &a, THEIRS, &a1, OURS, &v4_channel(""), "")
            );
            birds.push(Bird::start(lab, h, &format!("bird-{}", h.name), &conf)?);
        }
        let (a2, a3) = (h2.ip.to_string(), h3.ip.to_string());
        let ours = Ours::start(
            lab,
            h1,
            "ours",
            &[
                "--asn",
                "65001",
                "--router-id",
                &a1,
                "--ecmp",
                "2",
                "--peer",
                &format!("{a2},as=65002,hold=9"),
                "--peer",
                &format!("{a3},as=65002,hold=9"),
            ],
        )?;
        ours.wait_established(&a2)?;
        ours.wait_established(&a3)?;
        let line = wait_kernel(
            h1,
            "10.65.9.0/24",
            &[
                &format!("nexthop via {a2}"),
                &format!("nexthop via {a3}"),
                "proto bgp",
            ],
        )?;
        // Through a nexthop group of ours (this kernel has nexthop objects), whose members are the two
        // gateways.
        let id = nhid(&line)?;
        let group = h1.cmd(&["ip", "nexthop", "show", "id", &id]).stdout()?;
        ensure!(
            group.contains("group") && group.contains("proto bgp"),
            "{group}"
        );
        // `calico-bgp routes` marks both paths: best first, both in the ECMP set; the text form shows
        // `*>` and `*=`.
        let routes = ours.routes()?;
        let paths = routes
            .as_array()
            .and_then(|a| a.iter().find(|r| r["prefix"] == "10.65.9.0/24"))
            .and_then(|r| r["paths"].as_array().cloned())
            .unwrap_or_default();
        ensure!(
            paths.len() == 2
                && paths[0]["best"] == true
                && paths[1]["best"] == false
                && paths.iter().all(|p| p["multipath"] == true),
            "{routes}"
        );
        let text = Cmd::new([
            bgp_bin()?.display().to_string(),
            "routes".into(),
            "--control".into(),
            ours.control.display().to_string(),
        ])
        .stdout()?;
        ensure!(
            text.contains("*>") && text.contains("*="),
            "the text marks best and ECMP:\n{text}"
        );
        // One peer goes away: the route falls back to the other.
        birds[1].birdc("disable ours")?;
        let line = wait_kernel(h1, "10.65.9.0/24", &[&format!("via {a2}")])?;
        wait_until(ROUTE, "a single path", || {
            Ok(!kernel_route(h1, "10.65.9.0/24")?.contains("nexthop"))
        })?;
        ensure!(!kernel_route(h1, "10.65.9.0/24")?.contains(&a3), "{line}");
        Ok(())
    })
}

#[test]
fn route_reflection_between_two_bird_clients() -> Result<()> {
    preflight()?;
    Lab::builder("bgpbirdrr").hosts(3).run(|lab| {
        let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
        let a1 = h1.ip.to_string();
        let mut birds = Vec::new();
        for (h, prefix) in [(h2, "10.65.2.0/24"), (h3, "10.65.3.0/24")] {
            let a = h.ip.to_string();
            let conf = format!(
                "{}protocol static s4 {{ ipv4; route {prefix} blackhole; }}\n{}",
                bird_head(&a),
                bird_bgp("refl", &a, OURS, &a1, OURS, &v4_channel(""), "")
            );
            birds.push(Bird::start(lab, h, &format!("bird-{}", h.name), &conf)?);
        }
        let (a2, a3) = (h2.ip.to_string(), h3.ip.to_string());
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
                &format!("{a2},as=65001,hold=9,rr-client"),
                "--peer",
                &format!("{a3},as=65001,hold=9,rr-client"),
            ],
        )?;
        ours.wait_established(&a2)?;
        ours.wait_established(&a3)?;
        // Each client learns the other's route through us, with its original next hop.
        wait_kernel(h3, "10.65.2.0/24", &[&format!("via {a2}"), "proto bird"])?;
        wait_kernel(h2, "10.65.3.0/24", &[&format!("via {a3}"), "proto bird"])?;
        let shown = birds[1].route_all("10.65.2.0/24")?;
        ensure!(
            shown.contains(&format!("BGP.originator_id: {a2}"))
                && shown.contains(&format!("BGP.cluster_list: {a1}")),
            "{shown}"
        );
        // And our kernel has both.
        wait_kernel(h1, "10.65.2.0/24", &[&format!("via {a2}")])?;
        wait_kernel(h1, "10.65.3.0/24", &[&format!("via {a3}")])?;
        Ok(())
    })
}

#[test]
fn communities_and_large_communities_cross_both_ways() -> Result<()> {
    preflight()?;
    Lab::builder("bgpbirdcomm").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let (a1, a2) = (h1.ip.to_string(), h2.ip.to_string());
        let conf = format!(
            "{}protocol static s4 {{ ipv4; route 10.65.2.0/24 blackhole; }}\n{}",
            bird_head(&a2),
            bird_bgp(
                "ours",
                &a2,
                THEIRS,
                &a1,
                OURS,
                &v4_channel("bgp_community.add((65002,7)); bgp_large_community.add((65002,1,2));"),
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
                "10.65.1.0/24,community=65001:7,large-community=65001:3:4",
            ],
        )?;
        ours.wait_established(&a2)?;
        wait_until(ROUTE, "BIRD's communities in our RIB", || {
            let routes = ours.routes()?;
            let found = routes
                .as_array()
                .and_then(|a| a.iter().find(|r| r["prefix"] == "10.65.2.0/24").cloned());
            Ok(found.is_some_and(|r| {
                r["paths"][0]["communities"] == serde_json::json!(["65002:7"])
                    && r["paths"][0]["large_communities"] == serde_json::json!(["65002:1:2"])
            }))
        })?;
        wait_kernel(h2, "10.65.1.0/24", &[])?;
        let shown = bird.route_all("10.65.1.0/24")?;
        ensure!(
            shown.contains("BGP.community: (65001,7)")
                && shown.contains("BGP.large_community: (65001, 3, 4)"),
            "{shown}"
        );
        Ok(())
    })
}

#[test]
fn md5_right_password_establishes_and_wrong_one_does_not() -> Result<()> {
    // The wrong key never gets a session (the kernels drop the unsigned/mis-signed segments).
    one_accepted_one_refused(
        "bgpbirdmd5",
        ["password \"s3cret\";", "password \"s3cret\";"],
        ["password=s3cret", "password=wrong"],
    )
}

#[test]
fn gtsm_with_a_gtsm_peer_establishes_and_a_peer_sending_a_low_ttl_does_not() -> Result<()> {
    // h2 does GTSM (sends with TTL 255, wants 255); h3 does not: its packets arrive with TTL 64, below
    // 255, and our kernel drops them.
    one_accepted_one_refused(
        "bgpbirdttl",
        ["ttl security on;", ""],
        ["ttl-security", "ttl-security"],
    )
}

#[test]
fn a_refused_md5_key_is_an_error_never_an_unsigned_session() -> Result<()> {
    preflight()?;
    Lab::builder("bgpmd5no").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let (a1, a2) = (h1.ip.to_string(), h2.ip.to_string());
        // BIRD only listens: every session is one we dial.
        let bird = Bird::start(
            lab,
            h2,
            "bird",
            &format!(
                "{}{}",
                bird_head(&a2),
                bird_bgp(
                    "ours",
                    &a2,
                    THEIRS,
                    &a1,
                    OURS,
                    &v4_channel(""),
                    "password \"s3cret\"; passive on;"
                )
            ),
        )?;
        let asn = OURS.to_string();
        let listen = format!("{a1}:179");
        let peer = format!("{a2},as={THEIRS},password=s3cret");
        let args = [
            "--asn",
            &asn,
            "--router-id",
            &a1,
            "--listen",
            &listen,
            "--no-fib",
            "--peer",
            &peer,
        ];
        let set_optmem = |v: &str| {
            h1.cmd(&["sysctl", "-qw", &format!("net.core.optmem_max={v}")])
                .run()
                .map(drop)
        };
        // Socket-option memory in h1's namespace too small for a key: the kernel refuses TCP_MD5SIG
        // (ENOMEM) on every socket there.
        let optmem = h1.cmd(&["sysctl", "-n", "net.core.optmem_max"]).stdout()?;
        set_optmem("16")?;
        // At start (the listener's key): the daemon refuses to run, naming the option.
        let bin = bgp_bin()?.display().to_string();
        let control = lab.dir().join("refused.sock").display().to_string();
        let argv = [&[bin.as_str(), "run"][..], &args, &["--control", &control]].concat();
        let out = h1.cmd(&argv).timeout(Duration::from_secs(10)).output()?;
        ensure!(
            !out.success(),
            "calico-bgp ran without its MD5 key: {out:?}"
        );
        ensure!(
            out.stderr.contains("TCP_MD5SIG"),
            "the error does not name TCP_MD5SIG: {}",
            out.stderr
        );
        // When dialling (the listener's key set while the kernel still took keys): each attempt fails
        // with the reason, and none goes out unsigned.
        set_optmem(optmem.trim())?;
        let ours = Ours::start(lab, h1, "ours", &args)?;
        ours.wait_established(&a2)?;
        set_optmem("16")?;
        bird.birdc("restart ours")?;
        wait_until(Duration::from_secs(30), "a refused dial reported", || {
            let p = ours.peer(&a2)?;
            Ok(p["state"] != "Established"
                && p["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("TCP_MD5SIG")))
        })?;
        std::thread::sleep(Duration::from_secs(3));
        let p = ours.peer(&a2)?;
        ensure!(
            p["state"] != "Established",
            "a session came up without its key: {p}"
        );
        // Keys allowed again: the next attempt establishes.
        set_optmem(optmem.trim())?;
        ours.wait_established(&a2)
    })
}

/// Two BIRD peers (h2, h3, with `bird_extra` in their BGP blocks) of our daemon on h1 (with `our_opts`
/// on the two `--peer`s): the session with h2 comes up and its route reaches our kernel; the one with
/// h3 never does, on either side.
fn one_accepted_one_refused(
    lab_name: &str,
    bird_extra: [&str; 2],
    our_opts: [&str; 2],
) -> Result<()> {
    preflight()?;
    Lab::builder(lab_name).hosts(3).run(|lab| {
        let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
        let a1 = h1.ip.to_string();
        let mut birds = Vec::new();
        for (h, extra) in [(h2, bird_extra[0]), (h3, bird_extra[1])] {
            let a = h.ip.to_string();
            let conf = format!(
                "{}protocol static s4 {{ ipv4; route 10.65.{}.0/24 blackhole; }}\n{}",
                bird_head(&a),
                &h.name[1..],
                bird_bgp("ours", &a, THEIRS, &a1, OURS, &v4_channel(""), extra)
            );
            birds.push(Bird::start(lab, h, &format!("bird-{}", h.name), &conf)?);
        }
        let (a2, a3) = (h2.ip.to_string(), h3.ip.to_string());
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
                &format!("{a2},as=65002,hold=9,{}", our_opts[0]),
                "--peer",
                &format!("{a3},as=65002,hold=9,{}", our_opts[1]),
            ],
        )?;
        ours.wait_established(&a2)?;
        birds[0].wait_established("ours")?;
        wait_kernel(h1, "10.65.2.0/24", &[&format!("via {a2}")])?;
        std::thread::sleep(Duration::from_secs(6));
        let peer = ours.peer(&a3)?;
        ensure!(peer["state"] != "Established", "{peer}");
        ensure!(!birds[1].established("ours")?);
        ensure!(kernel_route(h1, "10.65.3.0/24")?.is_empty());
        Ok(())
    })
}

#[test]
fn the_hold_timer_expires_when_packets_are_dropped() -> Result<()> {
    preflight()?;
    Lab::builder("bgpbirdhold").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let (a1, a2) = (h1.ip.to_string(), h2.ip.to_string());
        let conf = format!(
            "{}protocol static s4 {{ ipv4; route 10.65.2.0/24 blackhole; }}\n{}",
            bird_head(&a2),
            bird_bgp("ours", &a2, THEIRS, &a1, OURS, &v4_channel(""), "")
        );
        let _bird = Bird::start(lab, h2, "bird", &conf)?;
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
            ],
        )?;
        ours.wait_established(&a2)?;
        wait_kernel(h1, "10.65.2.0/24", &[&format!("via {a2}")])?;
        // Drop everything from BIRD in our namespace (the namespace and its rules go with the lab).
        h1.cmd(&["nft", "add", "table", "inet", "bgptest"]).run()?;
        h1.cmd(&[
            "nft",
            "add",
            "chain",
            "inet",
            "bgptest",
            "in",
            "{ type filter hook input priority 0 ; policy accept ; }",
        ])
        .run()?;
        h1.cmd(&[
            "nft", "add", "rule", "inet", "bgptest", "in", "ip", "saddr", &a2, "drop",
        ])
        .run()?;
        let t = std::time::Instant::now();
        wait_until(Duration::from_secs(15), "our hold timer to expire", || {
            let p = ours.peer(&a2)?;
            Ok(p["state"] != "Established"
                && p["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("hold timer")))
        })?;
        let took = t.elapsed();
        ensure!(
            took >= Duration::from_secs(5),
            "expired after only {took:?}"
        );
        wait_no_kernel(h1, "10.65.2.0/24")?;
        Ok(())
    })
}

/// eBGP multihop: our speaker in subnet A and BIRD in subnet B, two hops apart through the ToR. Each
/// learns the other's route with the far peer as BGP next hop, which its kernel cannot reach directly:
/// ours resolves it recursively to the ToR on its subnet (as BIRD does with `gateway recursive`).
#[test]
fn ebgp_multihop_through_the_tor_resolves_next_hops_recursively() -> Result<()> {
    multihop_through_the_tor("bgpbirdmh", THEIRS, "hold=9,multihop=2")
}

/// iBGP between subnets, as with a route reflector or a peer in another rack: the same AS on both sides,
/// two hops apart. iBGP sessions are multihop without being told (our TTL is the kernel's default), and
/// iBGP leaves the next hop alone, so both resolve it recursively as above.
#[test]
fn ibgp_multihop_through_the_tor_resolves_next_hops_recursively() -> Result<()> {
    multihop_through_the_tor("bgpbirdimh", OURS, "hold=9")
}

/// Our speaker on h1 (subnet A) and BIRD in AS `bird_as` on h2 (subnet B, behind the ToR), each announcing
/// one /24; `peer_opts` are our `--peer` options for BIRD besides its address and AS.
fn multihop_through_the_tor(lab_name: &str, bird_as: u32, peer_opts: &str) -> Result<()> {
    preflight()?;
    Lab::builder(lab_name)
        .hosts(1)
        .hosts_behind_tor(1)
        .run(|lab| {
            let (h1, h2) = (lab.host(1), lab.host(2));
            let (a1, a2) = (h1.ip.to_string(), h2.ip.to_string());
            let plan = lab.plan();
            let tor_a = plan.tor_v4(calico_lab::Subnet::A).to_string();
            let tor_b = plan.tor_v4(calico_lab::Subnet::B).to_string();
            // BIRD resolves the far next hop through its own table: give it the route to subnet A
            // (the kernel's, as a static), and announce only the 10.65 routes.
            let conf = format!(
                "{}protocol static s4 {{ ipv4; route 10.65.2.0/24 blackhole; route {} via {tor_b}; }}\n{}",
                bird_head(&a2),
                plan.v4_net(calico_lab::Subnet::A),
                bird_bgp(
                    "ours",
                    &a2,
                    bird_as,
                    &a1,
                    OURS,
                    "ipv4 { import all; export where net ~ [ 10.65.0.0/16+ ]; };",
                    "multihop 2;"
                )
            );
            let bird = Bird::start(lab, h2, "bird", &conf)?;
            let asn = OURS.to_string();
            let ours = Ours::start(
                lab,
                h1,
                "ours",
                &[
                    "--asn",
                    &asn,
                    "--router-id",
                    &a1,
                    "--peer",
                    &format!("{a2},as={bird_as},{peer_opts}"),
                    "--announce",
                    "10.65.1.0/24",
                    "--fib-scan",
                    "1",
                ],
            )?;
            ours.wait_established(&a2)?;
            bird.wait_established("ours")?;
            wait_kernel(h1, "10.65.2.0/24", &[&format!("via {tor_a}"), "proto bgp"])?;
            wait_kernel(h2, "10.65.1.0/24", &[&format!("via {tor_b}")])?;
            let peer = ours.peer(&a2)?;
            ensure!(
                peer["routes_accepted"] == 1 && peer["routes_advertised"] == 1,
                "{peer}"
            );

            // The way to the next hop changes (a second ToR address on subnet A carries it now):
            // our route follows within a scan, without any BGP change.
            let tor = lab.tor().context("a ToR")?;
            let tor_a2 = plan.v4(calico_lab::Subnet::A, 253).to_string();
            let addrs = tor.cmd(&["ip", "-o", "-4", "addr", "show"]).stdout()?;
            let iface = addrs
                .lines()
                .find(|l| l.contains(&format!("inet {tor_a}/")))
                .and_then(|l| l.split_whitespace().nth(1))
                .context("the ToR's interface on subnet A")?
                .to_string();
            tor.cmd(&["ip", "addr", "add", &format!("{tor_a2}/24"), "dev", &iface])
                .run()?;
            h1.cmd(&["ip", "route", "replace", &format!("{a2}/32"), "via", &tor_a2])
                .run()?;
            wait_kernel(h1, "10.65.2.0/24", &[&format!("via {tor_a2}"), "proto bgp"])?;
            ensure!(bird.established("ours")?, "the session stayed up");
            Ok(())
        })
}

#[test]
fn routes_someone_else_deletes_or_changes_come_back_on_the_next_scan() -> Result<()> {
    preflight()?;
    Lab::builder("bgpscan").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let (a1, a2) = (h1.ip.to_string(), h2.ip.to_string());
        let conf = format!(
            "{}protocol static s4 {{ ipv4; route 10.65.2.0/24 blackhole; route 10.65.3.0/24 blackhole; }}\n{}",
            bird_head(&a2),
            bird_bgp("ours", &a2, THEIRS, &a1, OURS, &v4_channel(""), "")
        );
        let _bird = Bird::start(lab, h2, "bird", &conf)?;
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
                &format!("{a2},as=65002"),
                "--fib-scan",
                "1",
            ],
        )?;
        ours.wait_established(&a2)?;
        let via = format!("via {a2}");
        wait_kernel(h1, "10.65.2.0/24", &[&via, "proto bgp"])?;
        wait_kernel(h1, "10.65.3.0/24", &[&via, "proto bgp"])?;

        // Someone deletes one of our routes, changes another, adds one with our protocol number, and
        // adds a route of their own.
        let ip = |args: &[&str]| -> Result<()> {
            let mut all = vec!["ip", "route"];
            all.extend_from_slice(args);
            h1.cmd(&all).stdout().map(|_| ())
        };
        ip(&["del", "10.65.2.0/24", "proto", "186"])?;
        ip(&["replace", "10.65.3.0/24", "dev", "eth0", "proto", "186"])?;
        ip(&["add", "10.65.9.0/24", "via", &a2, "proto", "186"])?;
        ip(&["add", "10.65.8.0/24", "via", &a2, "proto", "static"])?;
        // (Each command succeeded, so each change was made; a scan may already be putting it right, so
        // the kernel is not checked in between.)

        // Within a scan or two: ours restored, the stray one of our protocol gone, theirs untouched.
        wait_kernel(h1, "10.65.2.0/24", &[&via, "proto bgp"])?;
        wait_kernel(h1, "10.65.3.0/24", &[&via, "proto bgp"])?;
        wait_no_kernel(h1, "10.65.9.0/24")?;
        let theirs = kernel_route(h1, "10.65.8.0/24")?;
        ensure!(theirs.contains("proto static"), "another owner's route was touched: {theirs}");

        // Someone deletes the nexthop object our routes go through (the kernel deletes the routes with
        // it): they come back through a new one.
        let id = nhid(&kernel_route(h1, "10.65.2.0/24")?)?;
        h1.cmd(&["ip", "nexthop", "del", "id", &id]).stdout()?;
        wait_until(ROUTE, "the routes through a new nexthop object", || {
            let line = kernel_route(h1, "10.65.2.0/24")?;
            Ok(!line.is_empty() && nhid(&line)? != id)
        })?;
        let back = wait_kernel(h1, "10.65.2.0/24", &[&via, "proto bgp"])?;
        wait_kernel(h1, "10.65.3.0/24", &[&via, "proto bgp"])?;
        ensure!(nhid(&back)? != id, "{back}");
        Ok(())
    })
}
