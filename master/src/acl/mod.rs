//! The ACL manager: an incremental compiler from profiles and endpoints to what each node needs.
//!
//! Role: keep, per node, three things apart so that one change is one small delta:
//! (a) the profiles its endpoints use, compiled with every tag resolved to a stable set id;
//! (b) each local endpoint's ordered profile ids;
//! (c) for every tag a rule of (a) refers to, the set of IPs of every endpoint in the cluster whose
//!     profiles carry that tag.
//! A rule change to a profile used by 10,000 endpoints is one `ProfileUpdate` per node using it; an
//! endpoint joining a tag is one `SetAdd` per node that needs the set.
//!
//! Inputs: events ([`AclCompiler::upsert_profile`], [`AclCompiler::remove_profile`],
//! [`AclCompiler::upsert_endpoint`], [`AclCompiler::remove_endpoint`]). Outputs: per-node lists of
//! [`AclDelta`] (net effect of the event, ordered so sets exist before the profiles that use them and
//! outlive them), and per-node snapshots ([`AclCompiler::snapshot`]) as a [`NodeView`], which also applies
//! deltas, so a subscriber can hold the same view.
//!
//! Set ids are a deterministic function of the tag name (`t` + 16 hex digits of its FNV-1a 64 hash), so
//! every master computes the same id without coordination and the dataplane can use it as a kernel set
//! name (`cali4-t…` fits the 31-character limit, whereas tags may be 40 characters long). One set holds
//! both IPv4 and IPv6 members; the dataplane splits them by family. A profile referenced by an endpoint
//! but not (yet) defined is simply not sent: the dataplane treats a missing profile as "deny".

mod compiler;
mod view;

use std::collections::BTreeSet;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use compiler::AclCompiler;
pub use view::NodeView;

use crate::model::{Endpoint, Rule};

/// The stable set id of a tag.
pub fn set_id(tag: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tag.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("t{h:016x}")
}

/// An endpoint's identity (its etcd key parts).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EndpointKey {
    /// Host the endpoint lives on.
    pub hostname: String,
    /// Orchestrator (`docker`).
    pub orchestrator: String,
    /// Workload id.
    pub workload_id: String,
    /// Endpoint id.
    pub endpoint_id: String,
}

impl EndpointKey {
    /// The key of an endpoint.
    pub fn of(ep: &Endpoint) -> Self {
        EndpointKey {
            hostname: ep.hostname.clone(),
            orchestrator: ep.orchestrator.clone(),
            workload_id: ep.workload_id.clone(),
            endpoint_id: ep.endpoint_id.clone(),
        }
    }
}

/// A rule with its tags resolved to set ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledRule {
    /// The rule as stored.
    pub rule: Rule,
    /// Set id for `rule.src_tag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_set: Option<String>,
    /// Set id for `rule.dst_tag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_set: Option<String>,
}

/// A profile as a node receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledProfile {
    /// The profile's name.
    pub name: String,
    /// Inbound rules in order.
    pub inbound: Vec<CompiledRule>,
    /// Outbound rules in order.
    pub outbound: Vec<CompiledRule>,
}

impl CompiledProfile {
    /// The set ids this profile's rules refer to.
    pub fn set_ids(&self) -> BTreeSet<&str> {
        self.inbound
            .iter()
            .chain(&self.outbound)
            .flat_map(|r| r.src_set.iter().chain(r.dst_set.iter()))
            .map(String::as_str)
            .collect()
    }
}

/// One change to a node's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AclDelta {
    /// Create a set with exactly these members (the node needs it now).
    SetReplace {
        /// Set id.
        set_id: String,
        /// The tag it stands for.
        tag: String,
        /// All members.
        members: BTreeSet<IpNet>,
    },
    /// Add members to a set the node has.
    SetAdd {
        /// Set id.
        set_id: String,
        /// New members.
        members: BTreeSet<IpNet>,
    },
    /// Remove members from a set the node has.
    SetRemove {
        /// Set id.
        set_id: String,
        /// Members to drop.
        members: BTreeSet<IpNet>,
    },
    /// The node no longer needs the set.
    SetDelete {
        /// Set id.
        set_id: String,
    },
    /// Install or replace a profile.
    ProfileUpdate(CompiledProfile),
    /// The node no longer needs the profile.
    ProfileRemove {
        /// Profile name.
        name: String,
    },
    /// A local endpoint and its ordered profile ids (new, or its profile list changed).
    EndpointUpdate {
        /// The endpoint.
        key: EndpointKey,
        /// Its profiles, in order.
        profile_ids: Vec<String>,
    },
    /// A local endpoint is gone.
    EndpointRemove {
        /// The endpoint.
        key: EndpointKey,
    },
}

impl AclDelta {
    /// Application order: sets are filled before profiles that use them, endpoints after their
    /// profiles; removals go the other way round.
    fn phase(&self) -> u8 {
        match self {
            AclDelta::SetReplace { .. } | AclDelta::SetAdd { .. } => 0,
            AclDelta::ProfileUpdate(_) => 1,
            AclDelta::EndpointUpdate { .. } => 2,
            AclDelta::EndpointRemove { .. } => 3,
            AclDelta::ProfileRemove { .. } => 4,
            AclDelta::SetRemove { .. } => 5,
            AclDelta::SetDelete { .. } => 6,
        }
    }
}

#[cfg(test)]
mod tests;
