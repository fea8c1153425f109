//! The cluster-config routes: Felix's settings, cluster-wide or for one host.
//!
//! Role: the store side of [`crate::model::validate_config`], at the original's keys
//! (`/calico/v1/config/<Key>`, `/calico/v1/host/<h>/config/<Key>`) with plain-string values. Inputs:
//! the store, the key, `?host=H`, `{"value": "..."}`. Outputs: JSON answers or an [`ApiError`]:
//! - `GET /v1/config` → `[{"key","value","source":"global"}]`; with `?host=H` the host's effective
//!   settings, each with `"source"` `global` or `host` (the host's own value wins).
//! - `GET /v1/config/<key>[?host=H]` → one effective setting (404 naming `key` when unset).
//! - `PUT /v1/config/<key>[?host=H] {"value"}` → set at that level (`"changed": false` if it already
//!   had that value).
//! - `DELETE /v1/config/<key>[?host=H]` → unset at that level (404 if not set there).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::ApiError;
use crate::{
    model::{effective, validate_config, validate_config_key, validate_hostname},
    store::{
        keys::{Key, CONFIG_PREFIX, HOST_PREFIX},
        Store,
    },
};

/// The store key of `name` at the level `host` names (`None`: cluster-wide).
fn key(name: &str, host: Option<&str>) -> String {
    match host {
        Some(h) => Key::HostConfig {
            host: h.to_owned(),
            name: name.to_owned(),
        },
        None => Key::Config {
            name: name.to_owned(),
        },
    }
    .path()
}

fn check_host(host: Option<&str>) -> Result<(), ApiError> {
    if let Some(h) = host {
        validate_hostname("host", h)?;
    }
    Ok(())
}

/// The settings stored under `prefix` (one level); values that are not UTF-8 are skipped with a
/// warning.
fn level(store: &dyn Store, prefix: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for kv in store.list(prefix)?.kvs {
        let name = match Key::parse(&kv.key) {
            Some(Key::Config { name } | Key::HostConfig { name, .. }) => name,
            _ => continue,
        };
        match String::from_utf8(kv.value) {
            Ok(v) => {
                out.insert(name, v);
            }
            Err(_) => tracing::warn!(key = %kv.key, "skipping a config value that is not UTF-8"),
        }
    }
    Ok(out)
}

/// The settings of one host, by name.
fn host_level(store: &dyn Store, host: &str) -> Result<BTreeMap<String, String>, ApiError> {
    level(store, &format!("{HOST_PREFIX}{host}/config/"))
}

/// `(key, value, source)` rows of the effective settings (cluster-wide only without `host`).
fn rows(store: &dyn Store, host: Option<&str>) -> Result<Vec<Value>, ApiError> {
    let global = level(store, CONFIG_PREFIX)?;
    let own = match host {
        Some(h) => host_level(store, h)?,
        None => BTreeMap::new(),
    };
    Ok(effective(&global, Some(&own))
        .into_iter()
        .map(|(k, v)| {
            let source = if own.contains_key(&k) {
                "host"
            } else {
                "global"
            };
            json!({"key": k, "value": v, "source": source})
        })
        .collect())
}

/// `GET /v1/config[?host=H]`.
pub(crate) fn list(store: &dyn Store, host: Option<&str>) -> Result<Value, ApiError> {
    check_host(host)?;
    Ok(Value::Array(rows(store, host)?))
}

/// `GET /v1/config/<key>[?host=H]`.
pub(crate) fn get(store: &dyn Store, name: &str, host: Option<&str>) -> Result<Value, ApiError> {
    validate_config_key(name)?;
    check_host(host)?;
    rows(store, host)?
        .into_iter()
        .find(|r| r["key"] == name)
        .ok_or_else(|| {
            let scope = host.map_or("cluster-wide".to_owned(), |h| format!("for host {h}"));
            ApiError::not_found(
                "key",
                format!(
                    "{name} is not set {scope}; set it with `calicoctl config set {name} <VALUE>`"
                ),
            )
        })
}

/// `PUT /v1/config/<key>[?host=H] {"value": "..."}`.
pub(crate) fn put(
    store: &dyn Store,
    name: &str,
    host: Option<&str>,
    body: &Value,
) -> Result<(bool, Value), ApiError> {
    check_host(host)?;
    let value = match body.get("value") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(ApiError::bad_request(
                "value",
                format!("{other} is not a string; settings are strings, e.g. \"DROP\""),
            ))
        }
        None => return Err(ApiError::bad_request("value", "is required")),
    };
    validate_config(name, value)?;
    let key = key(name, host);
    let scope = host.map_or("cluster-wide".to_owned(), |h| format!("for host {h}"));
    let prev = store.get(&key)?;
    if prev.as_ref().is_some_and(|kv| kv.value == value.as_bytes()) {
        return Ok((
            false,
            json!({"message": format!("{name} is already {value} {scope}"), "changed": false}),
        ));
    }
    store.put(&key, value.as_bytes())?;
    Ok((
        prev.is_none(),
        json!({"message": format!("Set {name} to {value} {scope}"), "changed": true}),
    ))
}

/// `DELETE /v1/config/<key>[?host=H]`.
pub(crate) fn delete(store: &dyn Store, name: &str, host: Option<&str>) -> Result<Value, ApiError> {
    validate_config_key(name)?;
    check_host(host)?;
    let scope = host.map_or("cluster-wide".to_owned(), |h| format!("for host {h}"));
    match store.delete(&key(name, host))? {
        Some(_) => Ok(json!({"message": format!("Unset {name} {scope}"), "changed": true})),
        None => Err(ApiError::not_found(
            "key",
            format!("{name} is not set {scope}; see `calicoctl config show`"),
        )),
    }
}
