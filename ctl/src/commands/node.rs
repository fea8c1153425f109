//! `calicoctl node show [--detailed]` (and `calicoctl shownodes [--detailed]`), `calicoctl node remove
//! [--hostname H] [--force]` and `calicoctl node bgp peer add <IP> as <ASN> [--hostname H]` / `remove
//! <IP>` / `show [--ipv4|--ipv6]`, and `calicoctl node route-reflector on [--cluster-id IP] [--client
//! IP]… [--hostname H]` / `off [--hostname H]`.
//!
//! `--hostname` defaults to this machine's host name, as in the original. Inputs: the arguments and the
//! master's `/v1/nodes` routes. Outputs: a table (NAME, IP_ADDR_V4, IP_ADDR_V6, AS_NUM, PEERS;
//! `--detailed` adds ENDPOINTS, STATE and REPORTED_AT; ROUTE_REFLECTOR is added when a node is one) or
//! the same fields as JSON; messages for changes.
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
    /// Make a node a BGP route reflector, or stop it reflecting.
    RouteReflector {
        #[command(subcommand)]
        command: RouteReflectorCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum RouteReflectorCommand {
    /// Reflect routes between this node's clients (default: every other node that is not a reflector;
    /// reflectors peer with each other).
    On {
        /// The RFC 4456 cluster id (default: the node's IPv4 address).
        #[arg(long, value_name = "IP")]
        cluster_id: Option<std::net::Ipv4Addr>,
        /// A client's address (repeatable; default: every other node that is not a reflector).
        #[arg(long = "client", value_name = "IP")]
        clients: Vec<std::net::IpAddr>,
        /// The node (default: this machine's host name).
        #[arg(long)]
        hostname: Option<String>,
    },
    /// Stop reflecting routes (its clients go back to the mesh or their other reflectors).
    Off {
        /// The node (default: this machine's host name).
        #[arg(long)]
        hostname: Option<String>,
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
/// The column added when at least one node is a route reflector.
pub const REFLECTOR: &str = "route_reflector";

/// A node's route-reflector role as `node show` prints it: `cluster <id>, clients <list|all>`.
fn reflector_cell(rr: &serde_json::Value) -> serde_json::Value {
    if rr.is_null() {
        return serde_json::Value::Null;
    }
    let clients: Vec<&str> = items(&rr["clients"])
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let clients = if clients.is_empty() {
        "all".to_owned()
    } else {
        clients.join(" ")
    };
    json!(format!(
        "cluster {}, clients {clients}",
        rr["cluster_id"].as_str().unwrap_or("?")
    ))
}

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
    let reflectors = items(&nodes).iter().any(|n| !n[REFLECTOR].is_null());
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
            if reflectors {
                r.insert(REFLECTOR.to_owned(), reflector_cell(&n[REFLECTOR]));
            }
            if detailed {
                for f in DETAILED {
                    r.insert((*f).to_owned(), n[*f].clone());
                }
            }
            r
        })
        .collect();
    let mut columns = COLUMNS.to_vec();
    if reflectors {
        columns.push(REFLECTOR);
    }
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
        NodeCommand::RouteReflector { command } => route_reflector(global, command),
    }
}

/// The body of `PUT /v1/nodes/<name>/route_reflector` for `route-reflector on`.
fn route_reflector_body(
    cluster_id: Option<std::net::Ipv4Addr>,
    clients: &[std::net::IpAddr],
) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    if let Some(id) = cluster_id {
        body.insert("cluster_id".into(), json!(id));
    }
    if !clients.is_empty() {
        body.insert("clients".into(), json!(clients));
    }
    serde_json::Value::Object(body)
}

/// `node route-reflector on|off`.
fn route_reflector(global: &GlobalOpts, command: &RouteReflectorCommand) -> anyhow::Result<()> {
    let answer = match command {
        RouteReflectorCommand::On {
            cluster_id,
            clients,
            hostname: h,
        } => {
            let name = hostname(h.as_deref())?;
            let body = route_reflector_body(*cluster_id, clients);
            client(global)?.put(&format!("/v1/nodes/{name}/route_reflector"), Some(&body))?
        }
        RouteReflectorCommand::Off { hostname: h } => {
            let name = hostname(h.as_deref())?;
            client(global)?.delete(&format!("/v1/nodes/{name}/route_reflector"))?
        }
    };
    print_message(global.output, &answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> RouteReflectorCommand {
        let cli = Cli::try_parse_from(args).expect("parses");
        let Command::Node(NodeArgs {
            command: Some(NodeCommand::RouteReflector { command }),
            ..
        }) = cli.command
        else {
            panic!("not node route-reflector: {args:?}")
        };
        command
    }

    #[test]
    fn route_reflector_words() {
        let RouteReflectorCommand::On {
            cluster_id,
            clients,
            hostname,
        } = parse(&[
            "calicoctl",
            "node",
            "route-reflector",
            "on",
            "--cluster-id",
            "1.0.0.1",
            "--client",
            "10.0.0.2",
            "--client",
            "fd00::3",
            "--hostname",
            "h1",
        ])
        else {
            panic!("on")
        };
        assert_eq!(cluster_id, Some("1.0.0.1".parse().unwrap()));
        assert_eq!(hostname.as_deref(), Some("h1"));
        assert_eq!(
            route_reflector_body(cluster_id, &clients),
            json!({"cluster_id": "1.0.0.1", "clients": ["10.0.0.2", "fd00::3"]})
        );
        let RouteReflectorCommand::On {
            cluster_id,
            clients,
            ..
        } = parse(&["calicoctl", "node", "route-reflector", "on"])
        else {
            panic!("on")
        };
        assert_eq!(route_reflector_body(cluster_id, &clients), json!({}));
        assert!(matches!(
            parse(&["calicoctl", "node", "route-reflector", "off", "--hostname", "h1"]),
            RouteReflectorCommand::Off { hostname: Some(h) } if h == "h1"
        ));
        for bad in [
            &[
                "calicoctl",
                "node",
                "route-reflector",
                "on",
                "--cluster-id",
                "fd00::1",
            ][..],
            &[
                "calicoctl",
                "node",
                "route-reflector",
                "on",
                "--client",
                "nope",
            ],
            &["calicoctl", "node", "route-reflector"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reflector_cells() {
        assert_eq!(
            reflector_cell(&serde_json::Value::Null),
            serde_json::Value::Null
        );
        assert_eq!(
            reflector_cell(&json!({"cluster_id": "10.0.0.1", "clients": []})),
            json!("cluster 10.0.0.1, clients all")
        );
        assert_eq!(
            reflector_cell(&json!({"cluster_id": "1.0.0.1", "clients": ["10.0.0.2", "10.0.0.3"]})),
            json!("cluster 1.0.0.1, clients 10.0.0.2 10.0.0.3")
        );
    }
}
