//! Reachability checks that assert both ways: pings and TCP connections that must work (waiting for
//! convergence up to a deadline) and ones that must fail (every attempt, so a flaky allow is caught).
//!
//! Targets must lie in the lab's ranges: no check sends traffic anywhere else.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Result};

use crate::cmd::Cmd;
use crate::docker::Container;
use crate::lab::{in_lab_ranges, Host, Workload};
use crate::place::Place;
use crate::wait::wait_until;

/// Something that can send traffic: a host, a workload, a container or the root namespace.
pub trait Endpoint {
    /// A short name for messages.
    fn label(&self) -> String;
    /// The command that pings `ip` once, waiting at most a second.
    fn ping(&self, ip: IpAddr) -> Cmd;
    /// The command that opens a TCP connection to `addr` and exits 0 only if it connected.
    fn tcp_connect(&self, addr: SocketAddr) -> Cmd;
}

fn ping_argv(ip: IpAddr) -> Vec<String> {
    vec![
        "ping".into(),
        "-c".into(),
        "1".into(),
        "-W".into(),
        "1".into(),
        ip.to_string(),
    ]
}

fn probe_in(place: &Place, addr: SocketAddr) -> Cmd {
    let bin = crate::lab_bin().display().to_string();
    place.cmd(&[
        bin,
        "probe".into(),
        "tcp".into(),
        addr.to_string(),
        "--timeout-ms".into(),
        "1000".into(),
    ])
}

/// Hosts and workloads: the host's tools, run in their namespace.
macro_rules! namespace_endpoint {
    ($t:ty) => {
        impl Endpoint for $t {
            fn label(&self) -> String {
                self.ns.clone()
            }
            fn ping(&self, ip: IpAddr) -> Cmd {
                self.place().cmd(&ping_argv(ip))
            }
            fn tcp_connect(&self, addr: SocketAddr) -> Cmd {
                probe_in(&self.place(), addr)
            }
        }
    };
}

namespace_endpoint!(Host);
namespace_endpoint!(Workload);

impl Endpoint for Place {
    fn label(&self) -> String {
        format!("{self:?}")
    }
    fn ping(&self, ip: IpAddr) -> Cmd {
        self.cmd(&ping_argv(ip))
    }
    fn tcp_connect(&self, addr: SocketAddr) -> Cmd {
        probe_in(self, addr)
    }
}

impl Endpoint for Container {
    fn label(&self) -> String {
        self.name.clone()
    }
    /// Pings with the container's own busybox, as a user's `docker exec … ping` would.
    fn ping(&self, ip: IpAddr) -> Cmd {
        let argv = ping_argv(ip);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.exec(&argv)
    }
    fn tcp_connect(&self, addr: SocketAddr) -> Cmd {
        let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
        self.exec(&["nc", "-w", "1", ip.as_str(), port.as_str()])
    }
}

fn check_target(ip: IpAddr) -> Result<()> {
    if !in_lab_ranges(ip) {
        bail!("{ip} is outside the lab's ranges: the lab sends no traffic there");
    }
    Ok(())
}

/// Waits up to `within` for a ping from `from` to `ip` to succeed.
pub fn assert_ping(from: &dyn Endpoint, ip: IpAddr, within: Duration) -> Result<()> {
    check_target(ip)?;
    wait_until(within, &format!("{} to ping {ip}", from.label()), || {
        from.ping(ip).succeeds()
    })
}

/// Asserts that pings from `from` to `ip` fail, three attempts in a row.
pub fn assert_no_ping(from: &dyn Endpoint, ip: IpAddr) -> Result<()> {
    check_target(ip)?;
    for _ in 0..3 {
        if from.ping(ip).succeeds()? {
            bail!("{} reached {ip}, which must be unreachable", from.label());
        }
    }
    Ok(())
}

/// Waits up to `within` for a TCP connection from `from` to `addr` to succeed.
pub fn assert_tcp(from: &dyn Endpoint, addr: SocketAddr, within: Duration) -> Result<()> {
    check_target(addr.ip())?;
    wait_until(
        within,
        &format!("{} to connect to {addr}", from.label()),
        || from.tcp_connect(addr).succeeds(),
    )
}

/// Asserts that TCP connections from `from` to `addr` fail, three attempts in a row.
pub fn assert_no_tcp(from: &dyn Endpoint, addr: SocketAddr) -> Result<()> {
    check_target(addr.ip())?;
    for _ in 0..3 {
        if from.tcp_connect(addr).succeeds()? {
            bail!(
                "{} connected to {addr}, which must be refused or dropped",
                from.label()
            );
        }
    }
    Ok(())
}
