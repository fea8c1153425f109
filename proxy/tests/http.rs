//! Plain HTTP through the proxy (the hyper path, not the bulk relay), against a fake daemon on a unix
//! socket that reports what it received:
//!
//! - several requests on one client connection (keep-alive) each get their answer;
//! - a 64 KiB request header (a large `X-Registry-Auth`) reaches the daemon whole, and a 20 KB answer
//!   header comes back whole;
//! - a chunked request body of 1 MiB (as `docker build` sends its context) arrives byte for byte;
//! - a client that stops reading a large answer holds the daemon back (backpressure), with little held
//!   in between, and gets all of it once it reads again.
//!
//! Every step has a deadline, so a request that never gets its answer fails instead of hanging.

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{pattern, start_proxy, TempDir};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener};
use tokio::time::timeout;

/// The deadline of each step.
const STEP: Duration = Duration::from_secs(10);
/// The size of the large answer header.
const BIG_ANSWER_HEADER: usize = 20_000;

/// The size of the streamed answer of `GET /big`.
const BIG_BODY: usize = 64 << 20;

/// The fake daemon: answers `GET /big` with [`BIG_BODY`] bytes made as they are taken (counted in
/// `taken`), and every other request with what it got (the length of `X-Registry-Auth`, the body's
/// length and byte sum) and a large `X-Big` header.
async fn fake_daemon(listener: UnixListener, taken: Arc<AtomicUsize>) {
    loop {
        let (stream, _) = listener.accept().await.expect("the proxy connects");
        let taken = Arc::clone(&taken);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let taken = Arc::clone(&taken);
                async move {
                    if req.uri().path() == "/big" {
                        // 1 MiB chunks, each made (and counted) when hyper asks for it, so only
                        // when it can send it on.
                        let chunks = (0..BIG_BODY >> 20).map(move |_| {
                            taken.fetch_add(1 << 20, Ordering::Relaxed);
                            Bytes::from(vec![b'x'; 1 << 20])
                        });
                        let body = Chunks(chunks).boxed();
                        return Ok::<_, Infallible>(Response::new(body));
                    }
                    let auth = req.headers().get("x-registry-auth").map_or(0, |v| v.len());
                    let chunked = req
                        .headers()
                        .get("transfer-encoding")
                        .is_some_and(|v| v == "chunked");
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .expect("the body")
                        .to_bytes();
                    let sum: u64 = body.iter().map(|b| u64::from(*b)).sum();
                    let text = format!(
                        r#"{{"auth":{auth},"chunked":{chunked},"body":{},"sum":{sum}}}"#,
                        body.len()
                    );
                    let answer = Response::builder()
                        .header("Content-Type", "application/json")
                        .header("X-Big", "b".repeat(BIG_ANSWER_HEADER))
                        .body(Full::new(Bytes::from(text)).boxed())
                        .expect("an answer");
                    Ok::<_, Infallible>(answer)
                }
            });
            let _ = server::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// What the daemon said it received, and the length of the `X-Big` header that came back.
async fn call<B>(
    sender: &mut hyper::client::conn::http1::SendRequest<B>,
    req: Request<B>,
) -> (serde_json::Value, usize)
where
    B: hyper::body::Body + 'static,
{
    let resp = timeout(STEP, sender.send_request(req))
        .await
        .expect("an answer in time")
        .expect("an answer");
    assert_eq!(resp.status(), 200);
    let big = resp.headers().get("x-big").map_or(0, |v| v.len());
    let body = timeout(STEP, resp.into_body().collect())
        .await
        .expect("the body in time")
        .expect("the body")
        .to_bytes();
    (serde_json::from_slice(&body).expect("JSON"), big)
}

#[tokio::test]
async fn keep_alive_large_headers_and_chunked_bodies_pass_through() {
    let dir = TempDir::new("http");
    let socket = dir.0.join("docker.sock");
    let listener = UnixListener::bind(&socket).expect("a unix socket");
    tokio::spawn(fake_daemon(listener, Arc::default()));
    let (proxy, _serving) = start_proxy(&socket, std::future::pending()).await;

    // One client connection for every request below.
    let stream = TcpStream::connect(proxy).await.expect("the proxy listens");
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<
        _,
        http_body_util::combinators::BoxBody<Bytes, Infallible>,
    >(TokioIo::new(stream))
    .await
    .expect("a handshake");
    tokio::spawn(conn);

    // A large request header, and a large answer header.
    let auth = "a".repeat(64 * 1024);
    let req = Request::get("/v1.41/info")
        .header("Host", "docker")
        .header("X-Registry-Auth", &auth)
        .body(Full::new(Bytes::new()).boxed())
        .expect("a request");
    let (got, big) = call(&mut sender, req).await;
    assert_eq!(got["auth"], 64 * 1024, "{got}");
    assert_eq!(big, BIG_ANSWER_HEADER);

    // A chunked body of 1 MiB in 64 KiB chunks, on the same connection.
    let data = pattern(7, 1 << 20);
    let sum: u64 = data.iter().map(|b| u64::from(*b)).sum();
    let chunks: Vec<Bytes> = data.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();
    let body = Chunks(chunks.into_iter()).boxed();
    let req = Request::post("/v1.41/build")
        .header("Host", "docker")
        .header("Content-Type", "application/x-tar")
        .body(body)
        .expect("a request");
    let (got, _) = call(&mut sender, req).await;
    assert_eq!(got["chunked"], true, "sent chunked to the daemon: {got}");
    assert_eq!(got["body"], 1 << 20, "{got}");
    assert_eq!(got["sum"], sum, "{got}");

    // And a third, still on the same connection.
    let req = Request::get("/_ping")
        .header("Host", "docker")
        .body(Full::new(Bytes::new()).boxed())
        .expect("a request");
    let (got, _) = call(&mut sender, req).await;
    assert_eq!(got["body"], 0, "{got}");
}

#[tokio::test]
async fn a_client_that_stops_reading_holds_the_daemon_back_instead_of_filling_the_proxy() {
    let dir = TempDir::new("slow");
    let socket = dir.0.join("docker.sock");
    let listener = UnixListener::bind(&socket).expect("a unix socket");
    let taken = Arc::new(AtomicUsize::new(0));
    tokio::spawn(fake_daemon(listener, Arc::clone(&taken)));
    let (proxy, _serving) = start_proxy(&socket, std::future::pending()).await;

    let mut client = TcpStream::connect(proxy).await.expect("the proxy listens");
    client
        .write_all(b"GET /big HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        .await
        .expect("the request");
    let mut buf = vec![0u8; 64 * 1024];
    let first = timeout(STEP, client.read(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    assert!(first > 0);
    // The client reads nothing for a while: what the daemon is let to produce stops growing, far
    // below the 64 MiB it has (socket buffers and a few chunks in flight, not the whole answer).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let stalled = taken.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        taken.load(Ordering::Relaxed),
        stalled,
        "the daemon is held back"
    );
    assert!(
        stalled < 24 << 20,
        "{stalled} bytes taken while the client read {first}"
    );
    // Reading again, the client gets all of it.
    let mut total = first;
    loop {
        let n = timeout(STEP, client.read(&mut buf))
            .await
            .expect("in time")
            .expect("read");
        if n == 0 {
            break;
        }
        total += n;
    }
    assert!(
        total > BIG_BODY,
        "the head and all {BIG_BODY} bytes: {total}"
    );
    assert_eq!(taken.load(Ordering::Relaxed), BIG_BODY);
}

/// A body of the chunks `I` yields, each taken when hyper asks for the next, with no length known in
/// advance (so hyper sends it chunked).
struct Chunks<I>(I);

impl<I: Iterator<Item = Bytes> + Unpin> hyper::body::Body for Chunks<I> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.next().map(|c| Ok(Frame::data(c))))
    }
}
