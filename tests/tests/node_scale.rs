//! Scale (scenario 6): three hosts with 300 workloads each: bare network namespaces wired with
//! `calicoctl container add --netns` (addresses drawn from each host's blocks), in 30 profiles of 30
//! (ten per host). Every workload reaches every other member of its profile (a TCP connection attempt
//! answers: accepted or reset), members of other profiles are denied (a sample of every profile
//! against ten others), and the time to converge is measured and printed.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use calico_lab::cleanup::ns_prefix;
use calico_lab::cluster::{Cluster, Datastore};
use calico_lab::{lab_bin, Lab, Place};
use serde_json::Value;

const PER_HOST: usize = 300;
const PROFILES: usize = 30;
/// Sweeps and adds run this many at once.
const WORKERS: usize = 4;

/// One workload namespace.
struct Workload {
    ns: String,
    profile: usize,
    ip: IpAddr,
}

fn profile_name(p: usize) -> String {
    format!("S{p:02}")
}

/// Runs `f` on every item of `items`, `WORKERS` at a time; the errors, in no particular order.
fn in_parallel<T: Sync>(items: &[T], f: impl Fn(&T) -> Result<()> + Sync) -> Vec<anyhow::Error> {
    let next = AtomicUsize::new(0);
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(e) = f(item) {
                        errors.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    errors.into_inner().unwrap()
}

/// `calico-lab probe sweep` in `ns`: true when every `reach` answers and no `deny` does.
fn sweep(ns: &str, reach: &[IpAddr], deny: &[IpAddr]) -> Result<(bool, String)> {
    let list = |v: &[IpAddr]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut argv = vec![
        lab_bin().display().to_string(),
        "probe".into(),
        "sweep".into(),
    ];
    if !reach.is_empty() {
        argv.extend(["--reach".into(), list(reach)]);
    }
    if !deny.is_empty() {
        argv.extend(["--deny".into(), list(deny)]);
    }
    let out = Place::Netns(ns.to_string())
        .cmd(&argv)
        .timeout(Duration::from_secs(30))
        .output()?;
    Ok((out.success(), out.stdout.trim().to_string()))
}

#[test]
fn three_hosts_with_300_workloads_each_reach_within_their_profiles() -> Result<()> {
    Lab::builder("scale").hosts(3).run(|lab| {
        let mut c = Cluster::start(lab, Datastore::Embedded)?;
        c.ctl(&["pool", "add", "10.65.0.0/16"]).run()?;
        for p in 0..PROFILES {
            c.ctl(&["profile", "add", &profile_name(p)]).run()?;
        }
        c.start_all_nodes(&[])?;
        // The mesh: every node has a session per family to each of the two others.
        for h in lab.hosts() {
            c.wait_sessions(h, 4, Duration::from_secs(30))?;
        }

        // The namespaces, in one batch.
        let prefix = ns_prefix(lab.name());
        let mut plan: Vec<(usize, String, usize)> = Vec::new();
        for h in 1..=lab.hosts().len() {
            for i in 0..PER_HOST {
                plan.push((h, format!("{prefix}w{h}-{i}"), i % PROFILES));
            }
        }
        let lines: Vec<String> = plan
            .iter()
            .map(|(_, ns, _)| format!("netns add {ns}"))
            .collect();
        Place::Root.ip_batch(&lines).run()?;

        // Wire them all through calicoctl, each in its host's namespace.
        let start = Instant::now();
        let wired = Mutex::new(Vec::new());
        let errors = in_parallel(&plan, |(h, ns, p)| {
            let host = lab.host(*h);
            let node = c.node_name(host);
            let path = format!("/run/netns/{ns}");
            let profile = profile_name(*p);
            let out = c
                .ctl_on(
                    host,
                    &[
                        "-o",
                        "json",
                        "container",
                        "add",
                        "--netns",
                        &path,
                        "auto",
                        "--node",
                        &node,
                        "--profile",
                        &profile,
                    ],
                )
                .stdout()?;
            let v: Value = serde_json::from_str(&out)
                .with_context(|| format!("container add printed {out}"))?;
            let row = v.as_array().and_then(|l| l.first()).unwrap_or(&v);
            let ip = row["ips"]
                .as_array()
                .and_then(|l| l.first())
                .and_then(Value::as_str)
                .with_context(|| format!("no address in {out}"))?
                .parse()?;
            wired.lock().unwrap().push(Workload {
                ns: ns.clone(),
                profile: *p,
                ip,
            });
            Ok(())
        });
        if let Some(e) = errors.into_iter().next() {
            return Err(e.context("calicoctl container add failed"));
        }
        let added = start.elapsed();
        let workloads = wired.into_inner().unwrap();
        ensure!(
            workloads.len() == plan.len(),
            "not every namespace was wired"
        );
        let members = |p: usize| -> Vec<IpAddr> {
            workloads
                .iter()
                .filter(|w| w.profile == p)
                .map(|w| w.ip)
                .collect()
        };

        // Converged: every workload reaches every other member of its profile.
        let mut pending: Vec<&Workload> = workloads.iter().collect();
        let mut last = String::new();
        while !pending.is_empty() {
            if start.elapsed() > Duration::from_secs(240) {
                bail!(
                    "{} workloads still miss members of their profile after {:?}; e.g. {last}",
                    pending.len(),
                    start.elapsed()
                );
            }
            let failed = Mutex::new(Vec::new());
            let errors = in_parallel(&pending, |w| {
                let others: Vec<IpAddr> = members(w.profile)
                    .into_iter()
                    .filter(|ip| *ip != w.ip)
                    .collect();
                let (ok, out) = sweep(&w.ns, &others, &[])?;
                if !ok {
                    failed.lock().unwrap().push((w.ns.clone(), out));
                }
                Ok(())
            });
            if let Some(e) = errors.into_iter().next() {
                return Err(e);
            }
            let failed = failed.into_inner().unwrap();
            last = failed
                .first()
                .map(|(ns, out)| format!("{ns}: {out}"))
                .unwrap_or_default();
            pending.retain(|w| failed.iter().any(|(ns, _)| *ns == w.ns));
        }
        let converged = start.elapsed();

        // Other profiles are denied: one member of each profile against one of each of ten others.
        let errors = in_parallel(&(0..PROFILES).collect::<Vec<_>>(), |p| {
            let w = workloads
                .iter()
                .find(|w| w.profile == *p)
                .context("an empty profile")?;
            let strangers: Vec<IpAddr> = (1..=10)
                .map(|k| members((p + k) % PROFILES)[k % 3])
                .collect();
            let (ok, out) = sweep(&w.ns, &[], &strangers)?;
            ensure!(
                ok,
                "{} ({}) reached another profile: {out}",
                w.ns,
                profile_name(*p)
            );
            Ok(())
        });
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
        eprintln!(
            "scale: {} workloads on {} hosts wired in {:.1} s ({:.0}/s); every profile fully \
             reachable {:.1} s after the first add ({:.1} s after the last)",
            workloads.len(),
            lab.hosts().len(),
            added.as_secs_f64(),
            workloads.len() as f64 / added.as_secs_f64(),
            converged.as_secs_f64(),
            (converged - added).as_secs_f64()
        );
        Ok(())
    })
}
