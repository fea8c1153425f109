//! `node-latency`: how long until a new container on host 1 is reachable from host 2 (issue 7), and what
//! the proxy adds to `docker run` (issue 6), in a two-host lab with calico-node on each host.
//!
//! For each of N containers (default 100): the clock starts when `docker run -d -e CALICO_IP=…` is sent
//! to h1's proxy and stops when a ping from a probe container on h2 is answered (pings every 20 ms,
//! 200 ms timeout, from the probe's namespace). Reported: median and p99 of "docker run returned" and of
//! "reachable from h2"; and, as the peer measured in the same run, `docker run -d --net=none` of the same
//! image straight at dockerd (its median is what the proxy's wiring is compared with).
//!
//! Run by hand, as root: `cargo run --release -p calico-bench --bin node-latency -- [--containers N]`
//! after `cargo build --release --workspace --bins` (it starts `target/release/calicoctl`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use calico_lab::cluster::{Cluster, Datastore};
use calico_lab::cmd::Cmd;
use calico_lab::docker::{IMAGE, LABEL};
use calico_lab::{workspace_bin, Lab, Place};
use clap::Parser;

/// Time to reach a new container across hosts.
#[derive(Debug, Parser)]
struct Args {
    /// How many containers to start (one at a time).
    #[arg(long, default_value_t = 100)]
    containers: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut v: Vec<Duration>) -> Duration {
    v.sort();
    let (med, p99) = (percentile(&v, 0.5), percentile(&v, 0.99));
    println!(
        "{name:<42} median {:>7.1} ms   p99 {:>7.1} ms   (n={}, min {:.1}, max {:.1})",
        med.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        v.len(),
        v.first().copied().unwrap_or_default().as_secs_f64() * 1e3,
        v.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    med
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.containers == 0 || args.containers > 200 {
        bail!("--containers must be 1–200 (addresses 10.65.0.10 up)");
    }
    if !workspace_bin("calicoctl").is_file() {
        eprintln!(
            "note: calicoctl not found beside this binary; set CALICO_BIN_DIR=target/release"
        );
    }
    Lab::builder("benchlat").hosts(2).run(|lab| {
        let mut c = Cluster::start(lab, Datastore::Embedded)?;
        c.add_pools_and_profiles()?;
        c.start_all_nodes(&[])?;
        let (h1, h2) = (lab.host(1).clone(), lab.host(2).clone());
        c.wait_sessions(&h1, 2, Duration::from_secs(30))?;
        c.run_container(&h2, "probe", "10.65.1.2", "A_C_E")?;
        let probe = format!("lab-{}-probe", lab.name());
        let pid: u32 = c
            .docker(&h2, &["inspect", "-f", "{{.State.Pid}}", &probe])
            .stdout()?
            .trim()
            .parse()
            .context("the probe's PID")?;
        let from_probe = Place::Pid(pid);
        let label = format!("{LABEL}={}", lab.name());

        // The peer: docker run --net=none straight at dockerd.
        let mut direct = Vec::new();
        for i in 0..args.containers.min(30) {
            let name = format!("lab-{}-direct{i}", lab.name());
            let t = Instant::now();
            Cmd::new([
                "docker",
                "run",
                "-d",
                "--net=none",
                "--label",
                &label,
                "--name",
                &name,
                IMAGE,
                "sleep",
                "1d",
            ])
            .timeout(Duration::from_secs(60))
            .stdout()?;
            direct.push(t.elapsed());
        }

        let (mut run, mut reach) = (Vec::new(), Vec::new());
        for i in 0..args.containers {
            let ip = format!("10.65.0.{}", 10 + i);
            let t = Instant::now();
            c.run_container(&h1, &format!("w{i}"), &ip, "A_C_E")?;
            run.push(t.elapsed());
            let deadline = t + Duration::from_secs(30);
            loop {
                let ok = from_probe
                    .cmd(&["ping", "-c", "1", "-W", "0.2", &ip])
                    .timeout(Duration::from_secs(5))
                    .succeeds()?;
                if ok {
                    reach.push(t.elapsed());
                    break;
                }
                if Instant::now() > deadline {
                    bail!("container {ip} on h1 was not reachable from h2 within 30 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        println!(
            "node-latency: {} containers on h1, probe on h2 (calico-node on both)",
            args.containers
        );
        let d = summary("docker run --net=none, direct (peer)", direct);
        let r = summary("docker run through the proxy, Calico IP", run);
        summary("new container reachable from h2", reach);
        println!(
            "proxy run vs direct: +{:.1} ms at the median ({:.2}x)",
            (r.as_secs_f64() - d.as_secs_f64()) * 1e3,
            r.as_secs_f64() / d.as_secs_f64()
        );
        Ok(())
    })
}
