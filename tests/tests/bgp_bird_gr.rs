//! Graceful restart (RFC 4724) with BIRD 2, both ways. Ours restarting: our daemon is killed with SIGKILL; BIRD keeps our
//! routes in its kernel meanwhile; the restarted daemon keeps BIRD's routes in our kernel until BIRD has
//! re-sent its table (End-of-RIB), then removes only those BIRD no longer announces. BIRD restarting:
//! we keep its routes (stale) while it is down and keep only what it re-sends.
//!
//! Needs root, `bird`/`birdc` (Debian's bird2) and the release `calico-bgp` binary beside the tests.

#[path = "support/bird.rs"]
mod bird;

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use bird::*;
use calico_lab::wait::wait_until;
use calico_lab::Lab;

#[test]
fn graceful_restart_keeps_forwarding_on_both_sides() -> Result<()> {
    preflight()?;
    Lab::builder("bgpbirdgr").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let (a1, a2) = (h1.ip.to_string(), h2.ip.to_string());
        let conf = |routes: &str| gr_bird(&a2, &a1, routes);
        let bird = Bird::start(
            lab,
            h2,
            "bird",
            &conf("route 10.65.2.0/24 blackhole; route 10.65.3.0/24 blackhole;"),
        )?;
        let mut ours = Ours::start(
            lab,
            h1,
            "ours",
            &[
                "--asn",
                "65001",
                "--router-id",
                &a1,
                "--graceful-restart",
                "60",
                "--peer",
                &format!("{a2},as=65002,hold=9,gr=60"),
                "--announce",
                "10.65.1.0/24",
            ],
        )?;
        ours.wait_established(&a2)?;
        bird.wait_established("ours")?;
        wait_kernel(h1, "10.65.2.0/24", &[&format!("via {a2}"), "proto bgp"])?;
        wait_kernel(h1, "10.65.3.0/24", &[&format!("via {a2}")])?;
        wait_kernel(h2, "10.65.1.0/24", &[&format!("via {a1}")])?;

        // A crash: BIRD sees the session go, keeps our route (stale) in its table and kernel.
        ours.daemon.kill();
        wait_until(SESSION_UP, "BIRD to notice", || {
            Ok(!bird.established("ours")?)
        })?;
        std::thread::sleep(Duration::from_secs(2));
        ensure!(
            !kernel_route(h2, "10.65.1.0/24")?.is_empty(),
            "BIRD dropped our route"
        );
        let shown = bird.route_all("10.65.1.0/24")?;
        ensure!(shown.contains("10.65.1.0/24"), "{shown}");
        // Our kernel keeps BIRD's routes (nobody removed them).
        ensure!(!kernel_route(h1, "10.65.2.0/24")?.is_empty());

        // While we are down BIRD stops announcing one of them.
        bird.reconfigure(&conf("route 10.65.2.0/24 blackhole;"))?;

        // The restart, with BIRD's packets held back at first so the session cannot come up yet: both
        // routes stay in our kernel (adopted, not swept) while BIRD has not re-sent its table...
        h1.cmd(&["nft", "add", "table", "inet", "grtest"]).run()?;
        h1.cmd(&[
            "nft",
            "add",
            "chain",
            "inet",
            "grtest",
            "in",
            "{ type filter hook input priority 0 ; policy accept ; }",
        ])
        .run()?;
        h1.cmd(&[
            "nft", "add", "rule", "inet", "grtest", "in", "ip", "saddr", &a2, "drop",
        ])
        .run()?;
        ours.restart(lab, "restarted")?;
        std::thread::sleep(Duration::from_secs(3));
        ensure!(ours.peer(&a2)?["state"] != "Established");
        ensure!(
            !kernel_route(h1, "10.65.2.0/24")?.is_empty(),
            "adopted route removed at start"
        );
        ensure!(
            !kernel_route(h1, "10.65.3.0/24")?.is_empty(),
            "swept before BIRD re-sent"
        );
        h1.cmd(&["nft", "delete", "table", "inet", "grtest"])
            .run()?;
        // ...then the one BIRD re-sent stays, the other goes, and the first never blinks.
        let t = Instant::now();
        while !kernel_route(h1, "10.65.3.0/24")?.is_empty() {
            ensure!(
                !kernel_route(h1, "10.65.2.0/24")?.is_empty(),
                "the refreshed route disappeared during the restart"
            );
            ensure!(
                t.elapsed() < Duration::from_secs(30),
                "the stale route was never swept"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ours.wait_established(&a2)?;
        ensure!(!kernel_route(h1, "10.65.2.0/24")?.is_empty());
        // BIRD has our route again, refreshed, and never lost it from its kernel.
        bird.wait_established("ours")?;
        wait_until(ROUTE, "BIRD's route no longer stale", || {
            let shown = bird.route_all("10.65.1.0/24")?;
            Ok(shown.contains("10.65.1.0/24") && !shown.contains("stale"))
        })?;
        ensure!(!kernel_route(h2, "10.65.1.0/24")?.is_empty());
        Ok(())
    })
}

/// The other way: BIRD crashes and comes back. We are the helper (RFC 4724 §4.2): its routes stay in
/// our kernel, marked stale, while it is down; when it is back, what it re-sends stays and what it no
/// longer announces goes.
#[test]
fn we_keep_birds_routes_through_its_restart() -> Result<()> {
    preflight()?;
    Lab::builder("bgpbirdgrh").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let (a1, a2) = (h1.ip.to_string(), h2.ip.to_string());
        let conf = |routes: &str| gr_bird(&a2, &a1, routes);
        let mut bird = Bird::start(
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
                &format!("{a2},as=65002,hold=9,gr=60"),
            ],
        )?;
        ours.wait_established(&a2)?;
        bird.wait_established("ours")?;
        wait_kernel(h1, "10.65.2.0/24", &[&format!("via {a2}")])?;
        wait_kernel(h1, "10.65.3.0/24", &[&format!("via {a2}")])?;

        // BIRD dies: the connection goes, the routes stay (stale) in our RIB and kernel.
        bird.daemon.kill();
        wait_until(SESSION_UP, "our side to notice", || {
            Ok(ours.peer(&a2)?["state"] != "Established")
        })?;
        let stale = |prefix: &str| -> Result<bool> {
            let routes = ours.routes()?;
            Ok(routes.as_array().is_some_and(|a| {
                a.iter()
                    .any(|r| r["prefix"] == prefix && r["paths"][0]["stale"] == true)
            }))
        };
        for p in ["10.65.2.0/24", "10.65.3.0/24"] {
            ensure!(stale(p)?, "{p} kept as stale: {}", ours.routes()?);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            for p in ["10.65.2.0/24", "10.65.3.0/24"] {
                ensure!(
                    !kernel_route(h1, p)?.is_empty(),
                    "{p} left our kernel while BIRD was down"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }

        // BIRD is back announcing one of the two: that one stays (fresh), the other goes.
        bird = Bird::start(
            lab,
            h2,
            "bird-again",
            &conf("route 10.65.2.0/24 blackhole;"),
        )?;
        bird.wait_established("ours")?;
        ours.wait_established(&a2)?;
        wait_no_kernel(h1, "10.65.3.0/24")?;
        wait_until(ROUTE, "10.65.2.0/24 fresh again", || {
            Ok(!stale("10.65.2.0/24")? && !kernel_route(h1, "10.65.2.0/24")?.is_empty())
        })?;

        // A clean stop (SIGTERM) with graceful restart configured leaves our kernel routes in place
        // for the next run to adopt (without it they go: bgp_bird.rs).
        let mut ours = ours;
        ours.daemon.stop(Duration::from_secs(5));
        let log = std::fs::read_to_string(lab.dir().join("logs").join("ours.log"))?;
        ensure!(
            log.contains("BGP speaker stopped") && log.contains("keep_fib=true"),
            "stopped cleanly, keeping the kernel routes (not killed after the grace period)"
        );
        ensure!(
            !kernel_route(h1, "10.65.2.0/24")?.is_empty(),
            "the route stays in the kernel after a clean stop with graceful restart"
        );
        Ok(())
    })
}

/// BIRD at `bird` with graceful restart on (60 s), announcing the static `routes` to us at `ours`.
fn gr_bird(bird: &str, ours: &str, routes: &str) -> String {
    format!(
        "{}protocol static s4 {{ ipv4; {routes} }}\n{}",
        bird_head(bird),
        bird_bgp(
            "ours",
            bird,
            THEIRS,
            ours,
            OURS,
            &v4_channel(""),
            "graceful restart on; graceful restart time 60;"
        )
    )
}
