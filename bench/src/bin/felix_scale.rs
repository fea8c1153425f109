//! Felix at scale against the tools' floor, both measured in this run, each in a fresh lab host
//! (network namespace), timed until traffic passes.
//!
//! Each host gets N endpoint interfaces (`cali…` veths, their peers in a sink namespace) and, among them,
//! real workload namespaces for traffic: a server (TCP on ports 80 and 5556) and clients. A probe process
//! in a client namespace starts a TCP connection to the server every millisecond (each attempt kept open
//! up to 300 ms) and reports the first that connects; it says "ready" only after 20 ms of failing, so every
//! figure is "from the start of the change until an allowed connection succeeds".
//!
//! Ours: Felix (`calico_felix::agent::Felix`: the `inet calico` table, routes, neighbours, sysctls) in a
//! child process of this benchmark that holds nothing else, so its VmHWM is Felix's peak memory; it is
//! driven over a pipe. The floor: Felix 1.x's layout (two chains per endpoint with its profiles' rules
//! copied in, tags as ipsets) loaded with `ipset restore` + `iptables-restore --noflush`, and the routes,
//! static neighbours and per-interface sysctls with `ip -batch` and `sysctl -p -`, each tool run once.
//!
//! Measured: (a) cold start until traffic passes; (b) with N endpoints present, adding one endpoint (a
//! client) until its connection to the server passes, median and p99; (c) ours only: a rule change in the
//! profile every endpoint uses, until a new connection obeys it; (d) Felix's peak memory.
//!
//! Run (root; ipset, iptables, nsenter installed; the `calico-lab` binary built):
//! `cargo build --release -p calico-lab -p calico-bench && target/release/felix-scale --endpoints 1000
//! --endpoints 10000 --adds 100`.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use calico_felix::agent::Felix;
use calico_felix::changes::Change;
use calico_felix::model::{Action, Endpoint, Mac, Port, Profile, Protocol, Rule, TagMembers};
use calico_lab::{lab_bin, Host, Lab, Workload};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
struct Args {
    /// Endpoint counts to measure (repeatable).
    #[arg(long, default_values_t = [1000usize])]
    endpoints: Vec<usize>,
    /// Endpoints added one at a time after the cold start (for the median and p99).
    #[arg(long, default_value_t = 100)]
    adds: usize,
    /// Measure Felix only (for profiling; no ratios).
    #[arg(long)]
    ours_only: bool,
    #[command(subcommand)]
    role: Option<Role>,
}

/// The benchmark's helper processes (run by the benchmark itself).
#[derive(Debug, Subcommand)]
enum Role {
    /// Inside a client namespace: connect to ADDR until a connection succeeds.
    Probe {
        to: SocketAddr,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        limit: u64,
    },
    /// Felix on the host namespace NS, driven by commands on stdin.
    Driver {
        ns: String,
        #[arg(long)]
        endpoints: usize,
        /// Extra endpoints (workloads) as `id,iface,mac,ip,tag` (tag `-` for none).
        #[arg(long)]
        workload: Vec<String>,
    },
}

/// Inbound rules per profile (over tags and ports), as in Felix 1.x's benchmark shape.
const RULES: usize = 10;
/// The profile every endpoint has after its own: one rule, the one (c) changes.
const SHARED: &str = "shared";
/// The port the shared profile allows at first, and after the rule change.
const SHARED_PORT: u16 = 5555;
const CHANGED_PORT: u16 = 5556;
/// The server's address and the port its own profile (prof0, rule 0: from tag0) allows.
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 65, 200, 1);
const SERVER_PORT: u16 = 80;

fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 65, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn client_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 65, 201 + (k / 250) as u8, (k % 250 + 1) as u8)
}

fn iface(i: usize) -> String {
    format!("cali{i:011x}")
}

fn mac(i: usize) -> Mac {
    Mac([2, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1])
}

/// One endpoint as both sides program it.
#[derive(Debug, Clone)]
struct Ep {
    id: String,
    iface: String,
    mac: Mac,
    ip: Ipv4Addr,
    profile: usize,
    tag: Option<usize>,
}

impl Ep {
    fn encode(&self) -> String {
        let tag = self.tag.map_or("-".to_string(), |t| t.to_string());
        format!("{},{},{},{},{tag}", self.id, self.iface, self.mac, self.ip)
    }

    fn decode(s: &str) -> Result<Ep> {
        let f: Vec<&str> = s.split(',').collect();
        ensure!(f.len() == 5, "bad workload {s:?}");
        let mut m = [0u8; 6];
        for (slot, byte) in m.iter_mut().zip(f[2].split(':')) {
            *slot = u8::from_str_radix(byte, 16)?;
        }
        Ok(Ep {
            id: f[0].into(),
            iface: f[1].into(),
            mac: Mac(m),
            ip: f[3].parse()?,
            profile: 0,
            tag: if f[4] == "-" {
                None
            } else {
                Some(f[4].parse()?)
            },
        })
    }

    fn workload(id: &str, w: &Workload, tag: Option<usize>) -> Result<Ep> {
        Ok(Ep {
            id: id.into(),
            iface: w.host_iface.clone(),
            mac: Mac(w.mac()?),
            ip: w.ip.context("a workload without an address")?,
            profile: 0,
            tag,
        })
    }
}

/// Profiles `n/100` (at least 1), tags `n/50`; endpoint `i` is in profile `i % profiles` then the shared
/// profile, and in tag `i % tags`; each profile has 10 inbound rules over tags and ports and one outbound
/// allow. The shared profile allows TCP to port 5555 from tag0.
struct Shape {
    profiles: usize,
    tags: usize,
}

impl Shape {
    fn new(n: usize) -> Shape {
        Shape {
            profiles: (n / 100).max(1),
            tags: (n / 50).max(1),
        }
    }

    fn rule(&self, profile: usize, r: usize) -> Rule {
        Rule {
            action: Some(Action::Allow),
            protocol: Some(Protocol::Tcp),
            src_tag: Some(format!("tag{}", (profile * RULES + r) % self.tags)),
            dst_ports: vec![Port::One(80 + r as u16), Port::Range(2048, 4000)],
            ..Rule::default()
        }
    }

    /// The `n - extra` synthetic endpoints (the rest of the `n` are workloads).
    fn synthetic(&self, n: usize, extra: usize) -> Vec<Ep> {
        (0..n.saturating_sub(extra))
            .map(|i| Ep {
                id: format!("ep{i}"),
                iface: iface(i),
                mac: mac(i),
                ip: ip(i),
                profile: i % self.profiles,
                tag: Some(i % self.tags),
            })
            .collect()
    }

    fn shared(port: u16) -> Profile {
        Profile {
            inbound: vec![Rule {
                action: Some(Action::Allow),
                protocol: Some(Protocol::Tcp),
                src_tag: Some("tag0".into()),
                dst_ports: vec![Port::One(port)],
                ..Rule::default()
            }],
            outbound: vec![],
        }
    }

    fn endpoint(ep: &Ep) -> Endpoint {
        Endpoint {
            iface: ep.iface.clone(),
            mac: ep.mac,
            ipv4: vec![ep.ip],
            ipv6: vec![],
            profiles: vec![format!("prof{}", ep.profile), SHARED.into()],
        }
    }

    /// Felix's changes for a cold start with `eps`.
    fn changes(&self, eps: &[Ep]) -> Vec<Change> {
        let mut out = Vec::new();
        for p in 0..self.profiles {
            let profile = Profile {
                inbound: (0..RULES).map(|r| self.rule(p, r)).collect(),
                outbound: vec![Rule {
                    action: Some(Action::Allow),
                    ..Rule::default()
                }],
            };
            out.push(Change::Profile(format!("prof{p}"), Some(profile)));
        }
        out.push(Change::Profile(
            SHARED.into(),
            Some(Shape::shared(SHARED_PORT)),
        ));
        let mut tags: Vec<TagMembers> = vec![TagMembers::default(); self.tags];
        for ep in eps {
            out.push(Change::Endpoint(ep.id.clone(), Some(Shape::endpoint(ep))));
            if let Some(t) = ep.tag {
                tags[t].ipv4.insert(ep.ip);
            }
        }
        for (t, members) in tags.into_iter().enumerate() {
            out.push(Change::Tag(format!("tag{t}"), Some(members)));
        }
        out
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The probe: a new TCP connection every millisecond (each kept up to 300 ms); prints `ready` once 20 ms
/// passed without success (or `open` if one succeeded before), then `ok` at the first success.
fn probe(to: SocketAddr, limit: Duration) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let start = Instant::now();
        let mut ready = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if start.elapsed() > limit {
                        println!("timeout");
                        return Ok(());
                    }
                    if !ready && start.elapsed() >= Duration::from_millis(20) {
                        ready = true;
                        println!("ready");
                    }
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let attempt = tokio::net::TcpStream::connect(to);
                        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(300), attempt).await {
                            let _ = tx.try_send(());
                        }
                    });
                }
                _ = rx.recv() => {
                    println!("{}", if ready { "ok" } else { "open" });
                    return Ok(());
                }
            }
        }
    })
}

/// A running probe in a client namespace, already failing.
struct Probe {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Probe {
    fn start(client: &Workload, to: SocketAddr, limit: Duration) -> Result<Probe> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", client.ns))
            .arg("--")
            .arg(exe)
            .args(["probe", &to.to_string(), "--limit"])
            .arg(limit.as_secs().max(1).to_string())
            .stdout(Stdio::piped())
            .spawn()?;
        let out = BufReader::new(child.stdout.take().context("no probe stdout")?);
        let mut p = Probe { child, out };
        let line = p.line()?;
        ensure!(
            line == "ready",
            "the probe to {to} from {} said {line:?} before the change: the path was already open",
            client.ns
        );
        Ok(p)
    }

    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        Ok(line.trim().to_string())
    }

    /// Waits for the first connection; returns when it was seen.
    fn passed(mut self) -> Result<Instant> {
        let line = self.line()?;
        let at = Instant::now();
        let status = self.child.wait()?;
        ensure!(
            line == "ok" && status.success(),
            "the probe said {line:?} ({status})"
        );
        Ok(at)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // Ours: stop it by its PID if it still runs (an error path); a finished one is only reaped.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Felix in a child process (this program's `driver` role), one command per line.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
}

impl Driver {
    fn start(host: &Host, n: usize, workloads: &[Ep]) -> Result<Driver> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(["driver", &host.ns, "--endpoints", &n.to_string()]);
        for w in workloads {
            cmd.arg("--workload").arg(w.encode());
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let stdin = child.stdin.take().context("no driver stdin")?;
        let out = BufReader::new(child.stdout.take().context("no driver stdout")?);
        Ok(Driver { child, stdin, out })
    }

    fn send(&mut self, command: &str) -> Result<()> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        Ok(())
    }

    /// The answer to the last command (`done …`), or the driver's error.
    fn answer(&mut self) -> Result<String> {
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        let line = line.trim().to_string();
        match line.strip_prefix("done ") {
            Some(rest) => Ok(rest.to_string()),
            None => bail!("the Felix driver answered {line:?}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The driver role: Felix on `ns`; commands `cold`, `add EP`, `rule`, `mem`, `quit`.
fn driver(ns: &str, n: usize, workloads: &[String]) -> Result<()> {
    let shape = Shape::new(n);
    let extra: Vec<Ep> = workloads
        .iter()
        .map(|w| Ep::decode(w))
        .collect::<Result<_>>()?;
    let mut felix = Felix::in_named_netns(ns)?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line?;
        let t = Instant::now();
        let reply = match line.split_once(' ').unwrap_or((line.as_str(), "")) {
            ("cold", _) => {
                let mut eps = shape.synthetic(n, extra.len());
                eps.extend(extra.iter().cloned());
                let changes = shape.changes(&eps);
                drop(eps);
                let report = felix.apply(&changes, Instant::now())?;
                ensure!(report.failed.is_empty(), "cold start: {:?}", report.failed);
                format!("{} programmed", report.programmed)
            }
            ("add", ep) => {
                let ep = Ep::decode(ep)?;
                let changes = [
                    Change::Endpoint(ep.id.clone(), Some(Shape::endpoint(&ep))),
                    Change::TagMember("tag0".into(), ep.ip.into(), true),
                ];
                let report = felix.apply(&changes, Instant::now())?;
                ensure!(report.failed.is_empty(), "add: {:?}", report.failed);
                String::new()
            }
            ("rule", _) => {
                let change = Change::Profile(SHARED.into(), Some(Shape::shared(CHANGED_PORT)));
                felix.apply(&[change], Instant::now())?;
                String::new()
            }
            ("mem", _) => std::fs::read_to_string("/proc/self/status")?
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .map(|v| v.trim().to_string())
                .context("no VmHWM")?,
            ("quit", _) => return Ok(()),
            (other, _) => bail!("unknown command {other:?}"),
        };
        writeln!(out, "done {} {reply}", t.elapsed().as_micros())?;
        out.flush()?;
    }
    Ok(())
}

/// A lab host with `n - 2` bare endpoint interfaces, a server and a client workload among them, and
/// `adds` more client workloads not yet known to the dataplane.
struct Bed {
    clients: Vec<Workload>,
    eps: Vec<Ep>,
    /// The server's listeners (stopped when dropped, or by the lab).
    _servers: Vec<calico_lab::procs::Daemon>,
}

fn bed(lab: &Lab, host: &Host, shape: &Shape, n: usize, adds: usize) -> Result<Bed> {
    host.place()
        .sysctl(&[
            "net.ipv4.ip_forward=1",
            // IPv6 on 10,000 veths doubles their creation time and is not measured here.
            "net.ipv6.conf.default.disable_ipv6=1",
        ])
        .run()?;
    let sink = format!("{}-sink", host.ns);
    calico_lab::cmd::run(["ip", "netns", "add", sink.as_str()])?;
    calico_lab::Place::Netns(sink.clone())
        .sysctl(&["net.ipv6.conf.default.disable_ipv6=1"])
        .run()?;
    let mut eps = shape.synthetic(n, 2);
    let mut lines = Vec::new();
    for (i, ep) in eps.iter().enumerate() {
        lines.push(format!(
            "link add {} type veth peer name s{i} netns {sink}",
            ep.iface
        ));
        lines.push(format!("link set {} up", ep.iface));
    }
    host.place()
        .ip_batch(&lines)
        .timeout(Duration::from_secs(600))
        .run()?;
    let server = lab.workload_unrouted(host, "srv", Some(SERVER_IP), None)?;
    let mut clients = Vec::new();
    for k in 0..=adds {
        clients.push(lab.workload_unrouted(host, &format!("c{k}"), Some(client_ip(k)), None)?);
    }
    let mut servers = Vec::new();
    for port in [SERVER_PORT, SHARED_PORT, CHANGED_PORT] {
        let name = format!("{}-serve{port}", host.name);
        let argv = [
            lab_bin().display().to_string(),
            "serve".into(),
            "tcp".into(),
            format!("0.0.0.0:{port}"),
        ];
        servers.push(lab.spawn(&name, &server.place(), &argv)?);
    }
    eps.push(Ep::workload("srv", &server, None)?);
    eps.push(Ep::workload("c0", &clients[0], Some(0))?);
    Ok(Bed {
        clients,
        eps,
        _servers: servers,
    })
}

struct Figures {
    cold: Duration,
    adds: Vec<Duration>,
    rule_change: Option<Duration>,
    peak_kib: Option<u64>,
    /// Ours: Felix's own apply time of the cold start; the floor: each tool's time.
    detail: String,
}

/// The apply time in a driver's answer (`MICROSECONDS …`).
fn apply_time(answer: &str) -> Duration {
    let us = answer.split(' ').next().and_then(|v| v.parse().ok());
    Duration::from_micros(us.unwrap_or(0))
}

fn server(port: u16) -> SocketAddr {
    SocketAddr::from((SERVER_IP, port))
}

fn ours(lab: &Lab, host: &Host, shape: &Shape, n: usize, adds: usize) -> Result<Figures> {
    let bed = bed(lab, host, shape, n, adds)?;
    let workloads = &bed.eps[bed.eps.len() - 2..];
    let mut driver = Driver::start(host, n, workloads)?;
    let probe = Probe::start(
        &bed.clients[0],
        server(SERVER_PORT),
        Duration::from_secs(120),
    )?;
    let t = Instant::now();
    driver.send("cold")?;
    let cold = probe.passed()?.duration_since(t);
    let applied = driver.answer()?;
    let mut times = Vec::new();
    let mut applies = Vec::new();
    for k in 1..=adds {
        let ep = Ep::workload(&format!("c{k}"), &bed.clients[k], Some(0))?;
        let probe = Probe::start(
            &bed.clients[k],
            server(SERVER_PORT),
            Duration::from_secs(10),
        )?;
        let t = Instant::now();
        driver.send(&format!("add {}", ep.encode()))?;
        times.push(probe.passed()?.duration_since(t));
        applies.push(apply_time(&driver.answer()?));
    }
    // (c): the shared profile (every endpoint's) now allows 5556 instead of 5555.
    let probe = Probe::start(
        &bed.clients[0],
        server(CHANGED_PORT),
        Duration::from_secs(10),
    )?;
    let t = Instant::now();
    driver.send("rule")?;
    let rule_change = probe.passed()?.duration_since(t);
    let rule_apply = apply_time(&driver.answer()?);
    driver.send("mem")?;
    let mem = driver.answer()?;
    let peak_kib = mem.split_whitespace().nth(1).and_then(|v| v.parse().ok());
    applies.sort();
    Ok(Figures {
        cold,
        adds: times,
        rule_change: Some(rule_change),
        peak_kib,
        detail: format!(
            "Felix's own apply: cold {:.0} ms, adds median {:.1} ms / p99 {:.1} ms, rule change {:.1} ms",
            ms(apply_time(&applied)),
            ms(percentile(&applies, 0.5)),
            ms(percentile(&applies, 0.99)),
            ms(rule_apply)
        ),
    })
}

/// Felix 1.x's state for one endpoint: its chains (to and from, its profiles' rules copied in), its
/// ipset membership, its route and static neighbour, its sysctls.
struct FloorInput {
    chains: String,
    rules: String,
    ipset: String,
    ip: String,
    sysctl: String,
}

impl FloorInput {
    fn new() -> FloorInput {
        FloorInput {
            chains: String::new(),
            rules: String::new(),
            ipset: String::new(),
            ip: String::new(),
            sysctl: String::new(),
        }
    }

    fn endpoint(&mut self, shape: &Shape, ep: &Ep) {
        let (ifc, p, c) = (&ep.iface, ep.profile, &ep.id);
        let _ = writeln!(
            self.chains,
            ":felix-to-{c} - [0:0]\n:felix-from-{c} - [0:0]"
        );
        let r = &mut self.rules;
        let _ = writeln!(r, "-A felix-TO-ENDPOINT -o {ifc} -g felix-to-{c}");
        let _ = writeln!(r, "-A felix-FROM-ENDPOINT -i {ifc} -g felix-from-{c}");
        let _ = writeln!(r, "-A felix-to-{c} -m conntrack --ctstate INVALID -j DROP");
        let _ = writeln!(
            r,
            "-A felix-to-{c} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
        );
        for k in 0..RULES {
            let tag = (p * RULES + k) % shape.tags;
            let _ = writeln!(
                r,
                "-A felix-to-{c} -p tcp -m set --match-set felix-v4-tag{tag} src -m multiport --dports {},2048:4000 -j RETURN",
                80 + k
            );
        }
        let _ = writeln!(
            r,
            "-A felix-to-{c} -p tcp -m set --match-set felix-v4-tag0 src --dport {SHARED_PORT} -j RETURN"
        );
        let _ = writeln!(r, "-A felix-to-{c} -j DROP");
        let _ = writeln!(
            r,
            "-A felix-from-{c} -s {}/32 -m mac --mac-source {} -j RETURN\n-A felix-from-{c} -j DROP",
            ep.ip, ep.mac
        );
        if let Some(t) = ep.tag {
            let _ = writeln!(self.ipset, "add felix-v4-tag{t} {} -exist", ep.ip);
        }
        let _ = writeln!(
            self.ip,
            "route replace {}/32 dev {ifc} proto 80\nneigh replace {} lladdr {} dev {ifc} nud permanent",
            ep.ip, ep.ip, ep.mac
        );
        for key in [
            format!("net.ipv4.conf.{ifc}.proxy_arp"),
            format!("net.ipv4.conf.{ifc}.route_localnet"),
            format!("net.ipv4.neigh.{ifc}.proxy_delay"),
        ] {
            let v = if key.ends_with("delay") { 0 } else { 1 };
            let _ = writeln!(self.sysctl, "{key} = {v}");
        }
    }

    /// Runs the tools in `host`'s namespace, firewall first; returns each tool's time.
    fn load(self, host: &Host) -> Result<[Duration; 4]> {
        let netns = format!("--net=/run/netns/{}", host.ns);
        let run = |argv: &[&str], input: String| -> Result<Duration> {
            let t = Instant::now();
            let mut full = vec!["nsenter", netns.as_str(), "--"];
            full.extend_from_slice(argv);
            calico_lab::cmd::Cmd::new(full)
                .stdin(input)
                .timeout(Duration::from_secs(900))
                .run()?;
            Ok(t.elapsed())
        };
        Ok([
            run(&["ipset", "restore"], self.ipset)?,
            run(
                &["iptables-restore", "--noflush"],
                format!("*filter\n{}{}COMMIT\n", self.chains, self.rules),
            )?,
            run(&["ip", "-batch", "-"], self.ip)?,
            run(&["sysctl", "-q", "-p", "-"], self.sysctl)?,
        ])
    }
}

fn floor(lab: &Lab, host: &Host, shape: &Shape, n: usize, adds: usize) -> Result<Figures> {
    let bed = bed(lab, host, shape, n, adds)?;
    let mut input = FloorInput::new();
    for t in 0..shape.tags {
        let _ = writeln!(
            input.ipset,
            "create felix-v4-tag{t} hash:ip family inet -exist"
        );
    }
    let _ = writeln!(
        input.chains,
        ":felix-TO-ENDPOINT - [0:0]\n:felix-FROM-ENDPOINT - [0:0]"
    );
    let _ = writeln!(
        input.rules,
        "-A FORWARD -i cali+ -j felix-FROM-ENDPOINT\n-A FORWARD -o cali+ -j felix-TO-ENDPOINT"
    );
    for ep in &bed.eps {
        input.endpoint(shape, ep);
    }
    let probe = Probe::start(
        &bed.clients[0],
        server(SERVER_PORT),
        Duration::from_secs(900),
    )?;
    let t = Instant::now();
    let tools = input.load(host)?;
    let cold = probe.passed()?.duration_since(t);
    let mut times = Vec::new();
    for k in 1..=adds {
        let ep = Ep::workload(&format!("c{k}"), &bed.clients[k], Some(0))?;
        let mut one = FloorInput::new();
        one.endpoint(shape, &ep);
        let probe = Probe::start(
            &bed.clients[k],
            server(SERVER_PORT),
            Duration::from_secs(10),
        )?;
        let t = Instant::now();
        one.load(host)?;
        times.push(probe.passed()?.duration_since(t));
    }
    Ok(Figures {
        cold,
        adds: times,
        rule_change: None,
        peak_kib: None,
        detail: format!(
            "ipset {:.0} ms, iptables-restore {:.0} ms, ip -batch {:.0} ms, sysctl {:.0} ms",
            ms(tools[0]),
            ms(tools[1]),
            ms(tools[2]),
            ms(tools[3])
        ),
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    match &args.role {
        Some(Role::Probe { to, limit }) => return probe(*to, Duration::from_secs(*limit)),
        Some(Role::Driver {
            ns,
            endpoints,
            workload,
        }) => return driver(ns, *endpoints, workload),
        None => {}
    }
    ensure!(args.adds >= 1, "--adds must be at least 1");
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for &n in &args.endpoints {
        let shape = Shape::new(n);
        let lab = Lab::builder("benchfelix").hosts(2).build()?;
        let a = ours(&lab, lab.host(1), &shape, n, args.adds)?;
        if args.ours_only {
            let mut aa = a.adds.clone();
            aa.sort();
            println!(
                "{n} endpoints, ours only: cold {:.0} ms, add median {:.1} ms / p99 {:.1} ms / max {:.1} ms, rule change {:.1} ms, VmHWM {:?} KiB; {}",
                ms(a.cold),
                ms(percentile(&aa, 0.5)),
                ms(percentile(&aa, 0.99)),
                ms(aa[aa.len() - 1]),
                a.rule_change.map(ms).unwrap_or_default(),
                a.peak_kib,
                a.detail
            );
            continue;
        }
        let b = floor(&lab, lab.host(2), &shape, n, args.adds)?;
        let (mut aa, mut ba) = (a.adds.clone(), b.adds.clone());
        aa.sort();
        ba.sort();
        let (am, ap) = (percentile(&aa, 0.5), percentile(&aa, 0.99));
        let (bm, bp) = (percentile(&ba, 0.5), percentile(&ba, 0.99));
        rows.push(format!(
            "| {n} | {} | {:.0} ms / {:.0} ms ({:.3}×) | {:.1} ms / {:.1} ms ({:.3}×) | {:.1} ms / {:.1} ms ({:.3}×) | {:.1} ms | {} MiB |",
            shape.tags,
            ms(a.cold),
            ms(b.cold),
            a.cold.as_secs_f64() / b.cold.as_secs_f64(),
            ms(am),
            ms(bm),
            am.as_secs_f64() / bm.as_secs_f64(),
            ms(ap),
            ms(bp),
            ap.as_secs_f64() / bp.as_secs_f64(),
            a.rule_change.map(ms).unwrap_or_default(),
            a.peak_kib.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
        ));
        notes.push(format!(
            "{n} endpoints, {} adds: ours: {}; add max {:.1} ms. Floor: {}; add max {:.1} ms.",
            args.adds,
            a.detail,
            ms(aa[aa.len() - 1]),
            b.detail,
            ms(ba[ba.len() - 1]),
        ));
        drop(lab);
    }
    println!("| endpoints | tags | cold start until traffic: ours / floor (ratio) | add one until traffic, median: ours / floor (ratio) | p99: ours / floor (ratio) | rule change until obeyed (ours) | Felix peak memory (VmHWM) |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    for n in notes {
        println!("{n}");
    }
    Ok(())
}
