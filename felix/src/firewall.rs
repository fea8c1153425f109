//! The firewall's I/O edge: brings the kernel's `inet calico` table to a desired state.
//!
//! The first apply (and any apply after a failure, when what the kernel holds is uncertain) replaces
//! the whole table atomically with `nft -f`; later applies carry out the planner's three phases: a small
//! `nft -f` script for new or changed chains and sets, one netlink batch for element changes, and a
//! script for what is no longer used. Established connections survive both: conntrack is untouched and
//! no packet ever sees a half-built table.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::changes::{fold, plan_changes, Change};
use crate::error::{Error, NftError};
use crate::model::{Config, DesiredState};
use crate::nft::elements::encode_batch;
use crate::nft::elements::{
    dump_elements, dump_rules, element_count, rule_chain, ELEMENTS_REPLY, RULE_REPLY,
};
use crate::nft::names::profile_list_set;
use crate::nft::table::{render_structure, render_table, rule_counts};
use crate::plan::{plan, Plan};
use calico_netlink::socket::Socket;

/// What one apply did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// The whole table was replaced.
    pub full: bool,
    /// Element changes sent over netlink.
    pub elements: usize,
    /// `nft -f` scripts run.
    pub scripts: usize,
    pub elapsed: Duration,
}

/// The rule that lets a host whose FORWARD policy is DROP (Docker sets it) forward exactly what Felix's
/// policy allowed: a match on the mark Felix sets, as arguments after `iptables -X FORWARD`.
pub const FORWARD_ACCEPT: &[&str] = &[
    "-m",
    "mark",
    "--mark",
    "0x2000000/0x2000000",
    "-m",
    "comment",
    "--comment",
    "calico: forwarded endpoint traffic allowed by Felix's policy",
    "-j",
    "ACCEPT",
];

/// Felix's firewall in one network namespace.
#[derive(Debug)]
pub struct Firewall {
    socket: Socket,
    /// Runs a tool in the namespace (empty: here; or `ip netns exec NAME`).
    exec: Vec<String>,
    /// The desired state, which the kernel holds when `in_sync`.
    state: DesiredState,
    in_sync: bool,
}

impl Firewall {
    /// A firewall for the namespace at `netns` (`None`: the caller's own). `exec` is the command prefix
    /// that runs a tool (`nft`, `iptables`) in that namespace: empty for the caller's own, or
    /// `["ip", "netns", "exec", NAME]`.
    pub fn new(netns: Option<&Path>, exec: Vec<String>) -> Result<Firewall, Error> {
        let protocol = Some(rustix::net::netlink::NETFILTER);
        let socket = Socket::open_at(netns, protocol)?;
        Ok(Firewall {
            socket,
            exec,
            state: DesiredState::default(),
            in_sync: false,
        })
    }

    /// The firewall of the named namespace (`/run/netns/NAME`), running `nft` there through `ip netns`.
    pub fn in_named_netns(name: &str) -> Result<Firewall, Error> {
        let path = PathBuf::from("/run/netns").join(name);
        let exec = ["ip", "netns", "exec", name].map(String::from).to_vec();
        Firewall::new(Some(&path), exec)
    }

    /// Makes the kernel hold `desired` (compared whole with what it holds). On failure the next apply
    /// replaces the whole table.
    pub fn apply(&mut self, desired: &DesiredState) -> Result<Applied, Error> {
        let start = Instant::now();
        let result = if self.in_sync {
            let p = plan(&self.state, desired);
            self.state = desired.clone();
            self.run_plan(&p)
        } else {
            self.state = desired.clone();
            self.replace_all()
        };
        self.finish(result, start)
    }

    /// Applies `changes` to the desired state and makes the kernel hold it, touching only what the
    /// changes touch. On failure the changes stay in the desired state and the next apply replaces the
    /// whole table.
    pub fn apply_changes(&mut self, changes: &[Change]) -> Result<Applied, Error> {
        let start = Instant::now();
        let result = if self.in_sync {
            let p = plan_changes(&self.state, changes);
            fold(&mut self.state, changes);
            self.run_plan(&p)
        } else {
            fold(&mut self.state, changes);
            self.replace_all()
        };
        self.finish(result, start)
    }

    /// Sets the host-wide settings; a change takes effect with the next apply, which replaces the table.
    pub fn set_config(&mut self, config: Config) {
        if self.state.config != config {
            self.state.config = config;
            self.in_sync = false;
        }
    }

    /// The desired state (what the kernel holds, once an apply succeeded).
    pub fn state(&self) -> &DesiredState {
        &self.state
    }

    /// Forgets what the kernel holds, so the next apply replaces the whole table (a resync).
    pub fn invalidate(&mut self) {
        self.in_sync = false;
    }

    /// Compares the kernel's table with the desired state: every chain's rule count, and the element
    /// counts of the per-endpoint sets (sources, and each profile list's interfaces). Returns what differs, if anything.
    pub fn drift(&mut self) -> Result<Option<String>, Error> {
        let expected = rule_counts(&render_structure(&self.state));
        let seq = self.socket.next_seq();
        let mut found: BTreeMap<String, usize> = expected.keys().map(|c| (c.clone(), 0)).collect();
        match self.socket.dump(&dump_rules(seq), RULE_REPLY) {
            Ok(rules) => {
                for body in rules {
                    if let Some(chain) = rule_chain(&body) {
                        *found.entry(chain).or_insert(0) += 1;
                    }
                }
            }
            Err(calico_netlink::Error::Refused { errno: 2, .. }) => {
                return Ok(Some("the table is missing".into()))
            }
            Err(e) => return Err(e.into()),
        }
        if let Some((chain, n)) = expected.iter().find(|(c, n)| found.get(*c) != Some(n)) {
            return Ok(Some(format!(
                "chain {chain} has {} rule(s), not {n}",
                found.get(chain).copied().unwrap_or(0)
            )));
        }
        let eps = &self.state.endpoints;
        let mut want: BTreeMap<String, usize> = BTreeMap::new();
        want.insert("ep-src-v4".into(), eps.values().map(|e| e.ipv4.len()).sum());
        want.insert("ep-src-v6".into(), eps.values().map(|e| e.ipv6.len()).sum());
        for ep in eps.values() {
            *want.entry(profile_list_set(&ep.profiles)).or_insert(0) += 1;
        }
        for (set, n) in want {
            let seq = self.socket.next_seq();
            let have: usize = match self.socket.dump(&dump_elements(&set, seq), ELEMENTS_REPLY) {
                Ok(msgs) => msgs.iter().map(|b| element_count(b)).sum(),
                Err(calico_netlink::Error::Refused { errno: 2, .. }) => {
                    return Ok(Some(format!("set {set} is missing")))
                }
                Err(e) => return Err(e.into()),
            };
            if have != n {
                return Ok(Some(format!("{set} holds {have} element(s), not {n}")));
            }
        }
        Ok(None)
    }

    /// Repairs drift by replacing the whole table; returns what had drifted.
    pub fn repair(&mut self) -> Result<Option<String>, Error> {
        let drift = if self.in_sync {
            self.drift()?
        } else {
            Some("not yet in sync".into())
        };
        if drift.is_some() {
            self.in_sync = false;
            let start = Instant::now();
            let result = self.replace_all();
            self.finish(result, start)?;
        }
        Ok(drift)
    }

    fn finish(&mut self, result: Result<Applied, Error>, start: Instant) -> Result<Applied, Error> {
        self.in_sync = result.is_ok();
        let mut applied = result?;
        applied.elapsed = start.elapsed();
        Ok(applied)
    }

    fn replace_all(&self) -> Result<Applied, Error> {
        self.run_nft("full", &render_table(&self.state))?;
        self.ensure_forward_accept()?;
        Ok(Applied {
            full: true,
            scripts: 1,
            ..Applied::default()
        })
    }

    fn run_plan(&mut self, p: &Plan) -> Result<Applied, Error> {
        let mut done = Applied::default();
        if let Some(script) = &p.create {
            self.run_nft("create", script)?;
            done.scripts += 1;
        }
        if !p.elements.is_empty() {
            let socket = &mut self.socket;
            let (batch, acked) = encode_batch(&p.elements, || socket.next_seq());
            self.socket
                .transact(&batch, &acked, "the element changes")?;
            done.elements = p.elements.len();
        }
        if let Some(script) = &p.prune {
            self.run_nft("prune", script)?;
            done.scripts += 1;
        }
        Ok(done)
    }

    /// Makes sure the host's FORWARD chain (IPv4 and IPv6) accepts what Felix's policy allowed: one
    /// `-C` probe per family, and one `-I` when the rule is missing.
    fn ensure_forward_accept(&self) -> Result<(), Error> {
        for tool in ["iptables", "ip6tables"] {
            let run = |op: &str, extra: &[&str]| -> Result<std::process::Output, Error> {
                let mut argv: Vec<&str> = self.exec.iter().map(String::as_str).collect();
                argv.extend([tool, "-w", op, "FORWARD"]);
                argv.extend_from_slice(extra);
                argv.extend_from_slice(FORWARD_ACCEPT);
                Ok(Command::new(argv[0]).args(&argv[1..]).output()?)
            };
            if !run("-C", &[])?.status.success() {
                let out = run("-I", &["1"])?;
                if !out.status.success() {
                    return Err(NftError {
                        phase: "FORWARD accept rule",
                        stderr: format!("{tool}: {}", String::from_utf8_lossy(&out.stderr).trim()),
                    }
                    .into());
                }
            }
        }
        Ok(())
    }

    fn run_nft(&self, phase: &'static str, script: &str) -> Result<(), Error> {
        let mut argv: Vec<&str> = self.exec.iter().map(String::as_str).collect();
        argv.push("nft");
        let (program, args) = argv.split_first().ok_or_else(|| NftError {
            phase,
            stderr: "no nft command".into(),
        })?;
        let mut child = Command::new(program)
            .args(args)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(NftError {
                phase,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }
            .into());
        }
        Ok(())
    }
}
