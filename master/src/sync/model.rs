//! The sync hub's in-memory model of the cluster, and what one store revision changes for each node.
//!
//! Role: the sans-IO core of the sync stream. [`ClusterModel`] holds every object a node's state is made
//! of (endpoints, profiles through the incremental [`AclCompiler`], pools, IPAM blocks with per-host
//! route indexes, the BGP configuration and registered hosts), parsed from store keys with
//! [`Key::parse`] and the same value encodings the API writes. [`ClusterModel::apply`] takes the events
//! of one revision and returns the net [`Change`]s per node ([`RevisionChanges`]); [`ClusterModel::snapshot`]
//! gives a node's whole [`NodeState`]. Folding the changes with [`NodeState::apply`] gives exactly the
//! snapshot (the property test in `proptests.rs` checks this against an independent oracle).
//!
//! Inputs: store [`Event`]s (the initial listing is applied as puts). Outputs: per-node changes,
//! snapshots, and the set of nodes the model knows.
//!
//! Value handling follows the API's readers: a malformed value counts as absent (with a warning), as
//! the API skips malformed endpoints, pools and peers; a node is registered when one of its address
//! keys holds an address; a profile exists when its `tags` or `rules` key does. Two endpoints of one
//! host with the same endpoint id (which the API refuses) show as the one whose key sorts last.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::IpNet;
use serde_json::Value;

use super::{BgpView, Change, NodeRoutes, NodeState};
use crate::{
    acl::{AclCompiler, AclDelta, EndpointKey},
    ipam::Block,
    model::{
        effective, AsNumber, BgpConfig, BgpPeer, BgpTimers, Endpoint, Host, IpPool, IpVersion,
        RouteReflector, Rules,
    },
    store::{keys::Key, Event, EventKind, Revision},
};

/// What one revision changed: per node, plus changes every node gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevisionChanges {
    /// Changes that concern every node (pools, BGP view), in application order.
    pub global: Vec<Change>,
    /// Changes of single nodes (endpoints, ACL, routes), in application order.
    pub nodes: BTreeMap<String, Vec<Change>>,
}

impl RevisionChanges {
    /// Nothing changed for any node.
    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.nodes.is_empty()
    }

    /// The changes `node` gets: the global ones, then its own.
    pub fn for_node(&self, node: &str) -> Vec<Change> {
        let mut out = self.global.clone();
        if let Some(own) = self.nodes.get(node) {
            out.extend(own.iter().cloned());
        }
        out
    }
}

#[derive(Debug, Clone, Default)]
struct ProfileKeys {
    tags: Option<Vec<String>>,
    rules: Option<Rules>,
}

#[derive(Debug, Clone, Default)]
struct HostKeys {
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    as_num: Option<AsNumber>,
    /// By key, so the order is the API's (IPv4 peers, then IPv6, each by address text).
    peers: BTreeMap<String, BgpPeer>,
    route_reflector: Option<RouteReflector>,
}

impl HostKeys {
    fn is_empty(&self) -> bool {
        self.ipv4.is_none()
            && self.ipv6.is_none()
            && self.as_num.is_none()
            && self.peers.is_empty()
            && self.route_reflector.is_none()
    }
}

#[derive(Debug, Clone, Default)]
struct GlobalBgp {
    as_num: Option<AsNumber>,
    node_mesh: Option<bool>,
    timers: Option<BgpTimers>,
    peers: BTreeMap<String, BgpPeer>,
}

/// What an in-progress revision touched, with the state before it (nothing is recorded while
/// loading, when `record` is off).
#[derive(Default)]
struct Touched {
    record: bool,
    endpoints: BTreeMap<(String, String), Option<Endpoint>>,
    routes: BTreeMap<String, NodeRoutes>,
    pools: Option<Vec<IpPool>>,
    bgp: bool,
    acl: BTreeMap<String, Vec<AclDelta>>,
    /// The cluster-wide settings before the revision, if it touched them.
    config: Option<BTreeMap<String, String>>,
    /// Hosts whose own settings the revision touched, with their effective settings before.
    host_config: BTreeMap<String, BTreeMap<String, String>>,
}

/// The cluster as the sync hub sees it.
#[derive(Debug, Clone, Default)]
pub struct ClusterModel {
    revision: Revision,
    endpoints: BTreeMap<EndpointKey, Endpoint>,
    /// host → endpoint id → the keys carrying that id (normally one).
    ids: BTreeMap<String, BTreeMap<String, BTreeSet<EndpointKey>>>,
    profiles: BTreeMap<String, ProfileKeys>,
    acl: AclCompiler,
    /// By key: IPv4 pools first, each family in key order (the API's listing order).
    pools: BTreeMap<String, IpPool>,
    blocks: BTreeMap<IpNet, Block>,
    /// host → blocks affine to it.
    host_blocks: BTreeMap<String, BTreeSet<IpNet>>,
    /// host → addresses its workloads hold in blocks it does not own (with a count, for safety).
    host_ips: BTreeMap<String, BTreeMap<IpAddr, usize>>,
    global_bgp: GlobalBgp,
    hosts: BTreeMap<String, HostKeys>,
    bgp: BgpView,
    /// Cluster-wide Felix settings.
    config: BTreeMap<String, String>,
    /// host → its own Felix settings (never empty).
    host_config: BTreeMap<String, BTreeMap<String, String>>,
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .trim()
        .trim_matches('"')
        .to_owned()
}

fn warn(key: &str, what: &str, e: impl std::fmt::Display) {
    tracing::warn!(key, error = %e, "sync: ignoring a malformed {what}");
}

impl ClusterModel {
    /// An empty model at revision 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The revision the model reflects.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Build the model from a listing of every key (`kvs` as `(key, value)`) read at `revision`.
    pub fn load<'a>(
        revision: Revision,
        kvs: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Self {
        let mut m = ClusterModel::new();
        let mut t = Touched::default();
        for (key, value) in kvs {
            m.apply_event(&mut t, EventKind::Put, key, value);
        }
        m.bgp = m.compute_bgp();
        m.revision = revision;
        m
    }

    /// Every node the model knows of: registered hosts, hosts with endpoints, blocks or addresses.
    pub fn nodes(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.bgp.nodes.iter().map(|h| h.name.clone()).collect();
        out.extend(self.ids.keys().cloned());
        out.extend(self.host_blocks.keys().cloned());
        out.extend(self.host_ips.keys().cloned());
        out
    }

    /// Whether the model knows `node` (see [`ClusterModel::nodes`]).
    pub fn knows(&self, node: &str) -> bool {
        self.hosts.contains_key(node)
            || self.ids.contains_key(node)
            || self.host_blocks.contains_key(node)
            || self.host_ips.contains_key(node)
    }

    /// Apply the events of one revision (all with `mod_revision == revision`) and return what changed
    /// for each node. Events of revisions at or below the model's are ignored.
    pub fn apply(&mut self, revision: Revision, events: &[Event]) -> RevisionChanges {
        if revision <= self.revision {
            return RevisionChanges::default();
        }
        let mut t = Touched {
            record: true,
            ..Touched::default()
        };
        for e in events {
            self.apply_event(&mut t, e.kind, &e.key, &e.value);
        }
        self.revision = revision;
        self.finish(t)
    }

    fn finish(&mut self, t: Touched) -> RevisionChanges {
        let mut out = RevisionChanges::default();
        if let Some(before) = t.pools {
            let now = self.pool_list();
            if now != before {
                out.global.push(Change::Pools { pools: now });
            }
        }
        if t.bgp {
            let now = self.compute_bgp();
            if now != self.bgp {
                self.bgp = now;
                out.global.push(Change::Bgp {
                    bgp: self.bgp.clone(),
                });
            }
        }
        let global_config = t.config.is_some_and(|before| before != self.config);
        if global_config {
            out.global.push(Change::Config {
                config: self.config.clone(),
            });
        }
        // After the cluster-wide map (global changes come first), a host with settings of its own
        // gets its effective map.
        let mut hosts: BTreeSet<&String> = t.host_config.keys().collect();
        if global_config {
            hosts.extend(self.host_config.keys());
        }
        for host in hosts {
            let now = self.effective_config(host);
            // With a new cluster-wide map, the node holds that map after the global changes.
            let push = if global_config {
                now != self.config
            } else {
                t.host_config.get(host) != Some(&now)
            };
            if push {
                out.nodes
                    .entry(host.clone())
                    .or_default()
                    .push(Change::Config { config: now });
            }
        }
        for (node, deltas) in t.acl {
            let list = out.nodes.entry(node).or_default();
            list.extend(deltas.into_iter().map(|delta| Change::Acl { delta }));
        }
        for ((host, id), before) in t.endpoints {
            let now = self.winner(&host, &id).cloned();
            if now == before {
                continue;
            }
            let c = match now {
                Some(ep) => Change::EndpointSet {
                    endpoint: Box::new(ep),
                },
                None => Change::EndpointRemove { endpoint_id: id },
            };
            out.nodes.entry(host).or_default().push(c);
        }
        for (host, before) in t.routes {
            let now = self.routes(&host);
            if now != before {
                out.nodes
                    .entry(host)
                    .or_default()
                    .push(Change::Routes { routes: now });
            }
        }
        out
    }

    fn apply_event(&mut self, t: &mut Touched, kind: EventKind, key: &str, value: &[u8]) {
        let Some(parsed) = Key::parse(key) else {
            return;
        };
        let put = kind == EventKind::Put;
        match parsed {
            Key::Endpoint(k) => {
                let ep = if put {
                    parse_endpoint(&k, key, value)
                } else {
                    None
                };
                self.set_endpoint(t, k, ep);
            }
            Key::ProfileTags { profile } => {
                let tags = put
                    .then(|| serde_json::from_slice::<Vec<String>>(value))
                    .and_then(|r| r.map_err(|e| warn(key, "profile tags", e)).ok());
                let mut keys = self.profiles.remove(&profile).unwrap_or_default();
                keys.tags = tags;
                self.set_profile(t, profile, keys);
            }
            Key::ProfileRules { profile } => {
                let rules = put
                    .then(|| {
                        serde_json::from_slice::<Value>(value)
                            .map_err(|e| e.to_string())
                            .and_then(|v| Rules::from_json(&v).map_err(|e| e.to_string()))
                    })
                    .and_then(|r| r.map_err(|e| warn(key, "profile rules", e)).ok());
                let mut keys = self.profiles.remove(&profile).unwrap_or_default();
                keys.rules = rules;
                self.set_profile(t, profile, keys);
            }
            Key::Pool { .. } => {
                if t.record && t.pools.is_none() {
                    t.pools = Some(self.pool_list());
                }
                let pool = put
                    .then(|| serde_json::from_slice::<IpPool>(value))
                    .and_then(|r| r.map_err(|e| warn(key, "pool", e)).ok());
                match pool {
                    Some(p) => self.pools.insert(key.to_owned(), p),
                    None => self.pools.remove(key),
                };
            }
            Key::Block { cidr } => {
                let block = put
                    .then(|| serde_json::from_slice::<Block>(value))
                    .and_then(|r| r.map_err(|e| warn(key, "IPAM block", e)).ok())
                    .filter(|b| {
                        let ok = b.cidr == cidr;
                        if !ok {
                            warn(key, "IPAM block", "its CIDR does not match its key");
                        }
                        ok
                    });
                self.set_block(t, cidr, block);
            }
            Key::GlobalAsNum => {
                t.bgp = true;
                self.global_bgp.as_num = put
                    .then(|| AsNumber::parse("as_num", &text(value)))
                    .and_then(|r| r.map_err(|e| warn(key, "AS number", e)).ok());
            }
            Key::GlobalNodeMesh => {
                t.bgp = true;
                self.global_bgp.node_mesh = put
                    .then(|| {
                        serde_json::from_slice::<Value>(value)
                            .ok()
                            .and_then(|v| v.get("enabled").and_then(Value::as_bool))
                    })
                    .and_then(|r| {
                        if r.is_none() {
                            warn(key, "node mesh switch", "expected {\"enabled\": bool}");
                        }
                        r
                    });
            }
            Key::GlobalTimers => {
                t.bgp = true;
                self.global_bgp.timers = put
                    .then(|| serde_json::from_slice::<BgpTimers>(value))
                    .and_then(|r| r.map_err(|e| warn(key, "timers", e)).ok());
            }
            Key::GlobalPeer { .. } => {
                t.bgp = true;
                match put
                    .then(|| serde_json::from_slice::<BgpPeer>(value))
                    .and_then(|r| r.map_err(|e| warn(key, "peer", e)).ok())
                {
                    Some(p) => self.global_bgp.peers.insert(key.to_owned(), p),
                    None => self.global_bgp.peers.remove(key),
                };
            }
            Key::HostIp { host, version } => {
                t.bgp = true;
                let s = text(value);
                let h = self.hosts.entry(host.clone()).or_default();
                match version {
                    IpVersion::V4 => h.ipv4 = put.then(|| s.parse().ok()).flatten(),
                    IpVersion::V6 => h.ipv6 = put.then(|| s.parse().ok()).flatten(),
                }
                self.drop_empty_host(&host);
            }
            Key::HostAsNum { host } => {
                t.bgp = true;
                let h = self.hosts.entry(host.clone()).or_default();
                h.as_num = put
                    .then(|| AsNumber::parse("as_num", &text(value)).ok())
                    .flatten();
                self.drop_empty_host(&host);
            }
            Key::HostPeer { host, .. } => {
                t.bgp = true;
                let peer = put
                    .then(|| serde_json::from_slice::<BgpPeer>(value))
                    .and_then(|r| r.map_err(|e| warn(key, "peer", e)).ok());
                let h = self.hosts.entry(host.clone()).or_default();
                match peer {
                    Some(p) => h.peers.insert(key.to_owned(), p),
                    None => h.peers.remove(key),
                };
                self.drop_empty_host(&host);
            }
            Key::HostRouteReflector { host } => {
                t.bgp = true;
                let rr = put
                    .then(|| serde_json::from_slice::<RouteReflector>(value))
                    .and_then(|r| r.map_err(|e| warn(key, "route reflector", e)).ok());
                self.hosts.entry(host.clone()).or_default().route_reflector = rr;
                self.drop_empty_host(&host);
            }
            Key::Config { name } => {
                if t.record && t.config.is_none() {
                    t.config = Some(self.config.clone());
                }
                match put.then(|| config_value(key, value)).flatten() {
                    Some(v) => self.config.insert(name, v),
                    None => self.config.remove(&name),
                };
            }
            Key::HostConfig { host, name } => {
                if t.record && !t.host_config.contains_key(&host) {
                    let before = self.effective_config(&host);
                    t.host_config.insert(host.clone(), before);
                }
                let own = self.host_config.entry(host.clone()).or_default();
                match put.then(|| config_value(key, value)).flatten() {
                    Some(v) => own.insert(name, v),
                    None => own.remove(&name),
                };
                if own.is_empty() {
                    self.host_config.remove(&host);
                }
            }
            Key::Ready | Key::GlobalLogLevel | Key::RouteReflector { .. } => {}
        }
    }

    /// `host`'s effective settings: the cluster-wide ones overridden by its own.
    fn effective_config(&self, host: &str) -> BTreeMap<String, String> {
        effective(&self.config, self.host_config.get(host))
    }

    fn drop_empty_host(&mut self, host: &str) {
        if self.hosts.get(host).is_some_and(HostKeys::is_empty) {
            self.hosts.remove(host);
        }
    }

    fn winner(&self, host: &str, id: &str) -> Option<&Endpoint> {
        let key = self.ids.get(host)?.get(id)?.last()?;
        self.endpoints.get(key)
    }

    fn touch_routes(&self, t: &mut Touched, host: &str) {
        if t.record && !t.routes.contains_key(host) {
            t.routes.insert(host.to_owned(), self.routes(host));
        }
    }

    fn push_acl(t: &mut Touched, deltas: BTreeMap<String, Vec<AclDelta>>) {
        if !t.record {
            return;
        }
        for (node, d) in deltas {
            t.acl.entry(node).or_default().extend(d);
        }
    }

    fn set_endpoint(&mut self, t: &mut Touched, k: EndpointKey, ep: Option<Endpoint>) {
        let slot = (k.hostname.clone(), k.endpoint_id.clone());
        if t.record && !t.endpoints.contains_key(&slot) {
            let before = self.winner(&slot.0, &slot.1).cloned();
            t.endpoints.insert(slot.clone(), before);
        }
        match ep {
            Some(ep) => {
                let deltas = self.acl.upsert_endpoint(&ep);
                Self::push_acl(t, deltas);
                self.ids
                    .entry(slot.0)
                    .or_default()
                    .entry(slot.1)
                    .or_default()
                    .insert(k.clone());
                self.endpoints.insert(k, ep);
            }
            None => {
                let deltas = self.acl.remove_endpoint(&k);
                Self::push_acl(t, deltas);
                self.endpoints.remove(&k);
                if let Some(by_id) = self.ids.get_mut(&slot.0) {
                    if let Some(keys) = by_id.get_mut(&slot.1) {
                        keys.remove(&k);
                        if keys.is_empty() {
                            by_id.remove(&slot.1);
                        }
                    }
                    if by_id.is_empty() {
                        self.ids.remove(&slot.0);
                    }
                }
            }
        }
    }

    fn set_profile(&mut self, t: &mut Touched, name: String, keys: ProfileKeys) {
        let deltas = if keys.tags.is_none() && keys.rules.is_none() {
            self.acl.remove_profile(&name)
        } else {
            let p = crate::model::Profile {
                name: name.clone(),
                tags: keys.tags.clone().unwrap_or_default(),
                rules: keys.rules.clone().unwrap_or_default(),
            };
            self.profiles.insert(name, keys);
            self.acl.upsert_profile(&p)
        };
        Self::push_acl(t, deltas);
    }

    /// Add (`up`) or take away a block's contribution to the per-host route indexes.
    fn index_block(&mut self, t: &mut Touched, b: &Block, up: bool) {
        if let Some(a) = &b.affinity {
            self.touch_routes(t, a);
            let set = self.host_blocks.entry(a.clone()).or_default();
            if up {
                set.insert(b.cidr);
            } else {
                set.remove(&b.cidr);
                if set.is_empty() {
                    self.host_blocks.remove(a);
                }
            }
        }
        for (ip, owner) in b.allocated() {
            if b.affinity.as_deref() == Some(owner.host.as_str()) {
                continue;
            }
            self.touch_routes(t, &owner.host);
            let map = self.host_ips.entry(owner.host.clone()).or_default();
            if up {
                *map.entry(ip).or_default() += 1;
            } else if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
            if map.is_empty() {
                self.host_ips.remove(&owner.host);
            }
        }
    }

    fn set_block(&mut self, t: &mut Touched, cidr: IpNet, block: Option<Block>) {
        if let Some(old) = self.blocks.remove(&cidr) {
            self.index_block(t, &old, false);
        }
        if let Some(new) = block {
            self.index_block(t, &new, true);
            self.blocks.insert(cidr, new);
        }
    }

    fn pool_list(&self) -> Vec<IpPool> {
        self.pools.values().cloned().collect()
    }

    fn routes(&self, host: &str) -> NodeRoutes {
        NodeRoutes {
            blocks: self
                .host_blocks
                .get(host)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
            host_routes: self
                .host_ips
                .get(host)
                .map(|m| m.keys().copied().collect())
                .unwrap_or_default(),
        }
    }

    fn compute_bgp(&self) -> BgpView {
        let g = &self.global_bgp;
        BgpView {
            config: BgpConfig {
                as_num: g.as_num.unwrap_or(AsNumber::DEFAULT),
                node_mesh: g.node_mesh.unwrap_or(true),
                global_peers: g.peers.values().cloned().collect(),
                timers: g.timers.unwrap_or_default(),
            },
            nodes: self
                .hosts
                .iter()
                .filter(|(_, h)| h.ipv4.is_some() || h.ipv6.is_some())
                .map(|(name, h)| Host {
                    name: name.clone(),
                    ipv4: h.ipv4,
                    ipv6: h.ipv6,
                    as_num: h.as_num,
                    peers: h.peers.values().cloned().collect(),
                    route_reflector: h.route_reflector.clone(),
                })
                .collect(),
        }
    }

    /// `node`'s whole state at the model's revision.
    pub fn snapshot(&self, node: &str) -> NodeState {
        let endpoints = self
            .ids
            .get(node)
            .map(|by_id| {
                by_id
                    .iter()
                    .filter_map(|(id, keys)| {
                        let ep = self.endpoints.get(keys.last()?)?;
                        Some((id.clone(), ep.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        NodeState {
            node: node.to_owned(),
            revision: self.revision,
            endpoints,
            acl: self.acl.snapshot(node),
            pools: self.pool_list(),
            routes: self.routes(node),
            bgp: self.bgp.clone(),
            config: self.effective_config(node),
        }
    }
}

/// A setting's value (plain text, as the original stored it); one that is not UTF-8 counts as
/// absent.
fn config_value(key: &str, value: &[u8]) -> Option<String> {
    String::from_utf8(value.to_vec())
        .map_err(|e| warn(key, "setting", e))
        .ok()
}

fn parse_endpoint(k: &EndpointKey, key: &str, value: &[u8]) -> Option<Endpoint> {
    serde_json::from_slice::<Value>(value)
        .map_err(|e| e.to_string())
        .and_then(|v| {
            Endpoint::from_etcd_value(
                &k.hostname,
                &k.orchestrator,
                &k.workload_id,
                &k.endpoint_id,
                &v,
            )
            .map_err(|e| e.to_string())
        })
        .map_err(|e| warn(key, "endpoint", e))
        .ok()
}
