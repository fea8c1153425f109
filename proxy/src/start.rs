//! The start, inspect and list hooks.
//!
//! `POST /containers/{id}/start`: forward; when Docker started it (204) or it was running already
//! (304) and it is a Calico container of this node, wire it before answering, then register its
//! endpoint. A wiring failure reaches the client as a Docker-style 500 naming what failed; the
//! half-made interface is gone, the container is stopped again (its first process, held by the init
//! wrapper, never ran) and the address reservation stays (a later start tries again).
//!
//! `GET /containers/{id}/json`: forward; for a Calico container, show the real command and the Calico
//! addresses ([`crate::hooks::inspect::rewrite`]).
//!
//! `GET /containers/json` (`docker ps`): forward; show each Calico container's own command in
//! `Command` ([`crate::hooks::list::rewrite`]).
//!
//! Both read the daemon's answer into memory (it is small and never a stream); an answer that names no
//! Calico label is passed on as it came, without being parsed.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::{Method, Request, Response, StatusCode};

use crate::container::{self, short};
use crate::docker;
use crate::hooks::workload::NODE_LABEL;
use crate::passthrough::{docker_error, full, send, Body, Calico, ConnState, Upstream};

/// The largest inspect or list answer read.
const MAX_ANSWER: usize = 64 << 20;

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

/// True for `GET /containers/json`, the list `docker ps` shows.
pub fn list_target(method: &Method, api_path: &str) -> bool {
    method == Method::GET && api_path == "/containers/json"
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
    rewrite_answer(resp, |v| {
        crate::hooks::inspect::rewrite(v, &calico.node, calico.gateway_v4, calico.gateway_v6)
    })
    .await
}

/// Handles a list of containers.
pub async fn list(req: Request<Incoming>, upstream: &Upstream, conn: &ConnState) -> Response<Body> {
    let resp = send(req.map(|b| b.boxed()), upstream, conn).await;
    rewrite_answer(resp, crate::hooks::list::rewrite).await
}

/// True when `body` mentions Calico's labels at all (else it needs no parsing).
fn mentions_calico(body: &[u8]) -> bool {
    let needle = NODE_LABEL.as_bytes();
    body.windows(needle.len()).any(|w| w == needle)
}

/// Reads a 200 answer of JSON and passes it through `rewrite` when it concerns a Calico container;
/// anything else goes on as it came (with its length now known).
async fn rewrite_answer(
    resp: Response<Body>,
    rewrite: impl FnOnce(&mut serde_json::Value) -> bool,
) -> Response<Body> {
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match Limited::new(body, MAX_ANSWER).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return docker_error(
                StatusCode::BAD_GATEWAY,
                &format!("the Docker daemon's answer broke off: {e}"),
            )
        }
    };
    let rewritten = mentions_calico(&bytes)
        .then(|| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .flatten()
        .and_then(|mut v| {
            rewrite(&mut v)
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
        assert!(list_target(&Method::GET, "/containers/json"));
        assert!(!list_target(&Method::POST, "/containers/json"));
        assert!(!list_target(&Method::GET, "/containers/abc/json"));
    }

    #[test]
    fn only_answers_naming_calico_labels_are_parsed() {
        assert!(mentions_calico(
            br#"[{"Labels":{"org.projectcalico.node":"h1"}}]"#
        ));
        assert!(!mentions_calico(br#"[{"Labels":{"app":"x"}}]"#));
        assert!(!mentions_calico(b""));
    }
}
