//! Scale of the master's node sync stream, on the embedded store, over real HTTP on loopback.
//!
//! 1. Fan-out: a cluster of `--endpoints` endpoints spread over `--nodes` nodes (all using one profile
//!    whose rule refers to its own tag, so every node needs the tag's set of every address), then
//!    every node subscribes with `Client::sync`: time until the last node has its snapshot, then the
//!    time from one profile change through the API until the last node has the delta. Peer, same
//!    run: every node fetching the whole datastore once (`GET /v1/dump`, what a node without the
//!    stream would poll).
//! 2. Registrations: `--registrations` endpoints registered through the API as the Docker proxy does
//!    (`POST /v1/ipam/assign`, then `POST /v1/endpoints`) by `--concurrency` clients while the hub
//!    streams to `--nodes` subscribers; registrations per second, and when the last subscriber has
//!    the last one. Peer, same run: the same registrations on a master without the hub.
//!
//! Run: `cargo run --release -p calico-bench --bin sync-scale -- [--nodes 100] [--endpoints 10000]
//! [--registrations 10000] [--concurrency 16] [--file]` (`--file`: the store in a temporary file,
//! fsynced per write, instead of in memory).

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use calico_master::{
    acl::AclDelta,
    client::Client,
    ipam::{IpamState, Owner},
    model::{Endpoint, EndpointState, IpPool, Rules},
    store::{keys::Key, EmbeddedOptions, EmbeddedStore, Op, Store, Txn},
    sync::{Change, SyncMessage},
};
use clap::Parser;
#[path = "../master.rs"]
mod master;
use master::start_master;
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    #[arg(long, default_value_t = 10_000)]
    endpoints: usize,
    #[arg(long, default_value_t = 10_000)]
    registrations: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Keep the store in a temporary file (fsync per write) instead of in memory.
    #[arg(long)]
    file: bool,
}

fn node(i: usize) -> String {
    format!("node-{i:03}")
}

fn open_store(file: bool, dir: &tempfile::TempDir) -> Result<Arc<dyn Store>> {
    let opts = EmbeddedOptions::default();
    Ok(if file {
        Arc::new(EmbeddedStore::open(dir.path().join("master.db"), opts)?)
    } else {
        Arc::new(EmbeddedStore::in_memory(opts)?)
    })
}

fn rules_value(name: &str) -> serde_json::Value {
    let r = Rules::default_for(name);
    json!({"id": name, "inbound_rules": r.inbound_rules, "outbound_rules": r.outbound_rules})
}

/// Write the fan-out cluster straight into the store (batched), as the API would have.
fn populate(store: &dyn Store, nodes: usize, endpoints: usize) -> Result<()> {
    let pool = IpPool::new("10.64.0.0/12".parse()?);
    let mut ops = vec![
        Op::put(pool.etcd_key(), serde_json::to_vec(&pool)?),
        Op::put("/calico/v1/policy/profile/web/tags", r#"["web"]"#),
        Op::put(
            "/calico/v1/policy/profile/web/rules",
            rules_value("web").to_string(),
        ),
    ];
    for i in 0..nodes {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 18, 0, 0)) + i as u32 + 1);
        ops.push(Op::put(
            Key::HostIp {
                host: node(i),
                version: calico_master::model::IpVersion::V4,
            }
            .path(),
            ip.to_string(),
        ));
    }
    store.txn(Txn {
        success: ops,
        ..Txn::default()
    })?;
    let mut ipam = IpamState::default();
    let base = u32::from(Ipv4Addr::new(10, 64, 0, 0));
    let per_node = endpoints.div_ceil(nodes.max(1));
    let mut batch = Vec::new();
    for k in 0..endpoints {
        let n = k % nodes;
        let j = k / nodes;
        let ip = Ipv4Addr::from(base + (n * (per_node + 1).next_multiple_of(64) + j + 1) as u32);
        let workload = format!("w{k}");
        let a = ipam
            .assign_ip(
                std::slice::from_ref(&pool),
                IpAddr::V4(ip),
                Owner::new(&workload, node(n)),
            )
            .map_err(|e| anyhow!("{e}"))?;
        ipam.apply(&a.change);
        let ep = Endpoint {
            hostname: node(n),
            orchestrator: "docker".into(),
            workload_id: workload,
            endpoint_id: format!("{k:032x}"),
            state: EndpointState::Active,
            name: format!("cali{k:011x}"),
            mac: None,
            if_name: Some("eth0".into()),
            profile_ids: vec!["web".into()],
            ipv4_nets: vec![ip.into()],
            ipv6_nets: vec![],
            ipv4_gateway: None,
            ipv6_gateway: None,
        };
        batch.push(Op::put(
            Key::endpoint(&ep).path(),
            ep.etcd_value().to_string(),
        ));
        if batch.len() == 1000 {
            store.txn(Txn {
                success: std::mem::take(&mut batch),
                ..Txn::default()
            })?;
        }
    }
    for b in ipam.blocks.values() {
        batch.push(Op::put(b.etcd_key(), serde_json::to_vec(b)?));
    }
    store.txn(Txn {
        success: batch,
        ..Txn::default()
    })?;
    Ok(())
}

fn is_web_update(m: &SyncMessage) -> bool {
    matches!(m, SyncMessage::Delta { changes, .. } if changes.iter().any(|c| matches!(
        c,
        Change::Acl { delta: AclDelta::ProfileUpdate(p) } if p.name == "web"
    )))
}

async fn fanout(args: &Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = open_store(args.file, &dir)?;
    let t = Instant::now();
    {
        let s = store.clone();
        let (n, e) = (args.nodes, args.endpoints);
        tokio::task::spawn_blocking(move || populate(s.as_ref(), n, e)).await??;
    }
    println!(
        "fan-out: {} endpoints on {} nodes written in {:.2?}",
        args.endpoints,
        args.nodes,
        t.elapsed()
    );
    let t = Instant::now();
    let master = start_master(store.clone(), true).await?;
    println!(
        "  hub loaded the cluster and the server started in {:.2?}",
        t.elapsed()
    );
    let client = master.client()?;

    // Peer: every node fetching the whole datastore once.
    let t = Instant::now();
    let mut polls = tokio::task::JoinSet::new();
    for _ in 0..args.nodes {
        let c = client.clone();
        polls.spawn(async move { c.get("/v1/dump").await.map(|v| v.to_string().len()) });
    }
    let mut dump_bytes = 0;
    while let Some(r) = polls.join_next().await {
        dump_bytes = r??;
    }
    let dump = t.elapsed();

    let (snap_tx, mut snap_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, usize)>();
    let (change_tx, mut change_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.nodes {
        let c = client.clone();
        let (snap_tx, change_tx) = (snap_tx.clone(), change_tx.clone());
        let name = node(i);
        tasks.spawn(async move {
            let mut s = c.sync(&name, None).await?;
            loop {
                match s.next().await?.context("stream ended")? {
                    SyncMessage::Snapshot { state, .. } => {
                        let set = state.acl.sets.values().map(|s| s.len()).max().unwrap_or(0);
                        let _ = snap_tx.send((Instant::now(), state.endpoints.len() + set));
                        break;
                    }
                    _ => continue,
                }
            }
            loop {
                let m = s.next().await?.context("stream ended")?;
                if is_web_update(&m) {
                    let _ = change_tx.send(Instant::now());
                    return anyhow::Ok(());
                }
            }
        });
    }
    let mut last = t;
    let mut sizes = 0;
    for _ in 0..args.nodes {
        let (at, n) = snap_rx.recv().await.context("a subscriber failed")?;
        last = last.max(at);
        sizes += n;
    }
    let snapshots = last - t;
    // Each node: its own endpoints, and the tag set holding every endpoint's address.
    let want = args.endpoints + args.nodes * args.endpoints;
    if sizes != want {
        bail!("snapshots hold {sizes} endpoints and set members, expected {want}");
    }
    let t = Instant::now();
    client
        .post(
            "/v1/profiles/web/rules/inbound",
            &json!({"rule": {"action": "allow", "protocol": "tcp", "dst_ports": [80]}}),
        )
        .await?;
    let mut last = t;
    for _ in 0..args.nodes {
        last = last.max(change_rx.recv().await.context("a subscriber failed")?);
    }
    let change = last - t;
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    println!(
        "  {} nodes subscribed: last snapshot after {:.2?} (each holds {} endpoints and a {}-member set)",
        args.nodes,
        snapshots,
        args.endpoints / args.nodes.max(1),
        args.endpoints
    );
    println!(
        "  peer: {} nodes each GET /v1/dump ({} KiB): {:.2?}; sync snapshots / dump = {:.2}",
        args.nodes,
        dump_bytes / 1024,
        dump,
        snapshots.as_secs_f64() / dump.as_secs_f64()
    );
    println!(
        "  one profile change through the API: last of {} nodes has the delta after {:.2?}",
        args.nodes, change
    );
    master.stop().await
}

/// Register `n` endpoints through the API with `concurrency` clients; returns the elapsed time.
async fn register_all(
    client: &Client,
    n: usize,
    nodes: usize,
    concurrency: usize,
) -> Result<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let c = client.clone();
        let next = next.clone();
        tasks.spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    return anyhow::Ok(());
                }
                let host = node(k % nodes);
                let workload = format!("w{k}");
                let a = c
                    .post(
                        "/v1/ipam/assign",
                        &json!({"host": host, "handle_id": workload, "request": "auto"}),
                    )
                    .await?;
                let ip = a["assignments"][0]["ip"]
                    .as_str()
                    .context("no address assigned")?
                    .to_owned();
                c.post(
                    "/v1/endpoints",
                    &json!({
                        "hostname": host, "orchestrator": "docker", "workload_id": workload,
                        "endpoint_id": format!("{k:032x}"), "state": "active",
                        "mac": "ee:ee:ee:ee:ee:ee", "container:if_name": "eth0",
                        "profile_ids": ["web"], "ipv4_nets": [format!("{ip}/32")], "ipv6_nets": [],
                        "ipv4_gateway": null, "ipv6_gateway": null,
                    }),
                )
                .await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(t.elapsed())
}

async fn setup_api(c: &Client, nodes: usize) -> Result<()> {
    c.post("/v1/pools", &json!({"cidr": "10.96.0.0/14"}))
        .await?;
    c.post("/v1/profiles", &json!({"name": "web"})).await?;
    for i in 0..nodes {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 18, 0, 0)) + i as u32 + 1);
        c.put(
            &format!("/v1/nodes/{}", node(i)),
            Some(&json!({"ip_addr_v4": ip})),
        )
        .await?;
    }
    Ok(())
}

async fn registrations(args: &Args) -> Result<()> {
    println!(
        "registrations: {} endpoints through the API by {} clients, {} nodes",
        args.registrations, args.concurrency, args.nodes
    );
    // Peer: the API without the hub.
    let dir = tempfile::tempdir()?;
    let master = start_master(open_store(args.file, &dir)?, false).await?;
    let c = master.client()?;
    setup_api(&c, args.nodes).await?;
    let peer = register_all(&c, args.registrations, args.nodes, args.concurrency).await?;
    master.stop().await?;

    let dir = tempfile::tempdir()?;
    let store = open_store(args.file, &dir)?;
    let master = start_master(store.clone(), true).await?;
    let c = master.client()?;
    setup_api(&c, args.nodes).await?;
    // Every node subscribed, recording the last revision it reached.
    let reached: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.nodes).map(|_| AtomicU64::new(0)).collect());
    let mut subs = tokio::task::JoinSet::new();
    for i in 0..args.nodes {
        let c = c.clone();
        let reached = reached.clone();
        subs.spawn(async move {
            let mut s = c.sync(&node(i), None).await?;
            while let Some(m) = s.next().await? {
                reached[i].store(m.revision(), Ordering::Release);
            }
            anyhow::Ok(())
        });
    }
    let with_hub = register_all(&c, args.registrations, args.nodes, args.concurrency).await?;
    let t = Instant::now();
    let target = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.revision()).await??
    };
    let hub = master.hub.clone().context("hub")?;
    // A node's revision moves on with its deltas (every registration changes every node's tag set)
    // or, when idle, with its heartbeats.
    while hub.revision() < target || reached.iter().any(|r| r.load(Ordering::Acquire) < target) {
        if t.elapsed() > Duration::from_secs(120) {
            bail!("subscribers did not converge within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let converge = t.elapsed();
    let stats = hub.stats();
    let rate = |d: Duration| args.registrations as f64 / d.as_secs_f64();
    println!(
        "  with the hub and {} subscribers: {:.2?}, {:.0} registrations/s; every subscriber had the last one {:.2?} later ({} resyncs)",
        args.nodes,
        with_hub,
        rate(with_hub),
        converge,
        stats.resyncs_total
    );
    println!(
        "  peer, no hub: {:.2?}, {:.0} registrations/s; with hub / without = {:.2}",
        peer,
        rate(peer),
        with_hub.as_secs_f64() / peer.as_secs_f64()
    );
    master.stop().await?;
    while let Some(r) = subs.join_next().await {
        r??;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        fanout(&args).await?;
        registrations(&args).await
    })
}
