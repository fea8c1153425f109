//! `calico-proxy`: the Docker API proxy on its own (calico-node runs the same code inside `calicoctl node
//! run`). Point the docker CLI at it: `DOCKER_HOST=tcp://127.0.0.1:2375 docker ps`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use calico_proxy::context::Calico;
use calico_proxy::passthrough::Upstream;
use calico_proxy::server::Proxy;
use clap::Parser;

/// The Calico Docker API proxy.
#[derive(Debug, Parser)]
#[command(name = "calico-proxy", version, about)]
struct Args {
    /// Where Docker clients connect (loopback unless you choose otherwise).
    #[arg(long, env = "CALICO_PROXY_LISTEN", default_value = "127.0.0.1:2375")]
    proxy_listen: SocketAddr,
    /// The Docker daemon's socket.
    #[arg(long, env = "DOCKER_SOCKET", default_value = "/var/run/docker.sock")]
    docker_socket: PathBuf,
    /// The Calico master(s); without it the proxy only passes requests through.
    #[arg(long, env = "CALICO_MASTER", value_delimiter = ',')]
    master: Vec<String>,
    /// This node's name (defaults to the hostname).
    #[arg(long)]
    name: Option<String>,
    /// A file holding the master's bearer token.
    #[arg(long, env = "CALICO_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// This node's IPv4 address: the containers' IPv4 gateway.
    #[arg(long, env = "IP")]
    ip: Option<Ipv4Addr>,
    /// This node's IPv6 address: the containers' IPv6 gateway.
    #[arg(long, env = "IP6")]
    ip6: Option<Ipv6Addr>,
    /// The node's state dir (the retry queue, the installed init wrapper).
    #[arg(long, env = "CALICO_STATE_DIR", default_value = "/var/lib/calico")]
    state_dir: PathBuf,
    /// The init wrapper to put in front of Calico containers' commands (default: the embedded one,
    /// installed into the state dir).
    #[arg(long)]
    init_binary: Option<PathBuf>,
    /// Start containers without the init wrapper (their first process may run before it is wired).
    #[arg(long, conflicts_with = "init_binary")]
    no_init: bool,
    /// The network namespace where host-side interfaces go (default: this process's).
    #[arg(long)]
    host_netns: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let calico = if args.master.is_empty() {
        None
    } else {
        let token = match &args.token_file {
            Some(f) => Some(calico_master::client::read_token_file(f)?),
            None => None,
        };
        let node = match args.name.clone() {
            Some(n) => n,
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")?
                .trim()
                .to_string(),
        };
        let master = calico_master::client::Client::new(&args.master, token)?;
        let init = match (&args.init_binary, args.no_init) {
            (Some(p), _) => Some(p.clone()),
            (None, true) => None,
            (None, false) => Some(calico_proxy::init::install(&args.state_dir)?),
        };
        Some(Arc::new(
            Calico::new(node, master)
                .with_gateways(args.ip, args.ip6)
                .with_state_dir(&args.state_dir)
                .with_init_binary(init)
                .with_host_netns(args.host_netns.clone()),
        ))
    };
    let upstream = Arc::new(Upstream::new(args.docker_socket.clone(), calico));
    let proxy = Proxy::bind(args.proxy_listen, upstream.clone())
        .await
        .with_context(|| format!("cannot listen on {}", args.proxy_listen))?;
    tracing::info!(listen = %proxy.local_addr()?, docker = %args.docker_socket.display(), "proxy ready");
    let stop = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
        }
    };
    tokio::spawn(calico_proxy::events::run_background(upstream));
    proxy.serve(stop).await;
    Ok(())
}
