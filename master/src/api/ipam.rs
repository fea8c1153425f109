//! The IPAM routes: assign addresses, release them (by address or by handle), and say who holds one.
//!
//! Role: the store side of [`crate::ipam`]. Inputs: the store, the pools, request JSON and path
//! segments. Outputs: JSON answers or an [`ApiError`]; blocks written under the original IPAM v2 keys
//! (`/calico/ipam/v2/assignment/ipv4/block/10.65.0.0-26`).
//!
//! Every change is one compare-and-swap on the one block it touches (its mod revision as read; 0 =
//! still absent), retried after a re-read on conflict, so several masters on one etcd never hand out
//! an address twice. Within one master, IPAM writes also take the [`Api`](super::Api)'s IPAM lock: 100
//! concurrent requests for one host all want the same block, and without the lock most of them would
//! lose the swap again and again; the lock makes that a queue, the swap keeps masters honest.
//!
//! Several requests in one call (`"requests": ["auto", "ipv6"]`, dual stack) are all-or-nothing: if
//! one fails, the addresses already assigned in the call are released again before the error is sent.

use std::{collections::BTreeMap, net::IpAddr, sync::Mutex};

use ipnet::IpNet;
use serde_json::{json, Map, Value};

use super::{pools, ApiError};
use crate::{
    ipam::{
        Assignment, Block, BlockChange, IpRequest, IpamError, IpamState, Owner, BLOCK_PREFIX_V4,
        BLOCK_PREFIX_V6,
    },
    model::{validate_hostname, IpVersion, ValidationError},
    store::{keys::block_prefix, Compare, Op, Store, Txn},
};

/// How often an IPAM write is retried when another master changed the block first.
const IPAM_RETRIES: usize = 100;

/// Take one master's IPAM lock (a poisoned lock only means another request panicked; the store is
/// intact, since every write is one transaction).
pub(crate) fn lock(l: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

/// The IPAM state as stored, with each block's mod revision.
pub(crate) struct Loaded {
    pub state: IpamState,
    pub revs: BTreeMap<IpNet, u64>,
}

impl Loaded {
    /// The mod revision of the block `cidr` (0: absent).
    pub fn rev(&self, cidr: &IpNet) -> u64 {
        self.revs.get(cidr).copied().unwrap_or(0)
    }
}

/// Read every block. A malformed block fails the read: skipping it could hand out its addresses twice.
pub(crate) fn load(store: &dyn Store) -> Result<Loaded, ApiError> {
    let mut state = IpamState::default();
    let mut revs = BTreeMap::new();
    for v in [IpVersion::V4, IpVersion::V6] {
        for kv in store.list(&block_prefix(v))?.kvs {
            let b: Block = serde_json::from_slice(&kv.value).map_err(|e| {
                ApiError::Internal(format!(
                    "the stored IPAM block {} is malformed: {e}",
                    kv.key
                ))
            })?;
            revs.insert(b.cidr, kv.mod_revision);
            state.blocks.insert(b.cidr, b);
        }
    }
    Ok(Loaded { state, revs })
}

/// Read only the blocks holding `ips`, with their mod revisions: a point read per address (more for
/// an address in a pool smaller than a block, whose block is smaller too; none for an address whose
/// block was already read). An address in no block is simply not in the result.
pub(crate) fn load_blocks_of(store: &dyn Store, ips: &[IpAddr]) -> Result<Loaded, ApiError> {
    let mut state = IpamState::default();
    let mut revs = BTreeMap::new();
    for &ip in ips {
        if state.block_containing(ip).is_some() {
            continue;
        }
        // Blocks are BLOCK_PREFIX long, or the pool's length when the pool is smaller.
        let (shortest, longest) = match ip {
            IpAddr::V4(_) => (BLOCK_PREFIX_V4, 32),
            IpAddr::V6(_) => (BLOCK_PREFIX_V6, 128),
        };
        for len in shortest..=longest {
            let cidr = IpNet::new_assert(ip, len).trunc();
            let key = Block::etcd_key_for(&cidr);
            if let Some(kv) = store.get(&key)? {
                let b: Block = serde_json::from_slice(&kv.value).map_err(|e| {
                    ApiError::Internal(format!("the stored IPAM block {key} is malformed: {e}"))
                })?;
                revs.insert(b.cidr, kv.mod_revision);
                state.blocks.insert(b.cidr, b);
                break;
            }
        }
    }
    Ok(Loaded { state, revs })
}

/// The compare-and-swap transaction for `change` against revision `rev`.
pub(crate) fn cas_txn(change: &BlockChange, rev: u64) -> Result<Txn, ApiError> {
    let key = Block::etcd_key_for(&change.cidr);
    let op = match &change.after {
        Some(b) => Op::put(
            key.clone(),
            serde_json::to_vec(b).map_err(|e| ApiError::Internal(e.to_string()))?,
        ),
        None => Op::delete(key.clone()),
    };
    Ok(Txn::new()
        .when(Compare::mod_revision(key, rev))
        .and_then(op))
}

/// An IPAM refusal as an API error: 400 for bad input, 409 for a state conflict, 404 for "not assigned".
pub(crate) fn ipam_error(e: IpamError) -> ApiError {
    let msg = e.to_string();
    match e {
        IpamError::BadRequest(_) => ApiError::bad_request("request", msg),
        IpamError::NoPool(_) | IpamError::UnknownPool(_) => ApiError::bad_request("request", msg),
        IpamError::NotInPool(_) | IpamError::PoolDisabled(_) | IpamError::NetworkAddress { .. } => {
            ApiError::bad_request("ip", msg)
        }
        IpamError::InUse { .. } => ApiError::conflict("ip", msg),
        IpamError::PoolsFull { .. } | IpamError::BlockConflict { .. } => {
            ApiError::conflict("request", msg)
        }
        IpamError::NotAssigned(_) => ApiError::not_found("ip", msg),
    }
}

/// Assign one address for `owner` (the caller holds the IPAM lock).
pub(crate) fn assign_one(
    store: &dyn Store,
    req: &IpRequest,
    owner: &Owner,
) -> Result<Assignment, ApiError> {
    let pools = pools::list(store, None)?;
    for _ in 0..IPAM_RETRIES {
        let loaded = load(store)?;
        let a = loaded
            .state
            .assign(&pools, req, owner.clone())
            .map_err(ipam_error)?;
        let rev = loaded.rev(&a.change.cidr);
        if store.txn(cas_txn(&a.change, rev)?)?.succeeded {
            return Ok(a);
        }
    }
    Err(ApiError::Contended("the IPAM blocks".into()))
}

/// Release `ip` if `keep` accepts its holder (the caller holds the IPAM lock). `Ok(None)`: not assigned.
pub(crate) fn release_ip(
    store: &dyn Store,
    ip: IpAddr,
    keep: impl Fn(&Owner) -> bool,
) -> Result<Option<Owner>, ApiError> {
    for _ in 0..IPAM_RETRIES {
        let loaded = load(store)?;
        let r = match loaded.state.release(ip) {
            Ok(r) => r,
            Err(IpamError::NotAssigned(_)) => return Ok(None),
            Err(e) => return Err(ipam_error(e)),
        };
        if !keep(&r.owner) {
            return Ok(None);
        }
        if store
            .txn(cas_txn(&r.change, loaded.rev(&r.change.cidr))?)?
            .succeeded
        {
            return Ok(Some(r.owner));
        }
    }
    Err(ApiError::Contended("the IPAM blocks".into()))
}

/// Release every address of `handle` (the caller holds the IPAM lock).
pub(crate) fn release_handle(store: &dyn Store, handle: &str) -> Result<Vec<IpAddr>, ApiError> {
    let mut released = Vec::new();
    for _ in 0..IPAM_RETRIES {
        let loaded = load(store)?;
        let (_, changes) = loaded.state.release_handle(handle);
        if changes.is_empty() {
            released.sort();
            return Ok(released);
        }
        // One block at a time, each its own swap; a lost swap re-reads and goes on.
        for change in changes {
            let freed: Vec<IpAddr> = change
                .before
                .iter()
                .flat_map(Block::allocated)
                .filter(|(_, o)| o.handle_id == handle)
                .map(|(ip, _)| ip)
                .collect();
            if !store
                .txn(cas_txn(&change, loaded.rev(&change.cidr))?)?
                .succeeded
            {
                break;
            }
            released.extend(freed);
        }
    }
    Err(ApiError::Contended("the IPAM blocks".into()))
}

/// Check a handle (workload id): 1–128 letters, digits, `_`, `.`, `-`.
pub(crate) fn validate_handle(field: &str, v: &str) -> Result<(), ValidationError> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !v.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("`{v}` must be 1–128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"),
        ))
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::bad_request(field, "must be a string")),
        None => Err(ApiError::bad_request(field, "is required")),
    }
}

/// `POST /v1/ipam/assign {"host","handle_id","request"|"requests","endpoint_id"?}`.
pub(crate) fn assign(
    store: &dyn Store,
    ipam_lock: &Mutex<()>,
    body: &Value,
) -> Result<Value, ApiError> {
    let obj = body.as_object().ok_or_else(|| {
        ApiError::bad_request(
            "body",
            "expected {\"host\": H, \"handle_id\": W, \"requests\": [\"auto\"]}",
        )
    })?;
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "host" | "handle_id" | "request" | "requests" | "endpoint_id"
        ) {
            return Err(ApiError::bad_request(
                key,
                "unknown field; an assignment has host, handle_id, request or requests, endpoint_id",
            ));
        }
    }
    let host = str_field(obj, "host")?;
    validate_hostname("host", host)?;
    let handle = str_field(obj, "handle_id")?;
    validate_handle("handle_id", handle)?;
    let texts: Vec<String> = match (obj.get("request"), obj.get("requests")) {
        (Some(Value::String(s)), None) => vec![s.clone()],
        (None, Some(Value::Array(list))) if !list.is_empty() => list
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    ApiError::bad_request("requests", format!("{v} is not a string"))
                })
            })
            .collect::<Result<_, _>>()?,
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "requests",
                "give either request or requests, not both",
            ))
        }
        _ => {
            return Err(ApiError::bad_request(
                "requests",
                "is required: a non-empty list of auto, ipv4, ipv6, a pool CIDR or an address",
            ))
        }
    };
    let reqs: Vec<IpRequest> = texts
        .iter()
        .map(|t| t.trim().parse::<IpRequest>().map_err(ipam_error))
        .collect::<Result<_, _>>()?;
    let mut owner = Owner::new(handle, host);
    if let Some(ep) = obj.get("endpoint_id") {
        let ep = ep
            .as_str()
            .ok_or_else(|| ApiError::bad_request("endpoint_id", "must be a string"))?;
        validate_handle("endpoint_id", ep)?;
        owner.secondary.insert("endpoint_id".into(), ep.to_owned());
    }
    let _guard = lock(ipam_lock);
    let mut done: Vec<Assignment> = Vec::new();
    for req in &reqs {
        match assign_one(store, req, &owner) {
            Ok(a) => done.push(a),
            Err(e) => {
                for a in &done {
                    if let Err(undo) = release_ip(store, a.ip, |o| *o == owner) {
                        tracing::warn!(ip = %a.ip, error = %undo, "could not undo a partial assignment");
                    }
                }
                return Err(e);
            }
        }
    }
    let ips: Vec<String> = done.iter().map(|a| a.ip.to_string()).collect();
    let rows: Vec<Value> = done
        .iter()
        .zip(&texts)
        .map(|(a, t)| {
            json!({"ip": a.ip.to_string(), "block": a.block.to_string(), "host_route": a.host_route, "request": t})
        })
        .collect();
    Ok(json!({
        "message": format!("Assigned {} to {handle} on host {host}", ips.join(", ")),
        "changed": true,
        "assignments": rows,
    }))
}

/// Parse an address from a path segment.
pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request(
            "ip",
            format!("`{s}` is not an IP address; give one like 10.65.0.2 or fd80::2"),
        )
    })
}

/// `GET /v1/ipam/ips/<ip>`: who holds it.
pub(crate) fn info(store: &dyn Store, ip: &str) -> Result<Value, ApiError> {
    let ip = parse_ip(ip)?;
    let loaded = load(store)?;
    let pool = pools::list(store, None)?
        .into_iter()
        .find(|p| p.cidr.contains(&ip));
    match loaded.state.holder(ip) {
        Some(h) => Ok(json!({
            "ip": ip.to_string(),
            "handle_id": h.owner.handle_id,
            "host": h.owner.host,
            "attributes": h.owner.secondary,
            "block": h.block.to_string(),
            "block_affinity": h.block_affinity,
            "host_route": h.block_affinity != Some(h.owner.host.as_str()),
            "pool": pool.map(|p| p.cidr.to_string()),
        })),
        None => Err(ApiError::not_found(
            "ip",
            match pool {
                Some(p) => format!("{ip} is not assigned (it is free in pool {})", p.cidr),
                None => format!("{ip} is not assigned and is in no IP pool"),
            },
        )),
    }
}

/// `DELETE /v1/ipam/ips/<ip>[?force=true]`: refused (409) while an endpoint uses it, unless forced.
pub(crate) fn release(
    store: &dyn Store,
    ipam_lock: &Mutex<()>,
    ip: &str,
    force: bool,
) -> Result<Value, ApiError> {
    let ip = parse_ip(ip)?;
    if !force {
        let users: Vec<String> = super::endpoints::all(store, None)?
            .into_iter()
            .filter(|ep| {
                ep.ipv4_nets.iter().any(|n| IpAddr::V4(n.addr()) == ip)
                    || ep.ipv6_nets.iter().any(|n| IpAddr::V6(n.addr()) == ip)
            })
            .map(|ep| ep.endpoint_id)
            .collect();
        if !users.is_empty() {
            return Err(ApiError::conflict(
                "ip",
                format!(
                    "{ip} is used by endpoint {}; remove the endpoint first or use --force",
                    users.join(", ")
                ),
            ));
        }
    }
    let _guard = lock(ipam_lock);
    match release_ip(store, ip, |_| true)? {
        Some(o) => Ok(json!({
            "message": format!("Released {ip} (held by {} on host {})", o.handle_id, o.host),
            "changed": true,
            "released": [ip.to_string()],
        })),
        None => Err(ipam_error(IpamError::NotAssigned(ip))),
    }
}

/// `DELETE /v1/ipam/handles/<handle>`: release every address of a handle.
pub(crate) fn release_by_handle(
    store: &dyn Store,
    ipam_lock: &Mutex<()>,
    handle: &str,
) -> Result<Value, ApiError> {
    validate_handle("handle_id", handle)?;
    let _guard = lock(ipam_lock);
    let ips = release_handle(store, handle)?;
    if ips.is_empty() {
        return Err(ApiError::not_found(
            "handle_id",
            format!("{handle} holds no addresses"),
        ));
    }
    let list: Vec<String> = ips.iter().map(ToString::to_string).collect();
    Ok(json!({
        "message": format!("Released {} held by {handle}", list.join(", ")),
        "changed": true,
        "released": list,
    }))
}

/// `GET /v1/ipam/hosts/<host>/routes`: what the host announces: the blocks it owns (aggregates) and the
/// addresses its workloads hold in other hosts' blocks (/32 or /128 host routes).
pub(crate) fn routes(store: &dyn Store, host: &str) -> Result<Value, ApiError> {
    validate_hostname("host", host)?;
    let r = load(store)?.state.routes_for_host(host);
    let blocks: Vec<String> = r.blocks.iter().map(ToString::to_string).collect();
    let host_routes: Vec<String> = r.host_routes.iter().map(ToString::to_string).collect();
    Ok(json!({"host": host, "blocks": blocks, "host_routes": host_routes}))
}

/// `GET /v1/ipam/hosts/<host>/handles`: every handle holding addresses used on the host, with those
/// addresses (`{"host": H, "handles": [{"handle_id": W, "ips": [...]}]}`, sorted by handle), so that a node
/// can release what none of its workloads holds any more.
pub(crate) fn handles(store: &dyn Store, host: &str) -> Result<Value, ApiError> {
    validate_hostname("host", host)?;
    let loaded = load(store)?;
    let mut by: std::collections::BTreeMap<&str, Vec<String>> = std::collections::BTreeMap::new();
    for block in loaded.state.blocks.values() {
        for (ip, owner) in block.allocated() {
            if owner.host == host {
                by.entry(owner.handle_id.as_str())
                    .or_default()
                    .push(ip.to_string());
            }
        }
    }
    let handles: Vec<Value> = by
        .into_iter()
        .map(|(handle, ips)| json!({"handle_id": handle, "ips": ips}))
        .collect();
    Ok(json!({"host": host, "handles": handles}))
}

/// `POST /v1/ipam/handles/<handle>/rename {"handle_id": NEW}`: move every address of a handle to a new
/// handle. The Docker proxy reserves addresses before Docker has made the container (so before its id
/// exists) and then re-keys the reservation to the container id.
pub(crate) fn rename_handle(
    store: &dyn Store,
    ipam_lock: &Mutex<()>,
    handle: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    validate_handle("handle", handle)?;
    let new = match body.get("handle_id") {
        Some(Value::String(s)) => s.as_str(),
        _ => {
            return Err(ApiError::bad_request(
                "handle_id",
                "is required: the new handle",
            ))
        }
    };
    validate_handle("handle_id", new)?;
    let _guard = lock(ipam_lock);
    let mut moved: Vec<IpAddr> = Vec::new();
    'retry: for _ in 0..IPAM_RETRIES {
        let loaded = load(store)?;
        let touched: Vec<&Block> = loaded
            .state
            .blocks
            .values()
            .filter(|b| b.attributes.iter().any(|o| o.handle_id == handle))
            .collect();
        if touched.is_empty() {
            if moved.is_empty() {
                return Err(ApiError::not_found(
                    "handle",
                    format!("{handle} holds no addresses"),
                ));
            }
            moved.sort();
            let list: Vec<String> = moved.iter().map(ToString::to_string).collect();
            return Ok(json!({
                "message": format!("Moved {} from {handle} to {new}", list.join(", ")),
                "changed": true,
                "ips": list,
            }));
        }
        for b in touched {
            let mut after = b.clone();
            for o in after
                .attributes
                .iter_mut()
                .filter(|o| o.handle_id == handle)
            {
                o.handle_id = new.to_owned();
            }
            let change = BlockChange {
                cidr: b.cidr,
                before: Some(b.clone()),
                after: Some(after),
            };
            if !store.txn(cas_txn(&change, loaded.rev(&b.cidr))?)?.succeeded {
                continue 'retry;
            }
            moved.extend(
                b.allocated()
                    .filter(|(_, o)| o.handle_id == handle)
                    .map(|(ip, _)| ip),
            );
        }
    }
    Err(ApiError::Contended("the IPAM blocks".into()))
}
