//! `calicoctl container add <CONTAINER> <IP|auto|ipv4|ipv6|CIDR> [--interface eth1] [--profile P]…`,
//! `calicoctl container remove <CONTAINER>`, `calicoctl container <CONTAINER> ip (add|remove) <IP>
//! [--interface IF]`; `--netns PATH` stands in for a container (a bare network namespace, whose workload
//! id is the path's file name): `container add --netns PATH <IP>`, `container remove --netns PATH`,
//! `container ip add <IP> --netns PATH`.
//!
//! The work is the Docker proxy's own ([`calico_proxy::manual`]): reserve with the master, wire the veth
//! (host side in this process's network namespace), register the endpoint. Inputs: the arguments, the
//! master (`--master`, `--token-file`), the node (`--node`, default the hostname) and its gateways
//! (`--gateway`/`--gateway6`, default the node's registered addresses), the Docker socket. Outputs: a
//! message (table) or a JSON object.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use calico_master::client::ClientError;
use calico_proxy::context::Calico;
use calico_proxy::manual::{self, Target};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use super::{async_client, object, profile::LateGlobals, Reported};
use crate::cli::GlobalOpts;
use crate::output::{print_rows, Format};

/// Wire containers (or bare network namespaces) into Calico by hand.
#[derive(Debug, Args)]
#[command(after_help = "Per-container commands:\n  \
    calicoctl container <CONTAINER> ip (add|remove) <IP> [--interface IF]\n  \
    calicoctl container ip (add|remove) <IP> --netns PATH")]
pub struct ContainerArgs {
    #[command(subcommand)]
    pub command: ContainerCommand,
}

/// Where the workload runs and how it is reached.
#[derive(Debug, Args, Clone, Default)]
pub struct NodeOpts {
    /// The node the workload runs on (default: this machine's hostname).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// The workload's IPv4 gateway (default: the node's registered IPv4 address).
    #[arg(long, value_name = "IP")]
    pub gateway: Option<Ipv4Addr>,
    /// The workload's IPv6 gateway (default: the node's registered IPv6 address).
    #[arg(long, value_name = "IP")]
    pub gateway6: Option<Ipv6Addr>,
    /// The Docker daemon's socket.
    #[arg(
        long,
        env = "DOCKER_SOCKET",
        value_name = "PATH",
        default_value = "/var/run/docker.sock"
    )]
    pub docker_socket: PathBuf,
    /// A network namespace file in place of a container (e.g. /var/run/netns/NAME).
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Give a running container (or a namespace) a Calico interface.
    Add(AddArgs),
    /// Remove every Calico interface of a container (or a namespace).
    Remove(RemoveArgs),
    /// `container ip (add|remove) <IP> --netns PATH`.
    Ip(IpArgs),
    /// `container <CONTAINER> ip …`.
    #[command(external_subcommand)]
    Named(Vec<String>),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// `<CONTAINER> <IP>`, or only `<IP>` with --netns. IP: an address, auto, ipv4, ipv6 or a pool
    /// CIDR; two, comma-separated, for dual stack (e.g. auto,ipv6).
    #[arg(required = true, num_args = 1..=2, value_name = "CONTAINER> <IP")]
    pub words: Vec<String>,
    /// The interface name inside the workload.
    #[arg(long, default_value = "eth1")]
    pub interface: String,
    /// A profile for the endpoint (repeat for several; created if missing).
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    #[command(flatten)]
    pub node: NodeOpts,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The container (omit with --netns).
    pub container: Option<String>,
    #[command(flatten)]
    pub node: NodeOpts,
}

#[derive(Debug, Args)]
pub struct IpArgs {
    #[command(subcommand)]
    pub action: IpAction,
    #[command(flatten)]
    pub node: NodeOpts,
}

#[derive(Debug, Subcommand, Clone)]
pub enum IpAction {
    /// Add an address (reserved with the master first).
    Add(IpChange),
    /// Remove an address (and release it).
    Remove(IpChange),
}

#[derive(Debug, Args, Clone)]
pub struct IpChange {
    pub ip: IpAddr,
    /// Which Calico interface (needed when the workload has several).
    #[arg(long)]
    pub interface: Option<String>,
}

/// The words after `container <CONTAINER>`.
#[derive(Debug, Parser)]
#[command(name = "calicoctl container <CONTAINER>")]
pub struct NamedCli {
    #[command(flatten)]
    pub global: LateGlobals,
    #[command(subcommand)]
    pub command: NamedCommand,
}

#[derive(Debug, Subcommand)]
pub enum NamedCommand {
    /// The container's Calico addresses.
    Ip(IpArgs),
}

/// The context for `opts`: node name, master client, gateways (asked of the master when not given).
async fn context(global: &GlobalOpts, opts: &NodeOpts) -> anyhow::Result<Calico> {
    let node = super::node::hostname(opts.node.as_deref())?;
    let master = async_client(global)?;
    let (mut v4, mut v6) = (opts.gateway, opts.gateway6);
    if v4.is_none() || v6.is_none() {
        match master.get(&format!("/v1/nodes/{node}")).await {
            Ok(n) => {
                v4 = v4.or_else(|| n["ip_addr_v4"].as_str().and_then(|s| s.parse().ok()));
                v6 = v6.or_else(|| n["ip_addr_v6"].as_str().and_then(|s| s.parse().ok()));
            }
            Err(ClientError::Api { status: 404, .. }) => {}
            Err(e) => return Err(e).context(format!("reading node {node}'s addresses")),
        }
    }
    Ok(Calico::new(node, master).with_gateways(v4, v6))
}

fn target(container: Option<&str>, opts: &NodeOpts) -> anyhow::Result<Target> {
    match (container, &opts.netns) {
        (Some(_), Some(_)) => bail!("give a container or --netns, not both"),
        (Some(c), None) => Ok(Target::Container(c.to_owned())),
        (None, Some(p)) => Ok(Target::Netns(p.clone())),
        (None, None) => bail!("name a container, or a namespace with --netns PATH"),
    }
}

fn say(format: Format, message: String, extra: serde_json::Value) -> anyhow::Result<()> {
    match format {
        Format::Table => println!("{message}"),
        Format::Json => {
            let mut row = object(extra);
            row.insert("message".into(), json!(message));
            let cols: Vec<String> = row.keys().cloned().collect();
            let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
            print_rows(format, &cols, &[row])?;
        }
    }
    Ok(())
}

async fn ip(global: &GlobalOpts, container: Option<&str>, args: &IpArgs) -> anyhow::Result<()> {
    let t = target(container, &args.node)?;
    let calico = context(global, &args.node).await?;
    let (add, change) = match &args.action {
        IpAction::Add(c) => (true, c),
        IpAction::Remove(c) => (false, c),
    };
    let epid = manual::change_ip(
        &calico,
        &args.node.docker_socket,
        &t,
        add,
        change.ip,
        change.interface.as_deref(),
    )
    .await?;
    let verb = if add { "Added" } else { "Removed" };
    say(
        global.output,
        format!("{verb} {} (endpoint {epid})", change.ip),
        json!({"endpoint_id": epid, "ip": change.ip.to_string(), "changed": true}),
    )
}

async fn run_async(global: &GlobalOpts, args: &ContainerArgs) -> anyhow::Result<()> {
    match &args.command {
        ContainerCommand::Add(a) => {
            let (container, ips) = match (a.words.as_slice(), &a.node.netns) {
                ([c, ip], _) => (Some(c.as_str()), ip.as_str()),
                ([ip], Some(_)) => (None, ip.as_str()),
                _ => bail!("give <CONTAINER> <IP>, or <IP> with --netns PATH"),
            };
            let t = target(container, &a.node)?;
            let calico = context(global, &a.node).await?;
            let requests: Vec<String> = ips.split(',').map(|s| s.trim().to_owned()).collect();
            let added = manual::add(
                &calico,
                &a.node.docker_socket,
                &t,
                &requests,
                &a.interface,
                &a.profiles,
            )
            .await?;
            let ips: Vec<String> = added.ips.iter().map(IpAddr::to_string).collect();
            say(
                global.output,
                format!(
                    "Added {} to {} as {} (endpoint {}, host interface {})",
                    ips.join(", "),
                    added.workload_id,
                    a.interface,
                    added.endpoint_id,
                    added.host_iface
                ),
                json!({"workload_id": added.workload_id, "endpoint_id": added.endpoint_id,
                       "interface": added.host_iface, "ips": ips, "changed": true}),
            )
        }
        ContainerCommand::Remove(r) => {
            let t = target(r.container.as_deref(), &r.node)?;
            let calico = context(global, &r.node).await?;
            let removed = manual::remove(&calico, &r.node.docker_socket, &t).await?;
            say(
                global.output,
                format!("Removed endpoint(s) {}", removed.join(", ")),
                json!({"endpoints": removed, "changed": true}),
            )
        }
        ContainerCommand::Ip(i) => ip(global, None, i).await,
        ContainerCommand::Named(words) => {
            let Some((name, rest)) = words.split_first() else {
                bail!("a container is missing; see `calicoctl container --help`");
            };
            let argv =
                std::iter::once(format!("calicoctl container {name}")).chain(rest.iter().cloned());
            let named = match NamedCli::try_parse_from(argv) {
                Ok(n) => n,
                Err(e) => {
                    let code = if e.use_stderr() { 1 } else { 0 };
                    let _ = e.print();
                    return Err(Reported(code).into());
                }
            };
            let global = named.global.over(global);
            let NamedCommand::Ip(args) = &named.command;
            ip(&global, Some(name), args).await
        }
    }
}

pub fn run(global: &GlobalOpts, args: &ContainerArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run_async(global, args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> ContainerCommand {
        let cli = Cli::try_parse_from(std::iter::once("calicoctl").chain(args.iter().copied()))
            .expect("parses");
        match cli.command {
            Command::Container(c) => c.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn grammar() {
        match parse(&[
            "container",
            "add",
            "web",
            "auto,ipv6",
            "--profile",
            "a",
            "--profile",
            "b",
        ]) {
            ContainerCommand::Add(a) => {
                assert_eq!(a.words, ["web", "auto,ipv6"]);
                assert_eq!(a.interface, "eth1");
                assert_eq!(a.profiles, ["a", "b"]);
            }
            other => panic!("{other:?}"),
        }
        match parse(&[
            "container",
            "add",
            "--netns",
            "/run/netns/x",
            "10.65.0.9",
            "--interface",
            "eth0",
        ]) {
            ContainerCommand::Add(a) => {
                assert_eq!(a.words, ["10.65.0.9"]);
                assert_eq!(
                    a.node.netns.as_deref(),
                    Some(std::path::Path::new("/run/netns/x"))
                );
                assert_eq!(
                    target(None, &a.node).unwrap(),
                    Target::Netns("/run/netns/x".into())
                );
            }
            other => panic!("{other:?}"),
        }
        match parse(&["container", "web", "ip", "add", "10.65.0.3"]) {
            ContainerCommand::Named(words) => assert_eq!(words, ["web", "ip", "add", "10.65.0.3"]),
            other => panic!("{other:?}"),
        }
        let named = NamedCli::try_parse_from([
            "x",
            "ip",
            "remove",
            "fd00:65::3",
            "--interface",
            "eth1",
            "-o",
            "json",
        ])
        .unwrap();
        let NamedCommand::Ip(ip) = named.command;
        assert!(
            matches!(ip.action, IpAction::Remove(IpChange { ref interface, .. }) if interface.as_deref() == Some("eth1"))
        );
        assert!(matches!(
            parse(&["container", "remove", "--netns", "/run/netns/x"]),
            ContainerCommand::Remove(_)
        ));
        assert!(target(
            Some("c"),
            &NodeOpts {
                netns: Some("/x".into()),
                ..NodeOpts::default()
            }
        )
        .is_err());
        assert!(target(None, &NodeOpts::default()).is_err());
    }
}
