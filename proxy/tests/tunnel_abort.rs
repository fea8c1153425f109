//! A bulk transfer whose client or daemon goes away in the middle ends the relay: the other side's
//! connection is closed and none of the relay's threads is left (they run outside the runtime, so
//! nothing else would end them). A test binary of its own, its tests one at a time, so no other test's
//! relay threads are about when they are counted.
//!
//! Every step has a deadline, so a relay that never ends fails instead of hanging.

mod common;

use std::time::Duration;

use common::{read_head, start_proxy, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixListener};
use tokio::sync::oneshot;
use tokio::time::{sleep, timeout, Instant};

/// The deadline of each step.
const STEP: Duration = Duration::from_secs(10);

/// Held by each test, so they run one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The relay's threads in this process (named `bulk-relay…`).
fn relay_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("listing this process's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("bulk-relay"))
        .count()
}

/// Waits until no relay thread is left, failing after [`STEP`].
async fn relay_threads_end() {
    let deadline = Instant::now() + STEP;
    while relay_threads() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} relay threads still run",
            relay_threads()
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// A fake daemon for one `GET …/export`: reads the head, answers, then streams until its writes fail
/// (reported through `closed`) or, with `stop_after`, closes after that many bytes of body.
async fn streaming_daemon(
    listener: UnixListener,
    stop_after: Option<usize>,
    closed: oneshot::Sender<()>,
) {
    let (stream, _) = listener.accept().await.expect("the proxy connects");
    let (rd, mut wr) = stream.into_split();
    let head = read_head(&mut BufReader::new(rd)).await;
    assert!(
        head.starts_with("GET /v1.41/containers/abc/export "),
        "{head}"
    );
    wr.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\n\r\n")
        .await
        .expect("the answer's head");
    let block = vec![7u8; 64 << 10];
    let mut sent = 0;
    while stop_after.is_none_or(|limit| sent < limit) {
        if wr.write_all(&block).await.is_err() {
            break;
        }
        sent += block.len();
    }
    drop(wr);
    let _ = closed.send(());
}

/// A fake daemon ([`streaming_daemon`]) in a new temporary directory and a proxy in front of it: the
/// directory (removed when dropped), the proxy's address, and the daemon's report that it closed.
async fn start(
    tag: &str,
    stop_after: Option<usize>,
) -> (TempDir, std::net::SocketAddr, oneshot::Receiver<()>) {
    let dir = TempDir::new(tag);
    let socket = dir.0.join("docker.sock");
    let listener = UnixListener::bind(&socket).expect("binding the fake daemon");
    let (closed, daemon_closed) = oneshot::channel();
    tokio::spawn(streaming_daemon(listener, stop_after, closed));
    let (addr, _) = start_proxy(&socket, std::future::pending()).await;
    (dir, addr, daemon_closed)
}

/// Connects and asks for an export; returns the connection once the first bytes of the answer came.
async fn export(addr: std::net::SocketAddr) -> TcpStream {
    let mut client = TcpStream::connect(addr).await.expect("connecting");
    client
        .write_all(b"GET /v1.41/containers/abc/export HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("the request");
    let mut first = [0; 1024];
    let n = timeout(STEP, client.read(&mut first))
        .await
        .expect("the answer starts")
        .expect("reading");
    assert!(first[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_mid_transfer_closes_the_daemons_side_and_ends_the_relay() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (_dir, addr, daemon_closed) = start("tunnel-client-gone", None).await;

    let client = export(addr).await;
    assert!(relay_threads() > 0, "the transfer runs on relay threads");
    drop(client);
    timeout(STEP, daemon_closed)
        .await
        .expect("the daemon's writes fail once the client is gone")
        .expect("its report");
    relay_threads_end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_goes_away_mid_transfer_ends_the_clients_answer_and_the_relay() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (_dir, addr, _daemon_closed) = start("tunnel-daemon-gone", Some(8 << 20)).await;

    // The client reads slowly at first, so the daemon's close comes while the relay holds bytes.
    let mut client = export(addr).await;
    sleep(Duration::from_millis(200)).await;
    let mut rest = Vec::new();
    timeout(STEP, client.read_to_end(&mut rest))
        .await
        .expect("the client's answer ends after the daemon closed")
        .expect("reading");
    assert!(rest.len() >= (8 << 20) - 1024, "{} bytes came", rest.len());
    assert!(rest.iter().rev().take(1 << 16).all(|&b| b == 7));
    relay_threads_end().await;
}
