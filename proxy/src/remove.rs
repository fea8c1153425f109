//! The remove hook: `DELETE /containers/{id}` through the proxy deletes a Calico container's endpoint
//! and releases its addresses before answering, so the address is free when the client's `docker rm`
//! returns. Containers of other nodes (several nodes may share one dockerd) and non-Calico containers
//! are left to pass through.

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::hooks::create::NODE_LABEL;
use crate::passthrough::{send, Body, Calico, ConnState, Upstream};

/// The container named in a `DELETE /containers/{id}` path, if this is one.
pub fn target(method: &Method, api_path: &str) -> Option<String> {
    if method != Method::DELETE {
        return None;
    }
    let id = api_path.strip_prefix("/containers/")?;
    (!id.is_empty() && !id.contains('/')).then(|| id.to_string())
}

/// The full id of `name_or_id` if it is a Calico container of this node (asked of the daemon).
async fn ours(
    name_or_id: &str,
    calico: &Calico,
    upstream: &Upstream,
    conn: &ConnState,
) -> Option<String> {
    let inspect = Request::get(format!("/containers/{name_or_id}/json"))
        .header(hyper::header::HOST, "docker")
        .body(crate::passthrough::full(bytes::Bytes::new()))
        .ok()?;
    let resp = send(inspect, upstream, conn).await;
    if resp.status() != StatusCode::OK {
        return None;
    }
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .ok()?
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let node = v.pointer("/Config/Labels")?.get(NODE_LABEL)?.as_str()?;
    (node == calico.node)
        .then(|| v.get("Id")?.as_str().map(String::from))
        .flatten()
}

/// Forwards the delete; once Docker has removed the container, releases its addresses.
pub async fn hook(
    req: Request<Incoming>,
    name_or_id: &str,
    calico: &Calico,
    upstream: &Upstream,
    conn: &ConnState,
) -> Response<Body> {
    let id = ours(name_or_id, calico, upstream, conn).await;
    let resp = send(req.map(http_body_util::BodyExt::boxed), upstream, conn).await;
    if let (Some(id), true) = (id, resp.status().is_success()) {
        // The endpoint goes first, so no endpoint names an address that is free again; a master that
        // is down gets these later from the retry queue. The client's rm succeeded either way.
        if let Err(e) = crate::container::forget(calico, &id).await {
            tracing::warn!(container = %id, "could not release the container's endpoint and addresses: {e}");
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_container_deletes_are_hooked() {
        assert_eq!(
            target(&Method::DELETE, "/containers/abc"),
            Some("abc".into())
        );
        assert_eq!(target(&Method::DELETE, "/containers/abc/"), None);
        assert_eq!(target(&Method::POST, "/containers/abc"), None);
        assert_eq!(target(&Method::DELETE, "/images/abc"), None);
        assert_eq!(target(&Method::DELETE, "/containers/"), None);
    }
}
