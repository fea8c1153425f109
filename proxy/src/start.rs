//! The start and inspect hooks.
//!
//! `POST /containers/{id}/start`: forward; when Docker started it (204) or it was running already
//! (304) and it is a Calico container of this node, wire it before answering, then register its
//! endpoint. A wiring failure reaches the client as a Docker-style 500 naming what failed; the
//! half-made interface is gone, the container is stopped again (its first process, held by the init
//! wrapper, never ran) and the address reservation stays (a later start tries again).
//!
//! `GET /containers/{id}/json`: forward; for a Calico container, show the real command and the Calico
//! addresses ([`crate::hooks::inspect::rewrite`]).

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::{Method, Request, Response, StatusCode};

use crate::container::{self, short};
use crate::docker;
use crate::passthrough::{docker_error, full, send, Body, Calico, ConnState, Upstream};

/// The largest inspect answer rewritten (larger ones pass untouched).
const MAX_INSPECT: usize = 16 << 20;

/// The container of `POST /containers/{id}/start`.
pub fn start_target(method: &Method, api_path: &str) -> Option<String> {
    if method != Method::POST {
        return None;
    }
    let id = api_path
        .strip_prefix("/containers/")?
        .strip_suffix("/start")?;
    (!id.is_empty() && !id.contains('/')).then(|| id.to_string())
}

/// The container of `GET /containers/{id}/json`.
pub fn inspect_target(method: &Method, api_path: &str) -> Option<String> {
    if method != Method::GET {
        return None;
    }
    let id = api_path
        .strip_prefix("/containers/")?
        .strip_suffix("/json")?;
    (!id.is_empty() && !id.contains('/')).then(|| id.to_string())
}

/// Handles a start.
pub async fn start(
    req: Request<Incoming>,
    name: &str,
    calico: &Calico,
    upstream: &Upstream,
    conn: &ConnState,
) -> Response<Body> {
    let resp = send(req.map(|b| b.boxed()), upstream, conn).await;
    if !matches!(
        resp.status(),
        StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
    ) {
        return resp;
    }
    let info = match docker::inspect(&upstream.socket, name).await {
        Ok(Some(info)) => info,
        Ok(None) => return resp,
        Err(e) => {
            return docker_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("container {name} started, but Calico could not look at it: {e}"),
            )
        }
    };
    match container::wire_and_register(calico, &info).await {
        Ok(_) => resp,
        Err(e) => {
            // Its first process waits for a network that will not come: stop it, as a failed start
            // would have left it (and `docker run --rm` then removes it and returns).
            tracing::warn!(container = %short(&info.id), "wiring failed, stopping it: {e}");
            let kill = format!("/containers/{}/kill", info.id);
            if let Err(k) = docker::post(&upstream.socket, &kill).await {
                tracing::warn!(container = %short(&info.id), "could not stop it: {k}");
            }
            docker_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!(
                    "container {name} could not be started: Calico could not wire its network: {e}; \
                     it was stopped again and its addresses stay reserved (start it again to retry)"
                ),
            )
        }
    }
}

/// Handles an inspect.
pub async fn inspect(
    req: Request<Incoming>,
    calico: &Calico,
    upstream: &Upstream,
    conn: &ConnState,
) -> Response<Body> {
    let resp = send(req.map(|b| b.boxed()), upstream, conn).await;
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match Limited::new(body, MAX_INSPECT).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return docker_error(
                StatusCode::BAD_GATEWAY,
                &format!("the Docker daemon's answer broke off: {e}"),
            )
        }
    };
    let rewritten = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|mut v| {
            crate::hooks::inspect::rewrite(
                &mut v,
                &calico.node,
                calico.gateway_v4,
                calico.gateway_v6,
            )
            .then(|| serde_json::to_vec(&v).ok())
            .flatten()
        });
    let out = match rewritten {
        Some(mut b) => {
            b.push(b'\n');
            bytes::Bytes::from(b)
        }
        None => bytes,
    };
    parts.headers.remove(TRANSFER_ENCODING);
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(out.len()));
    Response::from_parts(parts, full(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_inspect_paths() {
        assert_eq!(
            start_target(&Method::POST, "/containers/abc/start"),
            Some("abc".into())
        );
        assert_eq!(start_target(&Method::GET, "/containers/abc/start"), None);
        assert_eq!(start_target(&Method::POST, "/containers/abc/stop"), None);
        assert_eq!(start_target(&Method::POST, "/containers//start"), None);
        assert_eq!(
            inspect_target(&Method::GET, "/containers/web-1/json"),
            Some("web-1".into())
        );
        assert_eq!(inspect_target(&Method::GET, "/containers/json"), None);
        assert_eq!(inspect_target(&Method::POST, "/containers/a/json"), None);
    }
}
