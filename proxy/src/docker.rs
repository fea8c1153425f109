//! The proxy's own Docker API calls (not a client's): inspect a container or an image, list the
//! containers of this node, kill one, and open the event stream. Each call opens its own connection to the
//! daemon's unix socket, so they never queue behind a client's streaming request.
//!
//! Inputs: the daemon's socket path and the API path. Outputs: parsed JSON (or `None` for a 404), the
//! facts the hooks need about a container ([`ContainerInfo`]), or an event stream's body.

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

use crate::error::Error;

/// The largest answer read into memory (an inspect of a container is a few KB).
const MAX_ANSWER: usize = 16 << 20;

/// Sends `GET path` to the daemon and returns its response, streamed.
pub async fn get(socket: &Path, path: &str) -> Result<Response<Incoming>, Error> {
    request(socket, Method::GET, path).await
}

/// Sends `POST path` (no body) and returns the status.
pub async fn post(socket: &Path, path: &str) -> Result<StatusCode, Error> {
    Ok(request(socket, Method::POST, path).await?.status())
}

/// Sends a bodiless request to the daemon and returns its response, streamed.
pub async fn request(
    socket: &Path,
    method: Method,
    path: &str,
) -> Result<Response<Incoming>, Error> {
    let stream = UnixStream::connect(socket).await.map_err(|e| {
        Error::Docker(format!(
            "cannot reach the Docker daemon at {}: {e}",
            socket.display()
        ))
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Error::Docker(format!("the Docker daemon did not speak HTTP: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("docker connection ended: {e}");
        }
    });
    let req = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(hyper::header::HOST, "docker")
        .body(Empty::<Bytes>::new())
        .map_err(|e| Error::Docker(format!("bad request path {path}: {e}")))?;
    sender
        .send_request(req)
        .await
        .map_err(|e| Error::Docker(format!("{method} {path} failed: {e}")))
}

/// `GET path` as JSON; `Ok(None)` when the daemon answers 404.
pub async fn get_json(socket: &Path, path: &str) -> Result<Option<Value>, Error> {
    let resp = get(socket, path).await?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| Error::Docker(format!("GET {path}: the answer broke off: {e}")))?
        .to_bytes();
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(Error::Docker(format!(
            "GET {path}: {status}: {}",
            String::from_utf8_lossy(&body).trim()
        )));
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| Error::Docker(format!("GET {path}: not JSON: {e}")))
}

/// What the proxy needs to know about a container.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    /// The PID of its first process (0 when it is not running).
    pub pid: u32,
    pub running: bool,
    /// `Config.Labels`.
    pub labels: Value,
}

impl ContainerInfo {
    /// From an inspect answer.
    pub fn from_inspect(v: &Value) -> Option<ContainerInfo> {
        Some(ContainerInfo {
            id: v.get("Id")?.as_str()?.to_string(),
            pid: v
                .pointer("/State/Pid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0),
            running: v
                .pointer("/State/Running")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            labels: v.pointer("/Config/Labels").cloned().unwrap_or(Value::Null),
        })
    }
}

/// Inspects a container by name or id; `Ok(None)` when there is no such container.
pub async fn inspect(socket: &Path, name_or_id: &str) -> Result<Option<ContainerInfo>, Error> {
    let Some(v) = get_json(socket, &format!("/containers/{name_or_id}/json")).await? else {
        return Ok(None);
    };
    ContainerInfo::from_inspect(&v)
        .map(Some)
        .ok_or_else(|| Error::Docker(format!("the inspect answer for {name_or_id} has no Id")))
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The ids of the containers labelled for `node` (all of them, or only the running ones).
pub async fn containers_of(socket: &Path, node: &str, all: bool) -> Result<Vec<String>, Error> {
    let filters = serde_json::json!({
        "label": [format!("{}={node}", crate::hooks::workload::NODE_LABEL)]
    })
    .to_string();
    let path = format!(
        "/containers/json?all={}&filters={}",
        if all { 1 } else { 0 },
        encode(&filters)
    );
    let list = get_json(socket, &path).await?.unwrap_or(Value::Null);
    Ok(list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.get("Id").and_then(Value::as_str).map(String::from))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode(r#"{"type":["container"]}"#),
            "%7B%22type%22%3A%5B%22container%22%5D%7D"
        );
        assert_eq!(encode("a-b_c.d"), "a-b_c.d");
    }

    #[test]
    fn container_facts() {
        let v = serde_json::json!({"Id": "abc", "State": {"Pid": 42, "Running": true},
                                   "Config": {"Labels": {"x": "y"}}});
        let c = ContainerInfo::from_inspect(&v).unwrap();
        assert_eq!((c.id.as_str(), c.pid, c.running), ("abc", 42, true));
        assert_eq!(c.labels["x"], "y");
        assert!(ContainerInfo::from_inspect(&serde_json::json!({})).is_none());
    }
}
