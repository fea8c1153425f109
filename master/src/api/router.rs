//! The transport-free core of the API: authentication, routing, JSON in and out, metrics.
//!
//! Role: [`Api::handle`] turns one [`ApiRequest`] (method, path, query, bearer header, body bytes) into
//! one [`ApiResponse`] (status, content type, body). It is synchronous and may block on the store, so
//! the server calls it on tokio's blocking pool. The route table is in the module docs of [`super`].

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use super::{
    bgp, config, diags, endpoint_index::EndpointIndex, endpoints, ipam, metrics::Metrics, nodes,
    pools, profiles, profiles::Direction, ApiError,
};
use crate::{
    model::IpVersion,
    store::{keys::Key, CachedStore, Store},
    sync::SyncHub,
};

/// One request, as the server read it.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string (without `?`), possibly empty.
    pub query: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    /// The HTTP status.
    pub status: u16,
    /// `application/json` or, for metrics, Prometheus text.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl ApiResponse {
    fn json(status: u16, v: &Value) -> Self {
        let mut body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        ApiResponse {
            status,
            content_type: "application/json",
            body,
        }
    }

    /// An error answer.
    pub fn error(e: &ApiError) -> Self {
        Self::json(e.status(), &e.body())
    }
}

/// The API over one store.
#[derive(Debug)]
pub struct Api {
    store: Arc<dyn Store>,
    token: Option<String>,
    metrics: Metrics,
    /// Serialises this master's IPAM writes (see `ipam.rs`); other masters are kept out by the swap.
    ipam_lock: Mutex<()>,
    /// The node sync hub behind `GET /v1/sync` (served by the HTTP server, see `server.rs`).
    sync: Option<Arc<SyncHub>>,
    /// Whether this process has completed the endpoint-id index (see `endpoint_index.rs`).
    endpoint_index: EndpointIndex,
}

/// A successful handler result: status and JSON body.
type Reply = Result<(u16, Value), ApiError>;

impl Api {
    /// An API over `store`; with `token`, every request but `/healthz` needs `Authorization: Bearer <token>`.
    pub fn new(store: Arc<dyn Store>, token: Option<String>) -> Self {
        Api {
            store,
            token,
            metrics: Metrics::default(),
            ipam_lock: Mutex::new(()),
            sync: None,
            endpoint_index: EndpointIndex::default(),
        }
    }

    /// Serve the node sync stream (`GET /v1/sync`) from `hub`, and answer reads from the hub's copy
    /// of the store while the store (etcd) is unreachable ([`CachedStore`]). `hub` must follow this
    /// API's store.
    #[must_use]
    pub fn with_sync(mut self, hub: Arc<SyncHub>) -> Self {
        self.store = Arc::new(CachedStore::new(self.store.clone(), hub.mirror()));
        self.sync = Some(hub);
        self
    }

    /// The sync hub, if this API serves `/v1/sync`.
    pub fn sync_hub(&self) -> Option<&Arc<SyncHub>> {
        self.sync.as_ref()
    }

    /// The request counters (the streaming sync route records itself).
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The store behind the API (with a sync hub, the [`CachedStore`] around the one given).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Answer one request (blocking on the store).
    pub fn handle(&self, req: &ApiRequest) -> ApiResponse {
        let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
        let route = route_name(&segs);
        let resp = if route == "/healthz" && req.method == "GET" {
            self.healthz()
        } else if !self.authorized(req.authorization.as_deref()) {
            ApiResponse::error(&ApiError::Unauthorized)
        } else if route == "/metrics" && req.method == "GET" {
            ApiResponse {
                status: 200,
                content_type: "text/plain; version=0.0.4",
                body: self
                    .metrics
                    .render(
                        self.store.revision().ok(),
                        self.sync.as_ref().map(|h| h.stats()),
                    )
                    .into_bytes(),
            }
        } else {
            match self.dispatch(req, &segs) {
                Ok((status, v)) => ApiResponse::json(status, &v),
                Err(e) => {
                    if e.status() >= 500 {
                        tracing::warn!(method = %req.method, path = %req.path, error = %e, "request failed");
                    }
                    ApiResponse::error(&e)
                }
            }
        };
        self.metrics.record(route, &req.method, resp.status);
        resp
    }

    fn healthz(&self) -> ApiResponse {
        match self.store.revision() {
            Ok(rev) => {
                ApiResponse::json(200, &serde_json::json!({"status": "ok", "revision": rev}))
            }
            Err(e) => ApiResponse::error(&ApiError::Store(e)),
        }
    }

    /// Whether `header` (the `Authorization` header) carries the token, if one is configured.
    pub(crate) fn authorized(&self, header: Option<&str>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        // Compare without stopping at the first difference, so timing does not leak the prefix.
        given.is_some_and(|g| {
            g.len() == token.len()
                && g.bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    }

    fn dispatch(&self, req: &ApiRequest, segs: &[&str]) -> Reply {
        let store = self.store.as_ref();
        let lock = &self.ipam_lock;
        let index = &self.endpoint_index;
        let m = req.method.as_str();
        let q = Query::parse(&req.query);
        let not_allowed = || ApiError::MethodNotAllowed {
            method: req.method.clone(),
            path: req.path.clone(),
        };
        match segs {
            ["healthz"] | ["metrics"] => Err(not_allowed()),
            ["v1", "pools"] => match m {
                "GET" => {
                    let version = match q.get("version") {
                        None => None,
                        Some("4") => Some(IpVersion::V4),
                        Some("6") => Some(IpVersion::V6),
                        Some(other) => {
                            return Err(ApiError::bad_request(
                                "version",
                                format!("`{other}` is not an IP version; use 4 or 6"),
                            ))
                        }
                    };
                    let pools: Vec<Value> = pools::list(store, version)?
                        .iter()
                        .map(pools::pool_json)
                        .collect();
                    Ok((200, Value::Array(pools)))
                }
                "POST" => {
                    let (created, v) = pools::add(store, &json_body(req)?)?;
                    Ok((if created { 201 } else { 200 }, v))
                }
                _ => Err(not_allowed()),
            },
            ["v1", "pools", cidr] => match m {
                "DELETE" => Ok((200, pools::remove(store, cidr)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "profiles"] => match m {
                "GET" => Ok((200, profiles::list(store, q.flag("detailed")?)?)),
                "POST" => Ok((201, profiles::add(store, &json_body(req)?)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "profiles", name] => match m {
                "GET" => Ok((200, profiles::get(store, name)?)),
                "DELETE" => Ok((200, profiles::remove(store, name, q.flag("force")?)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "profiles", name, "tags"] => match m {
                "GET" => Ok((200, profiles::tags(store, name)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "profiles", name, "tags", tag] => match m {
                "PUT" => Ok((200, profiles::add_tag(store, name, tag)?)),
                "DELETE" => Ok((200, profiles::remove_tag(store, name, tag)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "profiles", name, "rules"] => match m {
                "GET" => Ok((200, profiles::rules(store, name)?)),
                "PUT" => Ok((200, profiles::replace_rules(store, name, &json_body(req)?)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "profiles", name, "rules", dir] => match m {
                "POST" => {
                    let dir = Direction::parse(dir)?;
                    Ok((200, profiles::add_rule(store, name, dir, &json_body(req)?)?))
                }
                _ => Err(not_allowed()),
            },
            ["v1", "profiles", name, "rules", dir, "remove"] => match m {
                "POST" => {
                    let dir = Direction::parse(dir)?;
                    Ok((
                        200,
                        profiles::remove_rule(store, name, dir, &json_body(req)?)?,
                    ))
                }
                _ => Err(not_allowed()),
            },
            ["v1", "profiles", name, "rules", dir, position] => match m {
                "DELETE" => {
                    let dir = Direction::parse(dir)?;
                    Ok((200, profiles::remove_rule_at(store, name, dir, position)?))
                }
                _ => Err(not_allowed()),
            },
            ["v1", "ipam", "assign"] => match m {
                "POST" => Ok((201, ipam::assign(store, lock, &json_body(req)?)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "ipam", "ips", ip] => match m {
                "GET" => Ok((200, ipam::info(store, ip)?)),
                "DELETE" => Ok((200, ipam::release(store, lock, ip, q.flag("force")?)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "ipam", "hosts", host, "routes"] => match m {
                "GET" => Ok((200, ipam::routes(store, host)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "ipam", "hosts", host, "handles"] => match m {
                "GET" => Ok((200, ipam::handles(store, host)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "ipam", "handles", handle, "rename"] => match m {
                "POST" => Ok((
                    200,
                    ipam::rename_handle(store, lock, handle, &json_body(req)?)?,
                )),
                _ => Err(not_allowed()),
            },
            ["v1", "ipam", "handles", handle] => match m {
                "DELETE" => Ok((200, ipam::release_by_handle(store, lock, handle)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "endpoints"] => match m {
                "GET" => Ok((200, endpoints::list(store, q.get("host"))?)),
                "POST" => {
                    let (created, v) = endpoints::put(store, index, &json_body(req)?)?;
                    Ok((if created { 201 } else { 200 }, v))
                }
                _ => Err(not_allowed()),
            },
            ["v1", "endpoints", id] => match m {
                "GET" => Ok((200, endpoints::get(store, index, id)?)),
                "DELETE" => Ok((200, endpoints::delete(store, index, lock, id)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "endpoints", id, "profiles"] => match m {
                "GET" => Ok((200, endpoints::profiles(store, index, id)?)),
                "POST" => Ok((
                    200,
                    endpoints::change_profiles(store, index, id, &json_body(req)?)?,
                )),
                _ => Err(not_allowed()),
            },
            ["v1", "nodes"] => match m {
                "GET" => Ok((200, nodes::list(store, q.flag("detailed")?)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "nodes", name] => match m {
                "GET" => Ok((200, nodes::get(store, name)?)),
                "PUT" => {
                    let (created, v) = nodes::put(store, name, &json_body(req)?)?;
                    Ok((if created { 201 } else { 200 }, v))
                }
                "DELETE" => Ok((200, nodes::remove(store, lock, name, q.flag("force")?)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "nodes", name, "status"] => match m {
                "GET" => Ok((200, nodes::status(store, name)?)),
                "PUT" => Ok((200, nodes::put_status(store, name, &json_body(req)?)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "nodes", name, "route_reflector"] => match m {
                "PUT" => {
                    let (created, v) = nodes::put_route_reflector(store, name, &json_body(req)?)?;
                    Ok((if created { 201 } else { 200 }, v))
                }
                "DELETE" => Ok((200, nodes::remove_route_reflector(store, name)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "nodes", name, "peers"] => match m {
                "GET" => Ok((200, nodes::peers(store, name, q.get("version"))?)),
                "POST" => {
                    let (created, v) = nodes::add_peer(store, name, &json_body(req)?)?;
                    Ok((if created { 201 } else { 200 }, v))
                }
                _ => Err(not_allowed()),
            },
            ["v1", "nodes", name, "peers", ip] => match m {
                "DELETE" => Ok((200, nodes::remove_peer(store, name, ip)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "bgp", "config"] => match m {
                "GET" => Ok((200, bgp::config(store)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "bgp", "as_num"] => match m {
                "PUT" => Ok((200, bgp::set_default_as(store, &json_body(req)?)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "bgp", "node_mesh"] => match m {
                "PUT" => Ok((200, bgp::set_node_mesh(store, &json_body(req)?)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "bgp", "timers"] => match m {
                "PUT" => Ok((200, bgp::set_timers(store, &json_body(req)?)?)),
                _ => Err(not_allowed()),
            },
            ["v1", "bgp", "peers"] => match m {
                "GET" => {
                    let v = bgp::version_param(q.get("version"))?;
                    Ok((
                        200,
                        bgp::public_peers(&bgp::list_peers(store, BGP_GLOBAL, v)?),
                    ))
                }
                "POST" => {
                    let peer = bgp::peer_from_body(&json_body(req)?)?;
                    let key = Key::GlobalPeer { ip: peer.ip };
                    let (created, v) = bgp::put_peer(store, &key, &peer, "global")?;
                    Ok((if created { 201 } else { 200 }, v))
                }
                _ => Err(not_allowed()),
            },
            ["v1", "bgp", "peers", ip] => match m {
                "DELETE" => {
                    let ip = ipam::parse_ip(ip)?;
                    Ok((
                        200,
                        bgp::delete_peer(store, &Key::GlobalPeer { ip }, ip, "global")?,
                    ))
                }
                _ => Err(not_allowed()),
            },
            ["v1", "config"] => match m {
                "GET" => Ok((200, config::list(store, q.get("host"))?)),
                _ => Err(not_allowed()),
            },
            ["v1", "config", key] => match m {
                "GET" => Ok((200, config::get(store, key, q.get("host"))?)),
                "PUT" => {
                    let (created, v) = config::put(store, key, q.get("host"), &json_body(req)?)?;
                    Ok((if created { 201 } else { 200 }, v))
                }
                "DELETE" => Ok((200, config::delete(store, key, q.get("host"))?)),
                _ => Err(not_allowed()),
            },
            ["v1", "dump"] => match m {
                "GET" => Ok((200, diags::dump(store)?)),
                _ => Err(not_allowed()),
            },
            // A GET with a hub is streamed by the server before it gets here.
            ["v1", "sync"] => match m {
                "GET" => Err(ApiError::NotFound {
                    message: "this master does not serve the node sync stream".into(),
                    field: None,
                }),
                _ => Err(not_allowed()),
            },
            _ => Err(ApiError::NotFound {
                message: format!("no such route: {} {}", req.method, req.path),
                field: None,
            }),
        }
    }
}

/// The prefix of the global BGP peers.
const BGP_GLOBAL: &str = crate::store::keys::BGP_GLOBAL_PREFIX;

/// The route template of a path, for metrics (bounded label values).
fn route_name(segs: &[&str]) -> &'static str {
    match segs {
        ["healthz"] => "/healthz",
        ["metrics"] => "/metrics",
        ["v1", "pools"] => "/v1/pools",
        ["v1", "pools", _] => "/v1/pools/{cidr}",
        ["v1", "profiles"] => "/v1/profiles",
        ["v1", "profiles", _] => "/v1/profiles/{name}",
        ["v1", "profiles", _, "tags"] => "/v1/profiles/{name}/tags",
        ["v1", "profiles", _, "tags", _] => "/v1/profiles/{name}/tags/{tag}",
        ["v1", "profiles", _, "rules"] => "/v1/profiles/{name}/rules",
        ["v1", "profiles", _, "rules", _] => "/v1/profiles/{name}/rules/{dir}",
        ["v1", "profiles", _, "rules", _, "remove"] => "/v1/profiles/{name}/rules/{dir}/remove",
        ["v1", "profiles", _, "rules", _, _] => "/v1/profiles/{name}/rules/{dir}/{position}",
        ["v1", "ipam", "assign"] => "/v1/ipam/assign",
        ["v1", "ipam", "ips", _] => "/v1/ipam/ips/{ip}",
        ["v1", "ipam", "handles", _] => "/v1/ipam/handles/{handle}",
        ["v1", "ipam", "handles", _, "rename"] => "/v1/ipam/handles/{handle}/rename",
        ["v1", "ipam", "hosts", _, "routes"] => "/v1/ipam/hosts/{host}/routes",
        ["v1", "ipam", "hosts", _, "handles"] => "/v1/ipam/hosts/{host}/handles",
        ["v1", "endpoints"] => "/v1/endpoints",
        ["v1", "endpoints", _] => "/v1/endpoints/{id}",
        ["v1", "endpoints", _, "profiles"] => "/v1/endpoints/{id}/profiles",
        ["v1", "nodes"] => "/v1/nodes",
        ["v1", "nodes", _] => "/v1/nodes/{name}",
        ["v1", "nodes", _, "status"] => "/v1/nodes/{name}/status",
        ["v1", "nodes", _, "route_reflector"] => "/v1/nodes/{name}/route_reflector",
        ["v1", "nodes", _, "peers"] => "/v1/nodes/{name}/peers",
        ["v1", "nodes", _, "peers", _] => "/v1/nodes/{name}/peers/{ip}",
        ["v1", "bgp", "config"] => "/v1/bgp/config",
        ["v1", "bgp", "as_num"] => "/v1/bgp/as_num",
        ["v1", "bgp", "node_mesh"] => "/v1/bgp/node_mesh",
        ["v1", "bgp", "timers"] => "/v1/bgp/timers",
        ["v1", "bgp", "peers"] => "/v1/bgp/peers",
        ["v1", "bgp", "peers", _] => "/v1/bgp/peers/{ip}",
        ["v1", "config"] => "/v1/config",
        ["v1", "config", _] => "/v1/config/{key}",
        ["v1", "dump"] => "/v1/dump",
        ["v1", "sync"] => "/v1/sync",
        _ => "other",
    }
}

fn json_body(req: &ApiRequest) -> Result<Value, ApiError> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("body", "a JSON body is required"));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request("body", format!("the body is not valid JSON: {e}")))
}

/// A boolean member of a JSON body (absent or null: false).
pub(crate) fn body_bool(obj: &Map<String, Value>, field: &str) -> Result<bool, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ApiError::bad_request(
            field,
            format!("{other} is not true or false"),
        )),
    }
}

/// A parsed query string (no percent-decoding: the API's parameters are plain words).
struct Query<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Query<'a> {
    fn parse(q: &'a str) -> Self {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| p.split_once('=').unwrap_or((p, "")))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("false") | Some("0") => Ok(false),
            Some("") | Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ApiError::bad_request(
                name,
                format!("`{other}` is not true or false"),
            )),
        }
    }
}
