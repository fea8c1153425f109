//! `calicoctl diags [--output PATH] [--log-dir DIR]`: a tarball for bug reports.
//!
//! Collects, into a temporary directory: `datastore.json` (every key under `/calico/`, from the master's
//! `/v1/dump`), `nodes.json` (`/v1/nodes?detailed=true`, and each node's status in `status.json`),
//! `versions.json` (calicoctl's, the master's and its store revision), `metrics.txt` (the master's
//! `/metrics`), this host's dataplane under `host/` (routes of both families with their protocols,
//! neighbours, links, the nftables ruleset with Felix's table, iptables-save for the FORWARD accept
//! rule; a command that is missing or fails leaves a note), and every readable file of the log directory (default `/var/log/calico`, skipped with a
//! note when absent). Then `tar -czf PATH` (the system's tar), removes the directory and prints where
//! the tarball is. Inputs: the options and the master. Output: the tarball and its path.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};

use super::{client, items, object};
use crate::cli::GlobalOpts;
use crate::output::{print_rows, Format};

#[derive(Debug, Args)]
pub struct DiagsArgs {
    /// Where to write the tarball (default: calico-diags-<time>.tar.gz in the temporary directory).
    #[arg(long, value_name = "PATH")]
    pub output_file: Option<PathBuf>,
    /// The directory whose logs to include.
    #[arg(long, value_name = "DIR", default_value = "/var/log/calico")]
    pub log_dir: PathBuf,
}

fn write_json(dir: &Path, name: &str, v: &Value) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(v)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Copy the readable regular files of `from` into `to`; the notes say what was skipped.
fn copy_logs(from: &Path, to: &Path) -> anyhow::Result<Vec<String>> {
    let mut notes = Vec::new();
    let entries = match std::fs::read_dir(from) {
        Ok(e) => e,
        Err(e) => {
            notes.push(format!("log directory {} not read: {e}", from.display()));
            return Ok(notes);
        }
    };
    std::fs::create_dir_all(to)?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        if let Err(e) = std::fs::copy(&path, to.join(entry.file_name())) {
            notes.push(format!("{} not copied: {e}", path.display()));
        }
    }
    Ok(notes)
}

/// What this host's kernel holds, one file per command: (file, argv).
const HOST_COMMANDS: &[(&str, &[&str])] = &[
    (
        "routes-v4.txt",
        &["ip", "-4", "route", "show", "table", "all"],
    ),
    (
        "routes-v6.txt",
        &["ip", "-6", "route", "show", "table", "all"],
    ),
    ("neighbours.txt", &["ip", "neigh", "show"]),
    ("links.txt", &["ip", "-d", "link", "show"]),
    ("addresses.txt", &["ip", "addr", "show"]),
    ("nftables.txt", &["nft", "list", "ruleset"]),
    ("iptables.txt", &["iptables-save"]),
    ("ip6tables.txt", &["ip6tables-save"]),
];

/// Runs [`HOST_COMMANDS`] into `to`; the notes say which could not run.
fn host_dataplane(to: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(to)?;
    let mut notes = Vec::new();
    for (file, argv) in HOST_COMMANDS {
        match Command::new(argv[0]).args(&argv[1..]).output() {
            Ok(out) if out.status.success() => std::fs::write(to.join(file), &out.stdout)?,
            Ok(out) => notes.push(format!(
                "`{}` failed ({}): {}",
                argv.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => notes.push(format!("`{}` could not run: {e}", argv.join(" "))),
        }
    }
    Ok(notes)
}

pub fn run(global: &GlobalOpts, args: &DiagsArgs) -> anyhow::Result<()> {
    let c = client(global)?;
    let dump = c.get("/v1/dump")?;
    let nodes = c.get("/v1/nodes?detailed=true")?;
    let health = c.get("/healthz")?;
    let metrics = c.get("/metrics")?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = format!("calico-diags-{stamp}");
    let work = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let dir = work.join(&name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = (|| -> anyhow::Result<PathBuf> {
        write_json(&dir, "datastore.json", &dump)?;
        write_json(&dir, "nodes.json", &nodes)?;
        let mut statuses = Vec::new();
        for n in items(&nodes).iter().filter_map(|n| n["name"].as_str()) {
            statuses.push(match c.get(&format!("/v1/nodes/{n}/status")) {
                Ok(s) => s,
                Err(e) => json!({"node": n, "error": e.to_string()}),
            });
        }
        write_json(&dir, "status.json", &Value::Array(statuses))?;
        write_json(
            &dir,
            "versions.json",
            &json!({"calicoctl": env!("CARGO_PKG_VERSION"), "master": dump["version"],
                    "revision": dump["revision"], "masters": global.master, "health": health}),
        )?;
        std::fs::write(dir.join("metrics.txt"), metrics.as_str().unwrap_or(""))?;
        let mut notes = host_dataplane(&dir.join("host"))?;
        notes.extend(copy_logs(&args.log_dir, &dir.join("logs"))?);
        std::fs::write(dir.join("NOTES.txt"), notes.join("\n") + "\n")?;
        let out = match &args.output_file {
            Some(p) => p.clone(),
            None => std::env::temp_dir().join(format!("{name}.tar.gz")),
        };
        let status = Command::new("tar")
            .arg("-czf")
            .arg(&out)
            .arg("-C")
            .arg(&work)
            .arg(&name)
            .status()
            .context("cannot run tar; is it installed?")?;
        anyhow::ensure!(
            status.success(),
            "tar failed ({status}) writing {}",
            out.display()
        );
        Ok(out)
    })();
    if let Err(e) = std::fs::remove_dir_all(&work) {
        eprintln!("calicoctl: could not remove {}: {e}", work.display());
    }
    let out = result?;
    match global.output {
        Format::Table => println!("Diags saved to {}", out.display()),
        Format::Json => print_rows(
            Format::Json,
            &["path"],
            &[object(json!({"path": out.display().to_string()}))],
        )?,
    }
    Ok(())
}
