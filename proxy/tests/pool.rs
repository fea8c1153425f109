//! Upstream connections outlive the client connections that opened them, against a fake daemon on a
//! unix socket that counts the connections it accepts.
//!
//! - Client connections that come one after another (as the CLI's ping and its call do) share one
//!   upstream connection.
//! - When the daemon has closed its side of the parked connections (a restarted dockerd), the next
//!   client still gets its answer, on a new connection.
//!
//! Every step has a deadline, so a request that never gets its answer fails instead of hanging.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{read_head, read_to_end, start_proxy, TempDir};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixListener};
use tokio::sync::watch;
use tokio::time::timeout;

/// The deadline of each step.
const STEP: Duration = Duration::from_secs(10);

/// The fake daemon: counts the connections it accepts and answers every request on them with a small
/// JSON body, keeping them open, until `drop_all` turns true; then it closes every connection it holds.
async fn fake_daemon(
    listener: UnixListener,
    accepted: Arc<AtomicUsize>,
    drop_all: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = listener.accept().await.expect("the proxy connects");
        accepted.fetch_add(1, Ordering::SeqCst);
        let mut drop_all = drop_all.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut rd = BufReader::new(rd);
            loop {
                tokio::select! {
                    more = rd.fill_buf() => {
                        if more.expect("reading").is_empty() {
                            return;
                        }
                    }
                    _ = drop_all.wait_for(|d| *d) => return,
                }
                read_head(&mut rd).await;
                wr.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]")
                    .await
                    .expect("the answer");
            }
        });
    }
}

/// One request on a new client connection that the client closes after the answer: the answer.
async fn one_call(proxy: std::net::SocketAddr) -> String {
    let mut client = TcpStream::connect(proxy).await.expect("the proxy listens");
    client
        .write_all(
            b"GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("the request");
    String::from_utf8(read_to_end(&mut client, STEP).await).expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_connections_one_after_another_share_an_upstream_connection() {
    let dir = TempDir::new("pool");
    let socket = dir.0.join("docker.sock");
    let accepted = Arc::new(AtomicUsize::new(0));
    let (drop_all, dropping) = watch::channel(false);
    let daemon = tokio::spawn(fake_daemon(
        UnixListener::bind(&socket).expect("a socket"),
        accepted.clone(),
        dropping,
    ));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let (proxy, serving) = start_proxy(&socket, async {
        let _ = done_rx.await;
    })
    .await;

    for call in 0..5 {
        let answer = one_call(proxy).await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("[]"),
            "call {call}: {answer:?}"
        );
        // The client's connection ends when the answer is read; its upstream one is parked a moment later.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "five client connections, one upstream connection"
    );

    // The daemon goes away and comes back: the parked connection is dead, the next call still works.
    drop_all.send(true).expect("the daemon listens");
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop_all.send(false).expect("the daemon listens");
    let answer = one_call(proxy).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("[]"),
        "{answer:?}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "a new upstream connection after the old one closed"
    );

    let _ = done_tx.send(());
    timeout(STEP, serving)
        .await
        .expect("the proxy stops")
        .expect("serving");
    daemon.abort();
}
