//! The I/O edge of the netlink codec: a netlink socket (optionally opened inside another network
//! namespace) that sends a batch in one `sendmsg` and collects one reply per acknowledged request.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{self, AddressFamily, Protocol, RecvFlags, SendFlags, SocketType};

use super::{parse_replies, Reply};
use crate::error::Error;

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
    pub fn open(protocol: Protocol) -> Result<Socket, Error> {
        let fd = net::socket(AddressFamily::NETLINK, SocketType::RAW, Some(protocol))?;
        net::bind(&fd, &SocketAddrNetlink::new(0, 0))?;
        // Forcing needs CAP_NET_ADMIN, which Felix has; fall back to what the limit allows.
        if net::sockopt::set_socket_send_buffer_size_force(&fd, SEND_BUFFER).is_err() {
            net::sockopt::set_socket_send_buffer_size(&fd, SEND_BUFFER)?;
        }
        let _ = net::sockopt::set_socket_recv_buffer_size_force(&fd, SEND_BUFFER);
        net::sockopt::set_socket_timeout(&fd, net::sockopt::Timeout::Recv, Some(REPLY_TIMEOUT))?;
        Ok(Socket { fd, seq: 1 })
    }

    /// Opens a socket inside the network namespace at `netns` (e.g. `/run/netns/NAME` or
    /// `/proc/PID/ns/net`). A socket stays in the namespace it was created in, so only a short-lived
    /// thread enters the namespace; the caller's threads never change namespace.
    pub fn open_in(netns: &Path, protocol: Protocol) -> Result<Socket, Error> {
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
        let sent = net::sendto(
            &self.fd,
            batch,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )?;
        if sent != batch.len() {
            return Err(Error::Io(std::io::Error::other("short netlink send")));
        }
        let mut waiting: BTreeSet<u32> = acked.iter().copied().collect();
        let mut first_error = None;
        let mut buf = vec![0u8; 256 * 1024];
        while !waiting.is_empty() {
            let n = match net::recv(&self.fd, &mut buf[..], RecvFlags::empty()) {
                Ok((n, _)) => n,
                Err(e) if e == rustix::io::Errno::AGAIN => {
                    return Err(first_error.unwrap_or(Error::NoAnswer {
                        missing: waiting.len(),
                        timeout_ms: REPLY_TIMEOUT.as_millis() as u64,
                    }));
                }
                Err(e) => return Err(e.into()),
            };
            for reply in parse_replies(&buf[..n.min(buf.len())]) {
                match reply {
                    Reply::Ack { seq } => {
                        waiting.remove(&seq);
                    }
                    Reply::Error { seq, errno } => {
                        waiting.remove(&seq);
                        first_error.get_or_insert(Error::Refused {
                            what: what.to_string(),
                            errno,
                        });
                    }
                    Reply::Other { .. } => {}
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
