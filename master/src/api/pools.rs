//! The pool routes: list, add (or update the flags of) and remove IP pools.
//!
//! Role: the store operations behind `/v1/pools`. Inputs: the store and the request's JSON. Outputs:
//! JSON answers (pools as `{"cidr","ipip","nat_outgoing","disabled"}`) or an [`ApiError`]. Pools live at
//! the original's keys (`/calico/v1/ipam/v4/pool/192.168.0.0-16`) with the original's values.

use ipnet::IpNet;
use serde_json::{json, Value};

use super::{router::body_bool, ApiError, CAS_RETRIES};
use crate::{
    model::{IpPool, IpVersion},
    store::{keys::pool_prefix, Store, Swap},
};

/// A pool as the API shows it.
pub(crate) fn pool_json(p: &IpPool) -> Value {
    json!({
        "cidr": p.cidr.to_string(),
        "ipip": p.ipip,
        "nat_outgoing": p.nat_outgoing,
        "disabled": p.disabled,
    })
}

/// Every pool of `version` (both when `None`), IPv4 first, each in key order. Values that do not parse
/// are skipped with a warning rather than failing the whole listing.
pub(crate) fn list(store: &dyn Store, version: Option<IpVersion>) -> Result<Vec<IpPool>, ApiError> {
    let versions = match version {
        Some(v) => vec![v],
        None => vec![IpVersion::V4, IpVersion::V6],
    };
    let mut pools = Vec::new();
    for v in versions {
        for kv in store.list(&pool_prefix(v))?.kvs {
            match serde_json::from_slice::<IpPool>(&kv.value) {
                Ok(p) => pools.push(p),
                Err(e) => tracing::warn!(key = %kv.key, error = %e, "skipping a malformed pool"),
            }
        }
    }
    Ok(pools)
}

/// Parse a CIDR given by a user (`cidr` field or path segment).
pub(crate) fn parse_cidr(s: &str) -> Result<IpNet, ApiError> {
    s.parse::<IpNet>().map_err(|_| {
        ApiError::bad_request(
            "cidr",
            format!("Invalid CIDR specified: `{s}`; give a network such as 192.168.0.0/16 or fd80:24e2:f998:72d6::/64"),
        )
    })
}

/// `POST /v1/pools`: create the pool, or set the flags of an existing one. Returns (created?, answer).
pub(crate) fn add(store: &dyn Store, body: &Value) -> Result<(bool, Value), ApiError> {
    let obj = body.as_object().ok_or_else(|| {
        ApiError::bad_request(
            "body",
            "expected a JSON object like {\"cidr\": \"192.168.0.0/16\"}",
        )
    })?;
    for key in obj.keys() {
        if !matches!(key.as_str(), "cidr" | "ipip" | "nat_outgoing" | "disabled") {
            return Err(ApiError::bad_request(
                key,
                "unknown field; a pool has cidr, ipip, nat_outgoing and disabled",
            ));
        }
    }
    let cidr = match obj.get("cidr") {
        Some(Value::String(s)) => parse_cidr(s)?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "cidr",
                "must be a string such as \"192.168.0.0/16\"",
            ))
        }
        None => {
            return Err(ApiError::bad_request(
                "cidr",
                "is required, e.g. {\"cidr\": \"192.168.0.0/16\"}",
            ))
        }
    };
    let mut pool = IpPool::new(cidr);
    pool.ipip = body_bool(obj, "ipip")?;
    pool.nat_outgoing = body_bool(obj, "nat_outgoing")?;
    pool.disabled = body_bool(obj, "disabled")?;
    pool.validate()?;
    let key = pool.etcd_key();
    let value = serde_json::to_vec(&pool).map_err(|e| ApiError::Internal(e.to_string()))?;
    for _ in 0..CAS_RETRIES {
        let existing = list(store, None)?;
        pool.check_overlap(&existing)?;
        let current = store.get(&key)?;
        let expected = current.as_ref().map_or(0, |kv| kv.mod_revision);
        if current.as_ref().is_some_and(|kv| kv.value == value) {
            let msg = format!("Pool {cidr} already exists with these settings");
            return Ok((
                false,
                json!({"message": msg, "changed": false, "pool": pool_json(&pool)}),
            ));
        }
        if let Swap::Done(_) = store.compare_and_swap(&key, expected, Some(&value))? {
            let (created, msg) = if expected == 0 {
                (true, format!("Added pool {cidr}"))
            } else {
                (false, format!("Updated pool {cidr}"))
            };
            return Ok((
                created,
                json!({"message": msg, "changed": true, "pool": pool_json(&pool)}),
            ));
        }
    }
    Err(ApiError::Contended(key))
}

/// `DELETE /v1/pools/<cidr-dashed>`.
pub(crate) fn remove(store: &dyn Store, dashed: &str) -> Result<Value, ApiError> {
    let cidr = match dashed.rsplit_once('-') {
        Some((addr, len)) => parse_cidr(&format!("{addr}/{len}"))?,
        None => parse_cidr(dashed)?,
    };
    let key = IpPool::etcd_key_for(&cidr);
    match store.delete(&key)? {
        Some(_) => Ok(json!({"message": format!("Removed pool {cidr}"), "changed": true})),
        None => Err(ApiError::not_found(
            "cidr",
            format!("{cidr} is not a configured pool; see `calicoctl pool show`"),
        )),
    }
}
