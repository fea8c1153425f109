//! Bulk transfers relayed as bytes, with no HTTP in the middle.
//!
//! `docker cp` (both ways), `docker export`, `docker save` and `docker load` move their data as one
//! long body that no hook reads. Through hyper every chunk of it is decoded from the client's chunked
//! encoding, handed between two connection tasks and encoded again, which cost the proxy about a
//! millisecond of CPU per megabyte: on a two-core host, where the CLI and dockerd's tar need the CPU
//! too, `docker cp` ran at 0.7-0.85x of direct. A client connection whose first request is one of
//! these calls is therefore not given to hyper: the request head is read, rewritten for the daemon
//! (no `Accept-Encoding`, as on the HTTP path, see [`crate::passthrough`]; `Connection: close`, so
//! the exchange ends the connection) and the rest is copied both ways in large blocks until the daemon
//! has answered and closed.
//!
//! The Docker CLI starts every command with `HEAD /_ping` and sends the command's own calls on the same
//! kept-alive connection; `docker cp` into a container sends a `HEAD …/archive` (the stat of the
//! destination) before its `PUT`. Those two `HEAD`s are therefore answered here too, before hyper
//! ([`Next::Head`]: no body either way, the daemon's answer head relayed), and the request after them is
//! looked at the same way: the CLI's bulk call is seen on the connection it came on, and every other
//! command keeps its one connection. Should such a `HEAD` still reach hyper (a head split over two
//! reads), its answer closes the connection ([`closes_connection`]), so what follows comes first on a
//! new one.
//!
//! Inputs: the first bytes a client sent, the daemon's socket. Outputs: the client's bytes and the
//! daemon's answer, relayed.

use std::path::Path;
use std::time::Duration;

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::passthrough::api_path;

/// The most bytes of a request head looked at; a longer head goes to hyper.
pub const MAX_HEAD: usize = 8 * 1024;

/// How long a new connection may stay silent before it is closed (as hyper's header read timeout).
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(60);

/// The pipe of each direction: how much one splice(2) moves at most.
const PIPE: usize = 1 << 20;

/// True for the calls whose body or answer is a bulk byte stream no hook reads.
pub fn is_bulk(method: &str, api_path: &str) -> bool {
    let of_container = |call: &str| {
        api_path
            .strip_prefix("/containers/")
            .and_then(|rest| rest.strip_suffix(call))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
    };
    match method {
        "GET" => of_container("/archive") || of_container("/export") || api_path == "/images/get",
        "PUT" => of_container("/archive"),
        "POST" => api_path == "/images/load",
        _ => false,
    }
}

/// True for a request whose answer should close the client connection, so that a bulk transfer the
/// client sends next comes on a connection of its own: the CLI's `HEAD /_ping` and the `HEAD …/archive`
/// stat before `docker cp`.
pub fn closes_connection(method: &hyper::Method, api_path: &str) -> bool {
    method == hyper::Method::HEAD && (api_path == "/_ping" || is_bulk("GET", api_path))
}

/// A bulk request, ready for the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The length of the client's request head (consumed from the connection).
    pub head_len: usize,
    /// The head sent to the daemon instead.
    pub head: Vec<u8>,
}

/// A whole HTTP/1.1 request head in origin form at the start of the bytes a client sent.
struct Head<'h, 'b> {
    len: usize,
    method: &'b str,
    /// The request target, query included.
    target: &'b str,
    /// The target's path without its query and `/vX.YY` prefix.
    api: &'b str,
    headers: &'h [httparse::Header<'b>],
}

/// Parses the request head at the start of `first` (into `headers`) and passes it to `f`; `None` when
/// it is not whole yet, not HTTP/1.1 or not in origin form.
fn with_head<'b, R>(first: &'b [u8], f: impl FnOnce(Head<'_, 'b>) -> Option<R>) -> Option<R> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = req.parse(first).ok()? else {
        return None;
    };
    let (method, target) = (req.method?, req.path?);
    if req.version != Some(1) || !target.starts_with('/') {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    f(Head {
        len,
        method,
        target,
        api: api_path(path),
        headers: req.headers,
    })
}

/// The plan for a connection whose first bytes are `first`, when they hold a whole request head of a
/// bulk call; `None` sends the connection to hyper (anything else, a partial head, absolute-form
/// targets, upgrades, HTTP/1.0).
pub fn plan(first: &[u8]) -> Option<Plan> {
    with_head(first, |h| bulk_plan(&h))
}

/// The plan for `h` when it is a bulk call.
fn bulk_plan(h: &Head<'_, '_>) -> Option<Plan> {
    if !is_bulk(h.method, h.api) {
        return None;
    }
    let mut head = Vec::with_capacity(h.len + 24);
    head.extend_from_slice(h.method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(h.target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for header in h.headers {
        let name = header.name;
        if name.eq_ignore_ascii_case("upgrade") {
            return None;
        }
        if [
            "accept-encoding",
            "connection",
            "keep-alive",
            "proxy-connection",
        ]
        .iter()
        .any(|hop| name.eq_ignore_ascii_case(hop))
        {
            continue;
        }
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(header.value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    Some(Plan {
        head_len: h.len,
        head,
    })
}

/// A client connection's next request, as seen before hyper.
#[derive(Debug)]
pub enum Next {
    /// A bulk call: relayed as bytes ([`relay`]).
    Bulk(Plan),
    /// A `HEAD` that [`closes_connection`] names, with no body: answered before hyper, and the request
    /// after it looked at again. `head_len` bytes of the connection are its head.
    Head {
        head_len: usize,
        request: hyper::Request<()>,
    },
    /// Anything else, from here on: hyper's.
    Http,
    /// The client closed the connection.
    Closed,
}

/// What the request at the start of `first` is ([`Next`]); its head is parsed once.
pub fn look(first: &[u8]) -> Next {
    if first.is_empty() {
        return Next::Closed;
    }
    with_head(first, |h| {
        if let Some(plan) = bulk_plan(&h) {
            return Some(Next::Bulk(plan));
        }
        let request = head_request(&h)?;
        Some(Next::Head {
            head_len: h.len,
            request,
        })
    })
    .unwrap_or(Next::Http)
}

/// The request of `h` when it is a `HEAD` that [`closes_connection`] names, with no body and headers
/// `http` accepts.
fn head_request(h: &Head<'_, '_>) -> Option<hyper::Request<()>> {
    if h.method != "HEAD" || !closes_connection(&hyper::Method::HEAD, h.api) {
        return None;
    }
    let mut out = hyper::Request::head(h.target).body(()).ok()?;
    for header in h.headers {
        let body = (header.name.eq_ignore_ascii_case("content-length") && header.value != b"0")
            || header.name.eq_ignore_ascii_case("transfer-encoding")
            || header.name.eq_ignore_ascii_case("upgrade");
        if body {
            return None;
        }
        out.headers_mut().append(
            hyper::header::HeaderName::from_bytes(header.name.as_bytes()).ok()?,
            hyper::header::HeaderValue::from_bytes(header.value).ok()?,
        );
    }
    Some(out)
}

/// Waits for the next request's first bytes and looks at them ([`look`]). Fails when the client sent
/// nothing for [`FIRST_BYTES_TIMEOUT`] or the connection failed.
pub async fn next_request(stream: &TcpStream) -> io::Result<Next> {
    let mut first = [0u8; MAX_HEAD];
    let n = tokio::time::timeout(FIRST_BYTES_TIMEOUT, stream.peek(&mut first))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("sent nothing for {FIRST_BYTES_TIMEOUT:?}"),
            )
        })??;
    Ok(look(&first[..n]))
}

/// The head of an answer to a `HEAD` request, as bytes for the client: the status line and the
/// daemon's headers (names in the canonical case the daemon sends them in) but the hop-by-hop ones.
pub fn answer_head(resp: &hyper::Response<impl Sized>) -> Vec<u8> {
    let status = resp.status();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in resp.headers() {
        let name = name.as_str();
        if ["connection", "keep-alive", "transfer-encoding"].contains(&name) {
            continue;
        }
        let mut upper = true;
        out.extend(name.bytes().map(|b| {
            let c = if upper { b.to_ascii_uppercase() } else { b };
            upper = b == b'-';
            c
        }));
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Relays the bulk request `plan` of `client` to the daemon at `socket` and its answer back; returns
/// when the daemon has answered and closed (or either side failed).
pub async fn relay(mut client: TcpStream, plan: Plan, socket: &Path) {
    let mut consumed = vec![0; plan.head_len];
    if client.read_exact(&mut consumed).await.is_err() {
        return;
    }
    let mut daemon = match UnixStream::connect(socket).await {
        Ok(d) => d,
        Err(e) => {
            let message = format!(
                "cannot reach the Docker daemon at {}: {e}",
                socket.display()
            );
            let _ = client.write_all(&bad_gateway(&message)).await;
            let _ = client.shutdown().await;
            return;
        }
    };
    if daemon.write_all(&plan.head).await.is_err() {
        return;
    }
    tracing::debug!(
        "relaying {} as bytes",
        String::from_utf8_lossy(plan.head.split(|&b| b == b'\r').next().unwrap_or_default())
    );
    let (client, daemon) = match (
        client.into_std().and_then(blocking),
        daemon.into_std().and_then(blocking),
    ) {
        (Ok(client), Ok(daemon)) => (client, daemon),
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!("taking the sockets for the relay: {e}");
            return;
        }
    };
    let (done, finished) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("bulk-relay".into())
        .stack_size(RELAY_STACK)
        .spawn(move || {
            relay_blocking(&client, &daemon);
            let _ = done.send(());
        });
    match spawned {
        Ok(_) => {
            let _ = finished.await;
        }
        Err(e) => tracing::warn!("cannot start a thread to relay a bulk transfer: {e}"),
    }
}

/// The send buffer asked for the socket to the daemon (the kernel doubles it, up to twice
/// `net.core.wmem_max`). Bytes towards the client wait in TCP's buffer, which grows to megabytes; towards
/// the daemon a unix socket holds about 200 KB, and with the relay thread under `SCHED_BATCH` (woken
/// when the CPU next has a turn for it) the daemon drained that and waited: a raw 200 MB `PUT …/archive`
/// ran at 0.83-0.87x of direct, and at 0.98-1.08x with this buffer (docs/BENCHMARKS.md).
const DAEMON_SNDBUF: usize = 1 << 20;

/// Asks for [`DAEMON_SNDBUF`] on the socket to the daemon.
fn widen_send_buffer(daemon: impl AsFd) {
    if let Err(e) = rustix::net::sockopt::set_socket_send_buffer_size(daemon, DAEMON_SNDBUF) {
        tracing::debug!("the daemon's socket keeps its send buffer: {e}");
    }
}

/// The stack of each relay thread: they hold a few locals, make system calls and log (only the pages
/// touched are ever backed by memory).
const RELAY_STACK: usize = 256 * 1024;

/// `socket` (taken from the runtime) in blocking mode.
fn blocking<S: AsFd>(socket: S) -> io::Result<S> {
    let flags = rustix::fs::fcntl_getfl(&socket)?;
    rustix::fs::fcntl_setfl(&socket, flags - rustix::fs::OFlags::NONBLOCK)?;
    Ok(socket)
}

/// Moves the client's bytes to the daemon and the daemon's answer back, one thread each way, until the
/// daemon has answered and closed (or either side failed); the client's side is then shut both ways, so
/// the thread still reading it ends too.
///
/// Blocking threads, not the runtime: the daemon writes 32 KB at a time into a socket that holds about
/// 200 KB, so a copy out wakes the relay every 70-150 us. Through epoll and the runtime each wake-up was a
/// context switch out of `epoll_wait`, a task poll and often a read that found nothing; a thread asleep
/// in splice(2) is woken by the socket itself. On two vCPUs, where `docker cp` out already keeps both
/// busy (the daemon, its tar and the CLI), the relay's CPU per 200 MB copy fell from about 125 ms to 75
/// and the copy out went from a median of 0.81x of direct to 1.00x (docs/BENCHMARKS.md).
fn relay_blocking(client: &std::net::TcpStream, daemon: &std::os::unix::net::UnixStream) {
    widen_send_buffer(daemon);
    std::thread::scope(|scope| {
        let up = std::thread::Builder::new()
            .name("bulk-relay-up".into())
            .stack_size(RELAY_STACK)
            .spawn_scoped(scope, || {
                if let Err(e) = pump(client.as_fd(), daemon.as_fd()) {
                    tracing::debug!("relaying the client's bytes: {e}");
                }
                shut(daemon.as_fd(), rustix::net::Shutdown::Write);
            });
        match up {
            Err(e) => tracing::warn!("cannot start a thread to relay a client's bytes: {e}"),
            Ok(_) => {
                if let Err(e) = pump(daemon.as_fd(), client.as_fd()) {
                    tracing::debug!("relaying the daemon's answer: {e}");
                }
            }
        }
        // The daemon answered and closed: the exchange is over, whatever the client still sends.
        shut(client.as_fd(), rustix::net::Shutdown::Both);
    });
}

/// shutdown(2) of `socket`; a peer already gone (`ENOTCONN`) is what ends many transfers.
fn shut(socket: BorrowedFd, how: rustix::net::Shutdown) {
    match rustix::net::shutdown(socket, how) {
        Ok(()) | Err(rustix::io::Errno::NOTCONN) => {}
        Err(e) => tracing::debug!("shutting a relayed socket ({how:?}): {e}"),
    }
}

/// Moves everything `from` sends to `to` until `from` ends, through a pipe with blocking splice(2): the
/// bytes go from socket buffer to socket buffer without being copied into (or out of) this process.
///
/// The thread runs under `SCHED_BATCH` ([`crate::sys::schedule_as_batch`]): woken by the sender's every
/// write, a relay that preempts whatever runs (on two vCPUs, the daemon's tar or the CLI) moves a few
/// KB per wake-up; one that waits for the CPU's next turn moves more, for the same CPU share.
fn pump(from: BorrowedFd, to: BorrowedFd) -> io::Result<()> {
    if let Err(e) = crate::sys::schedule_as_batch() {
        tracing::debug!("the bulk relay keeps its scheduling policy: {e}");
    }
    let (rd, wr) = pipe_with(PipeFlags::CLOEXEC)?;
    let size = fcntl_setpipe_size(&wr, PIPE).unwrap_or(64 << 10);
    loop {
        // The pipe is empty here, so the read waits only for the socket.
        let mut held = retry(|| splice(from, None, &wr, None, size, SpliceFlags::MOVE))?;
        if held == 0 {
            return Ok(());
        }
        while held > 0 {
            match retry(|| splice(&rd, None, to, None, held, SpliceFlags::MOVE))? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => held -= n,
            }
        }
    }
}

/// `f` again for as long as a signal interrupts it.
fn retry(f: impl Fn() -> rustix::io::Result<usize>) -> io::Result<usize> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            done => return Ok(done?),
        }
    }
}

/// A Docker-style 502 answer that closes the connection.
fn bad_gateway(message: &str) -> Vec<u8> {
    let body = serde_json::json!({ "message": message }).to_string();
    format!(
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_calls() {
        assert!(is_bulk("GET", "/containers/abc/archive"));
        assert!(is_bulk("PUT", "/containers/abc/archive"));
        assert!(is_bulk("GET", "/containers/abc/export"));
        assert!(is_bulk("GET", "/images/get"));
        assert!(is_bulk("POST", "/images/load"));
        assert!(!is_bulk("HEAD", "/containers/abc/archive"));
        assert!(!is_bulk("POST", "/containers/abc/archive"));
        assert!(!is_bulk("GET", "/containers//archive"));
        assert!(!is_bulk("GET", "/containers/a/b/archive"));
        assert!(!is_bulk("POST", "/containers/create"));
        assert!(!is_bulk("GET", "/containers/abc/json"));
        assert!(closes_connection(
            &hyper::Method::HEAD,
            "/containers/abc/archive"
        ));
        assert!(closes_connection(&hyper::Method::HEAD, "/_ping"));
        assert!(!closes_connection(&hyper::Method::GET, "/_ping"));
        assert!(!closes_connection(
            &hyper::Method::GET,
            "/containers/abc/archive"
        ));
    }

    #[test]
    fn a_bulk_head_is_rewritten_for_the_daemon() {
        let first =
            b"PUT /v1.41/containers/abc/archive?path=%2Ftmp HTTP/1.1\r\nHost: 127.0.0.1:2375\r\n\
User-Agent: Docker-Client/20.10.24\r\nTransfer-Encoding: chunked\r\nAccept-Encoding: gzip\r\n\
Connection: keep-alive\r\nContent-Type: application/x-tar\r\n\r\n1000\r\nBODY";
        let plan = plan(first).expect("a bulk call");
        assert_eq!(&first[plan.head_len..plan.head_len + 4], b"1000");
        assert_eq!(
            String::from_utf8(plan.head).unwrap(),
            "PUT /v1.41/containers/abc/archive?path=%2Ftmp HTTP/1.1\r\nHost: 127.0.0.1:2375\r\n\
User-Agent: Docker-Client/20.10.24\r\nTransfer-Encoding: chunked\r\n\
Content-Type: application/x-tar\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        for first in [
            &b"GET /v1.41/containers/json HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"POST /containers/create HTTP/1.1\r\nHost: x\r\n\r\n",
            // A head that is not whole yet.
            b"GET /containers/abc/archive?path=/ HTTP/1.1\r\nHost: x\r\n",
            b"GET /containers/abc/export HTTP/1.0\r\n\r\n",
            b"GET http://x/containers/abc/export HTTP/1.1\r\n\r\n",
            b"GET /containers/abc/export HTTP/1.1\r\nUpgrade: tcp\r\n\r\n",
            b"\x16\x03\x01garbage",
            b"",
        ] {
            assert_eq!(plan(first), None, "{}", String::from_utf8_lossy(first));
        }
    }

    #[test]
    fn the_clis_heads_are_answered_before_hyper_and_nothing_else_is() {
        let head = |first: &[u8]| match look(first) {
            Next::Head { head_len, request } => Some((head_len, request)),
            _ => None,
        };
        let ping = b"HEAD /_ping HTTP/1.1\r\nHost: x\r\nUser-Agent: Docker-Client/20.10\r\n\r\n";
        let mut two = ping.to_vec();
        two.extend_from_slice(b"GET /containers/json HTTP/1.1\r\n\r\n");
        let (len, req) = head(&two).expect("a HEAD /_ping");
        assert_eq!(len, ping.len());
        assert_eq!(req.uri(), "/_ping");
        assert_eq!(req.headers()["user-agent"], "Docker-Client/20.10");
        let stat =
            b"HEAD /v1.41/containers/abc/archive?path=%2Ftmp HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        let (_, req) = head(stat).expect("a HEAD stat");
        assert_eq!(req.uri(), "/v1.41/containers/abc/archive?path=%2Ftmp");
        for first in [
            // Other HEADs, HEADs with a body, partial or odd heads.
            &b"HEAD /containers/abc/json HTTP/1.1\r\n\r\n"[..],
            b"HEAD /_ping HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd",
            b"HEAD /_ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HEAD /_ping HTTP/1.1\r\nHost: x\r\n",
            b"HEAD /_ping HTTP/1.0\r\n\r\n",
            b"HEAD http://x/_ping HTTP/1.1\r\n\r\n",
            b"GET /_ping HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(look(first), Next::Http),
                "{}",
                String::from_utf8_lossy(first)
            );
        }
        assert!(matches!(look(b""), Next::Closed));
        assert!(matches!(
            look(b"GET /containers/abc/export HTTP/1.1\r\n\r\n"),
            Next::Bulk(_)
        ));
    }

    #[test]
    fn a_head_answer_is_the_daemons_head_without_hop_by_hop_headers() {
        let resp = hyper::Response::builder()
            .status(404)
            .header("api-version", "1.41")
            .header("docker-experimental", "false")
            .header("connection", "keep-alive")
            .header("content-length", "0")
            .body(())
            .unwrap();
        assert_eq!(
            String::from_utf8(answer_head(&resp)).unwrap(),
            "HTTP/1.1 404 Not Found\r\nApi-Version: 1.41\r\nDocker-Experimental: false\r\n\
             Content-Length: 0\r\n\r\n"
        );
    }

    proptest::proptest! {
        /// Whatever a client sends first, `plan` does not panic, and a plan it makes is a whole head
        /// of a bulk call that ends the connection, with nothing of the client's after its head.
        #[test]
        fn any_first_bytes_are_planned_or_left_to_hyper(
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            cut in 0usize..400,
            header in "[A-Za-z-]{1,12}: [ -~]{0,20}",
        ) {
            let _ = plan(&junk);
            let mut first = format!(
                "GET /v1.41/containers/abc/archive?path=/x HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n"
            )
            .into_bytes();
            first.extend_from_slice(&junk);
            let _ = plan(&first[..cut.min(first.len())]);
            if let Some(p) = plan(&first) {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut req = httparse::Request::new(&mut headers);
                let parsed = req.parse(&p.head);
                proptest::prop_assert_eq!(parsed, Ok(httparse::Status::Complete(p.head.len())));
                proptest::prop_assert!(is_bulk(req.method.unwrap_or(""), "/containers/abc/archive"));
                let closes = req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("connection"));
                proptest::prop_assert_eq!(closes.map(|h| h.value).collect::<Vec<_>>(), vec![&b"close"[..]]);
                proptest::prop_assert!(p.head_len <= first.len() - junk.len());
            }
        }

        /// Whatever a client sends, `look` does not panic; a `HEAD` it answers is a whole head without a
        /// body, and what follows it (`junk`) is left on the connection.
        #[test]
        fn any_bytes_are_looked_at_without_harm(
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            cut in 0usize..400,
            header in "(Content-Length|content-length|Transfer-Encoding|Upgrade|[A-Za-z-]{1,16}): (0|[!-~]{0,20})",
        ) {
            let _ = look(&junk);
            let head = format!("HEAD /v1.41/_ping HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n");
            let mut first = head.clone().into_bytes();
            first.extend_from_slice(&junk);
            let _ = look(&first[..cut.min(first.len())]);
            let lower = header.to_ascii_lowercase();
            let body = (lower.starts_with("content-length:") && lower != "content-length: 0")
                || lower.starts_with("transfer-encoding:")
                || lower.starts_with("upgrade:");
            match look(&first) {
                Next::Head { head_len, request } => {
                    proptest::prop_assert!(!body, "a HEAD with a body taken: {header}");
                    proptest::prop_assert_eq!(head_len, head.len());
                    proptest::prop_assert_eq!(request.uri(), "/v1.41/_ping");
                }
                other => proptest::prop_assert!(
                    body || matches!(other, Next::Http),
                    "{header}: {other:?}"
                ),
            }
        }
    }

    #[test]
    fn the_socket_to_the_daemon_gets_the_wider_send_buffer_the_host_allows() {
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let before = rustix::net::sockopt::socket_send_buffer_size(&ours).unwrap();
        widen_send_buffer(&ours);
        let cap: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let after = rustix::net::sockopt::socket_send_buffer_size(&ours).unwrap();
        assert_eq!(after, 2 * DAEMON_SNDBUF.min(cap), "{before} before");
    }

    #[test]
    fn a_daemon_that_cannot_be_reached_gets_a_docker_style_error() {
        let text = String::from_utf8(bad_gateway("cannot reach the Docker daemon")).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 502 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert_eq!(body, r#"{"message":"cannot reach the Docker daemon"}"#);
    }
}
