//! The master's HTTP/JSON API: what `calicoctl` (and later the nodes and the Docker proxy) talk to.
//!
//! Role: an HTTP/1.1 server (hyper 1.x on tokio) in front of a [`Store`](crate::store::Store). Inputs:
//! HTTP requests with JSON bodies. Outputs: JSON answers, store transactions, Prometheus metrics.
//! [`Api`] is the transport-free core (one synchronous call per request, run on tokio's blocking pool
//! because the store's writes fsync); [`serve`] runs it on listeners until a shutdown future resolves.
//!
//! # Routes
//! ```text
//! GET    /healthz                                   {"status":"ok","revision":N}   (never needs a token)
//! GET    /metrics                                   Prometheus text
//! GET    /v1/pools[?version=4|6]                    [{"cidr","ipip","nat_outgoing","disabled"}]
//! POST   /v1/pools  {"cidr","ipip"?,"nat_outgoing"?}  201 created / 200 updated (flags of an existing pool)
//! DELETE /v1/pools/<cidr with - for />              e.g. /v1/pools/10.65.0.0-16; 404 if not a pool
//! GET    /v1/profiles[?detailed=true]               [{"name","tags","rules"(,"endpoints")}]
//! POST   /v1/profiles  {"name"}                     201, with the original's default tags and rules
//! GET    /v1/profiles/<name>                        {"name","tags","rules"}
//! DELETE /v1/profiles/<name>[?force=true]           409 naming the endpoints that use it, unless forced
//! GET    /v1/profiles/<name>/tags                   ["tag", …]
//! PUT    /v1/profiles/<name>/tags/<tag>             add a tag (already there: 200, "changed": false)
//! DELETE /v1/profiles/<name>/tags/<tag>             remove a tag (404 if not on the profile)
//! GET    /v1/profiles/<name>/rules                  {"id","inbound_rules","outbound_rules"}
//! PUT    /v1/profiles/<name>/rules                  replace both lists ("id", if given, must be <name>)
//! POST   /v1/profiles/<name>/rules/<dir>  {"rule":{…},"position":N?}   dir = inbound|outbound;
//!                                                   N is 1-based (default: append)
//! DELETE /v1/profiles/<name>/rules/<dir>/<N>        remove the rule at position N (404 if none)
//! POST   /v1/profiles/<name>/rules/<dir>/remove  {"rule":{…}}   remove the rule equal to this one
//! POST   /v1/ipam/assign  {"host","handle_id","request"|"requests":[…],"endpoint_id"?}
//!                                                   201 {"assignments":[{"ip","block","host_route","request"}]};
//!                                                   request = auto|ipv4|ipv6|<pool CIDR>|<IP>; several at
//!                                                   once (dual stack) are all-or-nothing
//! GET    /v1/ipam/ips/<ip>                          {"ip","handle_id","host","block","block_affinity","host_route",…}
//! DELETE /v1/ipam/ips/<ip>[?force=true]             release (409 while an endpoint uses it, unless forced)
//! DELETE /v1/ipam/handles/<handle>                  release every address of a handle (workload)
//! POST   /v1/ipam/handles/<handle>/rename  {"handle_id": NEW}   re-key a reservation (proxy: to the container id)
//! GET    /v1/ipam/hosts/<host>/routes               {"host","blocks":[CIDR],"host_routes":[IP]} to announce
//! GET    /v1/ipam/hosts/<host>/handles              {"host","handles":[{"handle_id","ips"}]} on that host
//! GET    /v1/endpoints[?host=H]                     [endpoint] (key fields + the original's value fields)
//! POST   /v1/endpoints  {endpoint}                  201 created / 200 replaced; IPs must be assigned to it
//! GET    /v1/endpoints/<id>                         one endpoint (ids are unique cluster-wide)
//! DELETE /v1/endpoints/<id>                         delete and release its addresses
//! GET    /v1/endpoints/<id>/profiles                ["P", …]
//! POST   /v1/endpoints/<id>/profiles  {"action":"append|remove|set","profiles":[…]}
//! GET    /v1/nodes[?detailed=true]                  [{"name","ip_addr_v4","ip_addr_v6","as_num","effective_as","peers",
//!                                                   "route_reflector"(,…)}]
//! PUT    /v1/nodes/<name>  {"ip_addr_v4"?,"ip_addr_v6"?,"as_num"?}   201 registered / 200 updated
//! GET    /v1/nodes/<name>                           one node
//! DELETE /v1/nodes/<name>[?force=true]              409 while it has endpoints, unless forced
//! PUT    /v1/nodes/<name>/status  {"state"?,"felix":{…},"bgp":[…]}   a node's report
//! GET    /v1/nodes/<name>/status                    {"node","state","reported_at","felix","bgp"}
//! PUT    /v1/nodes/<name>/route_reflector  {"cluster_id"?,"clients"?:[IP]}   make it a BGP route reflector
//!                                                   (201 / 200 updated); cluster_id defaults to its IPv4
//!                                                   address, no clients = every other non-reflector node
//! DELETE /v1/nodes/<name>/route_reflector           stop reflecting (200, "changed": false if it was not)
//! GET    /v1/nodes/<name>/peers[?version=4|6]       per-node BGP peers
//! POST   /v1/nodes/<name>/peers  {"ip","as_num",timers…?}   DELETE /v1/nodes/<name>/peers/<ip>
//! GET    /v1/bgp/config                             {"as_num","node_mesh","timers"}
//! PUT    /v1/bgp/as_num {"as_num"}   PUT /v1/bgp/node_mesh {"enabled"}   PUT /v1/bgp/timers {…}
//! GET    /v1/bgp/peers[?version=4|6]                global BGP peers
//! POST   /v1/bgp/peers  {"ip","as_num",timers…?}    DELETE /v1/bgp/peers/<ip>
//! GET    /v1/config[?host=H]                        [{"key","value","source"}]: cluster-wide settings, or H's
//!                                                   effective ones (source global|host; the host's win)
//! GET    /v1/config/<key>[?host=H]                  one effective setting (404 if unset)
//! PUT    /v1/config/<key>[?host=H]  {"value"}       set it cluster-wide or for H (known keys' values checked)
//! DELETE /v1/config/<key>[?host=H]                  unset it at that level (404 if not set there)
//! GET    /v1/dump                                   every key under /calico/ (for diags)
//! GET    /v1/sync?node=NAME[&revision=R]            200 application/x-ndjson, a long-lived stream of
//!                                                   SyncMessage lines (snapshot or, resuming from R,
//!                                                   the missed deltas; then deltas and heartbeats)
//! ```
//! `/v1/sync` is served by the HTTP server itself (not [`Api::handle`], which is one synchronous call
//! per request) when the API has a [`SyncHub`](crate::sync::SyncHub) ([`Api::with_sync`]); without
//! one it is a 404. `node` may name a host that is not registered yet (its state is then the pools
//! and the BGP view). The stream ends when the server shuts down. See [`crate::sync`] for resuming and
//! for what a subscriber that stops reading gets (a resync snapshot once it reads again).
//! Writes answer `{"message": "...", "changed": bool, …}`. A duplicate (adding a rule or tag that is
//! already present) is **200 with `"changed": false`** and the original's message ("Rule already present,
//! skipping."), so scripts that re-run a setup succeed; nothing is written then.
//!
//! Errors are `{"error": "...", "field": "..."}` (`field` only when one input is to blame): 400 invalid
//! input (naming the field), 401 missing or wrong bearer token, 404 no such route or object, 405 wrong
//! method, 409 conflict (profile exists, profile in use: the body also lists `"endpoints"`), 413 body
//! over 1 MiB, 503 the datastore is unavailable (nothing was changed), 500 anything else.
//!
//! With a sync hub ([`Api::with_sync`], as `calicoctl master run` starts it), reads are answered from
//! the hub's copy of the store while the store (etcd) is unreachable, and writes get the 503 at once,
//! without being sent (see [`crate::store::CachedStore`]); `/healthz` then answers 503 too.
//!
//! # Consistency
//! Every read-modify-write is a compare-and-swap transaction on the mod revisions of the keys it read
//! (a profile's `tags` and `rules` keys together; a pool's key), retried on conflict, so two concurrent
//! writers never lose an update. Creates compare on absence. The pool overlap check and the
//! "profile in use" check read other keys and are not part of the compare (a concurrent add of an
//! overlapping pool, or of an endpoint using a profile being removed, is not caught). IPAM blocks are
//! swapped one block per transaction (see `ipam.rs`); an endpoint write compares its own key and the
//! blocks holding its addresses.
//!
//! # Auth
//! With a token configured ([`Api::new`]), every request but `GET /healthz` must carry
//! `Authorization: Bearer <token>`, else 401.

mod bgp;
mod config;
mod diags;
mod endpoint_index;
mod endpoints;
mod ipam;
mod metrics;
mod nodes;
mod pools;
mod profiles;
mod router;
mod server;

#[cfg(test)]
mod tests;

pub use router::{Api, ApiRequest, ApiResponse};
pub use server::{bind, serve, DEFAULT_LISTEN, MAX_BODY_BYTES, NDJSON};

use serde_json::{json, Value};

use crate::{model::ValidationError, store::StoreError};

/// How many times a read-modify-write is retried when another writer got there first.
pub(crate) const CAS_RETRIES: usize = 32;

/// Everything that can go wrong in the API: a request's failure (mapped to a status and a JSON body by
/// [`ApiError::status`] and [`ApiError::body`]) or a server's (binding a listener).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An input failed validation.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The request is malformed (not JSON, a missing field, a bad query parameter).
    #[error("{message}")]
    BadRequest {
        /// What is wrong and what to do.
        message: String,
        /// The field at fault.
        field: Option<String>,
    },
    /// No bearer token, or the wrong one.
    #[error("missing or wrong bearer token; pass the master's token with --token-file")]
    Unauthorized,
    /// No such object or route.
    #[error("{message}")]
    NotFound {
        /// What was not found.
        message: String,
        /// The field naming it.
        field: Option<String>,
    },
    /// The route exists but not with this method.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The path.
        path: String,
    },
    /// The request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        /// What conflicts and what to do.
        message: String,
        /// The field at fault.
        field: Option<String>,
        /// Extra JSON members for the body (e.g. `"endpoints"`).
        details: Option<Value>,
    },
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("the request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// Another writer kept winning the compare-and-swap.
    #[error("too many concurrent updates of {0}; try again")]
    Contended(String),
    /// The datastore failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}; is another master running there?")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An unexpected internal failure (a panicked handler, a serialization error).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// A 404 naming `field`.
    pub fn not_found(field: &str, message: impl Into<String>) -> Self {
        ApiError::NotFound {
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// A 409 naming `field`.
    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            message: message.into(),
            field: Some(field.to_owned()),
            details: None,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Validation(_) | ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized => 401,
            ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Conflict { .. } | ApiError::Contended(_) => 409,
            ApiError::TooLarge => 413,
            ApiError::Store(StoreError::Unavailable(_)) => 503,
            _ => 500,
        }
    }

    /// The JSON body: `{"error": "...", "field": "..."}` plus any details.
    pub fn body(&self) -> Value {
        let (field, details) = match self {
            ApiError::Validation(e) => (Some(e.field.as_str()), None),
            ApiError::BadRequest { field, .. } | ApiError::NotFound { field, .. } => {
                (field.as_deref(), None)
            }
            ApiError::Conflict { field, details, .. } => (field.as_deref(), details.as_ref()),
            _ => (None, None),
        };
        let error = match self {
            ApiError::Store(StoreError::Unavailable(e)) => {
                format!("the datastore is unavailable ({e}); nothing was changed, try again later")
            }
            other => other.to_string(),
        };
        let mut body = json!({ "error": error });
        if let (Some(f), Some(obj)) = (field, body.as_object_mut()) {
            obj.insert("field".into(), Value::String(f.to_owned()));
        }
        if let (Some(Value::Object(extra)), Some(obj)) = (details, body.as_object_mut()) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        body
    }
}
