//! The BGP routes: the default node AS, the node-to-node mesh switch, global timers, and BGP peers
//! (global, and per node through [`super::nodes`], which reuses the peer functions here).
//!
//! Role: the store side of the BGP configuration, under the original's `/calico/bgp/v1` keys with the
//! original's value encodings:
//! ```text
//! /calico/bgp/v1/global/as_num             plain text: 64511            (absent: 64511)
//! /calico/bgp/v1/global/node_mesh          {"enabled": true}            (absent: on)
//! /calico/bgp/v1/global/timers             {"hold_time":9,"keepalive":3,"graceful_restart_time":30}
//!                                          (this project's addition; absent: BIRD's defaults)
//! /calico/bgp/v1/global/peer_v4/<ip>       {"ip":"172.17.8.200","as_num":64513} (+ per-peer timers)
//! /calico/bgp/v1/host/<h>/peer_v6/<ip>     the same shape
//! ```
//! Inputs: the store, request JSON, path segments. Outputs: JSON answers or an [`ApiError`].

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::{router::body_bool, ApiError};
use crate::{
    model::{AsNumber, BgpPeer, BgpTimers, IpVersion},
    store::{
        keys::{Key, BGP_AS_NUM, BGP_NODE_MESH, BGP_TIMERS},
        Store,
    },
};

fn corrupt(key: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("the stored value of {key} is malformed: {e}"))
}

/// The default node AS (64511 when unset).
pub(crate) fn default_as(store: &dyn Store) -> Result<AsNumber, ApiError> {
    match store.get(BGP_AS_NUM)? {
        None => Ok(AsNumber::DEFAULT),
        Some(kv) => {
            let text = String::from_utf8_lossy(&kv.value);
            // Plain text as the original wrote it; a JSON string is accepted too.
            AsNumber::parse("as_num", text.trim().trim_matches('"'))
                .map_err(|e| corrupt(&kv.key, e))
        }
    }
}

fn node_mesh(store: &dyn Store) -> Result<bool, ApiError> {
    match store.get(BGP_NODE_MESH)? {
        None => Ok(true),
        Some(kv) => {
            let v: Value = serde_json::from_slice(&kv.value).map_err(|e| corrupt(&kv.key, e))?;
            v.get("enabled")
                .and_then(Value::as_bool)
                .ok_or_else(|| corrupt(&kv.key, "expected {\"enabled\": true|false}"))
        }
    }
}

pub(crate) fn timers(store: &dyn Store) -> Result<BgpTimers, ApiError> {
    match store.get(BGP_TIMERS)? {
        None => Ok(BgpTimers::default()),
        Some(kv) => serde_json::from_slice(&kv.value).map_err(|e| corrupt(&kv.key, e)),
    }
}

/// `GET /v1/bgp/config`: `{"as_num", "node_mesh", "timers"}`.
pub(crate) fn config(store: &dyn Store) -> Result<Value, ApiError> {
    Ok(json!({
        "as_num": default_as(store)?,
        "node_mesh": node_mesh(store)?,
        "timers": timers(store)?,
    }))
}

/// `PUT /v1/bgp/as_num {"as_num"}`.
pub(crate) fn set_default_as(store: &dyn Store, body: &Value) -> Result<Value, ApiError> {
    let asn = parse_as(body.get("as_num"))?;
    let old = default_as(store)?;
    store.put(BGP_AS_NUM, asn.to_string().as_bytes())?;
    Ok(json!({
        "message": format!("Default node AS number set to {asn}"),
        "changed": old != asn,
        "as_num": asn,
    }))
}

/// `PUT /v1/bgp/node_mesh {"enabled"}`.
pub(crate) fn set_node_mesh(store: &dyn Store, body: &Value) -> Result<Value, ApiError> {
    let obj = body
        .as_object()
        .filter(|o| o.contains_key("enabled"))
        .ok_or_else(|| ApiError::bad_request("enabled", "is required: true or false"))?;
    let on = body_bool(obj, "enabled")?;
    let old = node_mesh(store)?;
    store.put(BGP_NODE_MESH, json!({"enabled": on}).to_string().as_bytes())?;
    Ok(json!({
        "message": format!("Node-to-node mesh {}", if on { "enabled" } else { "disabled" }),
        "changed": old != on,
        "node_mesh": on,
    }))
}

/// `PUT /v1/bgp/timers {"hold_time"?, "keepalive"?, "graceful_restart_time"?}`: replaces the global
/// timers (an absent or null value means BIRD's default).
pub(crate) fn set_timers(store: &dyn Store, body: &Value) -> Result<Value, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("body", "expected {\"hold_time\": 9, …}"))?;
    let t = parse_timers(obj, &[])?;
    let old = timers(store)?;
    let v = serde_json::to_vec(&t).map_err(|e| ApiError::Internal(e.to_string()))?;
    store.put(BGP_TIMERS, &v)?;
    Ok(json!({"message": "BGP timers updated", "changed": old != t, "timers": t}))
}

fn parse_as(v: Option<&Value>) -> Result<AsNumber, ApiError> {
    let text = match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "as_num",
                "is required: an AS number 1–4294967295 (or asdot like 1.10)",
            ))
        }
    };
    Ok(AsNumber::parse("as_num", &text)?)
}

/// Timers from a JSON object that may carry other (`allowed`) fields too.
fn parse_timers(obj: &Map<String, Value>, allowed: &[&str]) -> Result<BgpTimers, ApiError> {
    let mut t = BgpTimers::default();
    for (k, v) in obj {
        let slot = match k.as_str() {
            "hold_time" => &mut t.hold_time,
            "keepalive" => &mut t.keepalive,
            "graceful_restart_time" => &mut t.graceful_restart_time,
            other if allowed.contains(&other) => continue,
            other => {
                return Err(ApiError::bad_request(
                    other,
                    "unknown field; timers are hold_time, keepalive and graceful_restart_time",
                ))
            }
        };
        *slot = match v {
            Value::Null => None,
            v => Some(
                v.as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(k, format!("{v} is not a number of seconds 0–65535"))
                    })?,
            ),
        };
    }
    t.validate()?;
    Ok(t)
}

/// A peer as the API shows it: everything but its MD5 password, which becomes `"md5": true`.
pub(crate) fn public_peer(peer: &BgpPeer) -> Value {
    let mut v = serde_json::to_value(peer).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        let md5 = obj.remove("password").is_some();
        obj.insert("md5".into(), Value::Bool(md5));
    }
    v
}

/// [`public_peer`] of each.
pub(crate) fn public_peers(peers: &[BgpPeer]) -> Value {
    Value::Array(peers.iter().map(public_peer).collect())
}

/// A peer from `{"ip", "as_num", "hold_time"?, "keepalive"?, "graceful_restart_time"?, "rr_client"?,
/// "password"?}`.
pub(crate) fn peer_from_body(body: &Value) -> Result<BgpPeer, ApiError> {
    let obj = body.as_object().ok_or_else(|| {
        ApiError::bad_request(
            "body",
            "expected {\"ip\": \"172.17.8.200\", \"as_num\": 64513}",
        )
    })?;
    let ip: IpAddr = match obj.get("ip") {
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| ApiError::bad_request("ip", format!("`{s}` is not an IP address")))?,
        _ => {
            return Err(ApiError::bad_request(
                "ip",
                "is required: the peer's address",
            ))
        }
    };
    let mut peer = BgpPeer::new(ip, parse_as(obj.get("as_num"))?);
    peer.timers = parse_timers(obj, &["ip", "as_num", "rr_client", "password"])?;
    peer.rr_client = body_bool(obj, "rr_client")?;
    peer.password = match obj.get("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::bad_request(
                "password",
                "must be a string (the TCP MD5 key)",
            ))
        }
    };
    peer.validate()?;
    Ok(peer)
}

/// The peers stored under `prefix` (`…/global/` or `…/host/<h>/`), of `version` or both.
pub(crate) fn list_peers(
    store: &dyn Store,
    prefix: &str,
    version: Option<IpVersion>,
) -> Result<Vec<BgpPeer>, ApiError> {
    let mut out = Vec::new();
    for v in [IpVersion::V4, IpVersion::V6] {
        if version.is_some_and(|want| want != v) {
            continue;
        }
        for kv in store.list(&format!("{prefix}peer_v{}/", v.number()))?.kvs {
            match serde_json::from_slice::<BgpPeer>(&kv.value) {
                Ok(p) => out.push(p),
                Err(e) => tracing::warn!(key = %kv.key, error = %e, "skipping a malformed peer"),
            }
        }
    }
    Ok(out)
}

/// Store a peer at `key` (`who` names its scope in messages). Returns (created?, answer).
pub(crate) fn put_peer(
    store: &dyn Store,
    key: &Key,
    peer: &BgpPeer,
    who: &str,
) -> Result<(bool, Value), ApiError> {
    let path = key.path();
    let value = serde_json::to_vec(peer).map_err(|e| ApiError::Internal(e.to_string()))?;
    let old = store.get(&path)?;
    if old.as_ref().is_some_and(|kv| kv.value == value) {
        return Ok((
            false,
            json!({"message": format!("BGP peer {} is already a {who} peer with AS {}", peer.ip, peer.as_num), "changed": false}),
        ));
    }
    store.put(&path, &value)?;
    let verb = if old.is_some() { "Updated" } else { "Added" };
    Ok((
        old.is_none(),
        json!({"message": format!("{verb} {who} BGP peer {} (AS {})", peer.ip, peer.as_num), "changed": true, "peer": public_peer(peer)}),
    ))
}

/// Delete the peer at `key`.
pub(crate) fn delete_peer(
    store: &dyn Store,
    key: &Key,
    ip: IpAddr,
    who: &str,
) -> Result<Value, ApiError> {
    match store.delete(&key.path())? {
        Some(_) => Ok(json!({"message": format!("Removed {who} BGP peer {ip}"), "changed": true})),
        None => Err(ApiError::not_found(
            "ip",
            format!("{ip} is not a {who} BGP peer; see `calicoctl bgp peer show`"),
        )),
    }
}

/// Parse the `version` query parameter.
pub(crate) fn version_param(v: Option<&str>) -> Result<Option<IpVersion>, ApiError> {
    match v {
        None => Ok(None),
        Some("4") => Ok(Some(IpVersion::V4)),
        Some("6") => Ok(Some(IpVersion::V6)),
        Some(other) => Err(ApiError::bad_request(
            "version",
            format!("`{other}` is not an IP version; use 4 or 6"),
        )),
    }
}
