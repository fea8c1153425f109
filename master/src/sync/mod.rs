//! The node sync stream: what a node needs, as a snapshot and then deltas, each tagged with the store's
//! revision.
//!
//! Role: the contract between the master and calico-node. A node subscribes for its host name (and, when
//! it resumes, the last revision it applied) and receives newline-delimited JSON [`SyncMessage`]s: a
//! [`SyncMessage::Snapshot`] of its whole [`NodeState`], or [`SyncMessage::Delta`]s carrying only what
//! changed, and [`SyncMessage::Heartbeat`]s while nothing changes. [`NodeState::apply`] is the node-side
//! (and test-oracle) fold of those messages.
//!
//! Inputs: messages from the stream. Outputs: the node's current [`NodeState`].
//!
//! The master side lives beside the contract: [`ClusterModel`] (`model.rs`, the sans-IO model that
//! turns store events into per-node changes), the per-node resume logs (`log.rs`) and [`SyncHub`]
//! (`hub.rs`, which follows the store and fans out to [`Subscription`]s). The HTTP transport is
//! `GET /v1/sync` in [`crate::api`]; the client side is [`crate::client::Client::sync`].

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

mod hub;
mod log;
mod model;

#[cfg(test)]
pub(crate) mod oracle;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use hub::{Subscription, SyncConfig, SyncHub, SyncStats};
pub use log::{approx_size, message_size};
pub use model::{ClusterModel, RevisionChanges};

use crate::{
    acl::{AclDelta, CompiledProfile, NodeView},
    model::{BgpConfig, Endpoint, Host, IpPool},
    store::Revision,
};

/// Everything one node needs from the master.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// The node's host name.
    pub node: String,
    /// The store revision this state reflects.
    pub revision: Revision,
    /// The node's own endpoints, by endpoint id.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Compiled profiles used by those endpoints, and the tag sets their rules refer to.
    pub acl: NodeView,
    /// Every IP pool.
    pub pools: Vec<IpPool>,
    /// What the node announces: its IPAM blocks and the addresses of its endpoints outside them.
    pub routes: NodeRoutes,
    /// BGP: the cluster configuration and every node (for the mesh, and this node's own peers).
    pub bgp: BgpView,
    /// Felix's settings for this node: the cluster-wide ones (`/calico/v1/config/<Key>`), overridden
    /// by the node's own (`/calico/v1/host/<node>/config/<Key>`).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// The routes a node announces for its workloads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRoutes {
    /// Blocks affine to the node (announced as aggregates, blackholed locally).
    pub blocks: Vec<IpNet>,
    /// Addresses of the node's workloads in blocks it does not own (announced as /32 or /128).
    pub host_routes: Vec<IpAddr>,
}

/// The BGP part of a node's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpView {
    /// Cluster-wide settings: default AS, mesh, global peers, timers.
    pub config: BgpConfig,
    /// Every registered node, sorted by name (with per-node peers and route-reflector settings).
    pub nodes: Vec<Host>,
}

/// One line of the sync stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SyncMessage {
    /// The node's whole state at `revision` (the first message, and after a resync).
    Snapshot {
        /// The store revision.
        revision: Revision,
        /// The state.
        state: Box<NodeState>,
    },
    /// What changed for the node up to `revision`.
    Delta {
        /// The store revision after these changes.
        revision: Revision,
        /// The changes, in application order.
        changes: Vec<Change>,
    },
    /// Nothing changed for the node up to `revision` (sent periodically so a node sees the master alive).
    Heartbeat {
        /// The store revision.
        revision: Revision,
    },
}

impl SyncMessage {
    /// The revision the message brings the node to.
    pub fn revision(&self) -> Revision {
        match self {
            SyncMessage::Snapshot { revision, .. }
            | SyncMessage::Delta { revision, .. }
            | SyncMessage::Heartbeat { revision } => *revision,
        }
    }
}

/// One change to a node's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// A local endpoint, new or changed.
    EndpointSet {
        /// The endpoint.
        endpoint: Box<Endpoint>,
    },
    /// A local endpoint is gone.
    EndpointRemove {
        /// Its endpoint id.
        endpoint_id: String,
    },
    /// A profile or tag-set change.
    Acl {
        /// The delta.
        delta: AclDelta,
    },
    /// The pools, whole.
    Pools {
        /// Every pool.
        pools: Vec<IpPool>,
    },
    /// The node's routes, whole.
    Routes {
        /// Blocks and host routes.
        routes: NodeRoutes,
    },
    /// The BGP view, whole.
    Bgp {
        /// Configuration and nodes.
        bgp: BgpView,
    },
    /// The node's effective settings, whole. A change of the cluster-wide settings comes as one of
    /// these among the changes every node gets, followed, for a node with settings of its own, by one
    /// with its effective map.
    Config {
        /// Key → value.
        config: BTreeMap<String, String>,
    },
}

impl NodeState {
    /// Fold one message into the state.
    pub fn apply(&mut self, msg: &SyncMessage) {
        match msg {
            SyncMessage::Snapshot { revision, state } => {
                *self = (**state).clone();
                self.revision = *revision;
            }
            SyncMessage::Delta { revision, changes } => {
                for c in changes {
                    self.apply_change(c);
                }
                self.revision = *revision;
            }
            SyncMessage::Heartbeat { revision } => self.revision = self.revision.max(*revision),
        }
    }

    /// Fold one change into the state.
    pub fn apply_change(&mut self, c: &Change) {
        match c {
            Change::EndpointSet { endpoint } => {
                self.endpoints
                    .insert(endpoint.endpoint_id.clone(), (**endpoint).clone());
            }
            Change::EndpointRemove { endpoint_id } => {
                self.endpoints.remove(endpoint_id);
            }
            Change::Acl { delta } => self.acl.apply(delta),
            Change::Pools { pools } => self.pools = pools.clone(),
            Change::Routes { routes } => self.routes = routes.clone(),
            Change::Bgp { bgp } => self.bgp = bgp.clone(),
            Change::Config { config } => self.config = config.clone(),
        }
    }

    /// A compiled profile by name.
    pub fn profile(&self, name: &str) -> Option<&CompiledProfile> {
        self.acl.profiles.get(name)
    }

    /// The members of a tag set by id.
    pub fn set(&self, set_id: &str) -> Option<&BTreeSet<IpNet>> {
        self.acl.sets.get(set_id)
    }

    /// This node's own registration, if it is registered.
    pub fn host(&self) -> Option<&Host> {
        self.bgp.nodes.iter().find(|h| h.name == self.node)
    }
}
