//! The HTTP/1.1 transport of the API: hyper 1.x connections on tokio listeners.
//!
//! Role: accept connections on every listener, read each request (body capped at [`MAX_BODY_BYTES`]),
//! run [`Api::handle`] on the blocking pool, write the answer. Inputs: bound listeners ([`bind`]), the
//! [`Api`], a shutdown future. Output: runs until the future resolves, then stops accepting, lets open
//! connections finish their current request (for up to [`DRAIN_TIMEOUT`]) and returns.
//!
//! `GET /v1/sync?node=NAME[&revision=R]` is the one streaming route, served here rather than by
//! [`Api::handle`] when the [`Api`] has a sync hub ([`Api::with_sync`]): after the same bearer-token
//! check, it answers 200 `application/x-ndjson` with a body that never ends on its own: one
//! [`SyncMessage`](crate::sync::SyncMessage) JSON per line, from a [`Subscription`]. The body ends when
//! the server shuts down or the hub stops; a client that stops reading only fills its subscription's
//! bounded queue (and is resynced), never the server's memory.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::{
    body::{Frame, Incoming},
    server::conn::http1,
    service::service_fn,
    Request, Response,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
    task::JoinSet,
};

use super::{router::ApiRequest, Api, ApiError, ApiResponse};
use crate::{
    model::validate_hostname,
    store::Revision,
    sync::{Subscription, SyncHub},
};

/// The content type of the sync stream.
pub const NDJSON: &str = "application/x-ndjson";
/// Lines buffered between a sync subscription and its connection.
const SYNC_LINES: usize = 4;

/// A response body: a whole JSON answer, or the sync stream.
type Body = Either<Full<Bytes>, SyncBody>;

/// Where `calicoctl master run` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9900";
/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// How long open connections get to finish after shutdown is requested.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Bind every address (port 0 picks a free port; read it from `local_addr`).
pub async fn bind(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, ApiError> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| ApiError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        listeners.push(l);
    }
    Ok(listeners)
}

/// Serve `api` on `listeners` until `shutdown` resolves.
pub async fn serve(
    listeners: Vec<TcpListener>,
    api: Arc<Api>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ApiError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut loops = JoinSet::new();
    for l in listeners {
        loops.spawn(accept_loop(l, api.clone(), stop_rx.clone()));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    while loops.join_next().await.is_some() {}
    Ok(())
}

async fn accept_loop(listener: TcpListener, api: Arc<Api>, mut stop: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    conns.spawn(connection(stream, peer, api.clone(), stop.clone()));
                }
                Err(e) => {
                    // Usually EMFILE or a reset before accept: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        conns.abort_all();
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    api: Arc<Api>,
    mut stop: watch::Receiver<bool>,
) {
    let streams = stop.clone();
    let svc = service_fn(move |req| {
        let api = api.clone();
        let stop = streams.clone();
        async move { Ok::<_, Infallible>(respond(api, req, stop).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let result = if *stop.borrow() {
        conn.as_mut().graceful_shutdown();
        conn.await
    } else {
        tokio::select! {
            r = conn.as_mut() => r,
            _ = stop.changed() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

async fn respond(
    api: Arc<Api>,
    req: Request<Incoming>,
    stop: watch::Receiver<bool>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    if parts.method == hyper::Method::GET && parts.uri.path().trim_end_matches('/') == "/v1/sync" {
        if let Some(hub) = api.sync_hub().cloned() {
            return sync_stream(api, hub, &parts, stop).await;
        }
    }
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return to_hyper(ApiResponse::error(&ApiError::TooLarge));
    }
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) => {
            let err = if e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::TooLarge
            } else {
                ApiError::bad_request("body", format!("could not read the body: {e}"))
            };
            return to_hyper(ApiResponse::error(&err));
        }
    };
    let request = ApiRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        authorization: parts
            .headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    };
    let resp = match tokio::task::spawn_blocking(move || api.handle(&request)).await {
        Ok(r) => r,
        Err(e) => ApiResponse::error(&ApiError::Internal(format!("the handler failed: {e}"))),
    };
    to_hyper(resp)
}

fn to_hyper(resp: ApiResponse) -> Response<Body> {
    let mut out = Response::new(Either::Left(Full::new(Bytes::from(resp.body))));
    *out.status_mut() = hyper::StatusCode::from_u16(resp.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    out.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(resp.content_type),
    );
    out
}

/// `node` and `revision` from the sync route's query.
fn sync_query(query: &str) -> Result<(String, Option<Revision>), ApiError> {
    let mut node = None;
    let mut revision = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "node" => node = Some(v.to_owned()),
            "revision" => {
                revision = Some(v.parse::<Revision>().map_err(|_| {
                    ApiError::bad_request(
                        "revision",
                        format!("`{v}` is not a revision; give the last revision the node applied"),
                    )
                })?)
            }
            _ => {}
        }
    }
    let node = node
        .ok_or_else(|| ApiError::bad_request("node", "is required: /v1/sync?node=<host name>"))?;
    validate_hostname("node", &node)?;
    Ok((node, revision))
}

/// `GET /v1/sync`: check the token and the query, subscribe, stream.
async fn sync_stream(
    api: Arc<Api>,
    hub: Arc<SyncHub>,
    parts: &hyper::http::request::Parts,
    stop: watch::Receiver<bool>,
) -> Response<Body> {
    let auth = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let checked = if api.authorized(auth) {
        sync_query(parts.uri.query().unwrap_or(""))
    } else {
        Err(ApiError::Unauthorized)
    };
    let (node, since) = match checked {
        Ok(v) => v,
        Err(e) => {
            api.metrics().record("/v1/sync", "GET", e.status());
            return to_hyper(ApiResponse::error(&e));
        }
    };
    // Subscribing takes the hub's lock, which the follower holds while it applies a revision.
    let sub = match tokio::task::spawn_blocking(move || hub.subscribe(&node, since)).await {
        Ok(s) => s,
        Err(e) => {
            let e = ApiError::Internal(format!("subscribing failed: {e}"));
            api.metrics().record("/v1/sync", "GET", e.status());
            return to_hyper(ApiResponse::error(&e));
        }
    };
    api.metrics().record("/v1/sync", "GET", 200);
    let (tx, rx) = mpsc::channel(SYNC_LINES);
    tokio::spawn(pump(sub, tx, stop));
    let mut out = Response::new(Either::Right(SyncBody { rx }));
    out.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(NDJSON),
    );
    out.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    out
}

/// Move a subscription's messages onto the connection, one JSON line each, until the hub stops, the
/// server shuts down or the client goes away.
async fn pump(mut sub: Subscription, tx: mpsc::Sender<Bytes>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            break;
        }
        let msg = tokio::select! {
            m = sub.next() => m,
            _ = stop.changed() => break,
            () = tx.closed() => break,
        };
        let Some(msg) = msg else { break };
        let mut line = match serde_json::to_vec(&msg) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(node = sub.node(), error = %e, "sync: cannot encode a message");
                break;
            }
        };
        line.push(b'\n');
        tokio::select! {
            sent = tx.send(Bytes::from(line)) => if sent.is_err() { break },
            _ = stop.changed() => break,
        }
    }
    tracing::debug!(node = sub.node(), "sync: stream ended");
}

/// The sync stream's body: lines from [`pump`]; ends when the pump stops.
#[derive(Debug)]
pub struct SyncBody {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for SyncBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|l| l.map(|b| Ok(Frame::data(b))))
    }
}
