//! The endpoint routes: create or update, list, show, delete (releasing the addresses), and the
//! endpoint's profile list.
//!
//! Role: the store side of workload endpoints, stored at the original's
//! `/calico/v1/host/<h>/workload/<orch>/<workload>/endpoint/<id>` with the original's value. Inputs: the
//! store, request JSON, path segments. Outputs: JSON answers or an [`ApiError`].
//!
//! Addresses: an endpoint's IPs must already be assigned through IPAM (`POST /v1/ipam/assign`) to its
//! workload (handle = workload id) on its host; a write naming a free or foreign address is refused
//! (400, naming `ipv4_nets`/`ipv6_nets`). This is the Docker proxy's order: reserve at container create,
//! register the endpoint at start. The write compares the mod revisions of the blocks holding those
//! addresses, so a concurrent release cannot slip in between check and write. Deleting an endpoint
//! releases the addresses its workload holds for it.
//!
//! Endpoint ids are unique across the cluster (the CLI names endpoints by id alone): a write whose id
//! already exists under another host or workload is refused (409). Both that check and the lookup by id
//! go through the endpoint-id index (`endpoint_index.rs`: `/calico/v1/index/endpoint/<id>` → the
//! endpoint's key), written and deleted in the endpoint's own transaction, so they cost a point read or
//! two whatever the cluster's size; a create compares the index entry, so two creates of one id never
//! both succeed. The addresses are checked against the blocks holding them only (a point read each).

use std::{net::IpAddr, sync::Mutex};

use serde_json::{json, Map, Value};

use super::{
    endpoint_index::{self, EndpointIndex},
    ipam, ApiError, CAS_RETRIES,
};
use crate::{
    model::{interface_name_for, validate_hostname, validate_name, Endpoint},
    store::{
        keys::{endpoint_index_key, host_workloads_prefix, Key, HOST_PREFIX, PROFILE_PREFIX},
        Compare, KeyValue, Op, Store, Txn,
    },
};

/// Every endpoint (of `host` only, when given) with its stored key-value; malformed values are skipped
/// with a warning.
pub(crate) fn all_kvs(
    store: &dyn Store,
    host: Option<&str>,
) -> Result<Vec<(Endpoint, KeyValue)>, ApiError> {
    let prefix = match host {
        Some(h) => host_workloads_prefix(h),
        None => HOST_PREFIX.to_owned(),
    };
    let mut out = Vec::new();
    for kv in store.list(&prefix)?.kvs {
        let Some(Key::Endpoint(k)) = Key::parse(&kv.key) else {
            continue;
        };
        let parsed = serde_json::from_slice::<Value>(&kv.value)
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
            });
        match parsed {
            Ok(ep) => out.push((ep, kv)),
            Err(e) => tracing::warn!(key = %kv.key, error = %e, "skipping a malformed endpoint"),
        }
    }
    Ok(out)
}

/// Every endpoint (of `host` only, when given).
pub(crate) fn all(store: &dyn Store, host: Option<&str>) -> Result<Vec<Endpoint>, ApiError> {
    Ok(all_kvs(store, host)?.into_iter().map(|(e, _)| e).collect())
}

/// An endpoint as the API shows it: every field, key fields included.
pub(crate) fn endpoint_json(ep: &Endpoint) -> Value {
    let mut v = ep.etcd_value();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("hostname".into(), json!(ep.hostname));
        obj.insert("orchestrator".into(), json!(ep.orchestrator));
        obj.insert("workload_id".into(), json!(ep.workload_id));
        obj.insert("endpoint_id".into(), json!(ep.endpoint_id));
    }
    v
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "endpoint_id",
        format!("Endpoint {id} not found; see `calicoctl endpoint show`"),
    )
}

/// The endpoint stored in `kv`.
fn parse(kv: &KeyValue) -> Result<Endpoint, ApiError> {
    let Some(Key::Endpoint(k)) = Key::parse(&kv.key) else {
        return Err(ApiError::Internal(format!(
            "{} is not an endpoint key",
            kv.key
        )));
    };
    let v: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::Internal(format!("the stored endpoint {} is not JSON: {e}", kv.key))
    })?;
    Ok(Endpoint::from_etcd_value(
        &k.hostname,
        &k.orchestrator,
        &k.workload_id,
        &k.endpoint_id,
        &v,
    )?)
}

/// The endpoint with id `id`, with its stored key-value (through the index).
fn find(
    store: &dyn Store,
    index: &EndpointIndex,
    id: &str,
) -> Result<(Endpoint, KeyValue), ApiError> {
    ipam::validate_handle("endpoint_id", id)?;
    index.ensure(store)?;
    match endpoint_index::lookup(store, id)?.endpoint {
        Some(kv) => Ok((parse(&kv)?, kv)),
        None => Err(not_found(id)),
    }
}

/// Whether profile `name` exists.
fn profile_exists(store: &dyn Store, name: &str) -> Result<bool, ApiError> {
    Ok(!store
        .list(&format!("{PROFILE_PREFIX}{name}/"))?
        .kvs
        .is_empty())
}

fn check_profiles(store: &dyn Store, profiles: &[String]) -> Result<(), ApiError> {
    for p in profiles {
        validate_name("profile_ids", p)?;
        if !profile_exists(store, p)? {
            return Err(ApiError::bad_request(
                "profile_ids",
                format!("Profile {p} not found; create it with `calicoctl profile add {p}`"),
            ));
        }
    }
    Ok(())
}

/// An endpoint from a request body: the four key fields plus the original's value fields; `name`
/// defaults to `cali` + the first 11 hex digits of the endpoint id.
fn from_body(body: &Value) -> Result<Endpoint, ApiError> {
    let obj: &Map<String, Value> = body.as_object().ok_or_else(|| {
        ApiError::bad_request("body", "expected an endpoint object (hostname, orchestrator, workload_id, endpoint_id, ipv4_nets, …)")
    })?;
    const KNOWN: [&str; 13] = [
        "hostname",
        "orchestrator",
        "workload_id",
        "endpoint_id",
        "state",
        "name",
        "mac",
        "container:if_name",
        "profile_ids",
        "ipv4_nets",
        "ipv6_nets",
        "ipv4_gateway",
        "ipv6_gateway",
    ];
    if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad_request(
            k,
            format!("unknown field; an endpoint has {}", KNOWN.join(", ")),
        ));
    }
    let key = |f: &str| -> Result<String, ApiError> {
        match obj.get(f) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(ApiError::bad_request(f, "must be a string")),
            None => Err(ApiError::bad_request(f, "is required")),
        }
    };
    let (host, orch, workload, id) = (
        key("hostname")?,
        key("orchestrator")?,
        key("workload_id")?,
        key("endpoint_id")?,
    );
    let mut value = obj.clone();
    if !value.contains_key("name") {
        let name = interface_name_for(&id).ok_or_else(|| {
            ApiError::bad_request(
                "name",
                "is required when the endpoint id does not start with 11 hex digits",
            )
        })?;
        value.insert("name".into(), json!(name));
    }
    // Type errors name the field: check each value field alone first.
    for (f, v) in &value {
        if KNOWN[..4].contains(&f.as_str()) {
            continue;
        }
        let mut probe = Map::new();
        probe.insert(f.clone(), v.clone());
        probe.insert("name".into(), value["name"].clone());
        Endpoint::from_etcd_value(&host, &orch, &workload, &id, &Value::Object(probe))
            .map_err(|e| ApiError::bad_request(f, e.reason))?;
    }
    Ok(Endpoint::from_etcd_value(
        &host,
        &orch,
        &workload,
        &id,
        &Value::Object(value),
    )?)
}

/// The addresses of an endpoint.
fn ips(ep: &Endpoint) -> Vec<IpAddr> {
    ep.ipv4_nets
        .iter()
        .map(|n| IpAddr::V4(n.addr()))
        .chain(ep.ipv6_nets.iter().map(|n| IpAddr::V6(n.addr())))
        .collect()
}

/// Write `ep` if its key is still at `rev` (0: absent) and the blocks holding its addresses are
/// unchanged since they were checked; with `index_rev`, also point the id's index entry at it if the
/// entry is still at that revision (0: absent). `Ok(false)`: someone else wrote first.
fn write(
    store: &dyn Store,
    ep: &Endpoint,
    rev: u64,
    index_rev: Option<u64>,
) -> Result<bool, ApiError> {
    let addresses = ips(ep);
    let loaded = ipam::load_blocks_of(store, &addresses)?;
    loaded.state.check_endpoint_addresses(ep)?;
    let key = Key::endpoint(ep).path();
    let value =
        serde_json::to_vec(&ep.etcd_value()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut txn = Txn::new().when(Compare::mod_revision(&key, rev));
    let mut blocks: Vec<_> = addresses
        .into_iter()
        .filter_map(|ip| loaded.state.block_containing(ip).map(|b| b.cidr))
        .collect();
    blocks.sort();
    blocks.dedup();
    for cidr in blocks {
        txn = txn.when(Compare::mod_revision(
            crate::ipam::Block::etcd_key_for(&cidr),
            loaded.rev(&cidr),
        ));
    }
    if let Some(irev) = index_rev {
        let entry = endpoint_index_key(&ep.endpoint_id);
        txn = txn
            .when(Compare::mod_revision(&entry, irev))
            .and_then(Op::put(entry, key.as_bytes()));
    }
    Ok(store.txn(txn.and_then(Op::put(key, value)))?.succeeded)
}

/// `POST /v1/endpoints`: create or replace an endpoint. Returns (created?, answer).
pub(crate) fn put(
    store: &dyn Store,
    index: &EndpointIndex,
    body: &Value,
) -> Result<(bool, Value), ApiError> {
    let ep = from_body(body)?;
    ep.validate()?;
    check_profiles(store, &ep.profile_ids)?;
    index.ensure(store)?;
    let key = Key::endpoint(&ep).path();
    for _ in 0..CAS_RETRIES {
        let rev = store.get(&key)?.map_or(0, |kv| kv.mod_revision);
        let found = endpoint_index::lookup(store, &ep.endpoint_id)?;
        let index_rev = match &found.endpoint {
            // Another endpoint has the id.
            Some(other) if other.key != key => {
                let other = parse(other)?;
                return Err(ApiError::conflict(
                    "endpoint_id",
                    format!(
                        "endpoint id {} is already used by workload {} on host {}",
                        ep.endpoint_id, other.workload_id, other.hostname
                    ),
                ));
            }
            // The entry names this endpoint already.
            Some(_) => None,
            // No entry, or a stale one: (re)write it, comparing what was read.
            None => Some(found.entry_revision),
        };
        if write(store, &ep, rev, index_rev)? {
            let (created, verb) = if rev == 0 {
                (true, "Created")
            } else {
                (false, "Updated")
            };
            return Ok((
                created,
                json!({"message": format!("{verb} endpoint {}", ep.endpoint_id), "changed": true, "endpoint": endpoint_json(&ep)}),
            ));
        }
    }
    Err(ApiError::Contended(key))
}

/// `GET /v1/endpoints[?host=H]`.
pub(crate) fn list(store: &dyn Store, host: Option<&str>) -> Result<Value, ApiError> {
    if let Some(h) = host {
        validate_hostname("host", h)?;
    }
    Ok(Value::Array(
        all(store, host)?.iter().map(endpoint_json).collect(),
    ))
}

/// `GET /v1/endpoints/<id>`.
pub(crate) fn get(store: &dyn Store, index: &EndpointIndex, id: &str) -> Result<Value, ApiError> {
    Ok(endpoint_json(&find(store, index, id)?.0))
}

/// Delete `ep` (at revision `rev`), with its index entry when that names it, and release the
/// addresses its workload holds for it.
pub(crate) fn delete_and_release(
    store: &dyn Store,
    ipam_lock: &Mutex<()>,
    ep: &Endpoint,
    rev: u64,
) -> Result<Option<Vec<String>>, ApiError> {
    let key = Key::endpoint(ep).path();
    let entry_key = endpoint_index_key(&ep.endpoint_id);
    let mut txn = Txn::new()
        .when(Compare::mod_revision(&key, rev))
        .and_then(Op::delete(&key));
    if let Some(entry) = store.get(&entry_key)? {
        if entry.value == key.as_bytes() {
            txn = txn
                .when(Compare::mod_revision(&entry_key, entry.mod_revision))
                .and_then(Op::delete(entry_key));
        }
    }
    let resp = store.txn(txn)?;
    if !resp.succeeded {
        return Ok(None);
    }
    let _guard = ipam::lock(ipam_lock);
    let mut released = Vec::new();
    for ip in ips(ep) {
        let holder =
            |o: &crate::ipam::Owner| o.handle_id == ep.workload_id && o.host == ep.hostname;
        if ipam::release_ip(store, ip, holder)?.is_some() {
            released.push(ip.to_string());
        }
    }
    Ok(Some(released))
}

/// `DELETE /v1/endpoints/<id>`.
pub(crate) fn delete(
    store: &dyn Store,
    index: &EndpointIndex,
    ipam_lock: &Mutex<()>,
    id: &str,
) -> Result<Value, ApiError> {
    for _ in 0..CAS_RETRIES {
        let (ep, kv) = find(store, index, id)?;
        if let Some(released) = delete_and_release(store, ipam_lock, &ep, kv.mod_revision)? {
            let msg = if released.is_empty() {
                format!("Removed endpoint {id}")
            } else {
                format!("Removed endpoint {id} and released {}", released.join(", "))
            };
            return Ok(json!({"message": msg, "changed": true, "released": released}));
        }
    }
    Err(ApiError::Contended(format!("endpoint {id}")))
}

/// `GET /v1/endpoints/<id>/profiles`.
pub(crate) fn profiles(
    store: &dyn Store,
    index: &EndpointIndex,
    id: &str,
) -> Result<Value, ApiError> {
    Ok(json!(find(store, index, id)?.0.profile_ids))
}

/// `POST /v1/endpoints/<id>/profiles {"action": "append"|"remove"|"set", "profiles": [...]}`.
pub(crate) fn change_profiles(
    store: &dyn Store,
    index: &EndpointIndex,
    id: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let action = body.get("action").and_then(Value::as_str).unwrap_or("");
    if !matches!(action, "append" | "remove" | "set") {
        return Err(ApiError::bad_request(
            "action",
            "must be append, remove or set",
        ));
    }
    let names: Vec<String> = match body.get("profiles") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    ApiError::bad_request("profiles", format!("{v} is not a profile name"))
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ApiError::bad_request(
                "profiles",
                "is required: a list of profile names",
            ))
        }
    };
    if names.is_empty() && action != "set" {
        return Err(ApiError::bad_request(
            "profiles",
            "name at least one profile",
        ));
    }
    for n in &names {
        validate_name("profiles", n)?;
    }
    if action != "remove" {
        check_profiles(store, &names)?;
    }
    for _ in 0..CAS_RETRIES {
        let (mut ep, kv) = find(store, index, id)?;
        let before = ep.profile_ids.clone();
        match action {
            "append" => {
                for n in &names {
                    if !ep.profile_ids.contains(n) {
                        ep.profile_ids.push(n.clone());
                    }
                }
            }
            "remove" => {
                if let Some(missing) = names.iter().find(|n| !ep.profile_ids.contains(n)) {
                    return Err(ApiError::not_found(
                        "profiles",
                        format!("Profile {missing} is not on endpoint {id}; see `calicoctl endpoint {id} profile show`"),
                    ));
                }
                ep.profile_ids.retain(|p| !names.contains(p));
            }
            _ => {
                let mut set = Vec::new();
                for n in &names {
                    if !set.contains(n) {
                        set.push(n.clone());
                    }
                }
                ep.profile_ids = set;
            }
        }
        if ep.profile_ids == before {
            return Ok(json!({
                "message": format!("Profiles of endpoint {id} are unchanged"),
                "changed": false,
                "profile_ids": ep.profile_ids,
            }));
        }
        ep.validate()?;
        if write(store, &ep, kv.mod_revision, None)? {
            return Ok(json!({
                "message": format!("Profiles of endpoint {id} are now: {}", if ep.profile_ids.is_empty() { "(none)".to_owned() } else { ep.profile_ids.join(", ") }),
                "changed": true,
                "profile_ids": ep.profile_ids,
            }));
        }
    }
    Err(ApiError::Contended(format!("endpoint {id}")))
}
