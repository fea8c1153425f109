//! The I/O edge of the netlink codec: a netlink socket (optionally opened inside another network
//! namespace) that sends a batch in one `sendmsg` and collects one reply per acknowledged request.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{self, AddressFamily, Protocol, RecvFlags, SendFlags, SocketType};

use crate::error::Error;
use crate::{parse_messages, parse_replies, Reply, HEADER_LEN, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK};

/// How long to wait for the kernel's replies to one batch.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Room for the replies to one batch: failures only, or a whole batch's worth of acknowledgements.
const REPLY_BUFFER: usize = 64 * 1024;
/// Room for large batches (the kernel refuses a message larger than the socket's send buffer).
const SEND_BUFFER: usize = 4 << 20;

/// A netlink socket of one protocol (e.g. `NETLINK_NETFILTER`).
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    /// The last batch sent, as [`quiet_batch`] rewrote it (kept to reuse its allocation).
    out: Vec<u8>,
    /// Room for the replies to a batch (kept to reuse its allocation).
    replies: Vec<u8>,
}

impl AsFd for Socket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
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
        Ok(Socket {
            fd,
            seq: 1,
            out: Vec::new(),
            replies: Vec::new(),
        })
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

    /// Sends `batch` in one message and returns the requests among `acked` that failed, as (sequence
    /// number, errno), so one bad request does not hide the others' success.
    ///
    /// Only the batch's last request asks for an acknowledgement: the kernel handles the requests of
    /// one send in order and reports every failure whether asked or not, so the answer to the last one
    /// means all have been handled, and a success costs no reply (a third less kernel time for 100,000
    /// routes; `bench/src/bin/fib_acks.rs`). The requests must be ones that get no data reply.
    pub fn transact_each(&mut self, batch: &[u8], acked: &[u32]) -> Result<Vec<(u32, i32)>, Error> {
        let mut out = std::mem::take(&mut self.out);
        let last = quiet_batch(batch, &mut out);
        let sent = match last {
            Some(_) => self.send(&out),
            None => self.send(batch),
        };
        self.out = out;
        sent?;
        // Without a last request that asks, every request in `acked` is waited for (old style).
        let mut waiting: BTreeSet<u32> = match last {
            Some(seq) => BTreeSet::from([seq]),
            None => acked.iter().copied().collect(),
        };
        let mut failed = Vec::new();
        let mut buf = std::mem::take(&mut self.replies);
        buf.resize(REPLY_BUFFER, 0);
        while !waiting.is_empty() {
            let n = match self.recv(&mut buf, waiting.len()) {
                Ok(n) => n,
                Err(e) => {
                    self.replies = buf;
                    return Err(e);
                }
            };
            for reply in parse_replies(&buf[..n]) {
                match reply {
                    Reply::Ack { seq } => {
                        waiting.remove(&seq);
                    }
                    Reply::Error { seq, errno } => {
                        waiting.remove(&seq);
                        if acked.contains(&seq) {
                            failed.push((seq, errno));
                        }
                    }
                    Reply::Other { .. } => {}
                }
            }
        }
        self.replies = buf;
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

/// Copies `batch` into `out` with `NLM_F_ACK` cleared on every request but the last, and returns the
/// last request's sequence number; `None` (and `out` unspecified) when the last request does not ask
/// for an acknowledgement or the batch does not parse, so the caller sends it as it is.
fn quiet_batch(batch: &[u8], out: &mut Vec<u8>) -> Option<u32> {
    out.clear();
    out.extend_from_slice(batch);
    let mut at = 0;
    let mut last = None;
    while at < out.len() {
        let header = out.get(at..at + HEADER_LEN)?;
        let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len < HEADER_LEN || at + len > out.len() {
            return None;
        }
        let flags = u16::from_ne_bytes([header[6], header[7]]);
        let seq = u32::from_ne_bytes([header[8], header[9], header[10], header[11]]);
        last = Some((at, flags, seq));
        out[at + 6..at + 8].copy_from_slice(&(flags & !NLM_F_ACK).to_ne_bytes());
        at += (len + 3) & !3;
    }
    let (at, flags, seq) = last?;
    if flags & NLM_F_ACK == 0 {
        return None;
    }
    out[at + 6..at + 8].copy_from_slice(&flags.to_ne_bytes());
    Some(seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_messages, Message, NLM_F_REQUEST};

    fn request(seq: u32, flags: u16) -> Vec<u8> {
        let mut m = Message::new(24, NLM_F_REQUEST | flags, seq);
        m.attr(1, &[1, 2, 3]); // an attribute of 7 bytes: the next message starts after padding
        m.finish()
    }

    #[test]
    fn only_the_last_request_asks_for_an_acknowledgement() {
        let batch: Vec<u8> = [
            request(5, NLM_F_ACK),
            request(6, NLM_F_ACK),
            request(7, NLM_F_ACK),
        ]
        .concat();
        let mut out = Vec::new();
        assert_eq!(quiet_batch(&batch, &mut out), Some(7));
        let flags: Vec<(u32, u16)> = parse_messages(&out)
            .iter()
            .map(|m| (m.seq, m.flags & NLM_F_ACK))
            .collect();
        assert_eq!(flags, [(5, 0), (6, 0), (7, NLM_F_ACK)]);
        assert_eq!(out.len(), batch.len());
    }

    #[test]
    fn a_batch_whose_last_request_asks_nothing_or_that_does_not_parse_is_sent_as_it_is() {
        let mut out = Vec::new();
        let unasked = [request(5, NLM_F_ACK), request(6, 0)].concat();
        assert_eq!(quiet_batch(&unasked, &mut out), None);
        let mut cut = request(5, NLM_F_ACK);
        cut.truncate(cut.len() - 2);
        assert_eq!(quiet_batch(&cut, &mut out), None);
        assert_eq!(quiet_batch(&[], &mut out), None);
    }
}
