//! The proxy's listener: accepts Docker clients on `--proxy-listen` (loopback by default) and serves
//! each connection with HTTP/1.1 keep-alive and upgrades, until told to stop. A connection whose first
//! request is a bulk transfer (`docker cp`, export, save, load) is relayed as bytes instead
//! ([`crate::tunnel`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::passthrough::{forward, full, send, ConnState, Upstream};
use crate::tunnel::{self, Next};

/// A bound proxy, ready to serve.
#[derive(Debug)]
pub struct Proxy {
    listener: TcpListener,
    upstream: Arc<Upstream>,
}

impl Proxy {
    /// Binds `listen`; requests go to the daemon at `upstream` (an [`Upstream`] or a shared one, which
    /// calico-node also hands to [`crate::events::run_background`]).
    pub async fn bind(
        listen: SocketAddr,
        upstream: impl Into<Arc<Upstream>>,
    ) -> std::io::Result<Proxy> {
        Ok(Proxy {
            listener: TcpListener::bind(listen).await?,
            upstream: upstream.into(),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves clients until `shutdown` completes; each connection runs in its own task.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => return,
            };
            let _ = stream.set_nodelay(true);
            let upstream = self.upstream.clone();
            tokio::spawn(async move {
                let conn = Arc::new(ConnState::new(&upstream));
                let mut stream = stream;
                loop {
                    match tunnel::next_request(&stream).await {
                        Ok(Next::Bulk(plan)) => {
                            drop(conn);
                            return tunnel::relay(stream, plan, &upstream.socket).await;
                        }
                        Ok(Next::Head { head_len, request }) => {
                            let answered =
                                answer_head(&mut stream, head_len, request, &upstream, &conn).await;
                            if let Err(e) = answered {
                                tracing::debug!("client {peer}: {e}");
                                return;
                            }
                        }
                        Ok(Next::Http) => break,
                        Ok(Next::Closed) => return,
                        Err(e) => {
                            tracing::debug!("client {peer}: {e}");
                            return;
                        }
                    }
                }
                let service = service_fn(move |req| {
                    let (upstream, conn) = (upstream.clone(), conn.clone());
                    async move { Ok::<_, std::convert::Infallible>(forward(req, upstream, conn).await) }
                });
                let served = http1::Builder::new()
                    .preserve_header_case(true)
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(60))
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
                if let Err(e) = served {
                    tracing::debug!("client {peer}: {e}");
                }
            });
        }
    }
}

/// Answers the `HEAD` request whose head is the next `head_len` bytes of `stream` through the daemon,
/// leaving the connection at the request after it.
async fn answer_head(
    stream: &mut TcpStream,
    head_len: usize,
    request: hyper::Request<()>,
    upstream: &Upstream,
    conn: &ConnState,
) -> std::io::Result<()> {
    let mut consumed = vec![0; head_len];
    stream.read_exact(&mut consumed).await?;
    let resp = send(request.map(|()| full(Bytes::new())), upstream, conn).await;
    stream.write_all(&tunnel::answer_head(&resp)).await
}
