//! `calico-bgp run --config FILE.toml` and SIGHUP: the daemon starts from a TOML file with one BIRD
//! peer; the file gains a second BIRD peer and an announced route; after SIGHUP the new session comes
//! up and the route reaches both BIRDs' kernels, while the first session is not reset (its "since" is
//! unchanged on both sides).
//!
//! Needs root, `bird`/`birdc` (Debian's bird2) and the release `calico-bgp` binary beside the tests
//! (`cargo build --release -p calico-bgp`, or CALICO_BGP_BIN).

#[path = "support/bird.rs"]
mod bird;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bird::*;
use calico_lab::Lab;

#[test]
fn sighup_adds_a_peer_and_a_route_without_resetting_the_existing_session() -> Result<()> {
    preflight()?;
    Lab::builder("bgpreload").hosts(3).run(|lab| {
        let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
        let (a1, a2, a3) = (h1.ip.to_string(), h2.ip.to_string(), h3.ip.to_string());
        let mut birds = Vec::new();
        for (h, a) in [(h2, &a2), (h3, &a3)] {
            let conf = format!(
                "{}{}",
                bird_head(a),
                bird_bgp(
                    "ours",
                    a,
                    THEIRS,
                    &a1,
                    OURS,
                    "ipv4 { import all; export none; };",
                    ""
                )
            );
            birds.push(Bird::start(lab, h, &format!("bird-{}", h.name), &conf)?);
        }
        let file = lab.dir().join("calico-bgp.toml");
        let peer = |a: &str| format!("[[peer]]\naddress = \"{a}\"\nasn = {THEIRS}\nhold = 9\n");
        let head = format!("asn = {OURS}\nrouter_id = \"{a1}\"\nlisten = [\"{a1}:179\"]\n");
        std::fs::write(&file, format!("{head}{}", peer(&a2)))?;
        let ours = Ours::start(lab, h1, "ours", &["--config", &file.display().to_string()])?;
        ours.wait_established(&a2)?;
        birds[0].wait_established("ours")?;
        ensure!(ours.status()?.as_array().map(Vec::len) == Some(1));
        // Let a second pass of the clock show in BIRD's since column if the session were reset.
        std::thread::sleep(Duration::from_millis(1100));
        let since_ours = ours.peer(&a2)?["since"].clone();
        let since_bird = birds[0].since("ours")?;

        // The file gains a peer and a route; SIGHUP applies them.
        std::fs::write(
            &file,
            format!(
                "{head}{}{}[[announce]]\nprefix = \"10.65.1.0/24\"\n",
                peer(&a2),
                peer(&a3)
            ),
        )?;
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(ours.daemon.pid() as i32).context("pid")?,
            rustix::process::Signal::HUP,
        )?;
        ours.wait_established(&a3)?;
        birds[1].wait_established("ours")?;
        wait_kernel(h2, "10.65.1.0/24", &[&format!("via {a1}")])?;
        wait_kernel(h3, "10.65.1.0/24", &[&format!("via {a1}")])?;

        // The first session was not touched.
        let peer2 = ours.peer(&a2)?;
        ensure!(peer2["state"] == "Established", "{peer2}");
        ensure!(peer2["since"] == since_ours, "{peer2} vs {since_ours}");
        ensure!(birds[0].since("ours")? == since_bird);

        // A bad file changes nothing: the daemon keeps running with both sessions.
        std::fs::write(&file, "asn = \"not an AS\"\n")?;
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(ours.daemon.pid() as i32).context("pid")?,
            rustix::process::Signal::HUP,
        )?;
        std::thread::sleep(Duration::from_millis(500));
        let st = ours.status()?;
        ensure!(
            st.as_array()
                .is_some_and(|a| a.len() == 2 && a.iter().all(|p| p["state"] == "Established")),
            "{st}"
        );
        ensure!(birds[0].since("ours")? == since_bird);
        Ok(())
    })
}
