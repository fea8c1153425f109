//! Upgraded connections through the proxy, against a fake daemon on a unix socket (in a temporary
//! directory): BuildKit's session (`POST /session`, `Upgrade: h2c`, answered `101 Switching Protocols`)
//! and exec start (`Upgrade: tcp`, answered as dockerd does, `101 UPGRADED`).
//!
//! For each: the request reaches the daemon with its upgrade headers and version prefix, the 101 reaches
//! the client with its `Upgrade` header, bytes flow both ways (round trips, then 4 MB each way at once),
//! and when the client half-closes its write side the daemon sees EOF while its remaining output (1 MB
//! sent only after that EOF) still reaches the client, which then sees EOF too. Every step has a
//! deadline, so a relay that loses bytes or does not pass a half-close on fails instead of hanging.

mod common;

use std::time::Duration;

use common::{header, pattern, read_head, start_proxy, TempDir};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixListener};
use tokio::time::timeout;

/// The deadline of each step.
const STEP: Duration = Duration::from_secs(10);
/// What the daemon sends after it saw the client's EOF.
const TAIL: usize = 1 << 20;
/// The bulk sent each way at once.
const BULK: usize = 4 << 20;

/// What the fake daemon saw on its one connection.
struct Seen {
    head: String,
    body: Vec<u8>,
    /// Everything that came after the upgrade, up to EOF.
    raw: Vec<u8>,
}

/// The fake daemon: answers one upgrade request with `status_line` and `Upgrade: protocol`, echoes
/// every byte until EOF, then sends [`TAIL`] bytes and closes.
async fn fake_daemon(listener: UnixListener, status_line: &'static str, protocol: &str) -> Seen {
    let (stream, _) = listener.accept().await.expect("the proxy connects");
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let head = read_head(&mut rd).await;
    let len: usize = header(&head, "content-length").map_or(0, |v| v.parse().expect("a length"));
    let mut body = vec![0; len];
    rd.read_exact(&mut body).await.expect("the request body");
    wr.write_all(
        format!(
            "{status_line}\r\nContent-Type: application/vnd.docker.raw-stream\r\n\
             Connection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("the 101");
    let mut raw = Vec::new();
    let mut buf = vec![0; 64 << 10];
    loop {
        let n = rd.read(&mut buf).await.expect("reading upgraded bytes");
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        wr.write_all(&buf[..n]).await.expect("echoing");
    }
    // The client's EOF came through: its output continues, then ends.
    wr.write_all(&pattern(7, TAIL)).await.expect("the tail");
    wr.shutdown().await.expect("closing");
    Seen { head, body, raw }
}

/// Runs one upgrade through a proxy in front of the fake daemon and checks everything on the way.
async fn upgrade_round_trip(
    request_line: &str,
    protocol: &str,
    daemon_status: &'static str,
    body: &[u8],
) {
    let dir = TempDir::new(protocol);
    let socket = dir.0.join("docker.sock");
    let listener = UnixListener::bind(&socket).expect("binding the fake daemon");
    let daemon = tokio::spawn({
        let protocol = protocol.to_string();
        async move { fake_daemon(listener, daemon_status, &protocol).await }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, served) = start_proxy(&socket, async {
        let _ = stopped.await;
    })
    .await;

    let client = TcpStream::connect(addr).await.expect("connecting");
    let (rd, mut wr) = client.into_split();
    let mut rd = BufReader::new(rd);
    let request = format!(
        "{request_line}\r\nHost: docker\r\nUser-Agent: upgrade-test\r\nConnection: Upgrade\r\n\
         Upgrade: {protocol}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    wr.write_all(request.as_bytes()).await.expect("the request");
    wr.write_all(body).await.expect("the request body");
    let head = timeout(STEP, read_head(&mut rd))
        .await
        .expect("the 101 within the deadline");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(header(&head, "upgrade"), Some(protocol), "{head}");

    // Round trips of growing size, each echoed whole before the next.
    let mut sent = Vec::new();
    for i in 0..20u8 {
        let msg = pattern(i, 1 + usize::from(i) * 3000);
        wr.write_all(&msg).await.expect("sending");
        let mut back = vec![0; msg.len()];
        timeout(STEP, rd.read_exact(&mut back))
            .await
            .expect("the echo within the deadline")
            .expect("the echo");
        assert!(back == msg, "round trip {i} came back altered");
        sent.extend_from_slice(&msg);
    }
    // Both ways at once: the client sends while it reads the echo.
    let bulk = pattern(99, BULK);
    let writing = async {
        wr.write_all(&bulk).await.expect("sending the bulk");
        wr
    };
    let reading = async {
        let mut back = vec![0; BULK];
        rd.read_exact(&mut back).await.expect("the bulk's echo");
        back
    };
    let (mut wr, back) = timeout(STEP, async { tokio::join!(writing, reading) })
        .await
        .expect("4 MB each way within the deadline");
    assert!(back == bulk, "the bulk came back altered");
    sent.extend_from_slice(&bulk);

    // Half-close: the daemon must see EOF, and its output after that must still arrive, then EOF.
    wr.shutdown().await.expect("half-closing");
    let mut rest = Vec::new();
    timeout(STEP, rd.read_to_end(&mut rest))
        .await
        .expect("the daemon's remaining output and EOF within the deadline (half-close relayed?)")
        .expect("reading the rest");
    assert_eq!(rest.len(), TAIL, "the output after the half-close");
    assert!(rest == pattern(7, TAIL), "the tail came back altered");
    let seen = timeout(STEP, daemon)
        .await
        .expect("the daemon saw EOF within the deadline")
        .expect("the fake daemon did not panic");

    let request_line_seen = seen.head.lines().next().unwrap_or_default();
    assert_eq!(
        request_line_seen, request_line,
        "the path and version prefix"
    );
    assert_eq!(
        header(&seen.head, "upgrade"),
        Some(protocol),
        "{}",
        seen.head
    );
    assert!(
        header(&seen.head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("upgrade")),
        "{}",
        seen.head
    );
    assert_eq!(seen.body, body, "the request body");
    assert_eq!(seen.raw.len(), sent.len(), "bytes the daemon got");
    assert!(seen.raw == sent, "the daemon got altered bytes");

    let _ = stop.send(());
    timeout(STEP, served)
        .await
        .expect("the proxy stops")
        .expect("the proxy did not panic");
    drop(dir);
    assert!(!socket.exists(), "the temp dir is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buildkit_h2c_session_is_relayed_with_half_close() {
    upgrade_round_trip(
        "POST /v1.41/session HTTP/1.1",
        "h2c",
        "HTTP/1.1 101 Switching Protocols",
        b"",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_start_tcp_upgrade_is_relayed_with_half_close() {
    upgrade_round_trip(
        "POST /v1.41/exec/0123abcd/start HTTP/1.1",
        "tcp",
        "HTTP/1.1 101 UPGRADED",
        br#"{"Detach":false,"Tty":false}"#,
    )
    .await;
}
