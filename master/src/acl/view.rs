//! A node's view of its ACL state: what the compiler's snapshot gives and what deltas keep current.
//!
//! Role: the subscriber-side state (and the test oracle): profiles by name, local endpoints with their
//! ordered profile ids, and sets by id. Inputs: [`super::AclDelta`]s. Output: the current view.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{AclDelta, CompiledProfile, EndpointKey};

/// What one node needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// Profiles used by the node's endpoints.
    pub profiles: BTreeMap<String, CompiledProfile>,
    /// The node's endpoints and their ordered profile ids. In JSON (whose object keys are strings) a
    /// list of `{"key": {…}, "profile_ids": […]}`.
    #[serde(with = "endpoint_list")]
    pub endpoints: BTreeMap<EndpointKey, Vec<String>>,
    /// Sets referred to by those profiles, by set id.
    pub sets: BTreeMap<String, BTreeSet<IpNet>>,
}

/// [`NodeView::endpoints`] as a list of entries.
mod endpoint_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::EndpointKey;

    #[derive(Serialize)]
    struct Ref<'a> {
        key: &'a EndpointKey,
        profile_ids: &'a [String],
    }

    #[derive(Deserialize)]
    struct Owned {
        key: EndpointKey,
        profile_ids: Vec<String>,
    }

    pub(super) fn serialize<S: Serializer>(
        map: &BTreeMap<EndpointKey, Vec<String>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter().map(|(key, ids)| Ref {
            key,
            profile_ids: ids,
        }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<EndpointKey, Vec<String>>, D::Error> {
        Ok(Vec::<Owned>::deserialize(d)?
            .into_iter()
            .map(|e| (e.key, e.profile_ids))
            .collect())
    }
}

impl NodeView {
    /// Apply one delta.
    pub fn apply(&mut self, d: &AclDelta) {
        match d {
            AclDelta::SetReplace {
                set_id, members, ..
            } => {
                self.sets.insert(set_id.clone(), members.clone());
            }
            AclDelta::SetAdd { set_id, members } => {
                self.sets
                    .entry(set_id.clone())
                    .or_default()
                    .extend(members.iter().copied());
            }
            AclDelta::SetRemove { set_id, members } => {
                if let Some(s) = self.sets.get_mut(set_id) {
                    s.retain(|m| !members.contains(m));
                }
            }
            AclDelta::SetDelete { set_id } => {
                self.sets.remove(set_id);
            }
            AclDelta::ProfileUpdate(p) => {
                self.profiles.insert(p.name.clone(), p.clone());
            }
            AclDelta::ProfileRemove { name } => {
                self.profiles.remove(name);
            }
            AclDelta::EndpointUpdate { key, profile_ids } => {
                self.endpoints.insert(key.clone(), profile_ids.clone());
            }
            AclDelta::EndpointRemove { key } => {
                self.endpoints.remove(key);
            }
        }
    }

    /// Apply deltas in order.
    pub fn apply_all<'a>(&mut self, ds: impl IntoIterator<Item = &'a AclDelta>) {
        for d in ds {
            self.apply(d);
        }
    }
}
