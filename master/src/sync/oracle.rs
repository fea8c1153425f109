//! Test oracle: a node's state computed from scratch from the store, independently of the hub's
//! incremental model (a fresh [`AclCompiler`], [`IpamState::routes_for_host`], full listings), plus the
//! write helpers the hub tests share.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::IpNet;
use serde_json::{json, Value};

use super::{BgpView, NodeRoutes, NodeState, SyncMessage};
use crate::{
    acl::AclCompiler,
    ipam::{Block, IpamState, Owner},
    model::{
        AsNumber, BgpConfig, BgpPeer, BgpTimers, Endpoint, EndpointState, Host, IpPool, IpVersion,
        Profile, RouteReflector, Rules,
    },
    store::{
        keys::{
            block_prefix, host_workloads_prefix, pool_prefix, Key, BGP_AS_NUM, BGP_GLOBAL_PREFIX,
            BGP_HOST_PREFIX, BGP_NODE_MESH, BGP_TIMERS, CONFIG_PREFIX, HOST_PREFIX, PROFILE_PREFIX,
        },
        Store,
    },
};

fn parse_endpoint(key: &str, value: &[u8]) -> Option<Endpoint> {
    let Some(Key::Endpoint(k)) = Key::parse(key) else {
        return None;
    };
    let v: Value = serde_json::from_slice(value).ok()?;
    Endpoint::from_etcd_value(
        &k.hostname,
        &k.orchestrator,
        &k.workload_id,
        &k.endpoint_id,
        &v,
    )
    .ok()
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .trim()
        .trim_matches('"')
        .to_owned()
}

/// `node`'s state as a fresh scan of `store` gives it.
pub(crate) fn expected(store: &dyn Store, node: &str) -> NodeState {
    let revision = store.revision().expect("revision");
    let mut endpoints = BTreeMap::new();
    for kv in store.list(&host_workloads_prefix(node)).unwrap().kvs {
        if let Some(ep) = parse_endpoint(&kv.key, &kv.value) {
            endpoints.insert(ep.endpoint_id.clone(), ep);
        }
    }
    // Profiles, from their two keys.
    let mut profiles: BTreeMap<String, (Option<Vec<String>>, Option<Rules>)> = BTreeMap::new();
    for kv in store.list(PROFILE_PREFIX).unwrap().kvs {
        match Key::parse(&kv.key) {
            Some(Key::ProfileTags { profile }) => {
                profiles.entry(profile).or_default().0 = serde_json::from_slice(&kv.value).ok();
            }
            Some(Key::ProfileRules { profile }) => {
                let rules = serde_json::from_slice::<Value>(&kv.value)
                    .ok()
                    .and_then(|v| Rules::from_json(&v).ok());
                profiles.entry(profile).or_default().1 = rules;
            }
            _ => {}
        }
    }
    let mut acl = AclCompiler::new();
    for (name, (tags, rules)) in profiles {
        if tags.is_none() && rules.is_none() {
            continue;
        }
        acl.upsert_profile(&Profile {
            name,
            tags: tags.unwrap_or_default(),
            rules: rules.unwrap_or_default(),
        });
    }
    for kv in store.list(HOST_PREFIX).unwrap().kvs {
        if let Some(ep) = parse_endpoint(&kv.key, &kv.value) {
            acl.upsert_endpoint(&ep);
        }
    }
    let mut pools = Vec::new();
    for v in [IpVersion::V4, IpVersion::V6] {
        for kv in store.list(&pool_prefix(v)).unwrap().kvs {
            if let Ok(p) = serde_json::from_slice::<IpPool>(&kv.value) {
                pools.push(p);
            }
        }
    }
    let mut ipam = IpamState::default();
    for v in [IpVersion::V4, IpVersion::V6] {
        for kv in store.list(&block_prefix(v)).unwrap().kvs {
            let b: Block = serde_json::from_slice(&kv.value).expect("block");
            ipam.blocks.insert(b.cidr, b);
        }
    }
    let r = ipam.routes_for_host(node);
    NodeState {
        node: node.to_owned(),
        revision,
        endpoints,
        acl: acl.snapshot(node),
        pools,
        routes: NodeRoutes {
            blocks: r.blocks,
            host_routes: r.host_routes,
        },
        bgp: bgp_view(store),
        config: config(store, node),
    }
}

/// `node`'s effective settings: the cluster-wide keys, then the node's own over them.
fn config(store: &dyn Store, node: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for prefix in [
        CONFIG_PREFIX.to_owned(),
        format!("{HOST_PREFIX}{node}/config/"),
    ] {
        for kv in store.list(&prefix).unwrap().kvs {
            let name = match Key::parse(&kv.key) {
                Some(Key::Config { name } | Key::HostConfig { name, .. }) => name,
                _ => continue,
            };
            if let Ok(v) = String::from_utf8(kv.value) {
                out.insert(name, v);
            }
        }
    }
    out
}

fn bgp_view(store: &dyn Store) -> BgpView {
    let as_num = store
        .get(BGP_AS_NUM)
        .unwrap()
        .and_then(|kv| AsNumber::parse("as_num", &text(&kv.value)).ok())
        .unwrap_or(AsNumber::DEFAULT);
    let node_mesh = store
        .get(BGP_NODE_MESH)
        .unwrap()
        .and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        .and_then(|v| v.get("enabled").and_then(Value::as_bool))
        .unwrap_or(true);
    let timers = store
        .get(BGP_TIMERS)
        .unwrap()
        .and_then(|kv| serde_json::from_slice::<BgpTimers>(&kv.value).ok())
        .unwrap_or_default();
    let mut global_peers = Vec::new();
    for v in ["peer_v4/", "peer_v6/"] {
        for kv in store.list(&format!("{BGP_GLOBAL_PREFIX}{v}")).unwrap().kvs {
            if let Ok(p) = serde_json::from_slice::<BgpPeer>(&kv.value) {
                global_peers.push(p);
            }
        }
    }
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    let mut peers: BTreeMap<String, Vec<BgpPeer>> = BTreeMap::new();
    let mut reflectors: BTreeMap<String, RouteReflector> = BTreeMap::new();
    for kv in store.list(BGP_HOST_PREFIX).unwrap().kvs {
        let entry = |hosts: &mut BTreeMap<String, Host>, h: &str| {
            hosts.entry(h.to_owned()).or_insert_with(|| Host {
                name: h.to_owned(),
                ipv4: None,
                ipv6: None,
                as_num: None,
                peers: vec![],
                route_reflector: None,
            });
        };
        match Key::parse(&kv.key) {
            Some(Key::HostIp { host, version }) => {
                entry(&mut hosts, &host);
                let h = hosts.get_mut(&host).unwrap();
                let t = text(&kv.value);
                match version {
                    IpVersion::V4 => h.ipv4 = t.parse::<Ipv4Addr>().ok(),
                    IpVersion::V6 => h.ipv6 = t.parse::<Ipv6Addr>().ok(),
                }
            }
            Some(Key::HostAsNum { host }) => {
                entry(&mut hosts, &host);
                hosts.get_mut(&host).unwrap().as_num =
                    AsNumber::parse("as_num", &text(&kv.value)).ok();
            }
            Some(Key::HostPeer { host, .. }) => {
                if let Ok(p) = serde_json::from_slice(&kv.value) {
                    peers.entry(host).or_default().push(p);
                }
            }
            Some(Key::HostRouteReflector { host }) => {
                if let Ok(rr) = serde_json::from_slice(&kv.value) {
                    reflectors.insert(host, rr);
                }
            }
            _ => {}
        }
    }
    hosts.retain(|_, h| h.ipv4.is_some() || h.ipv6.is_some());
    for (name, list) in peers {
        if let Some(h) = hosts.get_mut(&name) {
            h.peers = list;
        }
    }
    for (name, rr) in reflectors {
        if let Some(h) = hosts.get_mut(&name) {
            h.route_reflector = Some(rr);
        }
    }
    BgpView {
        config: BgpConfig {
            as_num,
            node_mesh,
            global_peers,
            timers,
        },
        nodes: hosts.into_values().collect(),
    }
}

/// Fold messages into a state (starting from the default state).
pub(crate) fn fold<'a>(
    state: &mut NodeState,
    msgs: impl IntoIterator<Item = &'a SyncMessage>,
) -> usize {
    let mut n = 0;
    for m in msgs {
        state.apply(m);
        n += 1;
    }
    n
}

// ---- Writes straight to the store, in the API's encodings. ----

/// An endpoint value with these profiles and addresses.
pub(crate) fn endpoint(host: &str, id: &str, profiles: &[&str], ips: &[IpAddr]) -> Endpoint {
    let mut ep = Endpoint {
        hostname: host.into(),
        orchestrator: "docker".into(),
        workload_id: format!("w-{id}"),
        endpoint_id: id.into(),
        state: EndpointState::Active,
        name: "cali0123456789a".into(),
        mac: None,
        if_name: Some("eth1".into()),
        profile_ids: profiles.iter().map(|p| (*p).to_owned()).collect(),
        ipv4_nets: vec![],
        ipv6_nets: vec![],
        ipv4_gateway: None,
        ipv6_gateway: None,
    };
    for ip in ips {
        match ip {
            IpAddr::V4(a) => ep.ipv4_nets.push((*a).into()),
            IpAddr::V6(a) => ep.ipv6_nets.push((*a).into()),
        }
    }
    ep
}

pub(crate) fn put_endpoint(store: &dyn Store, ep: &Endpoint) {
    store
        .put(
            &Key::endpoint(ep).path(),
            ep.etcd_value().to_string().as_bytes(),
        )
        .unwrap();
}

pub(crate) fn delete_endpoint(store: &dyn Store, ep: &Endpoint) {
    store.delete(&Key::endpoint(ep).path()).unwrap();
}

pub(crate) fn put_profile(store: &dyn Store, p: &Profile) {
    let tags = Key::ProfileTags {
        profile: p.name.clone(),
    };
    let rules = Key::ProfileRules {
        profile: p.name.clone(),
    };
    store
        .put(&tags.path(), json!(p.tags).to_string().as_bytes())
        .unwrap();
    let r = json!({"id": p.name, "inbound_rules": p.rules.inbound_rules, "outbound_rules": p.rules.outbound_rules});
    store.put(&rules.path(), r.to_string().as_bytes()).unwrap();
}

pub(crate) fn put_pool(store: &dyn Store, cidr: &str) {
    let p = IpPool::new(cidr.parse().unwrap());
    store
        .put(&p.etcd_key(), &serde_json::to_vec(&p).unwrap())
        .unwrap();
}

pub(crate) fn put_host(store: &dyn Store, name: &str, ipv4: &str) {
    let key = Key::HostIp {
        host: name.into(),
        version: IpVersion::V4,
    };
    store.put(&key.path(), ipv4.as_bytes()).unwrap();
}

/// Assign `ip` (from `pools`) to `host` as IPAM does and write the block.
pub(crate) fn assign(store: &dyn Store, pools: &[&str], ip: &str, host: &str) {
    let pools: Vec<IpPool> = pools
        .iter()
        .map(|p| IpPool::new(p.parse::<IpNet>().unwrap()))
        .collect();
    let mut ipam = IpamState::default();
    for v in [IpVersion::V4, IpVersion::V6] {
        for kv in store.list(&block_prefix(v)).unwrap().kvs {
            let b: Block = serde_json::from_slice(&kv.value).unwrap();
            ipam.blocks.insert(b.cidr, b);
        }
    }
    let a = ipam
        .assign_ip(
            &pools,
            ip.parse().unwrap(),
            Owner::new(format!("h-{ip}"), host),
        )
        .expect("assign");
    let b = a.change.after.expect("block");
    store
        .put(&b.etcd_key(), &serde_json::to_vec(&b).unwrap())
        .unwrap();
}
