//! Bulk transfers relayed as bytes, against a fake daemon on a unix socket (in a temporary directory).
//!
//! - The CLI's `HEAD /_ping` and `HEAD …/archive` are answered with the daemon's head and keep the
//!   connection, and the bulk call after them on it is still relayed as bytes; `GET /_ping` keeps its
//!   connection too.
//! - A `PUT …/archive` with a chunked body reaches the daemon with `Connection: close` and without
//!   `Accept-Encoding`, its body byte for byte as the client framed it (a chunk extension included, which
//!   an HTTP implementation in the middle would drop), and the daemon's close-delimited answer reaches
//!   the client byte for byte (HTTP in the middle would re-frame it as chunks).
//! - A `GET …/export` with the daemon down gets a Docker-style 502.
//!
//! Every step has a deadline, so a relay that loses bytes or never ends fails instead of hanging.

mod common;

use std::time::Duration;

use common::{header, pattern, read_head, read_to_end, start_proxy, TempDir};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixListener};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// The deadline of each step.
const STEP: Duration = Duration::from_secs(10);
/// The size of the big chunk and of the answer.
const BULK: usize = 4 << 20;

/// What the fake daemon saw of a bulk request.
struct Seen {
    head: String,
    body: Vec<u8>,
}

/// The fake daemon: answers `HEAD`/`GET /_ping` on any connection (keeping it open); on a `PUT` it reads
/// the chunked body raw up to its last chunk, answers with `answer`, closes and reports what it saw.
async fn fake_daemon(listener: UnixListener, answer: Vec<u8>, seen: mpsc::Sender<Seen>) {
    loop {
        let (stream, _) = listener.accept().await.expect("the proxy connects");
        let (answer, seen) = (answer.clone(), seen.clone());
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut rd = BufReader::new(rd);
            // Until the proxy closes this connection.
            while !rd.fill_buf().await.expect("reading").is_empty() {
                let head = read_head(&mut rd).await;
                if head.starts_with("PUT ") {
                    let mut body = Vec::new();
                    while !body.ends_with(b"\r\n0\r\n\r\n") {
                        let mut buf = [0; 64 << 10];
                        let n = rd.read(&mut buf).await.expect("reading the body");
                        assert!(n > 0, "the body ended early");
                        body.extend_from_slice(&buf[..n]);
                    }
                    wr.write_all(&answer).await.expect("the answer");
                    wr.shutdown().await.expect("closing");
                    seen.send(Seen { head, body }).await.expect("reporting");
                    return;
                }
                wr.write_all(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 0\r\n\r\n")
                    .await
                    .expect("the ping answer");
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clis_heads_keep_the_connection_and_its_bulk_transfer_passes_as_bytes() {
    let dir = TempDir::new("tunnel");
    let socket = dir.0.join("docker.sock");
    let listener = UnixListener::bind(&socket).expect("binding the fake daemon");
    let data = pattern(3, BULK);
    let mut answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\n\r\n".to_vec();
    answer.extend_from_slice(&data);
    let (report, mut reports) = mpsc::channel(1);
    tokio::spawn(fake_daemon(listener, answer.clone(), report));
    let (addr, _) = start_proxy(&socket, std::future::pending()).await;

    // GET /_ping keeps the connection (hyper's from then on).
    let mut ping = TcpStream::connect(addr).await.expect("connecting");
    for _ in 0..2 {
        ping.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("a GET ping");
        let mut rd = BufReader::new(&mut ping);
        let head = timeout(STEP, read_head(&mut rd)).await.expect("an answer");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(header(&head, "connection"), None, "{head}");
    }

    // The CLI's `docker cp` into a container on one connection: HEAD /_ping, the HEAD stat, then the
    // transfer (a small chunk with an extension, a big one, the last one).
    let mut put = TcpStream::connect(addr).await.expect("connecting");
    for head in [
        "HEAD /_ping HTTP/1.1\r\nHost: 127.0.0.1:2375\r\n\r\n",
        "HEAD /v1.41/containers/abc/archive?path=%2Ftmp HTTP/1.1\r\nHost: 127.0.0.1:2375\r\n\r\n",
    ] {
        put.write_all(head.as_bytes()).await.expect("a HEAD");
        let mut rd = BufReader::new(&mut put);
        let answer = timeout(STEP, read_head(&mut rd)).await.expect("an answer");
        assert!(rd.buffer().is_empty(), "more than a head came back");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("\r\nApi-Version: 1.41\r\n"), "{answer}");
        assert_eq!(header(&answer, "connection"), None, "{answer}");
    }
    let mut body = b"10;ext=1\r\n0123456789abcdef\r\n".to_vec();
    body.extend_from_slice(format!("{BULK:X}\r\n").as_bytes());
    body.extend_from_slice(&data);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    let head = "PUT /v1.41/containers/abc/archive?path=%2Ftmp HTTP/1.1\r\nHost: 127.0.0.1:2375\r\n\
                User-Agent: Docker-Client/20.10.24 (linux)\r\nAccept-Encoding: gzip\r\n\
                Connection: keep-alive\r\nContent-Type: application/x-tar\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    let (mut rd, mut wr) = put.split();
    let send = async {
        wr.write_all(head.as_bytes()).await.expect("the head");
        wr.write_all(&body).await.expect("the body");
    };
    let mut got = Vec::new();
    let receive = async {
        timeout(STEP, rd.read_to_end(&mut got))
            .await
            .expect("the answer ends")
            .expect("reading the answer");
    };
    tokio::join!(send, receive);
    let seen = timeout(STEP, reports.recv())
        .await
        .expect("the daemon is done")
        .expect("its report");
    assert!(
        seen.head
            .starts_with("PUT /v1.41/containers/abc/archive?path=%2Ftmp HTTP/1.1\r\n"),
        "{}",
        seen.head
    );
    assert_eq!(header(&seen.head, "connection"), Some("close"));
    assert_eq!(header(&seen.head, "accept-encoding"), None);
    assert_eq!(header(&seen.head, "transfer-encoding"), Some("chunked"));
    assert_eq!(header(&seen.head, "host"), Some("127.0.0.1:2375"));
    assert!(seen.body == body, "the body changed on the way");
    assert!(got == answer, "the answer changed on the way");
}

#[tokio::test]
async fn a_bulk_transfer_with_the_daemon_down_gets_a_docker_style_error() {
    let dir = TempDir::new("tunnel-down");
    let (addr, _) = start_proxy(&dir.0.join("docker.sock"), std::future::pending()).await;
    let mut get = TcpStream::connect(addr).await.expect("connecting");
    get.write_all(b"GET /v1.41/containers/abc/export HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("the request");
    let answer = String::from_utf8(read_to_end(&mut get, STEP).await).expect("text");
    assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
    assert!(
        answer.contains(r#"{"message":"cannot reach the Docker daemon at "#),
        "{answer}"
    );
}
