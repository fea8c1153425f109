//! Endpoint registrations through the master's HTTP API as the cluster grows, on the embedded store
//! and on a real etcd.
//!
//! For each store and each client count: a fresh master (the API and its sync hub, as `calicoctl
//! master run` starts them) on an empty store, with one pool, one profile and `--hosts` registered
//! nodes. The addresses are assigned up front, straight into the store (not timed), so what is timed
//! is exactly `POST /v1/endpoints`, the call the Docker proxy makes when a container starts. Then
//! `--registrations` endpoints are registered by `--clients` concurrent clients over loopback HTTP.
//! Reported: registrations per second over the whole run, p50/p99 latency of one registration, and the
//! rate over the first and the last 1,000 completions: the peer measured in the same run is the
//! master's own rate on a near-empty store, so `last/first` near 1 means registrations do not slow
//! down as the cluster grows.
//!
//! etcd is Debian's `etcd`, started by the lab library (`calico-lab`) in a lab with no hosts (the
//! master talks to it on 127.0.0.1) and stopped at the end, also on failure; between runs its
//! `/calico/` keys are deleted and its history compacted. The embedded store is a file in a temporary directory (fsynced per
//! write, as the master's default), or in memory with `--in-memory`.
//!
//! Run (root, for the lab's etcd): `cargo run --release -p calico-bench --bin register-scale --
//! [--registrations 10000] [--clients 1,8,32] [--hosts 10] [--stores embedded,etcd] [--in-memory]
//! [--windows]` (`--windows`: also the rate over each successive 1,000).

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use calico_lab::Lab;
use calico_master::{
    client::Client,
    ipam::{IpamState, Owner},
    model::IpPool,
    store::{EmbeddedOptions, EmbeddedStore, EtcdOptions, EtcdStore, Op, Store, Txn},
};
use clap::{Parser, ValueEnum};
use serde_json::json;

#[path = "../master.rs"]
mod master;
use master::start_master;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Embedded,
    Etcd,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Etcd => "etcd",
        }
    }
}

#[derive(Debug, Parser)]
struct Args {
    /// Endpoints registered per run.
    #[arg(long, default_value_t = 10_000)]
    registrations: usize,
    /// Concurrent clients; one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    clients: Vec<usize>,
    /// Nodes the endpoints are spread over.
    #[arg(long, default_value_t = 10)]
    hosts: usize,
    /// Stores to measure; one set of runs per value.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "embedded,etcd"
    )]
    stores: Vec<Backend>,
    /// Keep the embedded store in memory instead of a temporary file.
    #[arg(long)]
    in_memory: bool,
    /// Also print the rate over every successive 1,000 completions of each run.
    #[arg(long)]
    windows: bool,
}

/// The size of the window at each end of a run whose rate is reported.
const WINDOW: usize = 1_000;
/// The pool the endpoints' addresses come from.
const POOL: &str = "10.96.0.0/14";
/// Most ops in one etcd transaction (etcd's default `--max-txn-ops` is 128).
const BATCH: usize = 100;

fn host(i: usize) -> String {
    format!("host-{i:02}")
}

/// Endpoint `k`'s id: 32 hex digits whose first 11 (the interface name) differ between endpoints.
fn endpoint_id(k: usize) -> String {
    format!("{:08x}{k:024x}", (k as u32).wrapping_mul(2_654_435_761))
}

/// Endpoint `k`'s host and address: each host's addresses are contiguous, so blocks are per host.
fn placement(k: usize, hosts: usize, per_host: usize) -> (String, Ipv4Addr) {
    let (n, j) = (k % hosts, k / hosts);
    let stride = (per_host + 1).next_multiple_of(64);
    let base = u32::from(Ipv4Addr::new(10, 96, 0, 0));
    (host(n), Ipv4Addr::from(base + (n * stride + j + 1) as u32))
}

/// Pool, profile and nodes through the API; then every endpoint's address assigned straight into the
/// store, as `POST /v1/ipam/assign` would have left it.
async fn setup(c: &Client, store: Arc<dyn Store>, args: &Args) -> Result<()> {
    c.post("/v1/pools", &json!({"cidr": POOL})).await?;
    c.post("/v1/profiles", &json!({"name": "web"})).await?;
    for i in 0..args.hosts {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 18, 0, 0)) + i as u32 + 1);
        c.put(
            &format!("/v1/nodes/{}", host(i)),
            Some(&json!({"ip_addr_v4": ip})),
        )
        .await?;
    }
    let (n, hosts) = (args.registrations, args.hosts);
    tokio::task::spawn_blocking(move || -> Result<()> {
        let pool = IpPool::new(POOL.parse()?);
        let per_host = n.div_ceil(hosts);
        let mut ipam = IpamState::default();
        for k in 0..n {
            let (h, ip) = placement(k, hosts, per_host);
            let a = ipam
                .assign_ip(
                    std::slice::from_ref(&pool),
                    IpAddr::V4(ip),
                    Owner::new(format!("w{k}"), h),
                )
                .map_err(|e| anyhow!("assigning {ip}: {e}"))?;
            ipam.apply(&a.change);
        }
        let ops = ipam
            .blocks
            .values()
            .map(|b| Ok(Op::put(b.etcd_key(), serde_json::to_vec(b)?)))
            .collect::<Result<Vec<_>>>()?;
        for chunk in ops.chunks(BATCH) {
            store.txn(Txn {
                success: chunk.to_vec(),
                ..Txn::default()
            })?;
        }
        Ok(())
    })
    .await??;
    Ok(())
}

/// One run's figures.
struct Run {
    total: Duration,
    latencies: Vec<Duration>,
    /// Completion times since the start, sorted.
    done: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.done.len() as f64 / self.total.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len().max(1)) - 1;
        l.get(i).copied().unwrap_or_default()
    }

    /// Registrations per second over the first `WINDOW` completions.
    fn first_rate(&self) -> f64 {
        let w = WINDOW.min(self.done.len());
        w as f64 / self.done[w - 1].as_secs_f64()
    }

    /// Registrations per second over each successive `WINDOW` completions.
    fn window_rates(&self) -> Vec<f64> {
        let mut out = Vec::new();
        let mut start = Duration::ZERO;
        for chunk in self.done.chunks(WINDOW) {
            let end = chunk[chunk.len() - 1];
            out.push(chunk.len() as f64 / (end - start).as_secs_f64());
            start = end;
        }
        out
    }

    /// Registrations per second over the last `WINDOW` completions.
    fn last_rate(&self) -> f64 {
        let n = self.done.len();
        let w = WINDOW.min(n - 1);
        w as f64 / (self.done[n - 1] - self.done[n - 1 - w]).as_secs_f64()
    }
}

/// Register every endpoint with `clients` concurrent clients.
async fn register(c: &Client, args: &Args, clients: usize) -> Result<Run> {
    let n = args.registrations;
    let hosts = args.hosts;
    let per_host = n.div_ceil(hosts);
    let next = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (c, next, samples) = (c.clone(), next.clone(), samples.clone());
        tasks.spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    return anyhow::Ok(());
                }
                let (h, ip) = placement(k, hosts, per_host);
                let body = json!({
                    "hostname": h, "orchestrator": "docker", "workload_id": format!("w{k}"),
                    "endpoint_id": endpoint_id(k), "state": "active",
                    "mac": "ee:ee:ee:ee:ee:ee", "container:if_name": "eth0",
                    "profile_ids": ["web"], "ipv4_nets": [format!("{ip}/32")], "ipv6_nets": [],
                    "ipv4_gateway": null, "ipv6_gateway": null,
                });
                let t = Instant::now();
                let r = c.post("/v1/endpoints", &body).await;
                let end = Instant::now();
                r.with_context(|| format!("registering endpoint {k}"))?;
                samples
                    .lock()
                    .map_err(|_| anyhow!("a client panicked"))?
                    .push((end - t, end - start));
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let total = start.elapsed();
    let samples = std::mem::take(&mut *samples.lock().map_err(|_| anyhow!("poisoned"))?);
    let (latencies, mut done): (Vec<_>, Vec<_>) = samples.into_iter().unzip();
    done.sort();
    if done.len() != n {
        bail!("{} of {n} registrations recorded", done.len());
    }
    Ok(Run {
        total,
        latencies,
        done,
    })
}

/// Check that the master holds every endpoint, then print the run's row.
async fn report(
    c: &Client,
    backend: Backend,
    clients: usize,
    args: &Args,
    run: &Run,
) -> Result<()> {
    let listed = c.get("/v1/endpoints").await?;
    let count = listed.as_array().map_or(0, Vec::len);
    if count != args.registrations {
        bail!(
            "the master lists {count} endpoints after {} registrations",
            args.registrations
        );
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{:<9} {:>7} {:>8} {:>9.2} {:>8.0} {:>8.2} {:>8.2} {:>11.0} {:>10.0} {:>10.2}",
        backend.name(),
        clients,
        args.registrations,
        run.total.as_secs_f64(),
        run.rate(),
        ms(run.percentile(0.50)),
        ms(run.percentile(0.99)),
        run.first_rate(),
        run.last_rate(),
        run.last_rate() / run.first_rate(),
    );
    if args.windows {
        let rates: Vec<String> = run
            .window_rates()
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect();
        println!("  per {WINDOW}: {}", rates.join(" "));
    }
    Ok(())
}

/// Every run on one store; `fresh` gives an empty store for each.
async fn runs<F>(backend: Backend, args: &Args, mut fresh: F) -> Result<()>
where
    F: FnMut() -> Result<Arc<dyn Store>>,
{
    for &clients in &args.clients {
        let store = tokio::task::block_in_place(&mut fresh)?;
        let master = start_master(store.clone(), true).await?;
        let c = master.client()?;
        setup(&c, store, args).await?;
        let run = register(&c, args, clients).await?;
        report(&c, backend, clients, args, &run).await?;
        master.stop().await?;
    }
    Ok(())
}

/// A lab with no hosts and its etcd; the store clients connect on 127.0.0.1.
fn etcd_runs(rt: &tokio::runtime::Runtime, args: &Args) -> Result<()> {
    let lab = Lab::builder("benchreg").build()?;
    let mut etcd = lab.etcd()?;
    let url = etcd.local_url.clone();
    let result = rt.block_on(runs(Backend::Etcd, args, || {
        let store = EtcdStore::connect(EtcdOptions::new([url.as_str()]))
            .with_context(|| format!("connecting to the lab's etcd at {url}"))?;
        // Empty, with the previous run's history compacted away (left in place, its tombstones
        // slow the next run down several times).
        let rev = store
            .txn(Txn::new().and_then(Op::delete_prefix("/calico/")))?
            .revision;
        store.compact(rev)?;
        Ok(Arc::new(store) as Arc<dyn Store>)
    }));
    etcd.daemon.stop(Duration::from_secs(5));
    drop(lab);
    result
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.hosts == 0 || args.registrations <= WINDOW || args.clients.contains(&0) {
        bail!("--hosts and --clients must be at least 1 and --registrations over {WINDOW}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "register-scale: {} endpoint registrations (POST /v1/endpoints) over {} hosts, fresh store per run",
        args.registrations, args.hosts
    );
    println!(
        "{:<9} {:>7} {:>8} {:>9} {:>8} {:>8} {:>8} {:>11} {:>10} {:>10}",
        "store",
        "clients",
        "endpts",
        "total s",
        "reg/s",
        "p50 ms",
        "p99 ms",
        "first1k/s",
        "last1k/s",
        "last/first"
    );
    for &backend in &args.stores {
        match backend {
            Backend::Embedded => {
                let in_memory = args.in_memory;
                let mut dirs = Vec::new();
                rt.block_on(runs(backend, &args, || {
                    let opts = EmbeddedOptions::default();
                    Ok(if in_memory {
                        Arc::new(EmbeddedStore::in_memory(opts)?) as Arc<dyn Store>
                    } else {
                        let dir = tempfile::tempdir()?;
                        let s = EmbeddedStore::open(dir.path().join("master.db"), opts)?;
                        dirs.push(dir);
                        Arc::new(s)
                    })
                }))?;
            }
            Backend::Etcd => etcd_runs(&rt, &args)?,
        }
    }
    Ok(())
}
