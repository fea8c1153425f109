//! The I/O edge of the netlink codec: a netlink socket (optionally opened inside another network
//! namespace) that sends a batch in one `sendmsg` and collects one reply per acknowledged request.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{self, AddressFamily, Protocol, RecvFlags, SendFlags, SocketType};

use crate::error::Error;
use crate::{parse_messages, parse_replies, Reply, NLMSG_DONE, NLMSG_ERROR};

/// How long to wait for the kernel's replies to one batch.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Room for large batches (the kernel refuses a message larger than the socket's send buffer).
const SEND_BUFFER: usize = 4 << 20;

/// A netlink socket of one protocol (e.g. `NETLINK_NETFILTER`).
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open(protocol: Option<Protocol>) -> Result<Socket, Error> {
        let fd = net::socket(AddressFamily::NETLINK, SocketType::RAW, protocol)?;
        net::bind(&fd, &SocketAddrNetlink::new(0, 0))?;
        // Forcing needs CAP_NET_ADMIN, which Felix has; fall back to what the limit allows.
        if net::sockopt::set_socket_send_buffer_size_force(&fd, SEND_BUFFER).is_err() {
            net::sockopt::set_socket_send_buffer_size(&fd, SEND_BUFFER)?;
        }
        let _ = net::sockopt::set_socket_recv_buffer_size_force(&fd, SEND_BUFFER);
        net::sockopt::set_socket_timeout(&fd, net::sockopt::Timeout::Recv, Some(REPLY_TIMEOUT))?;
        Ok(Socket { fd, seq: 1 })
    }

    /// Opens a socket in the namespace at `netns`, or in the caller's own when `None`.
    pub fn open_at(netns: Option<&Path>, protocol: Option<Protocol>) -> Result<Socket, Error> {
        match netns {
            Some(path) => Socket::open_in(path, protocol),
            None => Socket::open(protocol),
        }
    }

    /// Opens a socket inside the network namespace at `netns` (e.g. `/run/netns/NAME` or
    /// `/proc/PID/ns/net`). A socket stays in the namespace it was created in, so only a short-lived
    /// thread enters the namespace; the caller's threads never change namespace.
    pub fn open_in(netns: &Path, protocol: Option<Protocol>) -> Result<Socket, Error> {
        let path = netns.to_path_buf();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).map_err(|source| Error::Netns {
                path: path.display().to_string(),
                source,
            })?;
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| Error::Netns {
                path: path.display().to_string(),
                source: e.into(),
            })?;
            Socket::open(protocol)
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Io(std::io::Error::other("netns thread panicked"))))
    }

    /// A fresh sequence number for the next request.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Sends `batch` in one message and waits for a reply to every sequence number in `acked`;
    /// the first error the kernel reports is returned, naming `what`.
    pub fn transact(&mut self, batch: &[u8], acked: &[u32], what: &str) -> Result<(), Error> {
        match self.transact_each(batch, acked)?.first() {
            Some(&(_, errno)) => Err(Error::Refused {
                what: what.to_string(),
                errno,
            }),
            None => Ok(()),
        }
    }

    /// Sends `batch` in one message and waits for a reply to every sequence number in `acked`; returns
    /// the requests that failed as (sequence number, errno), so one bad request does not hide the
    /// others' success.
    pub fn transact_each(&mut self, batch: &[u8], acked: &[u32]) -> Result<Vec<(u32, i32)>, Error> {
        self.send(batch)?;
        let mut waiting: BTreeSet<u32> = acked.iter().copied().collect();
        let mut failed = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        while !waiting.is_empty() {
            let n = self.recv(&mut buf, waiting.len())?;
            for reply in parse_replies(&buf[..n]) {
                match reply {
                    Reply::Ack { seq } => {
                        waiting.remove(&seq);
                    }
                    Reply::Error { seq, errno } => {
                        if waiting.remove(&seq) {
                            failed.push((seq, errno));
                        }
                    }
                    Reply::Other { .. } => {}
                }
            }
        }
        Ok(failed)
    }

    /// Sends requests that each get one data reply (e.g. `RTM_GETLINK` by name), one per sequence
    /// number in `seqs`; returns each request's reply body or errno.
    pub fn request_each(
        &mut self,
        batch: &[u8],
        seqs: &[u32],
    ) -> Result<BTreeMap<u32, Result<Vec<u8>, i32>>, Error> {
        self.send(batch)?;
        let mut answers = BTreeMap::new();
        let mut buf = vec![0u8; 256 * 1024];
        while answers.len() < seqs.len() {
            let n = self.recv(&mut buf, seqs.len() - answers.len())?;
            for m in parse_messages(&buf[..n]) {
                if !seqs.contains(&m.seq) {
                    continue;
                }
                if m.ty == NLMSG_ERROR {
                    let errno = m
                        .body
                        .get(..4)
                        .map_or(0, |b| -i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                    if errno != 0 {
                        answers.insert(m.seq, Err(errno));
                    }
                } else {
                    answers.insert(m.seq, Ok(m.body.to_vec()));
                }
            }
        }
        Ok(answers)
    }

    /// Sends a dump request and returns the bodies of every message of type `ty` until the dump ends.
    pub fn dump(&mut self, request: &[u8], ty: u16) -> Result<Vec<Vec<u8>>, Error> {
        let mut bodies = Vec::new();
        self.dump_each(request, ty, |body| bodies.push(body.to_vec()))?;
        Ok(bodies)
    }

    /// Sends a dump request and hands `each` the body of every message of type `ty` as it arrives,
    /// until the dump ends (nothing is kept: a dump of 100,000 routes costs one receive buffer).
    pub fn dump_each(
        &mut self,
        request: &[u8],
        ty: u16,
        mut each: impl FnMut(&[u8]),
    ) -> Result<(), Error> {
        self.send(request)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = self.recv(&mut buf, 1)?;
            for m in parse_messages(&buf[..n]) {
                match m.ty {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let errno = m
                            .body
                            .get(..4)
                            .map_or(0, |b| -i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        return Err(Error::Refused {
                            what: "a dump".into(),
                            errno,
                        });
                    }
                    t if t == ty => each(m.body),
                    _ => {}
                }
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let sent = net::sendto(
            &self.fd,
            bytes,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )?;
        if sent != bytes.len() {
            return Err(Error::Io(std::io::Error::other("short netlink send")));
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], missing: usize) -> Result<usize, Error> {
        match net::recv(&self.fd, &mut *buf, RecvFlags::empty()) {
            Ok((n, _)) => Ok(n.min(buf.len())),
            Err(e) if e == rustix::io::Errno::AGAIN => Err(Error::NoAnswer {
                missing,
                timeout_ms: REPLY_TIMEOUT.as_millis() as u64,
            }),
            Err(e) => Err(e.into()),
        }
    }
}
