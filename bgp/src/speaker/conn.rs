//! Sockets: listening, connecting, and one reader and one writer task per TCP connection.
//!
//! Role: the TCP edge of the speaker. Listeners accept and hand every connection to the core (which
//! refuses unknown addresses); connect tasks dial a peer (from its local address, with its MD5 key and
//! multihop TTL) and report the outcome; each connection gets a reader task that forwards bytes to the
//! core and a writer task that writes what the core queues, then closes gracefully.
//! Inputs: addresses and peer settings from the core; bytes and connection events from the kernel.
//! Outputs: [`Input`]s on the core's queue; bytes on the wire.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use super::core::Input;
use super::{sys, Error, PeerSettings};
use crate::session::ConnId;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a closing connection may take to flush what was queued before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// Bytes read at a time. The core decodes every whole message of a read before applying them, so this
/// bounds what a burst holds decoded at once (16 KiB: four full UPDATEs, some 3,000 prefixes); more per
/// read buys no speed.
const READ_BUFFER: usize = 16 * 1024;
/// Reads of one connection queued for the core at most.
const READS_QUEUED: usize = 4;

/// The TTL of GTSM packets (RFC 5082), and of everything our listeners send (their SYN-ACKs must reach a
/// GTSM peer that dialled us; an accepted connection keeps it).
const GTSM_TTL: u8 = 255;

/// Sets the TTL (IPv6: unicast hop limit) of what `socket` sends.
fn set_ttl(socket: &impl std::os::fd::AsFd, v6: bool, ttl: u8) -> std::io::Result<()> {
    if v6 {
        rustix::net::sockopt::set_ipv6_unicast_hops(socket, Some(ttl))?;
    } else {
        rustix::net::sockopt::set_ip_ttl(socket, u32::from(ttl))?;
    }
    Ok(())
}

/// Applies GTSM (when `peer` asks for it) to a connection accepted from it: packets below its minimum
/// TTL are dropped from now on (the handshake already passed: the listener is shared by all peers).
pub(super) fn accepted_gtsm(stream: &TcpStream, peer: &PeerSettings) -> std::io::Result<()> {
    let Some(min) = peer.min_ttl() else {
        return Ok(());
    };
    let v6 = stream.local_addr()?.is_ipv6() && peer.address.is_ipv6();
    sys::set_min_ttl(stream, v6, min)
}

/// A listening socket.
pub(super) fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    let err = |source| Error::Listen { addr, source };
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    if addr.is_ipv6() {
        // Let an IPv4 listener on the same port coexist.
        rustix::net::sockopt::set_ipv6_v6only(&socket, true).map_err(|e| err(e.into()))?;
    }
    set_ttl(&socket, addr.is_ipv6(), GTSM_TTL).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(128).map_err(err)
}

/// The address as the kernel sees it on a socket of `listener_v6`'s family (IPv4-mapped on IPv6).
fn for_family(peer: IpAddr, v6_socket: bool) -> Option<IpAddr> {
    match (peer, v6_socket) {
        (IpAddr::V4(_), false) | (IpAddr::V6(_), true) => Some(peer),
        _ => None, // IPV6_V6ONLY: an IPv4 peer never reaches an IPv6 listener.
    }
}

/// Sets (or with `None` removes) the MD5 key for `peer` on a listener of the matching family.
pub(super) fn listener_md5(
    listener: &TcpListener,
    peer: IpAddr,
    key: Option<&str>,
) -> Result<(), Error> {
    let v6 = listener.local_addr().map(|a| a.is_ipv6()).unwrap_or(false);
    let Some(addr) = for_family(peer, v6) else {
        return Ok(());
    };
    match sys::set_tcp_md5sig(listener, addr, key.unwrap_or("").as_bytes()) {
        Ok(()) => Ok(()),
        // Removing a key that was never set.
        Err(e) if key.is_none() && e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(source) => Err(Error::SocketOption {
            what: "TCP_MD5SIG",
            peer,
            source,
        }),
    }
}

/// Accepts connections forever, handing each to the core.
pub(super) fn spawn_accept(
    listener: Arc<TcpListener>,
    tx: mpsc::UnboundedSender<Input>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, remote)) => {
                    if tx.send(Input::Accepted { stream, remote }).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}

/// Dials `peer`; reports [`Input::Connected`] or [`Input::ConnectFailed`].
pub(super) fn spawn_connect(
    conn: ConnId,
    peer: &PeerSettings,
    tx: mpsc::UnboundedSender<Input>,
) -> JoinHandle<()> {
    let settings = peer.clone();
    tokio::spawn(async move {
        let addr = settings.address;
        let outcome = tokio::time::timeout(CONNECT_TIMEOUT, dial(&settings)).await;
        let input = match outcome {
            Ok(Ok(stream)) => Input::Connected {
                peer: addr,
                conn,
                stream,
            },
            Ok(Err(e)) => Input::ConnectFailed {
                peer: addr,
                conn,
                error: e.to_string(),
            },
            Err(_) => Input::ConnectFailed {
                peer: addr,
                conn,
                error: "connection attempt timed out".into(),
            },
        };
        let _ = tx.send(input);
    })
}

async fn dial(s: &PeerSettings) -> std::io::Result<TcpStream> {
    let socket = if s.address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(key) = &s.password {
        // Never dial unsigned: a refused key fails the attempt, and says which option it was.
        sys::set_tcp_md5sig(&socket, s.address, key.as_bytes())
            .map_err(|e| std::io::Error::new(e.kind(), format!("TCP_MD5SIG: {e}")))?;
    }
    let v6 = s.address.is_ipv6();
    if let Some(min) = s.min_ttl() {
        set_ttl(&socket, v6, GTSM_TTL)?;
        sys::set_min_ttl(&socket, v6, min)?;
    } else if let Some(ttl) = s.multihop {
        set_ttl(&socket, v6, ttl)?;
    }
    if let Some(local) = s.local_address {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    socket.connect(SocketAddr::new(s.address, s.port)).await
}

/// What the core may ask of a connection's writer.
#[derive(Debug)]
pub(super) enum Outgoing {
    /// Bytes to write.
    Data(Vec<u8>),
    /// Flush, then close.
    Close,
}

/// The most bytes queued for a connection's writer beyond what its socket holds: a peer that stops
/// reading (but keeps its session up) must not make us buffer without bound. A full table for one peer
/// (1,000,000 routes) is about 10 MB.
#[cfg(not(test))]
pub(super) const MAX_QUEUED: usize = 64 << 20;
#[cfg(test)]
pub(super) const MAX_QUEUED: usize = 256 << 10;

/// The core's side of one connection.
#[derive(Debug)]
pub(super) struct ConnHandle {
    writer: mpsc::UnboundedSender<Outgoing>,
    /// Bytes handed to the writer and not yet written to the socket.
    queued: Arc<AtomicUsize>,
    writer_task: JoinHandle<()>,
    reader_task: JoinHandle<()>,
    /// Our address on it.
    pub local: SocketAddr,
}

impl ConnHandle {
    /// Queues bytes.
    pub fn send(&self, bytes: Vec<u8>) {
        self.queued.fetch_add(bytes.len(), Ordering::Relaxed);
        let _ = self.writer.send(Outgoing::Data(bytes));
    }

    /// Bytes queued and not yet written to the socket.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Flushes what is queued, then closes; drops the connection after a grace period in any case.
    pub fn close(self) {
        let _ = self.writer.send(Outgoing::Close);
        let (w, r) = (self.writer_task, self.reader_task);
        tokio::spawn(async move {
            tokio::time::sleep(CLOSE_GRACE).await;
            w.abort();
            r.abort();
        });
    }

    /// Closes and waits (up to the grace period) until what was queued is written.
    pub async fn close_and_wait(self) {
        let _ = self.writer.send(Outgoing::Close);
        let mut w = self.writer_task;
        if tokio::time::timeout(CLOSE_GRACE, &mut w).await.is_err() {
            w.abort();
        }
        self.reader_task.abort();
    }
}

/// Starts the reader and writer tasks of a connection to `peer`.
pub(super) fn attach(
    conn: ConnId,
    peer: IpAddr,
    stream: TcpStream,
    tx: mpsc::UnboundedSender<Input>,
) -> std::io::Result<ConnHandle> {
    let local = stream.local_addr()?;
    let _ = stream.set_nodelay(true);
    let (mut read, write) = stream.into_split();
    let (wtx, wrx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let writer_task = tokio::spawn(writer(write, wrx, Arc::clone(&queued)));
    let reader_task = tokio::spawn(async move {
        let mut buf = vec![0u8; READ_BUFFER];
        let credit = Arc::new(Semaphore::new(READS_QUEUED));
        let error = loop {
            // Wait until the core has taken all but a few earlier reads: what a peer sends faster than
            // the core applies it waits in the socket (and, when that is full, in the peer), not here.
            let Ok(permit) = Arc::clone(&credit).acquire_owned().await else {
                return;
            };
            match read.read(&mut buf).await {
                Ok(0) => break None,
                Ok(n) => {
                    let data = buf[..n].to_vec();
                    let input = Input::Data {
                        peer,
                        conn,
                        data,
                        _credit: permit,
                    };
                    if tx.send(input).is_err() {
                        return;
                    }
                }
                Err(e) => break Some(e.to_string()),
            }
        };
        let _ = tx.send(Input::Closed { peer, conn, error });
    });
    Ok(ConnHandle {
        writer: wtx,
        queued,
        writer_task,
        reader_task,
        local,
    })
}

async fn writer(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(m) = rx.recv().await {
        match m {
            Outgoing::Data(bytes) => {
                if w.write_all(&bytes).await.is_err() {
                    return;
                }
                queued.fetch_sub(bytes.len(), Ordering::Relaxed);
            }
            Outgoing::Close => break,
        }
    }
    let _ = w.shutdown().await;
}
