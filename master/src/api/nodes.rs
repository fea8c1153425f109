//! The node routes: register or update a node, list, show, remove; per-node BGP peers; node status.
//!
//! Role: the store side of hosts, under the original's keys and plain-text values:
//! `/calico/bgp/v1/host/<h>/ip_addr_v4` = `172.17.8.101`, `…/ip_addr_v6` = `fd00::1`, `…/as_num` =
//! `64512` (absent: the default node AS), `…/peer_v4/<ip>` = `{"ip","as_num"}`, and (this project's
//! addition) `…/route_reflector` = `{"cluster_id": "<IPv4>", "clients": ["<IP>", …]}` when the node is a
//! BGP route reflector (`clients` empty: every other node that is not itself a reflector). A node
//! exists when one of its address keys does. Status reports (not in the original) live at
//! `/calico/felix/v1/host/<h>/status` (where later Calico kept Felix's status), as the JSON the node
//! sent plus `"reported_at"` (Unix seconds, set by the master). Inputs: the store, request JSON, path
//! segments. Outputs: JSON answers or an [`ApiError`].

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{json, Map, Value};

use super::{bgp, endpoints, ipam, ApiError, CAS_RETRIES};
use crate::{
    model::{validate_hostname, AsNumber, Host, IpVersion, RouteReflector},
    store::{
        keys::{endpoint_index_key, host_bgp_prefix, Key, BGP_HOST_PREFIX, HOST_PREFIX},
        Compare, Op, OpResult, Store, Txn,
    },
};

/// Where a node's status report is kept.
pub(crate) fn status_key(host: &str) -> String {
    format!("/calico/felix/v1/host/{host}/status")
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(
        "name",
        format!("Node {name} not found; see `calicoctl node show`"),
    )
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .trim()
        .trim_matches('"')
        .to_owned()
}

/// Every node, by name (peers included).
fn all(store: &dyn Store) -> Result<BTreeMap<String, Host>, ApiError> {
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    let mut peers: BTreeMap<String, Vec<crate::model::BgpPeer>> = BTreeMap::new();
    let mut reflectors: BTreeMap<String, RouteReflector> = BTreeMap::new();
    for kv in store.list(BGP_HOST_PREFIX)?.kvs {
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
                let t = text(&kv.value);
                if let Some(h) = hosts.get_mut(&host) {
                    match version {
                        IpVersion::V4 => h.ipv4 = t.parse::<Ipv4Addr>().ok(),
                        IpVersion::V6 => h.ipv6 = t.parse::<Ipv6Addr>().ok(),
                    }
                }
            }
            Some(Key::HostAsNum { host }) => {
                entry(&mut hosts, &host);
                if let Some(h) = hosts.get_mut(&host) {
                    h.as_num = AsNumber::parse("as_num", &text(&kv.value)).ok();
                }
            }
            Some(Key::HostPeer { host, .. }) => match serde_json::from_slice(&kv.value) {
                Ok(p) => peers.entry(host).or_default().push(p),
                Err(e) => tracing::warn!(key = %kv.key, error = %e, "skipping a malformed peer"),
            },
            Some(Key::HostRouteReflector { host }) => match serde_json::from_slice(&kv.value) {
                Ok(rr) => {
                    reflectors.insert(host, rr);
                }
                Err(e) => {
                    tracing::warn!(key = %kv.key, error = %e, "skipping a malformed route reflector")
                }
            },
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
    Ok(hosts)
}

fn get_host(store: &dyn Store, name: &str) -> Result<Host, ApiError> {
    validate_hostname("name", name)?;
    all(store)?.remove(name).ok_or_else(|| not_found(name))
}

fn host_json(h: &Host, default_as: AsNumber) -> Value {
    json!({
        "name": h.name,
        "ip_addr_v4": h.ipv4,
        "ip_addr_v6": h.ipv6,
        "as_num": h.as_num,
        "effective_as": h.as_num.unwrap_or(default_as),
        "peers": bgp::public_peers(&h.peers),
        "route_reflector": h.route_reflector,
    })
}

/// `GET /v1/nodes[?detailed=true]`; detailed adds each node's endpoint count and status summary.
pub(crate) fn list(store: &dyn Store, detailed: bool) -> Result<Value, ApiError> {
    let default_as = bgp::default_as(store)?;
    let hosts = all(store)?;
    let eps = if detailed {
        endpoints::all(store, None)?
    } else {
        vec![]
    };
    let mut out = Vec::new();
    for h in hosts.values() {
        let mut v = host_json(h, default_as);
        if detailed {
            let count = eps.iter().filter(|e| e.hostname == h.name).count();
            let status = status_value(store, &h.name)?;
            if let Some(obj) = v.as_object_mut() {
                obj.insert("endpoints".into(), json!(count));
                obj.insert(
                    "state".into(),
                    status
                        .as_ref()
                        .map_or(json!("unknown"), |s| s["state"].clone()),
                );
                obj.insert(
                    "reported_at".into(),
                    status.map_or(Value::Null, |s| s["reported_at"].clone()),
                );
            }
        }
        out.push(v);
    }
    Ok(Value::Array(out))
}

/// `GET /v1/nodes/<name>`.
pub(crate) fn get(store: &dyn Store, name: &str) -> Result<Value, ApiError> {
    let h = get_host(store, name)?;
    Ok(host_json(&h, bgp::default_as(store)?))
}

/// `PUT /v1/nodes/<name> {"ip_addr_v4"?, "ip_addr_v6"?, "as_num"?}`: register or replace the node's
/// addresses and AS (an absent or null member is removed). Returns (created?, answer).
pub(crate) fn put(store: &dyn Store, name: &str, body: &Value) -> Result<(bool, Value), ApiError> {
    validate_hostname("name", name)?;
    let obj = body.as_object().ok_or_else(|| {
        ApiError::bad_request(
            "body",
            "expected {\"ip_addr_v4\": \"172.17.8.101\", \"as_num\": 64512}",
        )
    })?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "ip_addr_v4" | "ip_addr_v6" | "as_num"))
    {
        return Err(ApiError::bad_request(
            k,
            "unknown field; a node has ip_addr_v4, ip_addr_v6 and as_num",
        ));
    }
    let addr = |f: &str| -> Result<Option<IpAddr>, ApiError> {
        match obj.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(f, format!("`{s}` is not an IP address"))),
            Some(_) => Err(ApiError::bad_request(f, "must be a string")),
        }
    };
    let ipv4 = match addr("ip_addr_v4")? {
        None => None,
        Some(IpAddr::V4(a)) => Some(a),
        Some(other) => {
            return Err(ApiError::bad_request(
                "ip_addr_v4",
                format!("{other} is not an IPv4 address"),
            ))
        }
    };
    let ipv6 = match addr("ip_addr_v6")? {
        None => None,
        Some(IpAddr::V6(a)) => Some(a),
        Some(other) => {
            return Err(ApiError::bad_request(
                "ip_addr_v6",
                format!("{other} is not an IPv6 address"),
            ))
        }
    };
    let as_num = match obj.get("as_num") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(AsNumber::parse("as_num", &n.to_string())?),
        Some(Value::String(s)) => Some(AsNumber::parse("as_num", s)?),
        Some(_) => return Err(ApiError::bad_request("as_num", "must be a number")),
    };
    let mut host = Host {
        name: name.to_owned(),
        ipv4,
        ipv6,
        as_num,
        peers: vec![],
        route_reflector: None,
    };
    let existing = get_host(store, name).ok();
    if let Some(e) = &existing {
        host.peers.clone_from(&e.peers);
    }
    host.validate()?;
    // The reflector role is kept, but not re-validated: a node re-registering must not be refused.
    host.route_reflector = existing.and_then(|e| e.route_reflector);
    let keys = [
        (
            Key::HostIp {
                host: name.into(),
                version: IpVersion::V4,
            }
            .path(),
            ipv4.map(|a| a.to_string()),
        ),
        (
            Key::HostIp {
                host: name.into(),
                version: IpVersion::V6,
            }
            .path(),
            ipv6.map(|a| a.to_string()),
        ),
        (
            Key::HostAsNum { host: name.into() }.path(),
            as_num.map(|a| a.to_string()),
        ),
    ];
    for _ in 0..CAS_RETRIES {
        let mut txn = Txn::new();
        let mut existed = false;
        let mut changed = false;
        for (key, want) in &keys {
            let cur = store.get(key)?;
            existed |= cur.is_some() && !key.ends_with("as_num");
            txn = txn.when(Compare::mod_revision(
                key,
                cur.as_ref().map_or(0, |kv| kv.mod_revision),
            ));
            match (want, &cur) {
                (Some(w), Some(kv)) if kv.value == w.as_bytes() => {}
                (Some(w), _) => {
                    changed = true;
                    txn = txn.and_then(Op::put(key, w.as_bytes()));
                }
                (None, Some(_)) => {
                    changed = true;
                    txn = txn.and_then(Op::delete(key));
                }
                (None, None) => {}
            }
        }
        if !changed {
            return Ok((
                false,
                json!({"message": format!("Node {name} is unchanged"), "changed": false}),
            ));
        }
        if store.txn(txn)?.succeeded {
            let verb = if existed { "Updated" } else { "Registered" };
            return Ok((
                !existed,
                json!({"message": format!("{verb} node {name}"), "changed": true, "node": host_json(&host, bgp::default_as(store)?)}),
            ));
        }
    }
    Err(ApiError::Contended(format!("node {name}")))
}

/// `DELETE /v1/nodes/<name>[?force=true]`: refused (409, listing them) while the node has endpoints;
/// forced, its endpoints are removed (their addresses released) first. The node's BGP keys, status and
/// host config go, and its IPAM blocks lose their affinity (empty ones are deleted).
pub(crate) fn remove(
    store: &dyn Store,
    ipam_lock: &Mutex<()>,
    name: &str,
    force: bool,
) -> Result<Value, ApiError> {
    get_host(store, name)?;
    let eps = endpoints::all_kvs(store, Some(name))?;
    if !eps.is_empty() && !force {
        let ids: Vec<&str> = eps.iter().map(|(e, _)| e.endpoint_id.as_str()).collect();
        return Err(ApiError::Conflict {
            message: format!(
                "Node {name} still has endpoint(s) {}; remove them or use --force",
                ids.join(", ")
            ),
            field: Some("name".into()),
            details: Some(json!({"endpoints": ids})),
        });
    }
    for (ep, kv) in &eps {
        endpoints::delete_and_release(store, ipam_lock, ep, kv.mod_revision)?;
    }
    let resp = store.txn(
        Txn::new()
            .and_then(Op::delete_prefix(host_bgp_prefix(name)))
            .and_then(Op::delete_prefix(format!("{HOST_PREFIX}{name}/")))
            .and_then(Op::delete(status_key(name))),
    )?;
    // Endpoints registered since the listing above went with the prefix: drop their index entries
    // (each only while it still names the endpoint removed).
    for r in resp.results {
        let OpResult::Delete { deleted } = r else {
            continue;
        };
        for kv in deleted {
            if let Some(Key::Endpoint(k)) = Key::parse(&kv.key) {
                let entry = endpoint_index_key(&k.endpoint_id);
                store.txn(
                    Txn::new()
                        .when(Compare::value(&entry, kv.key.as_bytes()))
                        .and_then(Op::delete(entry)),
                )?;
            }
        }
    }
    let _guard = ipam::lock(ipam_lock);
    for _ in 0..CAS_RETRIES {
        let loaded = ipam::load(store)?;
        let changes = loaded.state.release_host_affinity(name);
        let mut all_done = true;
        for c in &changes {
            all_done &= store.txn(ipam::cas_txn(c, loaded.rev(&c.cidr))?)?.succeeded;
        }
        if all_done {
            return Ok(json!({
                "message": format!("Removed node {name}"),
                "changed": true,
                "endpoints_removed": eps.len(),
            }));
        }
    }
    Err(ApiError::Contended(format!(
        "the IPAM blocks of node {name}"
    )))
}

fn route_reflector_body(host: &Host, body: &Value) -> Result<RouteReflector, ApiError> {
    let name = &host.name;
    let obj = body.as_object().ok_or_else(|| {
        ApiError::bad_request(
            "body",
            "expected {\"cluster_id\"?: \"172.17.8.101\", \"clients\"?: [\"172.17.8.102\", …]}",
        )
    })?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "cluster_id" | "clients"))
    {
        return Err(ApiError::bad_request(
            k,
            "unknown field; a route reflector has cluster_id and clients",
        ));
    }
    let cluster_id = match obj.get("cluster_id") {
        None | Some(Value::Null) => host.ipv4.ok_or_else(|| {
            ApiError::bad_request(
                "cluster_id",
                format!("node {name} has no IPv4 address to use as cluster id; give cluster_id"),
            )
        })?,
        Some(Value::String(s)) => s.parse::<Ipv4Addr>().map_err(|_| {
            ApiError::bad_request("cluster_id", format!("`{s}` is not an IPv4 address"))
        })?,
        Some(v) => {
            return Err(ApiError::bad_request(
                "cluster_id",
                format!("{v} is not an IPv4 address"),
            ))
        }
    };
    let clients = match obj.get("clients") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(list)) => list
            .iter()
            .map(|c| {
                c.as_str()
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    .ok_or_else(|| {
                        ApiError::bad_request("clients", format!("{c} is not an IP address"))
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "clients",
                "must be a list of IP addresses",
            ))
        }
    };
    Ok(RouteReflector {
        cluster_id,
        clients,
    })
}

fn describe_clients(rr: &RouteReflector) -> String {
    if rr.clients.is_empty() {
        "every other node that is not a reflector".to_owned()
    } else {
        let list: Vec<String> = rr.clients.iter().map(ToString::to_string).collect();
        list.join(", ")
    }
}

/// The keys whose revisions make a node exist, for the compare of a write that needs the node.
fn node_compares(store: &dyn Store, name: &str, mut txn: Txn) -> Result<Txn, ApiError> {
    for version in [IpVersion::V4, IpVersion::V6] {
        let key = Key::HostIp {
            host: name.into(),
            version,
        }
        .path();
        let rev = store.get(&key)?.map_or(0, |kv| kv.mod_revision);
        txn = txn.when(Compare::mod_revision(&key, rev));
    }
    Ok(txn)
}

/// `PUT /v1/nodes/<name>/route_reflector {"cluster_id"?, "clients"?}`: make the node a BGP route
/// reflector (or change its settings). `cluster_id` defaults to the node's IPv4 address; `clients`
/// empty or absent means every other node that is not itself a reflector. Returns (created?, answer).
pub(crate) fn put_route_reflector(
    store: &dyn Store,
    name: &str,
    body: &Value,
) -> Result<(bool, Value), ApiError> {
    let key = Key::HostRouteReflector { host: name.into() }.path();
    for _ in 0..CAS_RETRIES {
        // Read first, so the compare covers everything the decision below saw.
        let cur = store.get(&key)?;
        let mut host = get_host(store, name)?;
        let rr = route_reflector_body(&host, body)?;
        let before = host.route_reflector.replace(rr.clone());
        host.validate()?;
        if before.as_ref() == Some(&rr) {
            return Ok((
                false,
                json!({"message": format!("Node {name} is already a route reflector with these settings"), "changed": false, "node": host_json(&host, bgp::default_as(store)?)}),
            ));
        }
        let value = serde_json::to_vec(&rr)
            .map_err(|e| ApiError::Internal(format!("cannot encode the route reflector: {e}")))?;
        let txn = Txn::new()
            .when(Compare::mod_revision(
                &key,
                cur.as_ref().map_or(0, |kv| kv.mod_revision),
            ))
            .and_then(Op::put(&key, value));
        if store.txn(node_compares(store, name, txn)?)?.succeeded {
            let what = if before.is_some() {
                format!("Updated route reflector {name}")
            } else {
                format!("Node {name} is now a route reflector")
            };
            let message = format!(
                "{what} (cluster id {}, clients: {})",
                rr.cluster_id,
                describe_clients(&rr)
            );
            return Ok((
                before.is_none(),
                json!({"message": message, "changed": true, "node": host_json(&host, bgp::default_as(store)?)}),
            ));
        }
    }
    Err(ApiError::Contended(format!("node {name}")))
}

/// `DELETE /v1/nodes/<name>/route_reflector`: the node stops reflecting (200, `"changed": false`, when
/// it was not a reflector).
pub(crate) fn remove_route_reflector(store: &dyn Store, name: &str) -> Result<Value, ApiError> {
    let host = get_host(store, name)?;
    let key = Key::HostRouteReflector { host: name.into() }.path();
    if store.get(&key)?.is_none() {
        return Ok(
            json!({"message": format!("Node {name} is not a route reflector"), "changed": false}),
        );
    }
    store.delete(&key)?;
    let mut host = host;
    host.route_reflector = None;
    Ok(json!({
        "message": format!("Node {name} is no longer a route reflector"),
        "changed": true,
        "node": host_json(&host, bgp::default_as(store)?),
    }))
}

/// `GET /v1/nodes/<name>/peers[?version=4|6]`.
pub(crate) fn peers(
    store: &dyn Store,
    name: &str,
    version: Option<&str>,
) -> Result<Value, ApiError> {
    get_host(store, name)?;
    let v = bgp::version_param(version)?;
    Ok(bgp::public_peers(&bgp::list_peers(
        store,
        &host_bgp_prefix(name),
        v,
    )?))
}

/// `POST /v1/nodes/<name>/peers {"ip","as_num",…}`. Returns (created?, answer).
pub(crate) fn add_peer(
    store: &dyn Store,
    name: &str,
    body: &Value,
) -> Result<(bool, Value), ApiError> {
    let host = get_host(store, name)?;
    let peer = bgp::peer_from_body(body)?;
    if Some(peer.ip) == host.ipv4.map(IpAddr::V4) || Some(peer.ip) == host.ipv6.map(IpAddr::V6) {
        return Err(ApiError::bad_request(
            "ip",
            format!(
                "{} is node {name}'s own address; a node cannot peer with itself",
                peer.ip
            ),
        ));
    }
    let key = Key::HostPeer {
        host: name.into(),
        ip: peer.ip,
    };
    bgp::put_peer(store, &key, &peer, &format!("node {name}"))
}

/// `DELETE /v1/nodes/<name>/peers/<ip>`.
pub(crate) fn remove_peer(store: &dyn Store, name: &str, ip: &str) -> Result<Value, ApiError> {
    get_host(store, name)?;
    let ip = ipam::parse_ip(ip)?;
    bgp::delete_peer(
        store,
        &Key::HostPeer {
            host: name.into(),
            ip,
        },
        ip,
        &format!("node {name}"),
    )
}

fn status_value(store: &dyn Store, name: &str) -> Result<Option<Value>, ApiError> {
    match store.get(&status_key(name))? {
        None => Ok(None),
        Some(kv) => Ok(Some(serde_json::from_slice(&kv.value).map_err(|e| {
            ApiError::Internal(format!("the stored status of {name} is malformed: {e}"))
        })?)),
    }
}

fn count(obj: &Map<String, Value>, f: &str, ctx: &str) -> Result<u64, ApiError> {
    match obj.get(f) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v.as_u64().ok_or_else(|| {
            ApiError::bad_request(f, format!("{ctx}: {v} is not a count (0 or more)"))
        }),
    }
}

fn opt_str(obj: &Map<String, Value>, f: &str, ctx: &str) -> Result<Value, ApiError> {
    match obj.get(f) {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::String(s)) => Ok(json!(s)),
        Some(v) => Err(ApiError::bad_request(
            f,
            format!("{ctx}: {v} is not a string"),
        )),
    }
}

/// `PUT /v1/nodes/<name>/status`: a node's report, normalised and stamped.
/// `{"state"?, "felix": {"programmed","failed","errors"?,"version"?}, "bgp": [{"peer","asn","type","state","since",
/// "routes_received","routes_accepted","routes_advertised"}]}`; type is mesh, global or node.
pub(crate) fn put_status(store: &dyn Store, name: &str, body: &Value) -> Result<Value, ApiError> {
    get_host(store, name)?;
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("body", "expected {\"felix\": {…}, \"bgp\": […]}"))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "state" | "felix" | "bgp"))
    {
        return Err(ApiError::bad_request(
            k,
            "unknown field; a status has state, felix and bgp",
        ));
    }
    let empty = Map::new();
    let felix = match obj.get("felix") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(f)) => f,
        Some(_) => return Err(ApiError::bad_request("felix", "must be an object")),
    };
    let errors = match felix.get("errors") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(l)) if l.iter().all(Value::is_string) => l.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "errors",
                "felix.errors must be a list of messages",
            ))
        }
    };
    let felix = json!({
        "programmed": count(felix, "programmed", "felix")?,
        "failed": count(felix, "failed", "felix")?,
        "errors": errors,
        "version": opt_str(felix, "version", "felix")?,
    });
    let mut sessions = Vec::new();
    let list = match obj.get("bgp") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(l)) => l.as_slice(),
        Some(_) => return Err(ApiError::bad_request("bgp", "must be a list of sessions")),
    };
    for (i, s) in list.iter().enumerate() {
        let ctx = format!("bgp session {}", i + 1);
        let s = s
            .as_object()
            .ok_or_else(|| ApiError::bad_request("bgp", format!("{ctx} is not an object")))?;
        let peer = match s.get("peer") {
            Some(Value::String(p)) => p.parse::<IpAddr>().map_err(|_| {
                ApiError::bad_request("peer", format!("{ctx}: `{p}` is not an IP address"))
            })?,
            _ => {
                return Err(ApiError::bad_request(
                    "peer",
                    format!("{ctx}: the peer's address is required"),
                ))
            }
        };
        let asn = match s.get("asn") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                AsNumber::parse(
                    "asn",
                    v.as_str().map_or(v.to_string(), str::to_owned).as_str(),
                )
                .map_err(|e| ApiError::bad_request("asn", format!("{ctx}: {}", e.reason)))?,
            ),
        };
        let kind = s.get("type").and_then(Value::as_str).unwrap_or("");
        if !matches!(kind, "mesh" | "global" | "node") {
            return Err(ApiError::bad_request(
                "type",
                format!("{ctx}: type must be mesh, global or node"),
            ));
        }
        let state = match s.get("state") {
            Some(Value::String(st)) if !st.is_empty() => st.clone(),
            _ => {
                return Err(ApiError::bad_request(
                    "state",
                    format!("{ctx}: the session state is required"),
                ))
            }
        };
        sessions.push(json!({
            "peer": peer.to_string(), "asn": asn, "type": kind, "state": state,
            "since": opt_str(s, "since", &ctx)?,
            "routes_received": count(s, "routes_received", &ctx)?,
            "routes_accepted": count(s, "routes_accepted", &ctx)?,
            "routes_advertised": count(s, "routes_advertised", &ctx)?,
        }));
    }
    let state = match obj.get("state") {
        None | Some(Value::Null) => "running".to_owned(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(v) => {
            return Err(ApiError::bad_request(
                "state",
                format!("{v} is not a state"),
            ))
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let report =
        json!({"node": name, "state": state, "reported_at": now, "felix": felix, "bgp": sessions});
    store.put(&status_key(name), report.to_string().as_bytes())?;
    Ok(
        json!({"message": format!("Status of node {name} recorded"), "changed": true, "status": report}),
    )
}

/// `GET /v1/nodes/<name>/status`; 404 when the node never reported.
pub(crate) fn status(store: &dyn Store, name: &str) -> Result<Value, ApiError> {
    get_host(store, name)?;
    status_value(store, name)?.ok_or_else(|| {
        ApiError::not_found(
            "name",
            format!("Node {name} has not reported its status yet; is calico-node running there?"),
        )
    })
}
