//! A Calico cluster on a lab: the master in the root namespace (listening on the management address),
//! calico-node on lab hosts (each in its host's namespace, its Docker proxy on that namespace's
//! 127.0.0.1:2375), `calicoctl` against the master, and Calico containers started through a host's proxy
//! with the ordinary `docker` CLI.
//!
//! Inputs: a [`Lab`] and the workspace's release binaries (`calicoctl`). Outputs: running daemons
//! (stopped with the lab), commands and their JSON answers.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cmd::Cmd;
use crate::docker::{IMAGE, LABEL};
use crate::etcd::{free_port, Etcd};
use crate::lab::{Host, Lab};
use crate::place::Place;
use crate::procs::Daemon;
use crate::wait::wait_until;
use crate::workspace_bin;

/// Where each node's Docker proxy listens, inside its host's namespace.
pub const PROXY: &str = "tcp://127.0.0.1:2375";

/// Where the master keeps its data.
pub enum Datastore<'a> {
    /// The embedded store, in the lab's directory.
    Embedded,
    /// A lab etcd.
    Etcd(&'a Etcd),
}

/// A master and the nodes started so far.
pub struct Cluster<'a> {
    lab: &'a Lab,
    /// The master's URL, reachable from every host.
    pub url: String,
    master_args: Vec<String>,
    master: Option<Daemon>,
    master_starts: usize,
    nodes: BTreeMap<String, Daemon>,
    node_starts: BTreeMap<String, usize>,
}

impl<'a> Cluster<'a> {
    /// Starts the master on the lab's management address and waits until it answers.
    pub fn start(lab: &'a Lab, store: Datastore<'_>) -> Result<Cluster<'a>> {
        lab.docker()?;
        let port = free_port()?;
        let url = format!("http://{}:{port}", lab.mgmt_ip());
        let mut master_args = vec![
            "master".to_string(),
            "run".into(),
            "--listen".into(),
            format!("{}:{port}", lab.mgmt_ip()),
        ];
        match store {
            Datastore::Embedded => {
                master_args.push("--datastore".into());
                master_args.push(lab.dir().join("master.db").display().to_string());
            }
            Datastore::Etcd(etcd) => {
                master_args.push("--etcd-endpoints".into());
                master_args.push(etcd.url.clone());
            }
        }
        let mut c = Cluster {
            lab,
            url,
            master_args,
            master: None,
            master_starts: 0,
            nodes: BTreeMap::new(),
            node_starts: BTreeMap::new(),
        };
        c.start_master()?;
        Ok(c)
    }

    /// A cluster whose master the test started some other way (e.g. as a container on a lab host), at
    /// `url`; waits until it answers. [`Cluster::start_master`] and `stop_master` do nothing for it.
    pub fn attach(lab: &'a Lab, url: String) -> Result<Cluster<'a>> {
        lab.docker()?;
        let c = Cluster {
            lab,
            url,
            master_args: Vec::new(),
            master: None,
            master_starts: 0,
            nodes: BTreeMap::new(),
            node_starts: BTreeMap::new(),
        };
        wait_until(Duration::from_secs(30), "the master answers", || {
            c.ctl(&["pool", "show"]).succeeds()
        })?;
        Ok(c)
    }

    /// (Re)starts the master with the same arguments and waits until it answers.
    pub fn start_master(&mut self) -> Result<()> {
        if self.master_args.is_empty() {
            return Ok(());
        }
        self.master_starts += 1;
        let bin = workspace_bin("calicoctl").display().to_string();
        let mut argv = vec![bin];
        argv.extend(self.master_args.iter().cloned());
        let name = format!("master-{}", self.master_starts);
        self.master = Some(self.lab.spawn(&name, &Place::Root, &argv)?);
        wait_until(Duration::from_secs(20), "the master answers", || {
            self.ctl(&["pool", "show"]).succeeds()
        })
    }

    /// Stops the master (SIGKILL when `kill`).
    pub fn stop_master(&mut self, kill: bool) {
        if let Some(mut m) = self.master.take() {
            if kill {
                m.kill();
            } else {
                m.stop(Duration::from_secs(5));
            }
        }
    }

    /// `calicoctl --master URL args…`, run in the root namespace.
    pub fn ctl(&self, args: &[&str]) -> Cmd {
        Cmd::new(self.ctl_argv(args)).timeout(Duration::from_secs(30))
    }

    fn ctl_argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec![
            workspace_bin("calicoctl").display().to_string(),
            "--master".into(),
            self.url.clone(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        argv
    }

    /// `calicoctl --master URL args…`, run in `host`'s namespace (where `container add` wires).
    pub fn ctl_on(&self, host: &Host, args: &[&str]) -> Cmd {
        host.place()
            .cmd(&self.ctl_argv(args))
            .timeout(Duration::from_secs(30))
    }

    /// Short BGP timers for every session (hold 9 s, graceful restart 30 s), so faults play out quickly.
    pub fn short_bgp_timers(&self) -> Result<()> {
        self.ctl(&[
            "bgp",
            "timers",
            "--hold-time",
            "9",
            "--graceful-restart-time",
            "30",
        ])
        .run()?;
        Ok(())
    }

    /// `calicoctl -o json args…`, parsed; fails when the command fails.
    pub fn ctl_json(&self, args: &[&str]) -> Result<Value> {
        let mut a = vec!["-o", "json"];
        a.extend_from_slice(args);
        let out = self.ctl(&a).stdout()?;
        serde_json::from_str(&out).with_context(|| format!("calicoctl {args:?} printed: {out}"))
    }

    /// The node name of `host` in the cluster: `<lab>-<host>`, unique on the machine, because every
    /// lab shares one dockerd and a node acts on the containers labelled with its name.
    pub fn node_name(&self, host: &Host) -> String {
        format!("{}-{}", self.lab.name(), host.name)
    }

    /// Starts calico-node on `host` (`--ip`, `--ip6`, `--name` from the host; `extra` appended).
    pub fn start_node(&mut self, host: &Host, extra: &[&str]) -> Result<()> {
        let n = self.node_starts.entry(host.name.clone()).or_default();
        *n += 1;
        let name = format!("node-{}-{n}", host.name);
        let mut argv = vec![
            workspace_bin("calicoctl").display().to_string(),
            "--master".into(),
            self.url.clone(),
            "node".into(),
            "run".into(),
            "--ip".into(),
            host.ip.to_string(),
            "--ip6".into(),
            host.ip6.to_string(),
            "--name".into(),
            self.node_name(host),
            "--state-dir".into(),
            self.lab
                .dir()
                .join("nodes")
                .join(&host.name)
                .display()
                .to_string(),
            "--no-default-pools".into(),
            "--report-interval".into(),
            "1".into(),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        let d = self.lab.spawn(&name, &host.place(), &argv)?;
        self.nodes.insert(host.name.clone(), d);
        Ok(())
    }

    /// Kills calico-node on `host` (SIGKILL when `kill`, else SIGTERM).
    pub fn stop_node(&mut self, host: &Host, kill: bool) {
        if let Some(mut d) = self.nodes.remove(&host.name) {
            if kill {
                d.kill();
            } else {
                d.stop(Duration::from_secs(10));
            }
        }
    }

    /// The status `host`'s node last reported (`calicoctl status --node`).
    pub fn status(&self, host: &Host) -> Result<Value> {
        self.ctl_json(&["status", "--node", &self.node_name(host)])
    }

    /// Waits until `host`'s node reports `ready`.
    pub fn wait_ready(&self, host: &Host, within: Duration) -> Result<()> {
        wait_until(within, &format!("node {} is ready", host.name), || {
            Ok(self
                .status(host)
                .map(|s| s["state"] == "ready")
                .unwrap_or(false))
        })
    }

    /// Waits until every BGP session `host` reports is Established, and there are `n` of them.
    pub fn wait_sessions(&self, host: &Host, n: usize, within: Duration) -> Result<()> {
        wait_until(
            within,
            &format!("{n} established BGP sessions on {}", host.name),
            || {
                let s = match self.status(host) {
                    Ok(s) => s,
                    Err(_) => return Ok(false),
                };
                let list = s["bgp"].as_array().cloned().unwrap_or_default();
                Ok(list.len() == n && list.iter().all(|x| x["state"] == "Established"))
            },
        )
    }

    /// The `docker` CLI pointed at `host`'s proxy.
    pub fn docker(&self, host: &Host, args: &[&str]) -> Cmd {
        let mut argv = vec!["docker", "-H", PROXY];
        argv.extend_from_slice(args);
        host.cmd(&argv).timeout(Duration::from_secs(60))
    }

    /// `docker run -d` of a Calico container through `host`'s proxy (named `lab-<lab>-<name>`, labelled
    /// for the lab's cleanup); returns its id.
    pub fn run_container(
        &self,
        host: &Host,
        name: &str,
        ip: &str,
        profile: &str,
    ) -> Result<String> {
        let docker_name = format!("lab-{}-{name}", self.lab.name());
        let label = format!("{LABEL}={}", self.lab.name());
        let ip_env = format!("CALICO_IP={ip}");
        let profile_env = format!("CALICO_PROFILE={profile}");
        let out = self
            .docker(
                host,
                &[
                    "run",
                    "-d",
                    "--name",
                    &docker_name,
                    "--label",
                    &label,
                    "-e",
                    &ip_env,
                    "-e",
                    &profile_env,
                    IMAGE,
                    "sleep",
                    "1d",
                ],
            )
            .output()?;
        if !out.success() {
            bail!("docker run {name} on {} failed: {}", host.name, out.stderr);
        }
        Ok(out.stdout.trim().to_string())
    }

    /// A command run inside a container through `host`'s proxy (`docker exec`).
    pub fn exec(&self, host: &Host, container: &str, argv: &[&str]) -> Cmd {
        let mut args = vec!["exec", container];
        args.extend_from_slice(argv);
        self.docker(host, &args)
    }
}

/// One of the Getting Started's containers.
#[derive(Debug, Clone, Copy)]
pub struct Demo {
    /// Short name (`a` … `e`); Docker's name is `lab-<lab>-<name>`.
    pub name: &'static str,
    /// Its lab host's number (1 for h1, as [`Lab::host`] counts).
    pub host: usize,
    pub v4: &'static str,
    pub v6: &'static str,
    pub profile: &'static str,
}

/// The five containers: A, B, C on h1; D, E on h2; profiles {A, C, E}, {B}, {D}.
pub const GETTING_STARTED: [Demo; 5] = [
    Demo {
        name: "a",
        host: 1,
        v4: "10.65.0.2",
        v6: "fd00:65::2",
        profile: "A_C_E",
    },
    Demo {
        name: "b",
        host: 1,
        v4: "10.65.0.3",
        v6: "fd00:65::3",
        profile: "B",
    },
    Demo {
        name: "c",
        host: 1,
        v4: "10.65.0.4",
        v6: "fd00:65::4",
        profile: "A_C_E",
    },
    Demo {
        name: "d",
        host: 2,
        v4: "10.65.1.2",
        v6: "fd00:65::12",
        profile: "D",
    },
    Demo {
        name: "e",
        host: 2,
        v4: "10.65.1.3",
        v6: "fd00:65::13",
        profile: "A_C_E",
    },
];

/// The Getting Started container called `name`.
pub fn demo(name: &str) -> Demo {
    *GETTING_STARTED
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no demo container {name}"))
}

impl Cluster<'_> {
    /// The pools (10.65.0.0/16, fd00:65::/64) and the Getting Started's profiles.
    pub fn add_pools_and_profiles(&self) -> Result<()> {
        self.ctl(&["pool", "add", "10.65.0.0/16"]).run()?;
        self.ctl(&["pool", "add", "fd00:65::/64"]).run()?;
        for p in ["A_C_E", "B", "D"] {
            self.ctl(&["profile", "add", p]).run()?;
        }
        Ok(())
    }

    /// Starts calico-node on every lab host (with `extra`) and waits until each is ready.
    pub fn start_all_nodes(&mut self, extra: &[&str]) -> Result<()> {
        let hosts: Vec<Host> = self.lab.hosts().to_vec();
        for h in &hosts {
            self.start_node(h, extra)?;
        }
        for h in &hosts {
            self.wait_ready(h, Duration::from_secs(30))?;
        }
        Ok(())
    }

    /// Runs the five Getting Started containers (dual stack) through their hosts' proxies.
    pub fn run_getting_started(&self) -> Result<()> {
        self.run_demo(&GETTING_STARTED.map(|d| d.name))
    }

    /// Runs some of the Getting Started containers (dual stack), each on its host.
    pub fn run_demo(&self, names: &[&str]) -> Result<()> {
        for name in names {
            let d = demo(name);
            let ips = format!("{},{}", d.v4, d.v6);
            self.run_container(self.lab.host(d.host), d.name, &ips, d.profile)?;
        }
        Ok(())
    }

    /// One ping from inside demo container `from` to `ip` (through its host's proxy).
    pub fn ping(&self, from: &str, ip: &str) -> Result<bool> {
        let d = demo(from);
        let name = format!("lab-{}-{}", self.lab.name(), d.name);
        let v6 = ip.contains(':');
        let argv: &[&str] = if v6 {
            &["ping", "-6", "-c", "1", "-W", "1", ip]
        } else {
            &["ping", "-c", "1", "-W", "1", ip]
        };
        self.exec(self.lab.host(d.host), &name, argv).succeeds()
    }

    /// Waits until `from` pings `ip`.
    pub fn assert_reaches(&self, from: &str, ip: &str, within: Duration) -> Result<()> {
        wait_until(within, &format!("{from} pings {ip}"), || {
            self.ping(from, ip)
        })
    }

    /// Fails if `from` reaches `ip` in either of two tries.
    pub fn assert_denied(&self, from: &str, ip: &str) -> Result<()> {
        for _ in 0..2 {
            if self.ping(from, ip)? {
                bail!("{from} reached {ip}, which policy denies");
            }
        }
        Ok(())
    }

    /// The PID of demo container `name` (its network namespace is the container's).
    pub fn pid(&self, name: &str) -> Result<u32> {
        let d = demo(name);
        let docker_name = format!("lab-{}-{}", self.lab.name(), d.name);
        let out = self
            .docker(
                self.lab.host(d.host),
                &["inspect", "-f", "{{.State.Pid}}", &docker_name],
            )
            .stdout()?;
        out.trim()
            .parse()
            .with_context(|| format!("the PID of {docker_name}: {out}"))
    }
}
