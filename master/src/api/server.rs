//! The HTTP/1.1 transport of the API: hyper 1.x connections on tokio listeners.
//!
//! Role: accept connections on every listener, read each request (body capped at [`MAX_BODY_BYTES`]),
//! run [`Api::handle`] on the blocking pool, write the answer. Inputs: bound listeners ([`bind`]), the
//! [`Api`], a shutdown future. Output: runs until the future resolves, then stops accepting, lets open
//! connections finish their current request (for up to [`DRAIN_TIMEOUT`]) and returns.

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

use super::{router::ApiRequest, Api, ApiError, ApiResponse};

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
    let svc = service_fn(move |req| {
        let api = api.clone();
        async move { Ok::<_, Infallible>(respond(api, req).await) }
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

async fn respond(api: Arc<Api>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
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

fn to_hyper(resp: ApiResponse) -> Response<Full<Bytes>> {
    let mut out = Response::new(Full::new(Bytes::from(resp.body)));
    *out.status_mut() = hyper::StatusCode::from_u16(resp.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    out.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(resp.content_type),
    );
    out
}
