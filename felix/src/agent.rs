//! Felix as one piece: the firewall, the endpoint routes and the flow table of one host, driven by
//! changes to the desired state, with each endpoint's status, retries with backoff for endpoints that
//! failed (e.g. their interface is not there yet) and a periodic resync that repairs drift.
//!
//! Inputs: [`Change`]s (from the node's sync stream) and `now`. Outputs: the kernel's state, per-endpoint
//! status for `calicoctl status`, and counters in Prometheus text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::changes::Change;
use crate::error::Error;
use crate::firewall::Firewall;
use crate::flows::Flows;
use crate::ipip::{self, IpipSupport};
use crate::model::{Config, DesiredState, Endpoint};
use crate::routes::{EndpointFailure, Routes};
use ipnet::IpNet;

/// The first retry delay for a failed endpoint; it doubles per failure up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// How one endpoint stands in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointStatus {
    Programmed,
    Failed { reason: String },
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    failures: u32,
    due: Instant,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub applies: u64,
    pub apply_errors: u64,
    pub resyncs: u64,
    pub route_repairs: u64,
    pub firewall_repairs: u64,
    pub flows_flushed: u64,
    pub last_apply: Duration,
}

/// What one apply did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub programmed: usize,
    pub failed: Vec<EndpointFailure>,
    pub flows_flushed: usize,
}

/// What a resync found and repaired.
#[derive(Debug, Clone, Default)]
pub struct Resync {
    pub route_repairs: usize,
    pub firewall_drift: Option<String>,
    pub failed: Vec<EndpointFailure>,
}

/// Felix on one host.
#[derive(Debug)]
pub struct Felix {
    firewall: Firewall,
    routes: Routes,
    flows: Flows,
    status: BTreeMap<String, EndpointStatus>,
    retries: BTreeMap<String, Retry>,
    metrics: Metrics,
    /// What the IPIP probe found (run once, when a pool first asks for IPIP).
    ipip: Option<IpipSupport>,
    /// Pools whose IPIP part is refused, with the reason.
    refused_pools: BTreeMap<IpNet, String>,
}

fn addresses(ep: Option<&Endpoint>) -> BTreeSet<IpAddr> {
    ep.map(|e| e.addresses().collect()).unwrap_or_default()
}

impl Felix {
    /// Felix for the namespace at `netns` (`None`: its own), running tools there with the `exec`
    /// prefix (empty, or `ip netns exec NAME`).
    pub fn new(netns: Option<&Path>, exec: Vec<String>) -> Result<Felix, Error> {
        Ok(Felix {
            firewall: Firewall::new(netns, exec)?,
            routes: Routes::new(netns)?,
            flows: Flows::new(netns)?,
            status: BTreeMap::new(),
            retries: BTreeMap::new(),
            metrics: Metrics::default(),
            ipip: None,
            refused_pools: BTreeMap::new(),
        })
    }

    /// Felix for the named namespace (`/run/netns/NAME`).
    pub fn in_named_netns(name: &str) -> Result<Felix, Error> {
        let path = PathBuf::from("/run/netns").join(name);
        let exec = ["ip", "netns", "exec", name].map(String::from).to_vec();
        Felix::new(Some(&path), exec)
    }

    /// Sets the host-wide settings (the IPv6 gateway, the endpoint-to-host action, …); they apply from
    /// the next [`Felix::apply`] on. Pools that ask for IPIP are checked against the kernel (probed once)
    /// and their IPIP part refused ([`Felix::refused_pools`]); everything else applies as usual.
    pub fn set_config(&mut self, config: Config) {
        self.refused_pools = if config.ipip_pools.is_empty() {
            BTreeMap::new()
        } else {
            let support = self.ipip.get_or_insert_with(ipip::probe);
            ipip::felix_refusals(&config.ipip_pools, support)
                .into_iter()
                .collect()
        };
        self.firewall.set_config(config);
    }

    /// The pools whose IPIP part Felix refused, each with a message that says what, why and what to do
    /// instead (for the node's status report and log, like [`Felix::status`] for endpoints).
    pub fn refused_pools(&self) -> &BTreeMap<IpNet, String> {
        &self.refused_pools
    }

    /// What the IPIP probe found, once a pool asked for IPIP.
    pub fn ipip_support(&self) -> Option<&IpipSupport> {
        self.ipip.as_ref()
    }

    /// The desired state as it stands.
    pub fn state(&self) -> &DesiredState {
        self.firewall.state()
    }

    /// Applies `changes`: the firewall first (so nothing is reachable before its policy is in place),
    /// then routes for the endpoints that came or changed, then the departure of addresses that left
    /// (their routes and their flows).
    pub fn apply(&mut self, changes: &[Change], now: Instant) -> Result<Report, Error> {
        let start = Instant::now();
        self.metrics.applies += 1;
        let touched: BTreeSet<String> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Endpoint(id, _) => Some(id.clone()),
                _ => None,
            })
            .collect();
        let before: BTreeMap<String, BTreeSet<IpAddr>> = touched
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    addresses(self.firewall.state().endpoints.get(id)),
                )
            })
            .collect();
        if let Err(e) = self.firewall.apply_changes(changes) {
            self.metrics.apply_errors += 1;
            return Err(e);
        }
        let mut gone: Vec<IpAddr> = Vec::new();
        for (id, old) in &before {
            let now_there = addresses(self.firewall.state().endpoints.get(id));
            gone.extend(old.difference(&now_there));
            if !self.firewall.state().endpoints.contains_key(id) {
                self.status.remove(id);
                self.retries.remove(id);
            }
        }
        let mut report = Report::default();
        if !gone.is_empty() {
            self.routes.remove(&gone)?;
            report.flows_flushed = self.flows.flush(&gone)?;
            self.metrics.flows_flushed += report.flows_flushed as u64;
        }
        let ids: Vec<String> = touched
            .into_iter()
            .filter(|id| self.firewall.state().endpoints.contains_key(id))
            .collect();
        report.failed = self.program(&ids, now)?;
        report.programmed = ids.len() - report.failed.len();
        self.metrics.last_apply = start.elapsed();
        Ok(report)
    }

    fn program(&mut self, ids: &[String], now: Instant) -> Result<Vec<EndpointFailure>, Error> {
        let state = self.firewall.state();
        let eps: Vec<(&str, &Endpoint)> = ids
            .iter()
            .filter_map(|id| state.endpoints.get(id).map(|ep| (id.as_str(), ep)))
            .collect();
        let failures = self.routes.program(&eps, state)?;
        let failed: BTreeSet<&str> = failures.iter().map(|f| f.endpoint.as_str()).collect();
        for id in ids {
            if failed.contains(id.as_str()) {
                continue;
            }
            self.status.insert(id.clone(), EndpointStatus::Programmed);
            self.retries.remove(id);
        }
        for f in &failures {
            let failures_so_far = self.retries.get(&f.endpoint).map_or(0, |r| r.failures) + 1;
            let delay = FIRST_RETRY
                .saturating_mul(1 << (failures_so_far - 1).min(5))
                .min(MAX_RETRY);
            self.retries.insert(
                f.endpoint.clone(),
                Retry {
                    failures: failures_so_far,
                    due: now + delay,
                },
            );
            self.status.insert(
                f.endpoint.clone(),
                EndpointStatus::Failed {
                    reason: f.reason.clone(),
                },
            );
        }
        Ok(failures)
    }

    /// When the next failed endpoint is due for another try.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retries.values().map(|r| r.due).min()
    }

    /// Tries again the failed endpoints whose time has come; returns those that failed again.
    pub fn retry_due(&mut self, now: Instant) -> Result<Vec<EndpointFailure>, Error> {
        let due: Vec<String> = self
            .retries
            .iter()
            .filter(|(_, r)| r.due <= now)
            .map(|(id, _)| id.clone())
            .collect();
        if due.is_empty() {
            return Ok(Vec::new());
        }
        self.program(&due, now)
    }

    /// Compares the kernel with the desired state and repairs what differs: Felix's routes (missing,
    /// misdirected, stray) and the firewall (replaced whole if any of it drifted).
    pub fn resync(&mut self, now: Instant) -> Result<Resync, Error> {
        self.metrics.resyncs += 1;
        let (route_repairs, _) = self.routes.resync(self.firewall.state())?;
        self.metrics.route_repairs += route_repairs as u64;
        let firewall_drift = self.firewall.repair()?;
        if firewall_drift.is_some() {
            self.metrics.firewall_repairs += 1;
        }
        // Endpoints still failing keep their own retry schedule; resync retries them at once.
        let failing: Vec<String> = self.retries.keys().cloned().collect();
        let failed = self.program(&failing, now)?;
        Ok(Resync {
            route_repairs,
            firewall_drift,
            failed,
        })
    }

    /// Each endpoint's status.
    pub fn status(&self) -> &BTreeMap<String, EndpointStatus> {
        &self.status
    }

    /// (programmed, failed) endpoint counts.
    pub fn counts(&self) -> (usize, usize) {
        let failed = self
            .status
            .values()
            .filter(|s| matches!(s, EndpointStatus::Failed { .. }))
            .count();
        (self.status.len() - failed, failed)
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The counters and gauges in Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let m = &self.metrics;
        let (programmed, failed) = self.counts();
        let mut s = String::new();
        for (name, help, kind, value) in [
            (
                "felix_applies_total",
                "Changes applied.",
                "counter",
                m.applies as f64,
            ),
            (
                "felix_apply_errors_total",
                "Applies that failed.",
                "counter",
                m.apply_errors as f64,
            ),
            (
                "felix_resyncs_total",
                "Resyncs run.",
                "counter",
                m.resyncs as f64,
            ),
            (
                "felix_route_repairs_total",
                "Routes repaired by resyncs.",
                "counter",
                m.route_repairs as f64,
            ),
            (
                "felix_firewall_repairs_total",
                "Firewall tables replaced after drift.",
                "counter",
                m.firewall_repairs as f64,
            ),
            (
                "felix_flows_flushed_total",
                "Conntrack entries deleted for departed addresses.",
                "counter",
                m.flows_flushed as f64,
            ),
            (
                "felix_last_apply_seconds",
                "Duration of the last apply.",
                "gauge",
                m.last_apply.as_secs_f64(),
            ),
            (
                "felix_endpoints_programmed",
                "Endpoints programmed.",
                "gauge",
                programmed as f64,
            ),
            (
                "felix_endpoints_failed",
                "Endpoints that failed.",
                "gauge",
                failed as f64,
            ),
            (
                "felix_pools_refused",
                "Pools whose IPIP part is refused (this kernel has no IPIP, or Felix builds no tunnels).",
                "gauge",
                self.refused_pools.len() as f64,
            ),
        ] {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        s
    }
}
