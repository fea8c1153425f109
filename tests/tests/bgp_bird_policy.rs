//! Per-peer policy and the max-prefix limit against BIRD 2: import rules (reject by community and by
//! prefix range, set LOCAL_PREF and add a community), export rules (reject one route, tag the others),
//! and a peer sending more routes than its limit (torn down with Cease / Maximum Number of Prefixes
//! Reached, or only warned about).
//!
//! Needs root, `bird`/`birdc` (Debian's bird2) and the release `calico-bgp` binary beside the tests
//! (`cargo build --release -p calico-bgp`, or CALICO_BGP_BIN).

#[path = "support/bird.rs"]
mod bird;

use std::time::Duration;

use anyhow::{ensure, Result};
use bird::*;
use calico_lab::wait::wait_until;
use calico_lab::{Host, Lab};

/// BIRD on `h2` announcing `routes` (static lines, with their own filters) to us on `h1`.
fn bird_announcing(lab: &Lab, h1: &Host, h2: &Host, routes: &str) -> Result<Bird> {
    let (a1, a2) = (h1.ip.to_string(), h2.ip.to_string());
    let conf = format!(
        "{}protocol static s4 {{ ipv4; {routes} }}\n{}",
        bird_head(&a2),
        bird_bgp(
            "ours",
            &a2,
            THEIRS,
            &a1,
            OURS,
            "ipv4 { import all; export where source = RTS_STATIC; };",
            ""
        )
    );
    Bird::start(lab, h2, "bird", &conf)
}

/// Whether our RIB holds `prefix`, and its first path.
fn our_route(ours: &Ours, prefix: &str) -> Result<Option<serde_json::Value>> {
    let routes = ours.routes()?;
    Ok(routes
        .as_array()
        .and_then(|a| a.iter().find(|r| r["prefix"] == prefix))
        .map(|r| r["paths"][0].clone()))
}

#[test]
fn import_and_export_rules_from_the_config_file() -> Result<()> {
    preflight()?;
    Lab::builder("bgppolicy").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let (a1, a2) = (h1.ip.to_string(), h2.ip.to_string());
        let bird = bird_announcing(
            lab,
            h1,
            h2,
            "route 10.65.2.0/24 blackhole; \
             route 10.65.3.0/24 blackhole { bgp_community.add((65002,666)); }; \
             route 10.65.4.0/26 blackhole; route 10.65.5.0/24 blackhole;",
        )?;
        let config = lab.dir().join("policy.toml");
        std::fs::write(
            &config,
            format!(
                r#"asn = {OURS}
router_id = "{a1}"

[[announce]]
prefix = "10.65.1.0/24"

[[announce]]
prefix = "10.65.7.0/24"

[[peer]]
address = "{a2}"
asn = {THEIRS}
hold = 9

[[peer.import]]
communities = ["65002:666"]
action = "reject"

[[peer.import]]
prefixes = ["10.65.4.0/24 ge 25"]
action = "reject"

[[peer.import]]
prefixes = ["10.65.2.0/24"]
set_local_pref = 200
add_communities = ["65001:9"]

[[peer.export]]
prefixes = ["10.65.7.0/24"]
action = "reject"

[[peer.export]]
add_communities = ["65001:5"]
add_large_communities = ["65001:5:5"]
"#
            ),
        )?;
        let ours = Ours::start(
            lab,
            h1,
            "ours",
            &["--config", &config.display().to_string()],
        )?;
        ours.wait_established(&a2)?;

        // Import: 10.65.2.0/24 changed, 10.65.5.0/24 as it came, the other two refused.
        let two = wait_until(ROUTE, "10.65.2.0/24 in our RIB", || {
            Ok(our_route(&ours, "10.65.2.0/24")?.is_some()
                && our_route(&ours, "10.65.5.0/24")?.is_some())
        });
        two?;
        let path = our_route(&ours, "10.65.2.0/24")?.expect("seen above");
        ensure!(
            path["local_pref"] == 200 && path["communities"] == serde_json::json!(["65001:9"]),
            "the import rule's changes: {path}"
        );
        let plain = our_route(&ours, "10.65.5.0/24")?.expect("seen above");
        ensure!(
            plain["communities"] == serde_json::json!([]) && plain["local_pref"] != 200,
            "a route no rule matched comes as it was sent: {plain}"
        );
        wait_kernel(h1, "10.65.2.0/24", &[&a2])?;
        for refused in ["10.65.3.0/24", "10.65.4.0/26"] {
            ensure!(
                our_route(&ours, refused)?.is_none(),
                "{refused} was refused"
            );
            ensure!(
                kernel_route(h1, refused)?.trim().is_empty(),
                "{refused} is not in our kernel"
            );
        }
        let peer = ours.peer(&a2)?;
        ensure!(
            peer["routes_received"] == 4 && peer["routes_accepted"] == 2,
            "received 4, accepted 2: {peer}"
        );

        // Export: 10.65.1.0/24 tagged, 10.65.7.0/24 not sent.
        wait_kernel(h2, "10.65.1.0/24", &[])?;
        let shown = bird.route_all("10.65.1.0/24")?;
        ensure!(
            shown.contains("BGP.community: (65001,5)")
                && shown.contains("BGP.large_community: (65001, 5, 5)"),
            "{shown}"
        );
        std::thread::sleep(Duration::from_secs(1));
        let all = bird.birdc("show route")?;
        ensure!(
            all.contains("10.65.1.0/24") && !all.contains("10.65.7.0/24"),
            "the export rule keeps 10.65.7.0/24 from BIRD: {all}"
        );
        Ok(())
    })
}

#[test]
fn a_peer_over_its_max_prefix_limit_is_torn_down_or_warned_about() -> Result<()> {
    preflight()?;
    Lab::builder("bgpmaxpfx").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let (a1, a2) = (h1.ip.to_string(), h2.ip.to_string());
        let bird = bird_announcing(
            lab,
            h1,
            h2,
            "route 10.65.2.0/24 blackhole; route 10.65.3.0/24 blackhole; route 10.65.4.0/24 blackhole;",
        )?;
        let start = |name: &str, action: &str| {
            Ours::start(
                lab,
                h1,
                name,
                &[
                    "--asn",
                    &OURS.to_string(),
                    "--router-id",
                    &a1,
                    "--peer",
                    &format!("{a2},as={THEIRS},hold=9,max-prefix=2{action}"),
                ],
            )
        };

        // Three routes against a limit of two: BIRD hears why the session ends, our status says it,
        // none of the routes stays in our kernel, and the session stays down (BIRD keeps trying).
        let ours = start("ours", "")?;
        wait_until(SESSION_UP, "BIRD told of the limit", || {
            Ok(bird
                .birdc("show protocols all ours")?
                .contains("Maximum number of prefixes reached"))
        })?;
        for p in ["10.65.2.0/24", "10.65.3.0/24", "10.65.4.0/24"] {
            wait_no_kernel(h1, p)?;
        }
        std::thread::sleep(Duration::from_secs(4));
        let peer = ours.peer(&a2)?;
        ensure!(
            peer["state"] == "Idle"
                && peer["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("Maximum Number of Prefixes Reached")),
            "{peer}"
        );
        ensure!(!bird.established("ours")?, "the session stays down");
        drop(ours);

        // With the action "warn" the session stays and the routes are used.
        let ours = start("ours-warn", ",max-prefix-action=warn")?;
        ours.wait_established(&a2)?;
        for p in ["10.65.2.0/24", "10.65.3.0/24", "10.65.4.0/24"] {
            wait_kernel(h1, p, &[&a2])?;
        }
        std::thread::sleep(Duration::from_secs(2));
        let peer = ours.peer(&a2)?;
        ensure!(
            peer["state"] == "Established" && peer["routes_accepted"] == 3,
            "{peer}"
        );
        Ok(())
    })
}

#[test]
fn new_rules_on_sighup_apply_without_a_reset_and_route_refresh_works_both_ways() -> Result<()> {
    preflight()?;
    Lab::builder("bgppolhup").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let (a1, a2) = (h1.ip.to_string(), h2.ip.to_string());
        let bird = bird_announcing(
            lab,
            h1,
            h2,
            "route 10.65.2.0/24 blackhole; route 10.65.3.0/24 blackhole;",
        )?;
        let file = lab.dir().join("policy.toml");
        let head = format!(
            "asn = {OURS}\nrouter_id = \"{a1}\"\n[[announce]]\nprefix = \"10.65.1.0/24\"\n\
             [[peer]]\naddress = \"{a2}\"\nasn = {THEIRS}\nhold = 9\n"
        );
        std::fs::write(&file, &head)?;
        let ours = Ours::start(lab, h1, "ours", &["--config", &file.display().to_string()])?;
        ours.wait_established(&a2)?;
        bird.wait_established("ours")?;
        wait_kernel(h1, "10.65.3.0/24", &[&a2])?;
        wait_kernel(h2, "10.65.1.0/24", &[])?;
        // Let a second pass of the clock show in BIRD's since column if the session were reset.
        std::thread::sleep(Duration::from_millis(1100));
        let since_ours = ours.peer(&a2)?["since"].clone();
        let since_bird = bird.since("ours")?;

        // BIRD asks us to re-send (`reload in`): our route comes again.
        let before = bird.import_updates("ours")?;
        bird.birdc("reload in ours")?;
        wait_until(ROUTE, "our routes re-sent to BIRD", || {
            Ok(bird.import_updates("ours")? > before)
        })?;

        // New rules in the file: an import rule refuses 10.65.3.0/24 (we ask BIRD to re-send, so it
        // applies to what BIRD sent before) and an export rule tags our route.
        std::fs::write(
            &file,
            format!(
                "{head}[[peer.import]]\nprefixes = [\"10.65.3.0/24\"]\naction = \"reject\"\n\
                 [[peer.export]]\nadd_communities = [\"65001:5\"]\n"
            ),
        )?;
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(ours.daemon.pid() as i32).expect("a pid"),
            rustix::process::Signal::HUP,
        )?;
        wait_no_kernel(h1, "10.65.3.0/24")?;
        wait_until(ROUTE, "our route tagged at BIRD", || {
            Ok(bird
                .route_all("10.65.1.0/24")?
                .contains("BGP.community: (65001,5)"))
        })?;
        ensure!(
            our_route(&ours, "10.65.2.0/24")?.is_some()
                && our_route(&ours, "10.65.3.0/24")?.is_none(),
            "only 10.65.3.0/24 is refused"
        );
        let peer = ours.peer(&a2)?;
        ensure!(
            peer["state"] == "Established" && peer["since"] == since_ours,
            "our session was not reset: {peer} vs {since_ours}"
        );
        ensure!(
            bird.since("ours")? == since_bird,
            "BIRD's session was not reset"
        );
        Ok(())
    })
}
