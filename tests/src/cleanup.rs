//! Finding and removing what a lab made: its namespaces (and every process inside them), its Docker
//! containers, the processes it recorded, its root-namespace management link and its directory.
//!
//! The same teardown serves three moments: a lab dropped normally or while a test panics, a new lab whose
//! name a crashed run left behind (stale leftovers), and `calico-lab down`. [`leftovers`] is the suite's
//! final check that nothing is left.

use std::fs;
use std::path::PathBuf;

use anyhow::Result;

use crate::cmd::Cmd;
use crate::docker;
use crate::plan::Plan;
use crate::procs;

/// Where the lab keeps its runtime state (tmpfs: gone at reboot).
pub const RUN_DIR: &str = "/run/calico-lab";

/// The directory of the lab called `name`.
pub fn lab_dir(name: &str) -> PathBuf {
    PathBuf::from(RUN_DIR).join("labs").join(name)
}

/// The prefix of every namespace of the lab called `name`.
pub fn ns_prefix(name: &str) -> String {
    format!("lab-{name}-")
}

/// The names of all network namespaces (`ip netns list`).
pub fn namespaces() -> Result<Vec<String>> {
    let out = Cmd::new(["ip", "netns", "list"]).stdout()?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect())
}

/// The PIDs of the processes inside the namespace `ns`.
pub fn pids_in(ns: &str) -> Vec<u32> {
    Cmd::new(["ip", "netns", "pids", ns])
        .stdout()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|pid| procs::alive(*pid))
        .collect()
}

/// Removes everything the lab called `name` made; returns a description of each thing removed.
pub fn teardown(name: &str) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let dir = lab_dir(name);
    for pid in procs::kill_recorded(&dir) {
        removed.push(format!("process {pid}"));
    }
    for id in docker::lab_containers(Some(name))? {
        Cmd::new(["docker", "rm", "-f", "-v", id.as_str()]).run()?;
        removed.push(format!("container {id}"));
    }
    let prefix = ns_prefix(name);
    let mut ours: Vec<String> = namespaces()?
        .into_iter()
        .filter(|ns| ns.starts_with(&prefix))
        .collect();
    // Workloads (lab-N-hX-wY) before hosts, hosts before the switch: nothing is left dangling midway.
    ours.sort_by_key(|ns| std::cmp::Reverse(ns.matches('-').count()));
    for ns in &ours {
        for pid in pids_in(ns) {
            procs::kill_and_wait(pid);
            removed.push(format!("process {pid} in {ns}"));
        }
    }
    for ns in &ours {
        Cmd::new(["ip", "netns", "del", ns.as_str()]).run()?;
        removed.push(format!("namespace {ns}"));
    }
    if let Some(slot) = fs::read_to_string(dir.join("slot"))
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
    {
        if remove_link(&Plan::new(slot).mgmt_link())? {
            removed.push(format!("link {}", Plan::new(slot).mgmt_link()));
        }
    }
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    Ok(removed)
}

/// Deletes the root-namespace link `name` if it exists; true if it did.
pub fn remove_link(name: &str) -> Result<bool> {
    if Cmd::new(["ip", "link", "show", "dev", name]).succeeds()? {
        Cmd::new(["ip", "link", "del", "dev", name]).run()?;
        return Ok(true);
    }
    Ok(false)
}

/// The names of every lab that has a namespace, a container or a directory on this machine.
pub fn lab_names() -> Result<Vec<String>> {
    let mut names: Vec<String> = namespaces()?
        .iter()
        .filter_map(|ns| ns.strip_prefix("lab-")?.split('-').next().map(String::from))
        .collect();
    names.extend(
        docker::lab_containers_with_labs()?
            .into_iter()
            .map(|(_, lab)| lab),
    );
    if let Ok(entries) = fs::read_dir(PathBuf::from(RUN_DIR).join("labs")) {
        names.extend(
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        );
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Everything labs left on this machine, except the labs named in `except` (e.g. a running demo).
pub fn leftovers(except: &[&str]) -> Result<Vec<String>> {
    let spared = |lab: &str| except.contains(&lab);
    let mut found = Vec::new();
    for ns in namespaces()? {
        if let Some(lab) = ns.strip_prefix("lab-").and_then(|r| r.split('-').next()) {
            if !spared(lab) {
                found.push(format!("namespace {ns}"));
            }
        }
    }
    let links = Cmd::new(["ip", "-o", "link", "show"]).stdout()?;
    let spared_links: Vec<String> = except
        .iter()
        .filter_map(|lab| fs::read_to_string(lab_dir(lab).join("slot")).ok())
        .filter_map(|s| s.trim().parse::<u8>().ok())
        .map(|slot| Plan::new(slot).mgmt_link())
        .collect();
    for line in links.lines() {
        let Some(name) = line
            .split(": ")
            .nth(1)
            .map(|n| n.split('@').next().unwrap_or(n))
        else {
            continue;
        };
        let is_lab = name
            .strip_prefix("lab")
            .and_then(|r| r.strip_suffix("mgmt"))
            .is_some_and(|slot| slot.parse::<u8>().is_ok());
        if is_lab && !spared_links.iter().any(|l| l == name) {
            found.push(format!("link {name}"));
        }
    }
    for (id, lab) in docker::lab_containers_with_labs()? {
        if !spared(&lab) {
            found.push(format!("container {id} of lab {lab}"));
        }
    }
    if let Ok(entries) = fs::read_dir(PathBuf::from(RUN_DIR).join("labs")) {
        for entry in entries.flatten() {
            let lab = entry.file_name().to_string_lossy().into_owned();
            if spared(&lab) {
                continue;
            }
            for pid in procs::recorded_alive(&entry.path()) {
                found.push(format!("process {pid} of lab {lab}"));
            }
        }
    }
    Ok(found)
}
