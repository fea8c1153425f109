//! Helpers shared by the Felix lab tests: the convergence deadline, address parsing, an allow-all rule,
//! and a Felix endpoint made from a lab workload. Each test binary uses a subset of them.
#![allow(dead_code)]

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;
use calico_felix::model::{Action, Endpoint, Mac, Rule};
use calico_lab::Workload;

/// How long traffic may take to start flowing after a change.
pub const CONVERGE: Duration = Duration::from_secs(10);

/// An address from its text (test inputs only).
pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

/// A rule that allows everything.
pub fn allow() -> Rule {
    Rule {
        action: Some(Action::Allow),
        ..Rule::default()
    }
}

/// The Felix endpoint of a lab workload, in `profiles`.
pub fn endpoint(w: &Workload, profiles: &[&str]) -> Result<Endpoint> {
    Ok(Endpoint {
        iface: w.host_iface.clone(),
        mac: Mac(w.mac()?),
        ipv4: w.ip.into_iter().collect(),
        ipv6: w.ip6.into_iter().collect(),
        profiles: profiles.iter().map(|p| p.to_string()).collect(),
    })
}
