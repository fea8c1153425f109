//! Faults (scenario 5): calico-node killed with -9 while a TCP stream runs between containers on two
//! hosts (the stream survives through graceful restart and the node converges); a node restarted while
//! the master is down keeps its dataplane and converges when the master returns; a master restart
//! changes nothing in the dataplane; etcd stopped for 30 s under a master on etcd: traffic flows, writes
//! are refused and change nothing, changes apply once it is back; a host that disappears has its routes
//! withdrawn from the others within the hold time.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use calico_lab::cluster::{demo, Cluster, Datastore};
use calico_lab::cmd::Output;
use calico_lab::procs::Daemon;
use calico_lab::wait::wait_until;
use calico_lab::{lab_bin, Lab, Place};

fn setup(lab: &Lab) -> Result<Cluster<'_>> {
    setup_on(lab, Datastore::Embedded)
}

fn setup_on<'a>(lab: &'a Lab, store: Datastore<'_>) -> Result<Cluster<'a>> {
    let mut c = Cluster::start(lab, store)?;
    c.short_bgp_timers()?;
    c.add_pools_and_profiles()?;
    c.start_all_nodes(&[])?;
    for h in lab.hosts() {
        c.wait_sessions(h, 2, Duration::from_secs(30))?;
    }
    c.run_getting_started()?;
    c.assert_reaches("a", demo("e").v4, Duration::from_secs(20))?;
    Ok(c)
}

/// What the kernel of a host holds that Felix, the blackholes and BGP own: routes and the ruleset.
fn dataplane(lab: &Lab, host: usize) -> Result<String> {
    let h = lab.host(host);
    let routes = h.cmd(&["ip", "route", "show"]).stdout()?;
    let routes6 = h.cmd(&["ip", "-6", "route", "show"]).stdout()?;
    let rules = h.cmd(&["nft", "list", "ruleset"]).stdout()?;
    // Counters move with traffic; compare the rules themselves.
    let rules: String = rules
        .lines()
        .map(|l| match l.find("counter packets") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    // Order is not state: the kernel lists set elements and routes in insertion order.
    let mut lines: Vec<String> = format!("{routes}\n{routes6}\n{rules}")
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    lines.sort();
    Ok(lines.join("\n"))
}

/// The lines only in `a` (-) and only in `b` (+).
fn line_diff(a: &str, b: &str) -> String {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let gone = la
        .iter()
        .filter(|l| !lb.contains(l))
        .map(|l| format!("- {l}"));
    let new = lb
        .iter()
        .filter(|l| !la.contains(l))
        .map(|l| format!("+ {l}"));
    gone.chain(new).collect::<Vec<_>>().join("\n")
}

/// A TCP stream from container a to an echo server in container e (h2) for `seconds`: a line every
/// 100 ms, where any loss or a 2 s stall fails it. Join the handle for its outcome.
fn stream_a_to_e(
    c: &Cluster<'_>,
    lab: &Lab,
    seconds: u32,
) -> Result<(Daemon, std::thread::JoinHandle<Result<Output>>)> {
    let server = format!("{}:7000", demo("e").v4);
    let echo = lab.spawn(
        "echo-e",
        &Place::Pid(c.pid("e")?),
        &[
            lab_bin().display().to_string(),
            "serve".into(),
            "tcp".into(),
            server.clone(),
        ],
    )?;
    let a_pid = c.pid("a")?;
    let stream = std::thread::spawn(move || {
        Place::Pid(a_pid)
            .cmd(&[
                lab_bin().display().to_string(),
                "probe".into(),
                "stream".into(),
                server,
                "--seconds".into(),
                seconds.to_string(),
            ])
            .timeout(Duration::from_secs(u64::from(seconds) + 35))
            .output()
    });
    Ok((echo, stream))
}

#[test]
fn killing_a_node_keeps_a_stream_alive_and_the_node_converges() -> Result<()> {
    Lab::builder("nodekill").hosts(2).run(|lab| {
        let mut c = setup(lab)?;
        let (_echo, stream) = stream_a_to_e(&c, lab, 25)?;
        std::thread::sleep(Duration::from_secs(3));
        let h1 = lab.host(1).clone();
        c.stop_node(&h1, true);
        std::thread::sleep(Duration::from_secs(4));
        c.start_node(&h1, &[])?;
        c.wait_ready(&h1, Duration::from_secs(30))?;
        let out = stream
            .join()
            .map_err(|_| anyhow::anyhow!("the stream thread panicked"))??;
        ensure!(
            out.success(),
            "the TCP stream between a (h1) and e (h2) broke while calico-node on h1 restarted: {}{}",
            out.stdout,
            out.stderr
        );
        c.wait_sessions(&h1, 2, Duration::from_secs(30))?;
        // Converged: a container started after the restart is wired, routed and policed.
        c.run_container(&h1, "f", "10.65.0.5", "A_C_E")?;
        let f = format!("lab-{}-f", lab.name());
        wait_until(Duration::from_secs(20), "e pings the new container f", || {
            c.ping("e", "10.65.0.5")
        })?;
        ensure!(
            !c.exec(&h1, &f, &["ping", "-c", "1", "-W", "1", demo("b").v4]).succeeds()?,
            "f (A_C_E) reached b (B)"
        );
        Ok(())
    })
}

#[test]
fn the_dataplane_outlives_the_master() -> Result<()> {
    Lab::builder("nomaster").hosts(2).run(|lab| {
        let mut c = setup(lab)?;
        let h1 = lab.host(1).clone();
        // A master restart changes nothing in the dataplane.
        std::thread::sleep(Duration::from_secs(2));
        let before = dataplane(lab, 1)?;
        c.stop_master(false);
        c.start_master()?;
        std::thread::sleep(Duration::from_secs(3));
        let after = dataplane(lab, 1)?;
        ensure!(
            before == after,
            "the master's restart changed h1's dataplane:\n{}",
            line_diff(&before, &after)
        );

        // With the master down, a node killed and restarted keeps (and serves) what it had.
        c.stop_master(true);
        c.stop_node(&h1, true);
        c.start_node(&h1, &[])?;
        std::thread::sleep(Duration::from_secs(5));
        for _ in 0..3 {
            ensure!(
                c.ping("a", demo("e").v4)?,
                "a lost e while the master was down"
            );
            ensure!(
                !c.ping("a", demo("b").v4)?,
                "a reached b while the master was down"
            );
        }
        let now = dataplane(lab, 1)?;
        ensure!(
            now == after,
            "h1's dataplane changed while the master was down:\n{}",
            line_diff(&after, &now)
        );
        // The master returns: the node converges (a new container on h1 works).
        c.start_master()?;
        c.wait_ready(&h1, Duration::from_secs(30))?;
        c.run_container(&h1, "g", "10.65.0.6", "A_C_E")?;
        wait_until(
            Duration::from_secs(20),
            "e pings the new container g",
            || c.ping("e", "10.65.0.6"),
        )?;
        Ok(())
    })
}

#[test]
fn the_cluster_rides_out_etcd_stopped_for_30_s() -> Result<()> {
    Lab::builder("etcdstop").hosts(2).run(|lab| {
        let mut etcd = lab.etcd()?;
        let c = setup_on(lab, Datastore::Etcd(&etcd))?;
        std::thread::sleep(Duration::from_secs(2));
        let before = dataplane(lab, 1)?;
        let (_echo, stream) = stream_a_to_e(&c, lab, 40)?;
        std::thread::sleep(Duration::from_secs(2));

        etcd.stop();
        let stopped = std::time::Instant::now();
        // Writes are refused, quickly and saying why; nothing of them appears later.
        let t = std::time::Instant::now();
        let out = c.ctl(&["profile", "add", "WHILE_DOWN"]).output()?;
        let took = t.elapsed();
        ensure!(
            !out.success(),
            "a write succeeded with etcd stopped: {}",
            out.stdout
        );
        ensure!(
            out.stderr.contains("etcd"),
            "the refusal should name etcd: {}",
            out.stderr
        );
        ensure!(took < Duration::from_secs(15), "the refusal took {took:?}");
        eprintln!(
            "with etcd stopped, a write was refused in {took:?}: {}",
            out.stderr.trim()
        );
        // Traffic flows and policy holds for the 30 s.
        while stopped.elapsed() < Duration::from_secs(30) {
            ensure!(c.ping("a", demo("e").v4)?, "a lost e while etcd was down");
            ensure!(
                !c.ping("a", demo("b").v4)?,
                "a reached b while etcd was down"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
        let during = dataplane(lab, 1)?;
        ensure!(
            during == before,
            "h1's dataplane changed while etcd was down:\n{}",
            line_diff(&before, &during)
        );

        etcd.restart()?;
        eprintln!("etcd was down for {:?}", stopped.elapsed());
        // Changes apply once it is back (the master retries its watch; the nodes follow).
        wait_until(
            Duration::from_secs(30),
            "the master accepts writes again",
            || {
                c.ctl(&[
                    "profile", "A_C_E", "rule", "add", "inbound", "allow", "from", "tag", "B",
                ])
                .succeeds()
            },
        )?;
        wait_until(
            Duration::from_secs(10),
            "b reaches a after the rule",
            || c.ping("b", demo("a").v4),
        )?;
        let profiles = c.ctl_json(&["profile", "show"])?;
        ensure!(
            !profiles.to_string().contains("WHILE_DOWN"),
            "the refused write appeared after all: {profiles}"
        );
        let out = stream
            .join()
            .map_err(|_| anyhow::anyhow!("the stream thread panicked"))??;
        ensure!(
            out.success(),
            "the TCP stream a -> e broke while etcd was down: {}{}",
            out.stdout,
            out.stderr
        );
        Ok(())
    })
}

#[test]
fn a_vanished_host_has_its_routes_withdrawn_within_the_hold_time() -> Result<()> {
    Lab::builder("hostgone").hosts(2).run(|lab| {
        let c = setup(lab)?;
        let h1 = lab.host(1);
        let h2 = lab.host(2);
        let learned = |h: &calico_lab::Host| -> Result<bool> {
            Ok(h.cmd(&["ip", "route", "show", "proto", "186"])
                .stdout()?
                .contains("10.65.1."))
        };
        ensure!(learned(h1)?, "h1 has no BGP route to h2's block");
        // h2 vanishes from the fabric (its link goes down: no FIN, no NOTIFICATION).
        h2.cmd(&["ip", "link", "set", "eth0", "down"]).run()?;
        let start = std::time::Instant::now();
        wait_until(
            Duration::from_secs(9 + 6),
            "h1 withdraws h2's routes",
            || Ok(!learned(h1)?),
        )
        .context("the hold time is 9 s")?;
        let took = start.elapsed();
        if took > Duration::from_secs(15) {
            bail!("withdrawal took {took:?}");
        }
        eprintln!("h2's routes were withdrawn from h1 {took:?} after its link went down");
        drop(c);
        Ok(())
    })
}
