//! Helpers for the BGP interop tests: BIRD 2 and our `calico-bgp` daemon as processes in lab hosts, and
//! the kernel and control-socket views the tests assert on.
//!
//! BIRD runs in the foreground inside a host's namespace with its own config, control socket and pid
//! file in the lab's directory (removed with the lab); `birdc -s` queries it. `calico-bgp run` runs the
//! same way with its own `--control` socket. Both are lab daemons: stopped when dropped, logged, and
//! their logs printed when a test fails.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use calico_lab::cmd::Cmd;
use calico_lab::procs::Daemon;
use calico_lab::wait::wait_until;
use calico_lab::{Host, Lab};
use serde_json::Value;

/// How long a session may take to come up (connect retry ~1 s on both sides).
pub const SESSION_UP: Duration = Duration::from_secs(20);
/// How long a route may take to reach a kernel.
pub const ROUTE: Duration = Duration::from_secs(15);

/// The `calico-bgp` binary: `CALICO_BGP_BIN`, or [`calico_lab::workspace_bin`].
pub fn bgp_bin() -> Result<PathBuf> {
    let path = std::env::var_os("CALICO_BGP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| calico_lab::workspace_bin("calico-bgp"));
    ensure!(
        path.is_file(),
        "calico-bgp binary not found beside the tests: build it first \
         (cargo build --release -p calico-bgp) or set CALICO_BGP_BIN"
    );
    Ok(path)
}

/// Fails with a clear message when BIRD is not installed.
pub fn need_bird() -> Result<()> {
    if !Cmd::new(["sh", "-c", "command -v bird && command -v birdc"]).succeeds()? {
        bail!("BIRD 2 is missing: apt-get install -y bird2 (scripts/test.sh installs it)");
    }
    Ok(())
}

/// Our AS and BIRD's in the tests.
pub const OURS: u32 = 65001;
pub const THEIRS: u32 = 65002;

/// Asserts what these tests need: root, BIRD, and our daemon's binary.
pub fn preflight() -> Result<()> {
    ensure!(
        rustix::process::geteuid().is_root(),
        "needs root: run the README's test command"
    );
    need_bird()?;
    bgp_bin()?;
    Ok(())
}

/// A BIRD instance in a lab host.
pub struct Bird {
    pub name: String,
    pub sock: PathBuf,
    pub conf: PathBuf,
    pub daemon: Daemon,
    host: Host,
}

/// The common head of a BIRD config: router id, logging, interfaces, connected routes, and the
/// kernel protocols exporting BGP routes (so the tests can see them in BIRD's kernel).
pub fn bird_head(router_id: &str) -> String {
    format!(
        r#"log stderr all;
router id {router_id};
protocol device {{ scan time 2; }}
protocol direct {{ ipv4; ipv6; }}
protocol kernel k4 {{ ipv4 {{ import none; export where source = RTS_BGP; }}; merge paths on; }}
protocol kernel k6 {{ ipv6 {{ import none; export where source = RTS_BGP; }}; merge paths on; }}
"#
    )
}

/// A BGP protocol block: quick timers for tests; `extra` goes inside the block.
pub fn bird_bgp(
    name: &str,
    local: &str,
    local_as: u32,
    neighbor: &str,
    neighbor_as: u32,
    channels: &str,
    extra: &str,
) -> String {
    format!(
        r#"protocol bgp {name} {{
  local {local} as {local_as};
  neighbor {neighbor} as {neighbor_as};
  hold time 9; keepalive time 3; connect retry time 1; connect delay time 1; error wait time 1, 3;
  {extra}
  {channels}
}}
"#
    )
}

/// An IPv4 channel that takes everything and sends its static routes (with `actions` applied).
pub fn v4_channel(actions: &str) -> String {
    format!("ipv4 {{ import all; export filter {{ if source = RTS_STATIC then {{ {actions} accept; }} reject; }}; }};")
}

/// An IPv6 channel likewise.
pub fn v6_channel(actions: &str) -> String {
    format!("ipv6 {{ import all; export filter {{ if source = RTS_STATIC then {{ {actions} accept; }} reject; }}; }};")
}

impl Bird {
    /// Starts BIRD on `host` with `config`, waiting until its control socket answers.
    pub fn start(lab: &Lab, host: &Host, name: &str, config: &str) -> Result<Bird> {
        let conf = lab.dir().join(format!("{name}.conf"));
        let sock = lab.dir().join(format!("{name}.ctl"));
        let pid = lab.dir().join(format!("{name}.pid"));
        std::fs::write(&conf, config)?;
        let argv = [
            "bird",
            "-f",
            "-c",
            &conf.display().to_string(),
            "-s",
            &sock.display().to_string(),
            "-P",
            &pid.display().to_string(),
        ];
        let daemon = lab.spawn(name, &host.place(), &argv)?;
        let bird = Bird {
            name: name.to_string(),
            sock,
            conf,
            daemon,
            host: host.clone(),
        };
        wait_until(Duration::from_secs(10), "BIRD's control socket", || {
            Ok(bird.birdc("show status").is_ok())
        })?;
        Ok(bird)
    }

    /// Runs a birdc command and returns its output.
    pub fn birdc(&self, command: &str) -> Result<String> {
        let mut argv = vec![
            "birdc".to_string(),
            "-s".into(),
            self.sock.display().to_string(),
        ];
        argv.extend(command.split_whitespace().map(String::from));
        let out = Cmd::new(argv).timeout(Duration::from_secs(10)).run()?;
        Ok(out.stdout)
    }

    /// Whether protocol `proto` is Established.
    pub fn established(&self, proto: &str) -> Result<bool> {
        let out = self.birdc(&format!("show protocols {proto}"))?;
        Ok(out
            .lines()
            .any(|l| l.starts_with(proto) && l.contains("Established")))
    }

    /// Waits until protocol `proto` is Established.
    pub fn wait_established(&self, proto: &str) -> Result<()> {
        wait_until(
            SESSION_UP,
            &format!("BIRD {} session {proto}", self.name),
            || self.established(proto),
        )
    }

    /// The "since" column of protocol `proto` (it changes when the session is reset).
    pub fn since(&self, proto: &str) -> Result<String> {
        let out = self.birdc(&format!("show protocols {proto}"))?;
        let line = out
            .lines()
            .find(|l| l.starts_with(proto))
            .with_context(|| format!("no {proto} in {out}"))?;
        line.split_whitespace()
            .nth(4)
            .map(String::from)
            .with_context(|| format!("no since in {line:?}"))
    }

    /// The UPDATEs' routes protocol `proto` has received ("Import updates", first column).
    pub fn import_updates(&self, proto: &str) -> Result<u64> {
        let out = self.birdc(&format!("show protocols all {proto}"))?;
        out.lines()
            .find_map(|l| l.trim().strip_prefix("Import updates:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no import updates in {out}"))
    }

    /// `show route all <prefix>`.
    pub fn route_all(&self, prefix: &str) -> Result<String> {
        self.birdc(&format!("show route all {prefix}"))
    }

    /// Replaces the config and reconfigures.
    pub fn reconfigure(&self, config: &str) -> Result<()> {
        std::fs::write(&self.conf, config)?;
        let out = self.birdc("configure")?;
        if !out.contains("Reconfigured") && !out.contains("Reconfiguration in progress") {
            bail!("birdc configure: {out}");
        }
        Ok(())
    }
}

/// Our daemon in a lab host.
pub struct Ours {
    pub control: PathBuf,
    pub daemon: Daemon,
    pub argv: Vec<String>,
    host: Host,
    name: String,
}

impl Ours {
    /// Starts `calico-bgp run <args> --control <lab dir>/<name>.sock` on `host`.
    pub fn start(lab: &Lab, host: &Host, name: &str, args: &[&str]) -> Result<Ours> {
        let control = lab.dir().join(format!("{name}.sock"));
        let mut argv = vec![bgp_bin()?.display().to_string(), "run".into()];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv.push("--control".into());
        argv.push(control.display().to_string());
        let daemon = spawn_logged(lab, host, name, &argv)?;
        let ours = Ours {
            control,
            daemon,
            argv,
            host: host.clone(),
            name: name.to_string(),
        };
        wait_until(
            Duration::from_secs(10),
            "calico-bgp's control socket",
            || Ok(ours.status().is_ok()),
        )?;
        Ok(ours)
    }

    /// Starts the same command again (after a kill), appending to a new log.
    pub fn restart(&mut self, lab: &Lab, suffix: &str) -> Result<()> {
        self.daemon = spawn_logged(
            lab,
            &self.host,
            &format!("{}-{suffix}", self.name),
            &self.argv,
        )?;
        let control = self.control.clone();
        wait_until(
            Duration::from_secs(10),
            "calico-bgp's control socket",
            || Ok(query(&control, "status").is_ok()),
        )
    }

    /// `calico-bgp status -o json`.
    pub fn status(&self) -> Result<Value> {
        query(&self.control, "status")
    }

    /// `calico-bgp routes -o json`.
    pub fn routes(&self) -> Result<Value> {
        query(&self.control, "routes")
    }

    /// The status of the peer at `addr`.
    pub fn peer(&self, addr: &str) -> Result<Value> {
        let st = self.status()?;
        st.as_array()
            .and_then(|a| a.iter().find(|p| p["address"] == addr))
            .cloned()
            .with_context(|| format!("no peer {addr} in {st}"))
    }

    /// Waits until the peer at `addr` is Established.
    pub fn wait_established(&self, addr: &str) -> Result<()> {
        wait_until(SESSION_UP, &format!("our session with {addr}"), || {
            Ok(self.peer(addr)?["state"] == "Established")
        })
    }
}

fn spawn_logged(lab: &Lab, host: &Host, name: &str, argv: &[String]) -> Result<Daemon> {
    let mut full = vec!["env".to_string(), "RUST_LOG=info,calico_bgp=debug".into()];
    full.extend(argv.iter().cloned());
    lab.spawn(name, &host.place(), &full)
}

/// Runs `calico-bgp <what> -o json --control <sock>` and parses its output.
pub fn query(control: &std::path::Path, what: &str) -> Result<Value> {
    let out = Cmd::new([
        bgp_bin()?.display().to_string(),
        what.to_string(),
        "-o".into(),
        "json".into(),
        "--control".into(),
        control.display().to_string(),
    ])
    .timeout(Duration::from_secs(10))
    .stdout()?;
    Ok(serde_json::from_str(&out)?)
}

/// The kernel's routes for `prefix` in `host` (`ip route show`), one line per route.
pub fn kernel_route(host: &Host, prefix: &str) -> Result<String> {
    let v6 = if prefix.contains(':') { "-6" } else { "-4" };
    host.cmd(&["ip", v6, "route", "show", prefix]).stdout()
}

/// Waits until `host`'s kernel has a route for `prefix` whose text contains every one of `parts`.
pub fn wait_kernel(host: &Host, prefix: &str, parts: &[&str]) -> Result<String> {
    let mut last = String::new();
    wait_until(
        ROUTE,
        &format!("{prefix} with {parts:?} in {}'s kernel", host.name),
        || {
            last = kernel_route(host, prefix)?;
            Ok(!last.is_empty() && parts.iter().all(|p| last.contains(p)))
        },
    )
    .with_context(|| format!("last seen: {last:?}"))?;
    Ok(last)
}

/// Waits until `host`'s kernel has no route for `prefix`.
pub fn wait_no_kernel(host: &Host, prefix: &str) -> Result<()> {
    wait_until(
        ROUTE,
        &format!("{prefix} gone from {}'s kernel", host.name),
        || Ok(kernel_route(host, prefix)?.is_empty()),
    )
}
