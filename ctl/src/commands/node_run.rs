//! `calicoctl node run --ip=<IP> [--ip6=<IP6>] [--as=<ASN>] [--name=<HOST>] [--docker-socket PATH]
//! [--proxy-listen ADDR | --no-proxy] [--state-dir DIR] [--no-default-pools]` runs calico-node in the
//! foreground, and `calicoctl checksystem [--fix]` runs its system checks on their own.
//!
//! Inputs: the arguments (and the global `--master`, `--token-file`). Outputs: the running node (see
//! [`crate::node::daemon`]); for checksystem, one line per check (or JSON) and exit 1 if one failed.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::cli::GlobalOpts;
use crate::node::{check, daemon};
use crate::output::Format;

/// Arguments of `calicoctl node run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The host's IPv4 address: BGP source and router id, and the containers' gateway.
    #[arg(long, value_name = "IP")]
    pub ip: Ipv4Addr,
    /// The host's IPv6 address (BGP over IPv6 and the containers' IPv6 gateway).
    #[arg(long, value_name = "IP6")]
    pub ip6: Option<Ipv6Addr>,
    /// The host's own AS number (default: the cluster's, see `calicoctl bgp default-node-as`).
    #[arg(long = "as", value_name = "ASN")]
    pub asn: Option<u32>,
    /// The host's name in the cluster (default: this machine's host name).
    #[arg(long, value_name = "HOST")]
    pub name: Option<String>,
    /// The Docker daemon's socket.
    #[arg(long, value_name = "PATH", default_value = "/var/run/docker.sock")]
    pub docker_socket: PathBuf,
    /// Where the Docker API proxy listens (point `DOCKER_HOST` there).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:2375")]
    pub proxy_listen: SocketAddr,
    /// Run without the Docker proxy (workloads wired by `calicoctl container add`).
    #[arg(long, conflicts_with = "proxy_listen")]
    pub no_proxy: bool,
    /// Where the node keeps its snapshot and queues (default: /var/lib/calico/node/<name>).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Do not create the default pools (192.168.0.0/16, fd80:24e2:f998:72d6::/64) when none exist.
    #[arg(long)]
    pub no_default_pools: bool,
    /// Equal-cost BGP paths installed per prefix.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub ecmp: usize,
    /// Seconds between Felix's comparisons of the kernel with the desired state.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub resync_interval: u64,
    /// Seconds between status reports to the master.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub report_interval: u64,
}

/// Arguments of `calicoctl checksystem`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Fix what can be fixed (IP forwarding).
    #[arg(long)]
    pub fix: bool,
    /// Also check the Docker daemon at this socket.
    #[arg(long, value_name = "PATH", default_value = "/var/run/docker.sock")]
    pub docker_socket: PathBuf,
    /// Do not check Docker.
    #[arg(long)]
    pub no_docker: bool,
}

/// `calicoctl node run`.
pub fn run(global: &GlobalOpts, args: &RunArgs) -> anyhow::Result<()> {
    super::master::init_logging();
    let name = super::node::hostname(args.name.as_deref())?;
    let token = match &global.token_file {
        Some(path) => Some(calico_master::client::read_token_file(path)?),
        None => None,
    };
    let opts = daemon::NodeOptions {
        state_dir: args
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/calico/node").join(&name)),
        name,
        ip: args.ip,
        ip6: args.ip6,
        asn: args.asn,
        masters: global.master.clone(),
        token,
        docker_socket: args.docker_socket.clone(),
        proxy_listen: (!args.no_proxy).then_some(args.proxy_listen),
        no_default_pools: args.no_default_pools,
        ecmp: args.ecmp.max(1),
        resync_interval: Duration::from_secs(args.resync_interval.max(1)),
        report_interval: Duration::from_secs(args.report_interval.max(1)),
    };
    // The node holds the BGP speaker's tables: let their freed copies go back to the kernel.
    calico_bgp::speaker::sys::return_large_frees_to_the_kernel();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(daemon::run(opts))
}

/// `calicoctl checksystem [--fix]`.
pub fn checksystem(global: &GlobalOpts, args: &CheckArgs) -> anyhow::Result<()> {
    let mut checks = check::system(args.fix);
    if !args.no_docker {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        checks.push(rt.block_on(check::docker(&args.docker_socket)));
    }
    match global.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&checks)?),
        Format::Table => {
            for c in &checks {
                let mark = match (c.ok, c.fixed) {
                    (true, true) => "FIXED",
                    (true, false) => "OK",
                    (false, _) => "FAIL",
                };
                println!("{mark:<6}{:<18}{}", c.name, c.message);
            }
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} check(s) failed; fix them (or run `calicoctl checksystem --fix` for what can be fixed)"
        );
    }
    Ok(())
}
