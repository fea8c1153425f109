//! Helpers shared by the proxy's integration tests (each test file includes this module).

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use calico_proxy::passthrough::Upstream;
use calico_proxy::server::Proxy;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// A directory under the system's temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("calico-proxy-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic bytes: `len` of them, different for each `seed`.
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

/// Reads an HTTP head (up to the empty line) as text.
pub async fn read_head<R: AsyncRead + Unpin>(rd: &mut BufReader<R>) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = rd.read_line(&mut line).await.expect("reading a head");
        assert!(n > 0, "the connection ended inside a head: {head:?}");
        head.push_str(&line);
        if line == "\r\n" {
            return head;
        }
    }
}

/// Everything `stream` sends until it closes, within `deadline`.
pub async fn read_to_end(stream: &mut TcpStream, deadline: Duration) -> Vec<u8> {
    let mut all = Vec::new();
    tokio::time::timeout(deadline, stream.read_to_end(&mut all))
        .await
        .expect("the connection ends")
        .expect("reading");
    all
}

pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A proxy without Calico hooks on a loopback port, in front of the daemon at `socket`, serving until
/// `shutdown` completes: its address and its serving task.
pub async fn start_proxy(
    socket: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (SocketAddr, JoinHandle<()>) {
    let upstream = Upstream::new(socket, None);
    let proxy = Proxy::bind("127.0.0.1:0".parse().expect("an address"), upstream)
        .await
        .expect("the proxy binds");
    let addr = proxy.local_addr().expect("its address");
    (addr, tokio::spawn(proxy.serve(shutdown)))
}
