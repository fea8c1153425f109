//! `calicoctl node show [--detailed]` (and `calicoctl shownodes [--detailed]`), `calicoctl node remove
//! [--hostname H] [--force]` and `calicoctl node bgp peer add <IP> as <ASN> [--hostname H]` / `remove
//! <IP>` / `show [--ipv4|--ipv6]`.
//!
//! `--hostname` defaults to this machine's host name, as in the original. Inputs: the arguments and the
//! master's `/v1/nodes` routes. Outputs: a table (NAME, IP_ADDR_V4, IP_ADDR_V6, AS_NUM, PEERS;
//! `--detailed` adds ENDPOINTS, STATE and REPORTED_AT) or the same fields as JSON; messages for changes.
//! Nodes register themselves (`PUT /v1/nodes/<name>`) when calico-node starts.

use clap::{Args, Subcommand};
use serde_json::json;

use super::{bgp::PeerCommand, client, items, object, print_message};
use crate::cli::GlobalOpts;
use crate::output::print_rows;

/// Start calico-node as a container (`calicoctl node --ip=<IP>`), run it in the foreground (`node
/// run`), stop it, inspect and remove nodes, and manage their own BGP peers.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub command: Option<NodeCommand>,
    #[command(flatten)]
    pub start: super::containers::NodeStartArgs,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run calico-node (Felix, the BGP speaker and the Docker proxy) in the foreground.
    Run(Box<super::node_run::RunArgs>),
    /// List the nodes.
    Show(ShowArgs),
    /// Stop and remove the calico-node container (refused while the host has endpoints, unless --force).
    Stop {
        /// The node (default: this machine's host name).
        #[arg(long)]
        hostname: Option<String>,
        /// Stop even though the host has endpoints.
        #[arg(long)]
        force: bool,
        /// The Docker daemon's socket.
        #[arg(long, value_name = "PATH", default_value = "/var/run/docker.sock")]
        docker_socket: std::path::PathBuf,
    },
    /// Remove a node (refused while it has endpoints, unless --force).
    Remove {
        /// The node (default: this machine's host name).
        #[arg(long)]
        hostname: Option<String>,
        /// Also remove its endpoints, releasing their addresses.
        #[arg(long, alias = "remove-endpoints")]
        force: bool,
    },
    /// BGP settings of one node.
    Bgp {
        #[command(subcommand)]
        command: NodeBgpCommand,
    },
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Also show each node's endpoint count and reported state.
    #[arg(long)]
    pub detailed: bool,
}

#[derive(Debug, Subcommand)]
pub enum NodeBgpCommand {
    /// The node's own BGP peers.
    Peer {
        /// The node (default: this machine's host name).
        #[arg(long, global = true)]
        hostname: Option<String>,
        #[command(subcommand)]
        command: PeerCommand,
    },
}

/// The columns of `node show`.
pub const COLUMNS: &[&str] = &["name", "ip_addr_v4", "ip_addr_v6", "as_num", "peers"];
/// The extra columns of `node show --detailed`.
pub const DETAILED: &[&str] = &["endpoints", "state", "reported_at"];

/// `--hostname`, else this machine's host name.
pub fn hostname(given: Option<&str>) -> anyhow::Result<String> {
    let name = match given {
        Some(h) => h.to_owned(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .map_err(|e| {
                anyhow::anyhow!("cannot read this machine's host name ({e}); pass --hostname")
            })?,
    };
    calico_master::model::validate_hostname("hostname", &name)
        .map_err(|e| anyhow::anyhow!("invalid host name: {e}"))?;
    Ok(name)
}

/// `node show` / `shownodes`.
pub fn show(global: &GlobalOpts, detailed: bool) -> anyhow::Result<()> {
    let path = if detailed {
        "/v1/nodes?detailed=true"
    } else {
        "/v1/nodes"
    };
    let nodes = client(global)?.get(path)?;
    let rows: Vec<_> = items(&nodes)
        .iter()
        .map(|n| {
            let peers: Vec<String> = items(&n["peers"])
                .iter()
                .map(|p| format!("{} as {}", p["ip"].as_str().unwrap_or("?"), p["as_num"]))
                .collect();
            let mut r = object(json!({
                "name": n["name"], "ip_addr_v4": n["ip_addr_v4"], "ip_addr_v6": n["ip_addr_v6"],
                "as_num": n["effective_as"], "peers": peers,
            }));
            if detailed {
                for f in DETAILED {
                    r.insert((*f).to_owned(), n[*f].clone());
                }
            }
            r
        })
        .collect();
    let mut columns = COLUMNS.to_vec();
    if detailed {
        columns.extend_from_slice(DETAILED);
    }
    print_rows(global.output, &columns, &rows)?;
    Ok(())
}

pub fn run(global: &GlobalOpts, args: &NodeArgs) -> anyhow::Result<()> {
    let Some(command) = &args.command else {
        return super::containers::start_node(global, &args.start);
    };
    match command {
        NodeCommand::Show(s) => show(global, s.detailed),
        NodeCommand::Stop {
            hostname: h,
            force,
            docker_socket,
        } => super::containers::stop_node(global, h.as_deref(), *force, docker_socket),
        NodeCommand::Run(r) => super::node_run::run(global, r),
        NodeCommand::Remove { hostname: h, force } => {
            let name = hostname(h.as_deref())?;
            let q = if *force { "?force=true" } else { "" };
            let answer = client(global)?.delete(&format!("/v1/nodes/{name}{q}"))?;
            print_message(global.output, &answer)
        }
        NodeCommand::Bgp {
            command:
                NodeBgpCommand::Peer {
                    hostname: h,
                    command,
                },
        } => {
            let name = hostname(h.as_deref())?;
            super::bgp::run_peer(global, &format!("/v1/nodes/{name}/peers"), command)
        }
    }
}
