//! `calico-bgp`: the BGP speaker as a standalone daemon, with its status and route commands.
//!
//! `run` starts a [`Speaker`] with the settings, peers and routes of its flags and `--config` file (flags
//! win), serves the control socket and, with `--metrics`, Prometheus text on `/metrics`; SIGHUP re-reads
//! the file and applies peer and route changes (unchanged sessions are untouched); SIGTERM/SIGINT stop
//! cleanly (our kernel routes are removed unless graceful restart is configured, in which case they stay
//! for the restarted daemon to adopt). `status` and `routes` query a
//! running daemon through its control socket and print a table, or JSON with `-o json`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context, Result};
use calico_bgp::speaker::config::{self, DaemonSettings, Overrides, DEFAULT_CONTROL};
use calico_bgp::speaker::control::{self, ControlRequest, ControlResponse};
use calico_bgp::speaker::metrics;
use calico_bgp::speaker::spec::{parse_announce, parse_asn, parse_peer};
use calico_bgp::speaker::{LargeCommunity, LocalRoute, PeerSettings, Speaker};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// The Calico BGP speaker (replaces BIRD on calico-node).
#[derive(Debug, Parser)]
#[command(name = "calico-bgp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the speaker.
    Run(RunArgs),
    /// Show every peer's session (like BIRD's `show protocols`).
    Status(QueryArgs),
    /// Show the Loc-RIB with best and ECMP marks.
    Routes(QueryArgs),
    /// Print the speaker's version.
    Version,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Our AS number (plain or asdot); required here or in the file.
    #[arg(long, value_parser = parse_asn)]
    asn: Option<u32>,
    /// Our BGP identifier; required here or in the file.
    #[arg(long)]
    router_id: Option<Ipv4Addr>,
    /// Our route-reflection cluster id (default: the router id); reflectors serving the same
    /// clients share one.
    #[arg(long)]
    cluster_id: Option<Ipv4Addr>,
    /// Address to listen on (repeatable; default 0.0.0.0:179 and [::]:179).
    #[arg(long)]
    listen: Vec<SocketAddr>,
    /// A TOML file with these settings, [[peer]] and [[announce]] tables; flags override it.
    /// SIGHUP re-reads it and applies peer and route changes.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A peer: <IP>,as=<ASN>[,passive][,password=<S>][,rr-client][,hold=<S>][,keepalive=<S>][,multihop=<N>][,gr=<S>]
    /// [,local=<IP>][,description=<T>][,next-hop-self][,ttl-security][,add-path=receive|send|both][,other-next-hop=<IP>][,port=<N>][,max-prefix=<N>][,max-prefix-action=teardown|warn]
    /// (import/export rules: in the --config file)
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<PeerSettings>,
    /// A route to originate: <CIDR>[,next-hop=<IP>][,community=<A:B>][,large-community=<A:B:C>]
    #[arg(long = "announce", value_parser = parse_announce)]
    announce: Vec<(LocalRoute, Vec<LargeCommunity>)>,
    /// Program learned routes into the kernel (the default).
    #[arg(long, overrides_with = "no_fib")]
    fib: bool,
    /// Keep learned routes out of the kernel.
    #[arg(long)]
    no_fib: bool,
    /// The kernel routing table (default 254).
    #[arg(long)]
    fib_table: Option<u32>,
    /// The route protocol number of our kernel routes (default 186).
    #[arg(long)]
    fib_protocol: Option<u8>,
    /// Seconds between reads of our kernel routes, restoring what someone else deleted or changed
    /// (default 30; 0: never).
    #[arg(long, value_name = "SECONDS")]
    fib_scan: Option<u64>,
    /// The most paths in one ECMP route (default 1).
    #[arg(long)]
    ecmp: Option<usize>,
    /// Our graceful restart time in seconds (default: the longest `gr=` of the peers, if any).
    #[arg(long)]
    graceful_restart: Option<u64>,
    /// The control socket (default /run/calico-bgp.sock).
    #[arg(long, env = "CALICO_BGP_CONTROL")]
    control: Option<PathBuf>,
    /// Serve Prometheus metrics on GET /metrics here.
    #[arg(long)]
    metrics: Option<SocketAddr>,
}

impl RunArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            asn: self.asn,
            router_id: self.router_id,
            cluster_id: self.cluster_id,
            listen: self.listen.clone(),
            fib: if self.no_fib {
                Some(false)
            } else if self.fib {
                Some(true)
            } else {
                None
            },
            fib_table: self.fib_table,
            fib_protocol: self.fib_protocol,
            fib_scan: self.fib_scan,
            ecmp: self.ecmp,
            graceful_restart: self.graceful_restart,
            control: self.control.clone(),
            metrics: self.metrics,
            peers: self.peers.clone(),
            announce: self.announce.clone(),
        }
    }

    /// The settings from the flags and the file (read now).
    fn settings(&self) -> Result<DaemonSettings> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Some(config::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?)
            }
            None => None,
        };
        config::resolve(&self.overrides(), file.as_ref()).map_err(|e| anyhow!(e))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// The control socket of the running daemon.
    #[arg(long, default_value = DEFAULT_CONTROL, env = "CALICO_BGP_CONTROL")]
    control: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => println!("calico-bgp {}", env!("CARGO_PKG_VERSION")),
        Command::Run(args) => {
            calico_bgp::speaker::sys::return_large_frees_to_the_kernel();
            calico_bgp::speaker::sys::one_malloc_arena();
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            tracing_subscriber::registry()
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(false),
                )
                .with(log_filter())
                .init();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?
                .block_on(run(args))?;
        }
        Command::Status(q) => status(&q)?,
        Command::Routes(q) => routes(&q)?,
    }
    Ok(())
}

/// The log filter from `RUST_LOG`: `LEVEL` and `TARGET=LEVEL` directives, comma-separated (`info` when
/// unset or unreadable). A `Targets` filter, not an `EnvFilter`: the daemon needs no span or field
/// matching, and leaving out the regular-expression engine that needs keeps some 0.5 MB of code out
/// of its resident set.
fn log_filter() -> tracing_subscriber::filter::Targets {
    let info = || tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO);
    match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => v.parse().unwrap_or_else(|e| {
            eprintln!("calico-bgp: RUST_LOG={v:?} is not a list of LEVEL or TARGET=LEVEL ({e}); logging at info");
            info()
        }),
        _ => info(),
    }
}

async fn run(args: RunArgs) -> Result<()> {
    let mut settings = args.settings()?;
    let speaker = Speaker::start(settings.speaker.clone())
        .await
        .context("starting the speaker")?;
    speaker.set_peers(settings.peers.clone()).await?;
    speaker
        .set_local_routes_with_large(settings.announce.clone())
        .await?;
    let control_task = control::serve(speaker.clone(), settings.control.clone()).await?;
    let metrics_task = match settings.metrics {
        Some(addr) => {
            let (task, local) = metrics::serve(speaker.clone(), addr).await?;
            tracing::info!(%local, "serving metrics on /metrics");
            Some(task)
        }
        None => None,
    };
    tracing::info!(control = %settings.control.display(), "ready");

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                if args.config.is_none() {
                    tracing::info!("SIGHUP: nothing to reload without --config");
                    continue;
                }
                match reload(&args, &settings, &speaker).await {
                    Ok(new) => settings = new,
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "SIGHUP: reload failed; nothing changed"),
                }
            }
        }
    }
    let keep_fib = settings.speaker.graceful_restart.is_some();
    tracing::info!(keep_fib, "stopping");
    control_task.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    let _ = std::fs::remove_file(&settings.control);
    speaker.shutdown(keep_fib).await;
    Ok(())
}

/// Re-reads the file and applies peer and route changes; settings that need a restart keep their
/// running values (with a warning). Returns the settings now in force.
async fn reload(args: &RunArgs, old: &DaemonSettings, speaker: &Speaker) -> Result<DaemonSettings> {
    let mut new = args.settings()?;
    let ignored = config::restart_only_changes(old, &new);
    if !ignored.is_empty() {
        tracing::warn!(
            ?ignored,
            "SIGHUP: these settings change only with a restart"
        );
    }
    new.speaker = old.speaker.clone();
    new.control = old.control.clone();
    new.metrics = old.metrics;
    speaker.set_peers(new.peers.clone()).await?;
    speaker
        .set_local_routes_with_large(new.announce.clone())
        .await?;
    tracing::info!(
        peers = new.peers.len(),
        routes = new.announce.len(),
        "SIGHUP: configuration reloaded"
    );
    Ok(new)
}

fn ask(q: &QueryArgs, req: ControlRequest) -> Result<ControlResponse> {
    let resp = control::query(&q.control, &req).with_context(|| {
        format!(
            "is calico-bgp running with --control {}?",
            q.control.display()
        )
    })?;
    if let ControlResponse::Error(e) = &resp {
        bail!("the daemon answered: {e}");
    }
    Ok(resp)
}

fn ago(t: SystemTime) -> String {
    let s = SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

fn status(q: &QueryArgs) -> Result<()> {
    let ControlResponse::Peers(peers) = ask(q, ControlRequest::Status)? else {
        bail!("unexpected answer");
    };
    if let Output::Json = q.output {
        println!("{}", serde_json::to_string_pretty(&peers)?);
        return Ok(());
    }
    println!(
        "{:<28} {:<11} {:<12} {:<8} {:>9} {:>9} {:>10}  INFO",
        "PEER", "AS", "STATE", "SINCE", "RECEIVED", "ACCEPTED", "ADVERTISED"
    );
    for p in peers {
        println!(
            "{:<28} {:<11} {:<12} {:<8} {:>9} {:>9} {:>10}  {}",
            p.address,
            p.asn,
            p.state,
            ago(p.since),
            p.routes_received,
            p.routes_accepted,
            p.routes_advertised,
            p.last_error.unwrap_or(p.description)
        );
    }
    Ok(())
}

fn routes(q: &QueryArgs) -> Result<()> {
    let ControlResponse::Routes(routes) = ask(q, ControlRequest::Routes)? else {
        bail!("unexpected answer");
    };
    if let Output::Json = q.output {
        println!("{}", serde_json::to_string_pretty(&routes)?);
        return Ok(());
    }
    println!(
        "{:<3} {:<24} {:<26} {:<26} {:<20} COMMUNITIES",
        "", "PREFIX", "NEXT HOP", "FROM", "AS PATH"
    );
    for r in routes {
        for p in r.paths {
            let mark = match (p.best, p.multipath, p.stale) {
                (true, _, s) => {
                    if s {
                        "*>s"
                    } else {
                        "*>"
                    }
                }
                (false, true, _) => "*=",
                (false, false, true) => "  s",
                _ => "",
            };
            let path: Vec<String> = p.as_path.iter().map(|a| a.to_string()).collect();
            let mut comms = p.communities.clone();
            comms.extend(p.large_communities.iter().cloned());
            println!(
                "{:<3} {:<24} {:<26} {:<26} {:<20} {}",
                mark,
                r.prefix.to_string(),
                p.next_hop.map_or("self".into(), |n| n.to_string()),
                p.peer.map_or("local".into(), |n| n.to_string()),
                if path.is_empty() {
                    "i".into()
                } else {
                    path.join(" ")
                },
                comms.join(" ")
            );
        }
    }
    Ok(())
}
