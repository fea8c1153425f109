//! `calicoctl master run`: the master's API server, in the foreground.
//!
//! Inputs: `--listen ADDR:PORT` (repeatable, default 127.0.0.1:9900), `--datastore PATH` (the embedded
//! store's file, created with its directories if missing; default /var/lib/calico/master.db) or
//! `--etcd-endpoints URL[,URL…]` (keep the data in etcd instead, with optional `--etcd-ca`,
//! `--etcd-cert`, `--etcd-key` PEM files for TLS and `--etcd-timeout SECONDS` per request; the two are
//! mutually exclusive), and the global `--token-file`. Output: logs on stderr; runs until SIGTERM or
//! SIGINT, then stops accepting, lets in-flight requests finish and exits 0. An etcd that does not
//! answer at start is an error (exit 1) naming the endpoints.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use calico_master::{
    api::{self, Api, DEFAULT_LISTEN},
    client::read_token_file,
    store::{EmbeddedOptions, EmbeddedStore, EtcdOptions, EtcdStore, EtcdTls, Store, DEFAULT_PATH},
    sync::{SyncConfig, SyncHub},
};
use clap::{Args, Subcommand};

use crate::cli::GlobalOpts;

/// Run the Calico master (the cluster's API and datastore): as a container (`calicoctl master
/// --ip=<IP>`) or in the foreground (`calicoctl master run`).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MasterArgs {
    #[command(subcommand)]
    pub command: Option<MasterCommand>,
    #[command(flatten)]
    pub start: super::containers::MasterStartArgs,
}

#[derive(Debug, Subcommand)]
pub enum MasterCommand {
    /// Run the master in the foreground until SIGTERM or SIGINT.
    Run(RunArgs),
    /// Stop and remove the calico-master container.
    Stop {
        /// The Docker daemon's socket.
        #[arg(long, value_name = "PATH", default_value = "/var/run/docker.sock")]
        docker_socket: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Address to serve the API on; repeat for several. Non-loopback addresses should have a token.
    #[arg(long = "listen", value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: Vec<SocketAddr>,

    /// The embedded datastore's file (created if missing).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_PATH, conflicts_with = "etcd_endpoints")]
    pub datastore: PathBuf,

    /// Keep the data in etcd instead: its client URLs, comma-separated (http://127.0.0.1:2379,…).
    #[arg(long, value_name = "URL[,URL…]", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,

    /// CA certificate (PEM) that signed etcd's server certificate; endpoints must be https://.
    #[arg(long, value_name = "FILE", requires = "etcd_endpoints")]
    pub etcd_ca: Option<PathBuf>,

    /// Client certificate (PEM) for etcd's client-certificate authentication; needs --etcd-key.
    #[arg(long, value_name = "FILE", requires_all = ["etcd_endpoints", "etcd_key"])]
    pub etcd_cert: Option<PathBuf>,

    /// The client certificate's key (PEM); needs --etcd-cert.
    #[arg(long, value_name = "FILE", requires_all = ["etcd_endpoints", "etcd_cert"])]
    pub etcd_key: Option<PathBuf>,

    /// Time allowed for one etcd request before it fails as unavailable, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3)]
    pub etcd_timeout: u64,
}

pub fn run(global: &GlobalOpts, args: &MasterArgs) -> anyhow::Result<()> {
    match &args.command {
        Some(MasterCommand::Run(run)) => run_master(global, run),
        Some(MasterCommand::Stop { docker_socket }) => {
            super::containers::stop_container(docker_socket, "calico-master")
        }
        None => super::containers::start_master(global, &args.start),
    }
}

fn run_master(global: &GlobalOpts, args: &RunArgs) -> anyhow::Result<()> {
    init_logging();
    let token = match &global.token_file {
        Some(path) => Some(read_token_file(path)?),
        None => None,
    };
    let (store, datastore) = open_store(args)?;
    for addr in exposed_without_token(&args.listen, token.is_some()) {
        tracing::warn!(%addr, "listening on a non-loopback address without a token: anyone who can reach it can change the cluster; pass --token-file");
    }
    // The node sync hub (`GET /v1/sync`) loads the cluster and follows the store on its own thread;
    // it stops when the last reference goes, after the server.
    let hub = SyncHub::start(store.clone(), SyncConfig::default())
        .context("cannot load the cluster for the node sync stream")?;
    // The API server calls the store from tokio's blocking pool (never from an async task), which
    // the etcd store requires: it blocks on its own runtime.
    let api = Arc::new(Api::new(store, token.clone()).with_sync(hub));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(async {
        let listeners = api::bind(&args.listen).await?;
        for l in &listeners {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, %datastore, auth = token.is_some(), "master API listening");
            }
        }
        api::serve(listeners, api, shutdown_signal()).await?;
        tracing::info!("master stopped");
        anyhow::Ok(())
    })
}

/// Open the datastore the arguments name; also a description of it for the logs.
fn open_store(args: &RunArgs) -> anyhow::Result<(Arc<dyn Store>, String)> {
    if args.etcd_endpoints.is_empty() {
        let store = EmbeddedStore::open(&args.datastore, EmbeddedOptions::default()).with_context(
            || {
                format!(
                    "cannot open the datastore {}; pass --datastore with a writable path",
                    args.datastore.display()
                )
            },
        )?;
        return Ok((Arc::new(store), args.datastore.display().to_string()));
    }
    let options = etcd_options(args)?;
    let describe = format!("etcd {}", options.endpoints.join(","));
    let store = EtcdStore::connect(options).with_context(|| {
        "cannot use etcd; check --etcd-endpoints (and the TLS files) and that etcd is running"
    })?;
    Ok((Arc::new(store), describe))
}

/// The etcd options from `--etcd-*`.
fn etcd_options(args: &RunArgs) -> anyhow::Result<EtcdOptions> {
    let endpoints = EtcdOptions::parse_endpoints(&args.etcd_endpoints.join(","))?;
    let mut options = EtcdOptions::new(endpoints);
    options.request_timeout = Duration::from_secs(args.etcd_timeout.max(1));
    if args.etcd_ca.is_some() || args.etcd_cert.is_some() {
        options.tls = Some(EtcdTls {
            ca: args.etcd_ca.clone(),
            cert: args.etcd_cert.clone(),
            key: args.etcd_key.clone(),
        });
    }
    Ok(options)
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

pub(crate) fn init_logging() {
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
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        Cmd::try_parse_from(std::iter::once("run").chain(args.iter().copied())).map(|c| c.run)
    }

    #[test]
    fn datastore_and_etcd_are_exclusive_and_tls_files_go_with_etcd() {
        let a = parse(&[]).expect("defaults");
        assert_eq!(a.datastore, PathBuf::from(DEFAULT_PATH));
        assert!(a.etcd_endpoints.is_empty());
        let a = parse(&[
            "--etcd-endpoints",
            "http://127.0.0.1:2379,http://127.0.0.2:2379",
        ])
        .expect("etcd");
        assert_eq!(
            a.etcd_endpoints,
            ["http://127.0.0.1:2379", "http://127.0.0.2:2379"]
        );
        let o = etcd_options(&a).expect("options");
        assert_eq!(o.endpoints.len(), 2);
        assert_eq!(o.tls, None);
        assert_eq!(o.request_timeout, Duration::from_secs(3));
        let err = parse(&[
            "--datastore",
            "/tmp/x.db",
            "--etcd-endpoints",
            "http://a:2379",
        ])
        .expect_err("exclusive");
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        for args in [
            &["--etcd-ca", "/ca.pem"][..],
            &[
                "--etcd-endpoints",
                "https://a:2379",
                "--etcd-cert",
                "/c.pem",
            ],
            &["--etcd-endpoints", "https://a:2379", "--etcd-key", "/k.pem"],
        ] {
            let err = parse(args).expect_err("requires");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{args:?}"
            );
        }
        let a = parse(&[
            "--etcd-endpoints",
            "https://a:2379",
            "--etcd-ca",
            "/ca.pem",
            "--etcd-cert",
            "/c.pem",
            "--etcd-key",
            "/k.pem",
        ])
        .expect("tls");
        let tls = etcd_options(&a).expect("options").tls.expect("tls");
        assert_eq!(
            (tls.ca, tls.cert, tls.key),
            (
                Some("/ca.pem".into()),
                Some("/c.pem".into()),
                Some("/k.pem".into())
            )
        );
        let a = parse(&["--etcd-endpoints", "127.0.0.1:2379"]).expect("parsed");
        assert!(etcd_options(&a).is_err(), "a URL needs its scheme");
    }

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
