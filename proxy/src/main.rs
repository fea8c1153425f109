//! `calico-proxy`: the Docker API proxy on its own (calico-node runs the same code inside `calicoctl node
//! run`). Point the docker CLI at it: `DOCKER_HOST=tcp://127.0.0.1:2375 docker ps`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use calico_proxy::passthrough::{Calico, Upstream};
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
        Some(std::sync::Arc::new(Calico { node, master }))
    };
    let upstream = Upstream {
        socket: args.docker_socket.clone(),
        calico,
    };
    let proxy = Proxy::bind(args.proxy_listen, upstream)
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
    proxy.serve(stop).await;
    Ok(())
}
