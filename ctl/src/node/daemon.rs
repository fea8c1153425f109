//! calico-node: Felix, the BGP speaker and the Docker proxy in one process, fed by the master's sync
//! stream. This is the only place where those crates meet.
//!
//! Tasks: the sync loop (subscribe, fold messages into a [`NodeState`], publish it on a watch channel,
//! resume from the last revision after a disconnect), Felix on its own thread (desired state → changes →
//! kernel, retries, periodic resync), the BGP loop (peers and announced routes from the state, the
//! blocks' blackholes), the Docker proxy, the registration with the master, the status reporter, and the
//! snapshot writer (the last state is kept in the state dir, so a node that starts while the master is
//! unreachable keeps the dataplane it finds and serves from that snapshot).
//!
//! Inputs: [`NodeOptions`], the master, the kernel, Docker. Outputs: a converged host and status reports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use calico_bgp::speaker::{FibSettings, PeerSettings, Speaker, SpeakerConfig};
use calico_felix::agent::Felix;
use calico_felix::model::Config as FelixConfig;
use calico_master::client::Client;
use calico_master::sync::{NodeState, SyncMessage};
use calico_proxy::context::Calico;
use calico_proxy::passthrough::Upstream;
use calico_proxy::server::Proxy;
use ipnet::IpNet;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::{bgp, blackhole, check, desired, time::rfc3339};

/// The original's default pools, created by the first node when no pool exists.
pub const DEFAULT_POOLS: [&str; 2] = ["192.168.0.0/16", "fd80:24e2:f998:72d6::/64"];
/// The kernel table learned routes go to.
const FIB_TABLE: u32 = 254;
/// The BGP speaker's routing protocol number (`bgp` in /etc/iproute2/rt_protos).
const FIB_PROTOCOL: u8 = 186;

/// How calico-node runs.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The host's name in the cluster.
    pub name: String,
    /// The host's IPv4 address: BGP source, router id, containers' gateway.
    pub ip: Ipv4Addr,
    /// The host's IPv6 address, if any.
    pub ip6: Option<Ipv6Addr>,
    /// The host's own AS (else the cluster's default).
    pub asn: Option<u32>,
    /// Master URLs.
    pub masters: Vec<String>,
    /// The API token.
    pub token: Option<String>,
    /// The Docker daemon's socket.
    pub docker_socket: PathBuf,
    /// Where the Docker proxy listens; `None` runs no proxy.
    pub proxy_listen: Option<SocketAddr>,
    /// Where the node keeps its snapshot and queues.
    pub state_dir: PathBuf,
    /// Do not create the default pools.
    pub no_default_pools: bool,
    /// Equal-cost paths installed per prefix.
    pub ecmp: usize,
    /// How often Felix compares the kernel with the desired state.
    pub resync_interval: Duration,
    /// How often the node reports its status to the master.
    pub report_interval: Duration,
}

/// Felix's progress, as the status reporter reads it.
#[derive(Debug, Clone, Default)]
struct FelixReport {
    synced: bool,
    programmed: usize,
    failed: usize,
    /// What Felix refused and why (e.g. an IPIP pool on a kernel without IPIP).
    errors: Vec<String>,
}

/// What the tasks share.
#[derive(Default)]
struct Shared {
    felix: Mutex<FelixReport>,
    speaker: Mutex<Option<Speaker>>,
}

type StateRx = watch::Receiver<Option<Arc<NodeState>>>;

/// Runs calico-node until SIGTERM or SIGINT.
pub async fn run(opts: NodeOptions) -> anyhow::Result<()> {
    preflight(&opts).await?;
    std::fs::create_dir_all(&opts.state_dir)
        .with_context(|| format!("cannot create the state dir {}", opts.state_dir.display()))?;
    let snapshot_path = opts.state_dir.join("snapshot.json");
    let snapshot = load_snapshot(&snapshot_path);
    match &snapshot {
        Some(s) => tracing::info!(
            revision = s.revision,
            endpoints = s.endpoints.len(),
            "serving from the last snapshot until the master answers"
        ),
        None => tracing::info!(
            "no snapshot yet: the dataplane is left as it is until the master answers"
        ),
    }
    let client = Client::new(&opts.masters, opts.token.clone())?;
    let (tx, rx) = watch::channel(snapshot.clone().map(Arc::new));
    let shared = Arc::new(Shared::default());

    let felix = Felix::new(None, Vec::new()).context("cannot start Felix")?;
    let felix_config = FelixConfig {
        ipv6_gateway: opts.ip6,
        ..FelixConfig::default()
    };
    {
        let (rx, shared, interval) = (rx.clone(), shared.clone(), opts.resync_interval);
        std::thread::Builder::new()
            .name("felix".into())
            .spawn(move || felix_thread(felix, felix_config, rx, shared, interval))?;
    }
    tokio::spawn(register(client.clone(), opts.clone()));
    tokio::spawn(sync_loop(client.clone(), opts.name.clone(), snapshot, tx));
    tokio::spawn(persist_loop(rx.clone(), snapshot_path));
    tokio::spawn(bgp_loop(rx.clone(), opts.clone(), shared.clone()));
    tokio::spawn(report_loop(client.clone(), opts.clone(), shared.clone()));
    if let Some(listen) = opts.proxy_listen {
        start_proxy(&opts, listen, client.clone()).await?;
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!(
        "stopping: the dataplane stays, BGP peers keep our routes for the graceful-restart time"
    );
    let speaker = shared.speaker.lock().map(|mut s| s.take()).unwrap_or(None);
    if let Some(s) = speaker {
        s.shutdown(true).await;
    }
    Ok(())
}

/// The Docker proxy on `listen`, its event follower and the reconcile at start (both in
/// [`calico_proxy::events::run_background`]). Containers get the init wrapper from the state dir.
async fn start_proxy(opts: &NodeOptions, listen: SocketAddr, client: Client) -> anyhow::Result<()> {
    let init = calico_proxy::init::install(&opts.state_dir)
        .context("cannot install the containers' init wrapper")?;
    let calico = Calico::new(opts.name.clone(), client)
        .with_gateways(Some(opts.ip), opts.ip6)
        .with_state_dir(&opts.state_dir)
        .with_init_binary(Some(init));
    let upstream = Arc::new(Upstream::new(
        opts.docker_socket.clone(),
        Some(Arc::new(calico)),
    ));
    let proxy = Proxy::bind(listen, upstream.clone())
        .await
        .with_context(|| format!("the Docker proxy cannot listen on {listen}"))?;
    tracing::info!(%listen, docker = %opts.docker_socket.display(), "Docker proxy listening");
    tokio::spawn(proxy.serve(std::future::pending::<()>()));
    tokio::spawn(calico_proxy::events::run_background(upstream));
    Ok(())
}

/// The system checks; fixes what it can (IP forwarding) and names what it cannot.
async fn preflight(opts: &NodeOptions) -> anyhow::Result<()> {
    let mut checks = check::system(true);
    if opts.proxy_listen.is_some() {
        checks.push(check::docker(&opts.docker_socket).await);
    }
    for c in checks.iter().filter(|c| c.fixed) {
        tracing::info!(check = %c.name, "fixed: {}", c.message);
    }
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.message))
        .collect();
    if !failed.is_empty() {
        anyhow::bail!("the system checks failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

fn load_snapshot(path: &Path) -> Option<NodeState> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice(&text) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable snapshot");
            None
        }
    }
}

/// Registers the host (retrying until the master answers), then creates the default pools if none exist.
async fn register(client: Client, opts: NodeOptions) {
    let mut body = json!({"ip_addr_v4": opts.ip.to_string()});
    if let Some(ip6) = opts.ip6 {
        body["ip_addr_v6"] = json!(ip6.to_string());
    }
    if let Some(asn) = opts.asn {
        body["as_num"] = json!(asn);
    }
    let path = format!("/v1/nodes/{}", opts.name);
    let mut delay = Duration::from_millis(250);
    loop {
        match client.put(&path, Some(&body)).await {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot register with the master yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
    tracing::info!(node = %opts.name, "registered with the master");
    if opts.no_default_pools {
        return;
    }
    match client.get("/v1/pools").await {
        Ok(Value::Array(pools)) if pools.is_empty() => {
            for cidr in DEFAULT_POOLS {
                match client.post("/v1/pools", &json!({"cidr": cidr})).await {
                    Ok(_) => tracing::info!(%cidr, "created a default pool"),
                    Err(e) => tracing::warn!(%cidr, error = %e, "cannot create a default pool"),
                }
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot list the pools"),
    }
}

/// How long the stream may stay silent before the master is presumed gone (it sends heartbeats).
const SYNC_SILENCE: Duration = Duration::from_secs(30);

/// Subscribes to the master's sync stream, folds every message and publishes the state; resumes from the
/// last revision after any failure, with backoff.
async fn sync_loop(
    client: Client,
    node: String,
    initial: Option<NodeState>,
    tx: watch::Sender<Option<Arc<NodeState>>>,
) {
    let mut since = initial.as_ref().map(|s| s.revision);
    let mut state = initial.unwrap_or_else(|| NodeState {
        node: node.clone(),
        ..Default::default()
    });
    let mut delay = Duration::from_millis(250);
    loop {
        match client.sync(&node, since).await {
            Ok(mut stream) => {
                tracing::info!(?since, "subscribed to the master's sync stream");
                loop {
                    let msg = match tokio::time::timeout(SYNC_SILENCE, stream.next()).await {
                        Ok(Ok(Some(m))) => m,
                        Ok(Ok(None)) => break,
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "the sync stream failed");
                            break;
                        }
                        Err(_) => {
                            tracing::warn!(
                                "the master sent nothing for {SYNC_SILENCE:?}; reconnecting"
                            );
                            break;
                        }
                    };
                    delay = Duration::from_millis(250);
                    let publish = !matches!(msg, SyncMessage::Heartbeat { .. }) || since.is_none();
                    state.apply(&msg);
                    since = Some(state.revision);
                    if publish {
                        tx.send_replace(Some(Arc::new(state.clone())));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to the master; keeping the current dataplane")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Writes the state to the state dir (at most every 2 s), atomically.
async fn persist_loop(mut rx: StateRx, path: PathBuf) {
    while rx.changed().await.is_ok() {
        let Some(state) = rx.borrow_and_update().clone() else {
            continue;
        };
        let path = path.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec(&*state)?)?;
            std::fs::rename(&tmp, &path)
        })
        .await;
        if let Ok(Err(e)) = written {
            tracing::warn!(error = %e, "cannot write the snapshot");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Felix on its own thread: applies each new state as changes, retries failed endpoints, resyncs.
fn felix_thread(
    mut felix: Felix,
    base: FelixConfig,
    mut rx: StateRx,
    shared: Arc<Shared>,
    resync_interval: Duration,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "Felix cannot start its timer");
            return;
        }
    };
    let mut synced = false;
    let mut next_resync = Instant::now() + resync_interval;
    // The state to apply; the first one (snapshot or master) counts as changed.
    let mut pending = rx.borrow_and_update().clone();
    loop {
        if let Some(state) = pending.take() {
            let want = desired::desired(&state, base.clone());
            let refused_before = felix.refused_pools().clone();
            felix.set_config(want.config.clone());
            if *felix.refused_pools() != refused_before {
                for message in felix.refused_pools().values() {
                    tracing::error!("{message}");
                }
            }
            let changes = desired::changes(felix.state(), &want);
            let now = Instant::now();
            match felix.apply(&changes, now) {
                Ok(report) => {
                    if !report.failed.is_empty() {
                        tracing::info!(
                            failed = report.failed.len(),
                            "some endpoints are not programmed yet; retrying"
                        );
                    }
                    if !synced {
                        // The first apply after start: also repair whatever a previous run left.
                        if let Err(e) = felix.resync(now) {
                            tracing::warn!(error = %e, "Felix's first resync failed");
                        }
                        synced = true;
                        tracing::info!(
                            endpoints = felix.state().endpoints.len(),
                            "Felix finished its first full sync"
                        );
                    }
                    set_felix(&shared, &felix, synced);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Felix could not apply the new state; retrying");
                    set_felix(&shared, &felix, synced);
                    pending = Some(state);
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
        }
        let now = Instant::now();
        if felix.next_retry().is_some_and(|t| t <= now) {
            if let Err(e) = felix.retry_due(now) {
                tracing::warn!(error = %e, "Felix's retry failed");
            }
            set_felix(&shared, &felix, synced);
        }
        if synced && now >= next_resync {
            match felix.resync(now) {
                Ok(r) if r.route_repairs > 0 || r.firewall_drift.is_some() => {
                    tracing::info!(routes = r.route_repairs, firewall = ?r.firewall_drift, "Felix repaired drift");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Felix's resync failed"),
            }
            next_resync = now + resync_interval;
            set_felix(&shared, &felix, synced);
        }
        let until = felix
            .next_retry()
            .map_or(next_resync, |t| t.min(next_resync));
        let wait = until.saturating_duration_since(Instant::now());
        match rt.block_on(async { tokio::time::timeout(wait, rx.changed()).await }) {
            Ok(Ok(())) => pending = rx.borrow_and_update().clone(),
            Ok(Err(_)) => return, // the node is stopping
            Err(_) => {}
        }
    }
}

fn set_felix(shared: &Shared, felix: &Felix, synced: bool) {
    let (programmed, failed) = felix.counts();
    if let Ok(mut f) = shared.felix.lock() {
        *f = FelixReport {
            synced,
            programmed,
            failed,
            errors: felix.refused_pools().values().cloned().collect(),
        };
    }
}

/// Keeps the speaker's peers and announcements, and the blocks' blackholes, in line with the state.
async fn bgp_loop(mut rx: StateRx, opts: NodeOptions, shared: Arc<Shared>) {
    // The speaker and the settings only a restart changes: the AS and the cluster id.
    let mut running: Option<((u32, Option<Ipv4Addr>), Speaker)> = None;
    let mut peers_set: Option<Vec<PeerSettings>> = None;
    let mut routes_set = None;
    let mut blocks_set: Option<Vec<IpNet>> = None;
    loop {
        let state = rx.borrow_and_update().clone();
        let mut retry = false;
        if let Some(state) = state {
            if let Some(asn) = bgp::local_as(&state) {
                let key = (asn, bgp::cluster_id(&state));
                if running.as_ref().map(|(k, _)| *k) != Some(key) {
                    if let Some((_, old)) = running.take() {
                        tracing::info!(
                            asn,
                            cluster_id = ?key.1,
                            "the node's AS or route-reflector cluster id changed; restarting the BGP speaker"
                        );
                        old.shutdown(true).await;
                    }
                    match start_speaker(&opts, key, &state).await {
                        Ok(s) => {
                            if let Ok(mut slot) = shared.speaker.lock() {
                                *slot = Some(s.clone());
                            }
                            running = Some((key, s));
                            peers_set = None;
                            routes_set = None;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot start the BGP speaker; retrying");
                            retry = true;
                        }
                    }
                }
                if let Some((_, speaker)) = &running {
                    let peers = bgp::peers(&state);
                    if peers_set.as_ref() != Some(&peers) {
                        match speaker.set_peers(peers.clone()).await {
                            Ok(()) => peers_set = Some(peers),
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot configure the BGP peers");
                                retry = true;
                            }
                        }
                    }
                    let routes = bgp::local_routes(&state);
                    if routes_set.as_ref() != Some(&routes) {
                        match speaker.set_local_routes(routes.clone()).await {
                            Ok(()) => routes_set = Some(routes),
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot announce the host's routes");
                                retry = true;
                            }
                        }
                    }
                }
            }
            let blocks = bgp::blackholes(&state);
            if blocks_set.as_ref() != Some(&blocks) {
                let b = blocks.clone();
                match tokio::task::spawn_blocking(move || blackhole::sync(&b)).await {
                    Ok(Ok(_)) => blocks_set = Some(blocks),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot install the blocks' blackhole routes");
                        retry = true;
                    }
                    Err(e) => tracing::warn!(error = %e, "the blackhole task failed"),
                }
            }
        }
        if retry {
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        } else if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn start_speaker(
    opts: &NodeOptions,
    (asn, cluster_id): (u32, Option<Ipv4Addr>),
    state: &NodeState,
) -> anyhow::Result<Speaker> {
    let mut listen = vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 179)];
    if opts.ip6.is_some() {
        listen.push(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 179));
    }
    let config = SpeakerConfig {
        asn,
        router_id: opts.ip,
        cluster_id,
        listen,
        fib: Some(FibSettings {
            table: FIB_TABLE,
            protocol: FIB_PROTOCOL,
            ..FibSettings::default()
        }),
        ecmp: opts.ecmp,
        graceful_restart: Some(bgp::graceful_restart(state)),
    };
    let s = Speaker::start(config).await?;
    tracing::info!(asn, router_id = %opts.ip, "BGP speaker listening on port 179");
    Ok(s)
}

/// Reports the node's state to the master: within a second of a change, and every `report_interval`
/// otherwise (so `calicoctl status` can tell a silent node from a live one).
async fn report_loop(client: Client, opts: NodeOptions, shared: Arc<Shared>) {
    let path = format!("/v1/nodes/{}/status", opts.name);
    let mut last: Option<(Value, Instant)> = None;
    loop {
        let report = status_report(&opts, &shared).await;
        let due = match &last {
            Some((sent, at)) => *sent != report || at.elapsed() >= opts.report_interval,
            None => true,
        };
        if due {
            match client.put(&path, Some(&report)).await {
                Ok(_) => last = Some((report, Instant::now())),
                Err(e) => tracing::debug!(error = %e, "cannot report the node's status"),
            }
        }
        tokio::time::sleep(Duration::from_secs(1).min(opts.report_interval)).await;
    }
}

async fn status_report(opts: &NodeOptions, shared: &Shared) -> Value {
    let felix = shared.felix.lock().map(|f| f.clone()).unwrap_or_default();
    let speaker = shared.speaker.lock().ok().and_then(|s| s.clone());
    let (sessions, listening) = match &speaker {
        Some(s) => (s.status().await, !s.local_addrs().is_empty()),
        None => (Vec::new(), false),
    };
    let proxy_ok = match opts.proxy_listen {
        Some(addr) => ping_proxy(addr).await,
        None => true,
    };
    let state = if felix.synced && listening && proxy_ok {
        "ready"
    } else {
        "starting"
    };
    let bgp: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "peer": s.address.to_string(),
                "asn": s.asn,
                "type": if matches!(s.description.as_str(), bgp::MESH | bgp::GLOBAL) { s.description.as_str() } else { bgp::NODE },
                "state": s.state,
                "since": rfc3339(s.since),
                "routes_received": s.routes_received,
                "routes_accepted": s.routes_accepted,
                "routes_advertised": s.routes_advertised,
            })
        })
        .collect();
    json!({
        "state": state,
        "felix": {"programmed": felix.programmed, "failed": felix.failed, "errors": felix.errors, "version": env!("CARGO_PKG_VERSION")},
        "bgp": bgp,
    })
}

/// The proxy answers Docker's `/_ping` (it passes it to dockerd).
async fn ping_proxy(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /_ping HTTP/1.0\r\nHost: calico\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200"))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
