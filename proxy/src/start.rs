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
//! Calico label is passed on as it came, without being parsed. One that does is checked whole, but only
//! the members the hook needs are parsed; the others are copied as the daemon wrote them, in its order
//! ([`crate::hooks::rawjson`]).

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::{Method, Request, Response, StatusCode};

use crate::container::{self, short};
use crate::docker;
use crate::hooks::workload::mentions_calico;
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
    rewrite_answer(resp, |text| {
        crate::hooks::inspect::rewrite(text, &calico.node, calico.gateway_v4, calico.gateway_v6)
    })
    .await
}

/// Handles a list of containers.
pub async fn list(req: Request<Incoming>, upstream: &Upstream, conn: &ConnState) -> Response<Body> {
    let resp = send(req.map(|b| b.boxed()), upstream, conn).await;
    rewrite_answer(resp, crate::hooks::list::rewrite).await
}

/// Reads a 200 answer of JSON and passes its text through `rewrite` when it names a Calico label;
/// anything `rewrite` leaves (`None`) goes on as it came (with its length now known).
async fn rewrite_answer(
    resp: Response<Body>,
    rewrite: impl FnOnce(&str) -> Option<String>,
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
        .then(|| std::str::from_utf8(&bytes).ok())
        .flatten()
        .and_then(rewrite);
    let out = match rewritten {
        Some(mut text) => {
            text.push('\n');
            bytes::Bytes::from(text)
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

    /// The body and `Content-Length` of `rewrite_answer` on a 200 answer of `body`, with the inspect
    /// hook of node h1.
    fn rewritten(body: &str) -> (String, String) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let resp = Response::new(full(body.to_string()));
        let resp = rt.block_on(rewrite_answer(resp, |text| {
            crate::hooks::inspect::rewrite(text, "h1", None, None)
        }));
        let length = resp.headers()[CONTENT_LENGTH].to_str().unwrap().to_string();
        let out = rt.block_on(resp.into_body().collect()).unwrap().to_bytes();
        (String::from_utf8(out.to_vec()).unwrap(), length)
    }

    #[test]
    fn answers_pass_unchanged_unless_a_calico_container_is_rewritten() {
        use crate::hooks::inspect::tests::{calico_labels, docker_answer};
        let plain = format!("{}\n", docker_answer(r#"{"app":"x"}"#));
        assert_eq!(rewritten(&plain), (plain.clone(), plain.len().to_string()));
        let calico = format!("{}\n", docker_answer(&calico_labels()));
        let broken = &calico[..calico.len() - 3];
        assert_eq!(rewritten(broken), (broken.into(), broken.len().to_string()));
        let (out, length) = rewritten(&calico);
        assert_ne!(out, calico);
        assert!(out.ends_with("}\n"));
        assert_eq!(length, out.len().to_string());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["NetworkSettings"]["IPAddress"], "10.65.0.2");
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
