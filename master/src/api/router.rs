//! The transport-free core of the API: authentication, routing, JSON in and out, metrics.
//!
//! Role: [`Api::handle`] turns one [`ApiRequest`] (method, path, query, bearer header, body bytes) into
//! one [`ApiResponse`] (status, content type, body). It is synchronous and may block on the store, so
//! the server calls it on tokio's blocking pool. The route table is in the module docs of [`super`].

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{metrics::Metrics, pools, profiles, profiles::Direction, ApiError};
use crate::{model::IpVersion, store::Store};

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
        }
    }

    /// The store behind the API.
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
                body: self.metrics.render(self.store.revision().ok()).into_bytes(),
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

    fn authorized(&self, header: Option<&str>) -> bool {
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
            _ => Err(ApiError::NotFound {
                message: format!("no such route: {} {}", req.method, req.path),
                field: None,
            }),
        }
    }
}

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
