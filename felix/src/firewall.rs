//! The firewall's I/O edge: brings the kernel's `inet calico` table to a desired state.
//!
//! The first apply (and any apply after a failure, when what the kernel holds is uncertain) replaces
//! the whole table atomically with `nft -f`; later applies carry out the planner's three phases: a small
//! `nft -f` script for new or changed chains and sets, one netlink batch for element changes, and a
//! script for what is no longer used. Established connections survive both: conntrack is untouched and
//! no packet ever sees a half-built table.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, NftError};
use crate::model::DesiredState;
use crate::nft::elements::encode_batch;
use crate::nft::table::render_table;
use crate::nl::socket::Socket;
use crate::plan::plan;

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

/// Felix's firewall in one network namespace.
#[derive(Debug)]
pub struct Firewall {
    socket: Socket,
    nft: Vec<String>,
    applied: Option<DesiredState>,
}

impl Firewall {
    /// A firewall for the namespace at `netns` (`None`: the caller's own). `nft` is the command that runs
    /// `nft` in that namespace (e.g. `["nft"]`, or `["ip", "netns", "exec", NAME, "nft"]`).
    pub fn new(netns: Option<&Path>, nft: Vec<String>) -> Result<Firewall, Error> {
        let protocol = rustix::net::netlink::NETFILTER;
        let socket = match netns {
            Some(path) => Socket::open_in(path, protocol)?,
            None => Socket::open(protocol)?,
        };
        Ok(Firewall {
            socket,
            nft,
            applied: None,
        })
    }

    /// The firewall of the named namespace (`/run/netns/NAME`), running `nft` there through `ip netns`.
    pub fn in_named_netns(name: &str) -> Result<Firewall, Error> {
        let path = PathBuf::from("/run/netns").join(name);
        let nft = ["ip", "netns", "exec", name, "nft"]
            .map(String::from)
            .to_vec();
        Firewall::new(Some(&path), nft)
    }

    /// Makes the kernel hold `desired`. On failure the next apply replaces the whole table.
    pub fn apply(&mut self, desired: &DesiredState) -> Result<Applied, Error> {
        let start = Instant::now();
        let result = match self.applied.take() {
            None => self
                .run_nft("full", &render_table(desired))
                .map(|()| Applied {
                    full: true,
                    scripts: 1,
                    ..Applied::default()
                }),
            Some(old) => self.apply_delta(&old, desired),
        };
        let mut applied = result?;
        self.applied = Some(desired.clone());
        applied.elapsed = start.elapsed();
        Ok(applied)
    }

    /// Forgets what the kernel holds, so the next apply replaces the whole table (a resync).
    pub fn invalidate(&mut self) {
        self.applied = None;
    }

    fn apply_delta(&mut self, old: &DesiredState, new: &DesiredState) -> Result<Applied, Error> {
        let p = plan(old, new);
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

    fn run_nft(&self, phase: &'static str, script: &str) -> Result<(), Error> {
        let (program, args) = self.nft.split_first().ok_or_else(|| NftError {
            phase,
            stderr: "no nft command configured".into(),
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
