//! The create hook, the I/O side: for a Calico container, reserve its addresses with the master before
//! Docker creates anything, create missing profiles, record the reserved addresses and profiles as
//! labels and put the init wrapper in front of the command (reading the image's entrypoint and command
//! when the body leaves them to it), forward the rewritten request, then record the reservation against
//! the new container's id (or release it if Docker refused).
//!
//! Errors reach the client as Docker-style JSON: 400 for a bad `CALICO_IP` / `CALICO_PROFILE` (naming the
//! variable and the value) or an address the master refused (outside every pool, in use), 503 when the
//! master cannot be reached. In every error case nothing is created and nothing stays reserved.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use calico_master::client::ClientError;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::hooks::create::{decide, CreateDecision};
use crate::hooks::wrapper::{finish, needs_image, ImageArgv, Wrap};
use crate::passthrough::{docker_error, full, send, Body, Calico, ConnState, Upstream};

/// The largest create body the hook reads (Docker's own configs are a few KB).
const MAX_CREATE_BODY: usize = 4 << 20;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The node's name as it goes into a reservation handle.
fn handle_node(node: &str) -> String {
    node.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A handle for addresses reserved before the container id exists.
fn reservation_handle(node: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "proxy-{}-{nanos}-{}",
        handle_node(node),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// What an address handle of this node is, for the reconcile that frees what nothing holds. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleKind {
    /// A Docker container id (what a reservation is re-keyed to once Docker made the container).
    Container,
    /// A reservation of this node's proxy made `age` ago and never re-keyed (a create in flight, or
    /// one cut short).
    Reservation { age: Duration },
    /// Anything else (another workload kind's): not the proxy's to free.
    Other,
}

/// Tells what `handle` is, for node `node` at `now`.
pub fn classify_handle(handle: &str, node: &str, now: SystemTime) -> HandleKind {
    if handle.len() == 64
        && handle
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return HandleKind::Container;
    }
    let stamp = handle
        .strip_prefix("proxy-")
        .and_then(|rest| rest.strip_prefix(handle_node(node).as_str()))
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(nanos, counter)| {
            counter.parse::<u64>().ok()?;
            nanos.parse::<u128>().ok()
        });
    match stamp {
        Some(nanos) => {
            let made = UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
            HandleKind::Reservation {
                age: now.duration_since(made).unwrap_or_default(),
            }
        }
        None => HandleKind::Other,
    }
}

fn master_error(what: &str, e: &ClientError) -> Response<Body> {
    match e {
        ClientError::Api { status, error, .. } if (400..500).contains(status) => docker_error(
            StatusCode::BAD_REQUEST,
            &format!("{what}: {error}; the container was not created"),
        ),
        other => docker_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "{what}: the Calico master could not do it: {other}; the container was not created"
            ),
        ),
    }
}

async fn release(calico: &Calico, handle: &str) {
    if let Err(e) = calico
        .master
        .delete(&format!("/v1/ipam/handles/{handle}"))
        .await
    {
        tracing::warn!(%handle, "could not release a reservation: {e}");
    }
}

/// The image's entrypoint and command, when the create body leaves them to it (`None`: unknown).
async fn image_argv(body: &[u8], upstream: &Upstream) -> Option<ImageArgv> {
    if !needs_image(body) {
        return Some(ImageArgv::default());
    }
    let config: serde_json::Value = serde_json::from_slice(body).ok()?;
    let image = config.get("Image")?.as_str()?;
    match crate::docker::get_json(&upstream.socket, &format!("/images/{image}/json")).await {
        Ok(Some(v)) => Some(ImageArgv {
            entrypoint: v.pointer("/Config/Entrypoint").cloned().unwrap_or_default(),
            cmd: v.pointer("/Config/Cmd").cloned().unwrap_or_default(),
        }),
        Ok(None) => None, // Docker answers the create with its own 404 (and the CLI pulls).
        Err(e) => {
            tracing::warn!(%image, "cannot read the image's config; no init wrapper: {e}");
            None
        }
    }
}

/// Records the reservation in labels and, when the node has an init wrapper, puts it in front.
async fn finish_body(
    body: &[u8],
    ips: &[IpAddr],
    profiles: &[String],
    calico: &Calico,
    upstream: &Upstream,
) -> Vec<u8> {
    let image = match &calico.init_binary {
        Some(_) => image_argv(body, upstream).await,
        None => None,
    };
    let host_path = calico.init_binary.as_ref().map(|p| p.display().to_string());
    let wrap = match (&host_path, &image) {
        (Some(host_path), Some(image)) => Some(Wrap { host_path, image }),
        _ => None,
    };
    finish(body, ips, profiles, wrap)
}

/// Handles `POST /containers/create` on a Calico node.
pub async fn hook(
    req: Request<Incoming>,
    calico: &Calico,
    upstream: &Upstream,
    conn: &ConnState,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_CREATE_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return docker_error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the container's config: {e}"),
            )
        }
    };
    let (request, body) = match decide(&bytes, &calico.node) {
        CreateDecision::PassThrough => {
            return send(Request::from_parts(parts, full(bytes)), upstream, conn).await
        }
        CreateDecision::Reject(message) => return docker_error(StatusCode::BAD_REQUEST, &message),
        CreateDecision::Calico { request, body } => (request, body),
    };
    let ips = request.ip_texts.join(",");
    let handle = reservation_handle(&calico.node);
    let assign = json!({"host": calico.node, "handle_id": handle, "requests": request.ip_texts});
    let assigned: Vec<IpAddr> = match calico.master.post("/v1/ipam/assign", &assign).await {
        Ok(answer) => answer["assignments"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|a| a["ip"].as_str()?.parse().ok())
            .collect(),
        Err(e) => return master_error(&format!("CALICO_IP={ips}"), &e),
    };
    for profile in &request.profiles {
        match calico
            .master
            .post("/v1/profiles", &json!({ "name": profile }))
            .await
        {
            Ok(_) | Err(ClientError::Api { status: 409, .. }) => {}
            Err(e) => {
                release(calico, &handle).await;
                return master_error(&format!("CALICO_PROFILE={profile}"), &e);
            }
        }
    }
    let body = finish_body(&body, &assigned, &request.profiles, calico, upstream).await;
    parts.headers.remove(TRANSFER_ENCODING);
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let resp = send(Request::from_parts(parts, full(body)), upstream, conn).await;
    if resp.status() != StatusCode::CREATED {
        release(calico, &handle).await;
        return resp;
    }
    let (rparts, rbody) = resp.into_parts();
    let answer = match rbody.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            release(calico, &handle).await;
            return docker_error(
                StatusCode::BAD_GATEWAY,
                &format!("the Docker daemon's answer broke off: {e}"),
            );
        }
    };
    let id = serde_json::from_slice::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| v.get("Id").and_then(|i| i.as_str()).map(String::from));
    match id {
        Some(id) => {
            let rename = json!({ "handle_id": id });
            if let Err(e) = calico
                .master
                .post(&format!("/v1/ipam/handles/{handle}/rename"), &rename)
                .await
            {
                tracing::warn!(%handle, container = %id, "could not record the reservation against the container: {e}");
            }
        }
        None => {
            tracing::warn!(%handle, "Docker's create answer had no Id; the reservation keeps its handle")
        }
    }
    Response::from_parts(rparts, full(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_tell_containers_reservations_and_the_rest() {
        let now = SystemTime::now();
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(classify_handle(&id, "h1", now), HandleKind::Container);
        let mine = reservation_handle("h1");
        assert!(matches!(
            classify_handle(&mine, "h1", now + Duration::from_secs(60)),
            HandleKind::Reservation { age } if age >= Duration::from_secs(59)
        ));
        // Another node's reservation (even one whose name starts like ours), a netns workload's
        // handle, a shortened id: not ours to free.
        assert_eq!(
            classify_handle(&reservation_handle("h1-2"), "h1", now),
            HandleKind::Other
        );
        assert_eq!(classify_handle(&mine, "h2", now), HandleKind::Other);
        assert_eq!(classify_handle("netns-w1", "h1", now), HandleKind::Other);
        assert_eq!(classify_handle(&id[..12], "h1", now), HandleKind::Other);
        let odd = reservation_handle("node.example");
        assert!(matches!(
            classify_handle(&odd, "node.example", now),
            HandleKind::Reservation { .. }
        ));
    }
}
