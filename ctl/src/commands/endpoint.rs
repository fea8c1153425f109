//! `calicoctl endpoint show [--host H] [--orchestrator O] [--workload W] [--endpoint E] [--detailed]` and `calicoctl endpoint <EP> profile
//! (append|remove|set) <PROFILES…>` / `endpoint <EP> profile show`.
//!
//! As with `profile <NAME> …`, the endpoint id comes before the subcommand word, so `show` is a real
//! subcommand and any other word is an endpoint id whose remaining words go to a second parser
//! ([`NamedCli`], global options after the id included). Inputs: the arguments and the master's
//! `/v1/endpoints` routes. Outputs: a table (HOST, WORKLOAD, ENDPOINT, INTERFACE, IPS, PROFILES, STATE;
//! `--detailed` adds ORCHESTRATOR, MAC and the gateways) or a JSON list of objects with those fields in
//! lower case; messages for changes.

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};

use super::{client, items, object, print_message, profile::LateGlobals, Reported};
use crate::cli::GlobalOpts;
use crate::output::print_rows;

/// Inspect workload endpoints and change their profiles.
#[derive(Debug, Args)]
#[command(after_help = "Per-endpoint commands:\n  \
    calicoctl endpoint <ENDPOINT_ID> profile show\n  \
    calicoctl endpoint <ENDPOINT_ID> profile (append|remove|set) <PROFILES>...")]
pub struct EndpointArgs {
    #[command(subcommand)]
    pub command: EndpointCommand,
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// List the endpoints.
    Show(ShowArgs),
    /// `endpoint <ENDPOINT_ID> profile …`.
    #[command(external_subcommand)]
    Named(Vec<String>),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Only the endpoints of this host.
    #[arg(long, value_name = "HOSTNAME")]
    pub host: Option<String>,
    /// Only the endpoints of this orchestrator (docker).
    #[arg(long, value_name = "ORCHESTRATOR")]
    pub orchestrator: Option<String>,
    /// Only the endpoints of this workload (container id).
    #[arg(long, value_name = "WORKLOAD_ID")]
    pub workload: Option<String>,
    /// Only this endpoint.
    #[arg(long, value_name = "ENDPOINT_ID")]
    pub endpoint: Option<String>,
    /// Also show the orchestrator, MAC and gateways.
    #[arg(long)]
    pub detailed: bool,
}

/// The words after `endpoint <ENDPOINT_ID>`.
#[derive(Debug, Parser)]
#[command(name = "calicoctl endpoint <ENDPOINT_ID>")]
pub struct NamedCli {
    #[command(flatten)]
    pub global: LateGlobals,
    #[command(subcommand)]
    pub command: NamedCommand,
}

#[derive(Debug, Subcommand)]
pub enum NamedCommand {
    /// The endpoint's profiles (applied in order).
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the profiles.
    Show,
    /// Add profiles at the end (those already there are kept where they are).
    Append {
        #[arg(required = true)]
        profiles: Vec<String>,
    },
    /// Remove profiles.
    Remove {
        #[arg(required = true)]
        profiles: Vec<String>,
    },
    /// Replace the list (none: no profiles).
    Set { profiles: Vec<String> },
}

/// The columns of `endpoint show`.
pub const COLUMNS: &[&str] = &[
    "host",
    "workload",
    "endpoint",
    "interface",
    "ips",
    "profiles",
    "state",
];
/// The extra columns of `endpoint show --detailed`.
pub const DETAILED: &[&str] = &["orchestrator", "mac", "ipv4_gateway", "ipv6_gateway"];

fn row(ep: &Value, detailed: bool) -> Map<String, Value> {
    let ips: Vec<Value> = items(&ep["ipv4_nets"])
        .iter()
        .chain(items(&ep["ipv6_nets"]))
        .map(|n| {
            json!(n
                .as_str()
                .map(|s| s.split('/').next().unwrap_or(s))
                .unwrap_or(""))
        })
        .collect();
    let mut r = object(json!({
        "host": ep["hostname"], "workload": ep["workload_id"], "endpoint": ep["endpoint_id"],
        "interface": ep["name"], "ips": ips, "profiles": ep["profile_ids"], "state": ep["state"],
    }));
    if detailed {
        for f in DETAILED {
            r.insert((*f).to_owned(), ep[*f].clone());
        }
    }
    r
}

fn id_segment(id: &str) -> anyhow::Result<&str> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !id.starts_with(['.', '-']);
    if ok {
        Ok(id)
    } else {
        anyhow::bail!("invalid endpoint id `{id}`; see `calicoctl endpoint show` for the ids")
    }
}

pub fn run(global: &GlobalOpts, args: &EndpointArgs) -> anyhow::Result<()> {
    match &args.command {
        EndpointCommand::Show(s) => {
            let path = match &s.host {
                Some(h) => {
                    calico_master::model::validate_hostname("host", h)
                        .map_err(|e| anyhow::anyhow!("invalid --host: {e}"))?;
                    format!("/v1/endpoints?host={h}")
                }
                None => "/v1/endpoints".to_owned(),
            };
            let eps = client(global)?.get(&path)?;
            let keep = |e: &Value, field: &str, want: &Option<String>| {
                want.as_deref().is_none_or(|w| e[field].as_str() == Some(w))
            };
            let rows: Vec<_> = items(&eps)
                .iter()
                .filter(|e| {
                    keep(e, "orchestrator", &s.orchestrator)
                        && keep(e, "workload_id", &s.workload)
                        && keep(e, "endpoint_id", &s.endpoint)
                })
                .map(|e| row(e, s.detailed))
                .collect();
            let mut columns = COLUMNS.to_vec();
            if s.detailed {
                columns.extend_from_slice(DETAILED);
            }
            print_rows(global.output, &columns, &rows)?;
            Ok(())
        }
        EndpointCommand::Named(words) => {
            let Some((id, rest)) = words.split_first() else {
                anyhow::bail!("an endpoint id is missing; see `calicoctl endpoint --help`");
            };
            let argv =
                std::iter::once(format!("calicoctl endpoint {id}")).chain(rest.iter().cloned());
            let named = match NamedCli::try_parse_from(argv) {
                Ok(n) => n,
                Err(e) => {
                    let code = if e.use_stderr() { 1 } else { 0 };
                    let _ = e.print();
                    return Err(Reported(code).into());
                }
            };
            let global = named.global.over(global);
            let base = format!("/v1/endpoints/{}/profiles", id_segment(id)?);
            let NamedCommand::Profile { command } = &named.command;
            let (action, profiles) = match command {
                ProfileCommand::Show => {
                    let list = client(&global)?.get(&base)?;
                    let rows: Vec<_> = items(&list)
                        .iter()
                        .map(|p| object(json!({"profile": p})))
                        .collect();
                    print_rows(global.output, &["profile"], &rows)?;
                    return Ok(());
                }
                ProfileCommand::Append { profiles } => ("append", profiles),
                ProfileCommand::Remove { profiles } => ("remove", profiles),
                ProfileCommand::Set { profiles } => ("set", profiles),
            };
            for p in profiles {
                calico_master::model::validate_name("profile", p)
                    .map_err(|e| anyhow::anyhow!("invalid profile name: {e}"))?;
            }
            let answer =
                client(&global)?.post(&base, &json!({"action": action, "profiles": profiles}))?;
            print_message(global.output, &answer)
        }
    }
}
