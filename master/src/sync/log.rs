//! Per-node logs of recent deltas, so that a node that reconnects gets only what it missed.
//!
//! Role: [`NodeLog`] keeps the last deltas sent for one node, bounded by count and by (approximate)
//! bytes, and the revision from which it is complete (its floor). A node resuming at revision `R` gets
//! the logged deltas after `R` when `floor <= R <= ` the hub's revision; otherwise it needs a snapshot.
//! [`approx_size`] estimates a change's encoded size cheaply (without serialising it), for the byte
//! bounds here and on subscriber queues.
//!
//! Inputs: delta messages in revision order. Outputs: the deltas after a revision, or "not covered".

use std::{collections::VecDeque, sync::Arc};

use super::{Change, SyncMessage};
use crate::{acl::AclDelta, model::Endpoint, store::Revision};

fn endpoint_size(e: &Endpoint) -> usize {
    320 + e.profile_ids.iter().map(|p| p.len() + 4).sum::<usize>()
        + (e.ipv4_nets.len() + e.ipv6_nets.len()) * (ADDR + 8)
}

const ADDR: usize = 24;

/// An estimate of a change's JSON size in bytes (within a small factor; used only for bounds).
pub fn approx_size(c: &Change) -> usize {
    match c {
        Change::EndpointSet { endpoint } => endpoint_size(endpoint),
        Change::EndpointRemove { endpoint_id } => 64 + endpoint_id.len(),
        Change::Acl { delta } => match delta {
            AclDelta::SetReplace { members, .. }
            | AclDelta::SetAdd { members, .. }
            | AclDelta::SetRemove { members, .. } => 96 + members.len() * ADDR,
            AclDelta::SetDelete { .. } => 80,
            AclDelta::ProfileUpdate(p) => 96 + (p.inbound.len() + p.outbound.len()) * 160,
            AclDelta::ProfileRemove { name } => 64 + name.len(),
            AclDelta::EndpointUpdate { profile_ids, .. } => {
                200 + profile_ids.iter().map(|p| p.len() + 4).sum::<usize>()
            }
            AclDelta::EndpointRemove { .. } => 160,
        },
        Change::Pools { pools } => 48 + pools.len() * 96,
        Change::Routes { routes } => {
            64 + routes.blocks.len() * (ADDR + 4) + routes.host_routes.len() * ADDR
        }
        Change::Bgp { bgp } => {
            160 + bgp.config.global_peers.len() * 64
                + bgp
                    .nodes
                    .iter()
                    .map(|h| 128 + h.name.len() + h.peers.len() * 64)
                    .sum::<usize>()
        }
        Change::Config { config } => {
            48 + config
                .iter()
                .map(|(k, v)| k.len() + v.len() + 8)
                .sum::<usize>()
        }
    }
}

/// The estimated size of a message.
pub fn message_size(m: &SyncMessage) -> usize {
    match m {
        SyncMessage::Delta { changes, .. } => 48 + changes.iter().map(approx_size).sum::<usize>(),
        SyncMessage::Heartbeat { .. } => 48,
        SyncMessage::Snapshot { state, .. } => {
            let eps: usize = state.endpoints.values().map(endpoint_size).sum();
            let sets: usize = state.acl.sets.values().map(|s| 64 + s.len() * ADDR).sum();
            256 + eps + sets + state.acl.profiles.len() * 512
        }
    }
}

/// A logged delta: the message (shared with subscriber queues) and its estimated size.
#[derive(Debug, Clone)]
pub struct Entry {
    /// A [`SyncMessage::Delta`].
    pub message: Arc<SyncMessage>,
    /// Its estimated size.
    pub size: usize,
}

/// The recent deltas of one node.
#[derive(Debug, Clone)]
pub struct NodeLog {
    floor: Revision,
    entries: VecDeque<Entry>,
    bytes: usize,
}

impl NodeLog {
    /// An empty log, complete from `floor` on (every change after `floor` will be pushed).
    pub fn new(floor: Revision) -> Self {
        NodeLog {
            floor,
            entries: VecDeque::new(),
            bytes: 0,
        }
    }

    /// The revision after which the log is complete.
    pub fn floor(&self) -> Revision {
        self.floor
    }

    /// Number of logged deltas.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No deltas logged.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Estimated bytes held.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Append a delta, then drop the oldest ones until at most `max_entries` and `max_bytes` remain
    /// (the floor moves up to the newest dropped delta's revision).
    pub fn push(&mut self, entry: Entry, max_entries: usize, max_bytes: usize) {
        self.bytes += entry.size;
        self.entries.push_back(entry);
        while self.entries.len() > max_entries || (self.bytes > max_bytes && !self.is_empty()) {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.size;
                self.floor = self.floor.max(old.message.revision());
            }
        }
    }

    /// The deltas after `revision`, if the log covers it (`floor <= revision`).
    pub fn since(&self, revision: Revision) -> Option<Vec<Entry>> {
        if revision < self.floor {
            return None;
        }
        Some(
            self.entries
                .iter()
                .filter(|e| e.message.revision() > revision)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(rev: Revision) -> Entry {
        Entry {
            message: Arc::new(SyncMessage::Delta {
                revision: rev,
                changes: vec![Change::EndpointRemove {
                    endpoint_id: format!("e{rev}"),
                }],
            }),
            size: 100,
        }
    }

    fn revs(v: Option<Vec<Entry>>) -> Option<Vec<Revision>> {
        v.map(|v| v.iter().map(|e| e.message.revision()).collect())
    }

    #[test]
    fn covers_from_its_floor_and_moves_it_when_bounded() {
        let mut log = NodeLog::new(10);
        assert_eq!(revs(log.since(9)), None);
        assert_eq!(revs(log.since(10)), Some(vec![]));
        for r in [12, 13, 15] {
            log.push(delta(r), 3, 10_000);
        }
        assert_eq!(revs(log.since(10)), Some(vec![12, 13, 15]));
        assert_eq!(revs(log.since(13)), Some(vec![15]));
        assert_eq!(revs(log.since(15)), Some(vec![]));
        log.push(delta(16), 3, 10_000);
        assert_eq!(log.len(), 3);
        assert_eq!(log.floor(), 12);
        assert_eq!(revs(log.since(11)), None);
        assert_eq!(revs(log.since(12)), Some(vec![13, 15, 16]));
        // The byte bound: 250 bytes keep two 100-byte entries.
        log.push(delta(17), 100, 250);
        assert_eq!(log.len(), 2);
        assert_eq!(log.bytes(), 200);
        assert_eq!(log.floor(), 15);
        assert_eq!(revs(log.since(15)), Some(vec![16, 17]));
    }
}
