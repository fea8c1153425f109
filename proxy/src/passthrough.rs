//! Pass-through: every request from a Docker client goes to the daemon's unix socket and every answer
//! comes back, streamed, never buffered; upgraded connections (attach, exec start: `Upgrade: tcp`;
//! BuildKit: `h2c`) become raw byte relays that preserve half-close.
//!
//! Each client connection gets its own upstream connection, reused for its keep-alive requests; an
//! upgrade takes a fresh upstream connection of its own. When a client connection ends, its upstream
//! connection, if idle, is parked for the next client connection to take ([`Idle`]): the docker CLI
//! opens two connections per command, and a parked one spares the second a connect and handshake with
//! dockerd. A request that a parked (or kept-alive) connection could not send, because dockerd had
//! closed it, goes again on a new one; a new connection's failure is final. When the daemon cannot be
//! reached the client gets a Docker-style JSON error with status 502, and the next request tries again.
//!
//! Headers dropped on the way: the hop-by-hop `Connection` and `Keep-Alive` (a client's `Connection:
//! close` ends its own connection, not the upstream one), and `Accept-Encoding`. Go's HTTP client (the
//! docker CLI, compose) asks for gzip on a TCP connection but not on the unix socket, and dockerd then
//! gzips `docker cp` answers on the fly, at a few tens of MB/s on one core. The hop to dockerd is a
//! local socket, so the client gets what it would get straight from the socket: the same bytes,
//! uncompressed (HTTP lets a server always answer with the identity encoding, and clients decompress
//! only what says it is compressed).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, ACCEPT_ENCODING, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::Mutex;

/// A response body: the daemon's, streamed, or one of ours.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A request body on its way to the daemon: the client's, streamed, or one a hook rewrote.
pub type ReqBody = BoxBody<Bytes, hyper::Error>;

/// Where the Docker daemon listens, and (for a Calico node) how to reach the master.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub socket: PathBuf,
    pub calico: Option<Arc<Calico>>,
    idle: Idle,
    /// Upstream connections whose driving task still runs (shared by the clones).
    live: Arc<AtomicUsize>,
}

impl Upstream {
    /// The daemon at `socket`; Calico's hooks on when `calico` is given.
    pub fn new(socket: impl Into<PathBuf>, calico: Option<Arc<Calico>>) -> Upstream {
        Upstream {
            socket: socket.into(),
            calico,
            idle: Idle::default(),
            live: Arc::default(),
        }
    }

    /// The connections to the daemon open now (in use, parked, or ending): what a leak would grow.
    pub fn live_connections(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

pub use crate::context::Calico;

/// Idle upstream connections kept at most; more are closed.
const MAX_IDLE: usize = 16;

/// Upstream connections left idle by client connections that ended, shared by all client connections.
#[derive(Debug, Clone, Default)]
struct Idle(Arc<std::sync::Mutex<Vec<SendRequest<ReqBody>>>>);

impl Idle {
    fn park(&self, sender: SendRequest<ReqBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    /// The most recently parked connection that can take a request now; the others it passes (closed,
    /// or still busy with an answer nobody reads) are dropped.
    fn take(&self) -> Option<SendRequest<ReqBody>> {
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        std::iter::from_fn(|| idle.pop()).find(SendRequest::is_ready)
    }
}

/// The state of one client connection: its upstream connection, taken or opened on first use and
/// parked when the client connection ends.
#[derive(Debug)]
pub struct ConnState {
    sender: Mutex<Option<SendRequest<ReqBody>>>,
    idle: Idle,
}

impl ConnState {
    /// A client connection's state, parking its upstream connection with `upstream`'s idle ones.
    pub fn new(upstream: &Upstream) -> ConnState {
        ConnState {
            sender: Mutex::new(None),
            idle: upstream.idle.clone(),
        }
    }
}

impl Drop for ConnState {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.get_mut().take() {
            self.idle.park(sender);
        }
    }
}

/// A body made of bytes we hold.
pub fn full(bytes: impl Into<Bytes>) -> BoxBody<Bytes, hyper::Error> {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A Docker-style error: `{"message": "..."}` with `status`.
pub fn docker_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

async fn connect(upstream: &Upstream) -> Result<SendRequest<ReqBody>, String> {
    let socket = upstream.socket.as_path();
    let stream = UnixStream::connect(socket).await.map_err(|e| {
        format!(
            "cannot reach the Docker daemon at {}: {e}",
            socket.display()
        )
    })?;
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .preserve_header_case(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| {
            format!(
                "the Docker daemon at {} did not speak HTTP: {e}",
                socket.display()
            )
        })?;
    let live = Arc::clone(&upstream.live);
    live.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("upstream connection ended: {e}");
        }
        live.fetch_sub(1, Ordering::Relaxed);
    });
    Ok(sender)
}

/// Handles one request: the hooks for Calico's calls, plain forwarding for the rest.
pub async fn forward(
    req: Request<Incoming>,
    upstream: Arc<Upstream>,
    conn: Arc<ConnState>,
) -> Response<Body> {
    if req.headers().contains_key(UPGRADE) {
        return forward_upgrade(req, &upstream).await;
    }
    let path = api_path(req.uri().path());
    if let Some(calico) = &upstream.calico {
        if req.method() == hyper::Method::POST && path == "/containers/create" {
            return crate::create::hook(req, calico, &upstream, &conn).await;
        }
        if let Some(target) = crate::remove::target(req.method(), path) {
            return crate::remove::hook(req, &target, calico, &upstream, &conn).await;
        }
        if let Some(target) = crate::start::start_target(req.method(), path) {
            return crate::start::start(req, &target, calico, &upstream, &conn).await;
        }
        if crate::start::inspect_target(req.method(), path).is_some() {
            return crate::start::inspect(req, calico, &upstream, &conn).await;
        }
        if crate::start::list_target(req.method(), path) {
            return crate::start::list(req, &upstream, &conn).await;
        }
    }
    let closes = crate::tunnel::closes_connection(req.method(), path);
    let mut resp = send(req.map(|b| b.boxed()), &upstream, &conn).await;
    if closes {
        // The bulk transfer that follows comes on a new connection, relayed as bytes.
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A path without its `/vX.YY` API version prefix.
pub fn api_path(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(i) = rest.find('/') {
            if rest[..i]
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                return &rest[i..];
            }
        }
    }
    path
}

/// Sends a request on the client connection's upstream connection and returns the daemon's answer.
pub async fn send(
    mut req: Request<ReqBody>,
    upstream: &Upstream,
    conn: &ConnState,
) -> Response<Body> {
    // Forward the path as the client sent it (with or without a /vX.YY prefix).
    *req.uri_mut() = path_only(req.uri());
    req.headers_mut().remove(ACCEPT_ENCODING);
    // Hop by hop: a client's `Connection: close` ends its own connection, not the upstream one.
    req.headers_mut().remove(CONNECTION);
    req.headers_mut().remove("keep-alive");
    let mut guard = conn.sender.lock().await;
    loop {
        let kept = guard
            .take()
            .filter(|s| !s.is_closed())
            .or_else(|| upstream.idle.take());
        // A connection opened for this request is not tried again: its failure is the daemon's.
        let (mut sender, opened) = match kept {
            Some(sender) => (sender, false),
            None => match connect(upstream).await {
                Ok(sender) => (sender, true),
                Err(message) => return docker_error(StatusCode::BAD_GATEWAY, &message),
            },
        };
        if sender.ready().await.is_err() {
            if opened {
                return docker_error(
                    StatusCode::BAD_GATEWAY,
                    "the Docker daemon closed the connection",
                );
            }
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) => {
                *guard = Some(sender);
                return resp.map(|b| b.boxed());
            }
            Err(mut e) => match e.take_message() {
                Some(unsent) if !opened => req = unsent,
                _ => {
                    return docker_error(
                        StatusCode::BAD_GATEWAY,
                        &format!("the Docker daemon failed the request: {}", e.into_error()),
                    )
                }
            },
        }
    }
}

fn path_only(uri: &hyper::Uri) -> hyper::Uri {
    uri.path_and_query()
        .and_then(|pq| pq.as_str().parse().ok())
        .unwrap_or_else(|| hyper::Uri::from_static("/"))
}

async fn forward_upgrade(mut req: Request<Incoming>, upstream: &Upstream) -> Response<Body> {
    let mut sender = match connect(upstream).await {
        Ok(s) => s,
        Err(message) => return docker_error(StatusCode::BAD_GATEWAY, &message),
    };
    let client_side = hyper::upgrade::on(&mut req);
    *req.uri_mut() = path_only(req.uri());
    let mut resp = match sender.send_request(req.map(|b| b.boxed())).await {
        Ok(resp) => resp,
        Err(e) => {
            return docker_error(
                StatusCode::BAD_GATEWAY,
                &format!("the Docker daemon failed the request: {e}"),
            )
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let daemon_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match tokio::try_join!(client_side, daemon_side) {
                Ok((client, daemon)) => relay(client, daemon).await,
                Err(e) => tracing::debug!("upgrade failed: {e}"),
            }
        });
    }
    resp.map(|b| b.boxed())
}

/// Copies both ways until both directions end; when one side finishes sending, the other side's write
/// half is shut down (a FIN), so `docker exec -it` and piped stdin end exactly as they would direct.
async fn relay(client: Upgraded, daemon: Upgraded) {
    let (mut client_rd, mut client_wr) = tokio::io::split(TokioIo::new(client));
    let (mut daemon_rd, mut daemon_wr) = tokio::io::split(TokioIo::new(daemon));
    let up = async {
        let _ = tokio::io::copy(&mut client_rd, &mut daemon_wr).await;
        let _ = daemon_wr.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut daemon_rd, &mut client_wr).await;
        let _ = client_wr.shutdown().await;
    };
    tokio::join!(up, down);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_recognised() {
        assert_eq!(api_path("/v1.41/containers/create"), "/containers/create");
        assert_eq!(api_path("/containers/create"), "/containers/create");
        assert_eq!(api_path("/volumes/v1/x"), "/volumes/v1/x");
        assert_eq!(
            api_path("/vx.1/containers/create"),
            "/vx.1/containers/create"
        );
    }

    #[test]
    fn paths_keep_their_version_prefix_and_query() {
        let uri: hyper::Uri = "/v1.41/containers/json?all=1".parse().unwrap();
        assert_eq!(path_only(&uri), "/v1.41/containers/json?all=1");
        let abs: hyper::Uri = "http://localhost:2375/_ping".parse().unwrap();
        assert_eq!(path_only(&abs), "/_ping");
    }

    #[tokio::test]
    async fn errors_look_like_dockers() {
        let resp = docker_error(StatusCode::BAD_GATEWAY, "cannot reach the Docker daemon");
        assert_eq!(resp.status(), 502);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &body[..],
            br#"{"message":"cannot reach the Docker daemon"}"#
        );
    }
}
