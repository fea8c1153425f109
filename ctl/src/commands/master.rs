//! `calicoctl master run`: the master's API server, in the foreground.
//!
//! Inputs: `--listen ADDR:PORT` (repeatable, default 127.0.0.1:9900), `--datastore PATH` (the embedded
//! store's file, created with its directories if missing; default /var/lib/calico/master.db) and the
//! global `--token-file`. Output: logs on stderr; runs until SIGTERM or SIGINT, then stops accepting,
//! lets in-flight requests finish and exits 0.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use calico_master::{
    api::{self, Api, DEFAULT_LISTEN},
    client::read_token_file,
    store::{EmbeddedOptions, EmbeddedStore, DEFAULT_PATH},
};
use clap::{Args, Subcommand};

use crate::cli::GlobalOpts;

/// Run the Calico master (the cluster's API and datastore).
#[derive(Debug, Args)]
pub struct MasterArgs {
    #[command(subcommand)]
    pub command: MasterCommand,
}

#[derive(Debug, Subcommand)]
pub enum MasterCommand {
    /// Run the master in the foreground until SIGTERM or SIGINT.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Address to serve the API on; repeat for several. Non-loopback addresses should have a token.
    #[arg(long = "listen", value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: Vec<SocketAddr>,

    /// The embedded datastore's file (created if missing).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_PATH)]
    pub datastore: PathBuf,
}

pub fn run(global: &GlobalOpts, args: &MasterArgs) -> anyhow::Result<()> {
    match &args.command {
        MasterCommand::Run(run) => run_master(global, run),
    }
}

fn run_master(global: &GlobalOpts, args: &RunArgs) -> anyhow::Result<()> {
    init_logging();
    let token = match &global.token_file {
        Some(path) => Some(read_token_file(path)?),
        None => None,
    };
    let store =
        EmbeddedStore::open(&args.datastore, EmbeddedOptions::default()).with_context(|| {
            format!(
                "cannot open the datastore {}; pass --datastore with a writable path",
                args.datastore.display()
            )
        })?;
    for addr in exposed_without_token(&args.listen, token.is_some()) {
        tracing::warn!(%addr, "listening on a non-loopback address without a token: anyone who can reach it can change the cluster; pass --token-file");
    }
    let api = Arc::new(Api::new(Arc::new(store), token.clone()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(async {
        let listeners = api::bind(&args.listen).await?;
        for l in &listeners {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, datastore = %args.datastore.display(), auth = token.is_some(), "master API listening");
            }
        }
        api::serve(listeners, api, shutdown_signal()).await?;
        tracing::info!("master stopped");
        anyhow::Ok(())
    })
}

/// The listen addresses that deserve a warning: reachable from other hosts while no token is set.
fn exposed_without_token(listen: &[SocketAddr], has_token: bool) -> Vec<SocketAddr> {
    if has_token {
        return Vec::new();
    }
    listen
        .iter()
        .filter(|a| !a.ip().is_loopback())
        .copied()
        .collect()
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot install signal handlers; falling back to Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_only_for_non_loopback_without_token() {
        let addrs: Vec<SocketAddr> = [
            "127.0.0.1:9900",
            "[::1]:9900",
            "0.0.0.0:9900",
            "10.0.0.1:9900",
        ]
        .iter()
        .map(|a| a.parse().expect("addr"))
        .collect();
        assert_eq!(exposed_without_token(&addrs, false), addrs[2..]);
        assert!(exposed_without_token(&addrs, true).is_empty());
        assert!(exposed_without_token(&addrs[..2], false).is_empty());
    }
}
