//! Conntrack flushing, the I/O edge: deletes every tracked flow of addresses that left this host.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use crate::conntrack::{delete_if_involves, dump, CT_NEW};
use crate::error::Error;
use calico_netlink::socket::Socket;

/// The conntrack table of one network namespace.
#[derive(Debug)]
pub struct Flows {
    socket: Socket,
}

impl Flows {
    /// Flows of the namespace at `netns` (`None`: the caller's own).
    pub fn new(netns: Option<&Path>) -> Result<Flows, Error> {
        let protocol = Some(rustix::net::netlink::NETFILTER);
        let socket = Socket::open_at(netns, protocol)?;
        Ok(Flows { socket })
    }

    /// Deletes every flow whose original or reply direction involves one of `ips`; returns how many.
    pub fn flush(&mut self, ips: &[IpAddr]) -> Result<usize, Error> {
        let wanted: BTreeSet<IpAddr> = ips.iter().copied().collect();
        let mut deleted = 0;
        for v6 in [false, true] {
            if !wanted.iter().any(|ip| ip.is_ipv6() == v6) {
                continue;
            }
            let seq = self.socket.next_seq();
            let entries = self.socket.dump(&dump(v6, seq), CT_NEW)?;
            let mut batch = Vec::new();
            let mut seqs = Vec::new();
            for body in &entries {
                let seq = self.socket.next_seq();
                if let Some(msg) = delete_if_involves(body, &wanted, seq) {
                    batch.extend(msg);
                    seqs.push(seq);
                }
            }
            if seqs.is_empty() {
                continue;
            }
            // A flow may end on its own between the dump and the delete (ENOENT): that is fine.
            const ENOENT: i32 = 2;
            let failed = self.socket.transact_each(&batch, &seqs)?;
            if let Some(&(_, errno)) = failed.iter().find(|(_, e)| *e != ENOENT) {
                return Err(Error::Refused {
                    what: "a conntrack deletion".into(),
                    errno,
                });
            }
            deleted += seqs.len() - failed.len();
        }
        Ok(deleted)
    }

    /// How many flows involve `ip` (for checks and tests).
    pub fn count(&mut self, ip: IpAddr) -> Result<usize, Error> {
        let wanted: BTreeSet<IpAddr> = [ip].into();
        let seq = self.socket.next_seq();
        let entries = self.socket.dump(&dump(ip.is_ipv6(), seq), CT_NEW)?;
        Ok(entries
            .iter()
            .filter(|b| delete_if_involves(b, &wanted, 0).is_some())
            .count())
    }
}
