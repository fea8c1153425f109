//! calico-node and the master as Docker containers (`calicoctl master --ip`, `calicoctl node --ip`), as
//! the 2015 Getting Started ran them. h1 gets a dockerd of its own inside its namespace, so the
//! containers' host network is h1's and nothing lands in the machine's namespace; h2 runs calico-node
//! as a process (`calicoctl node run`), as the other scenarios do. The master container on h1 serves the
//! cluster; the node container builds the image on first use, peers with h2 over BGP, runs Felix and
//! the Docker proxy on h1's 127.0.0.1:2375: a Calico container started through that proxy reaches one
//! on h2 in its profile and not one in another. `calicoctl node stop` refuses while h1 has an endpoint,
//! stops the container once it has none; `calicoctl master stop` removes the master's.

use std::time::Duration;

use anyhow::{bail, Result};
use calico_lab::cluster::{demo, Cluster};
use calico_lab::docker::{HostDockerd, IMAGE};
use calico_lab::wait::wait_until;
use calico_lab::{workspace_bin, Lab};

const WITHIN: Duration = Duration::from_secs(60);

#[test]
fn master_and_node_run_as_containers() -> Result<()> {
    Lab::builder("nodectr").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1).clone(), lab.host(2).clone());
        lab.docker()?;
        let dockerd = HostDockerd::start(lab, &h1)?;
        dockerd.load_image(IMAGE)?;
        let socket = dockerd.socket().display().to_string();
        let data = lab.dir().join("calico-data").display().to_string();
        let calicoctl = workspace_bin("calicoctl").display().to_string();
        let on_h1 = |args: &[&str]| {
            let mut argv = vec![calicoctl.as_str()];
            argv.extend_from_slice(args);
            h1.cmd(&argv).timeout(Duration::from_secs(120))
        };

        let h1_ip = h1.ip.to_string();
        on_h1(&[
            "master",
            "--ip",
            &h1_ip,
            "--docker-socket",
            &socket,
            "--data-dir",
            &data,
        ])
        .run()?;
        let url = format!("http://{h1_ip}:9900");
        let mut c = Cluster::attach(lab, url.clone())?;
        c.short_bgp_timers()?;
        c.add_pools_and_profiles()?;

        let n1 = c.node_name(&h1);
        let h1_ip6 = h1.ip6.to_string();
        on_h1(&[
            "--master",
            &url,
            "node",
            "--ip",
            &h1_ip,
            "--ip6",
            &h1_ip6,
            "--name",
            &n1,
            "--docker-socket",
            &socket,
            "--data-dir",
            &data,
            "--no-default-pools",
        ])
        .run()?;
        c.start_node(&h2, &[])?;
        c.wait_ready(&h1, WITHIN)?;
        c.wait_ready(&h2, WITHIN)?;
        // One mesh session per address family between the two.
        c.wait_sessions(&h1, 2, WITHIN)?;
        c.wait_sessions(&h2, 2, WITHIN)?;
        let listed = dockerd
            .cli(&["ps", "--format", "{{.Names}} {{.State}}"])
            .stdout()?;
        for want in ["calico-master running", "calico-node running"] {
            if !listed.lines().any(|l| l == want) {
                bail!("h1's dockerd should list `{want}`: {listed}");
            }
        }
        // The node's state sits under the data directory, at the same path inside and out.
        let state = lab
            .dir()
            .join("calico-data/node")
            .join(&n1)
            .join("snapshot.json");
        wait_until(WITHIN, "the node container saves its snapshot", || {
            Ok(state.exists())
        })?;

        // A on h1 (through the containerised node's proxy), E and D on h2.
        c.run_demo(&["a", "e", "d"])?;
        let (a, d, e) = (demo("a"), demo("d"), demo("e"));
        for ip in [e.v4, e.v6] {
            c.assert_reaches("a", ip, WITHIN)?;
        }
        c.assert_reaches("e", a.v4, WITHIN)?;
        c.assert_denied("a", d.v4)?;

        // Stopping the node refuses while h1 has an endpoint; it goes once A is removed.
        let stop = [
            "--master",
            url.as_str(),
            "node",
            "stop",
            "--hostname",
            &n1,
            "--docker-socket",
            &socket,
        ];
        let refused = on_h1(&stop).output()?;
        if refused.success() || !refused.stderr.contains("endpoint") {
            bail!("node stop with an endpoint should refuse: {refused:?}");
        }
        let a_name = format!("lab-{}-a", lab.name());
        c.docker(&h1, &["rm", "-f", &a_name]).run()?;
        wait_until(WITHIN, "h1's endpoint is removed", || {
            on_h1(&stop).succeeds()
        })?;
        on_h1(&["master", "stop", "--docker-socket", &socket]).run()?;
        let left = dockerd.cli(&["ps", "-aq"]).stdout()?;
        if !left.trim().is_empty() {
            bail!("node stop and master stop should leave no container: {left}");
        }
        Ok(())
    })
}
