//! The diagnostics route: the whole datastore as JSON, for `calicoctl diags`.
//!
//! Role: `GET /v1/dump` answers `{"version", "revision", "keys": {"<key>": <value>}}` with every key
//! under `/calico/`, each value parsed as JSON when it is JSON and kept as a string otherwise (the
//! original's plain-text values such as `as_num`; BGP peers' MD5 passwords redacted). Inputs: the store. Output: the JSON answer.

use serde_json::{json, Map, Value};

use super::ApiError;
use crate::store::{keys::ROOT, Store};

/// `GET /v1/dump`.
pub(crate) fn dump(store: &dyn Store) -> Result<Value, ApiError> {
    let listing = store.list(ROOT)?;
    let mut keys = Map::new();
    for kv in listing.kvs {
        let mut v = serde_json::from_slice::<Value>(&kv.value)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&kv.value).into_owned()));
        // BGP peers' MD5 keys stay out of bug reports.
        if let Some(obj) = v.as_object_mut() {
            if obj.contains_key("password") {
                obj.insert("password".into(), Value::String("(redacted)".into()));
            }
        }
        keys.insert(kv.key, v);
    }
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": listing.revision,
        "keys": keys,
    }))
}
