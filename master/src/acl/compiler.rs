//! The incremental ACL compiler's state and event handling.
//!
//! Role: hold profiles, endpoints and the derived reference counts (which nodes use which profile, which
//! nodes need which tag set, which IPs are in which tag), apply one event, and report the net per-node
//! deltas. Every mutation of a derived count first records what the node had before, so the deltas are
//! computed by comparing "before" and "after" only for what the event touched.
//!
//! Inputs: profile and endpoint events. Outputs: `BTreeMap<node, Vec<AclDelta>>` and snapshots.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use super::{set_id, AclDelta, CompiledProfile, CompiledRule, EndpointKey, NodeView};
use crate::model::{Endpoint, Profile, Rule};

/// Per-node deltas of one event.
pub type NodeDeltas = BTreeMap<String, Vec<AclDelta>>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct EpInfo {
    profile_ids: Vec<String>,
    ips: Vec<IpNet>,
}

/// What an event touched, with the state before it.
#[derive(Default)]
struct Tracker {
    node_profile: BTreeMap<(String, String), bool>,
    tag_node: BTreeMap<(String, String), bool>,
    member: BTreeMap<(String, IpNet), bool>,
    rules_changed: BTreeSet<String>,
    endpoint: Vec<(String, AclDelta)>,
}

/// The ACL compiler. Feed it every profile and endpoint; it answers with per-node deltas.
#[derive(Debug, Clone, Default)]
pub struct AclCompiler {
    profiles: BTreeMap<String, Profile>,
    compiled: BTreeMap<String, CompiledProfile>,
    endpoints: BTreeMap<EndpointKey, EpInfo>,
    /// profile → endpoints listing it.
    profile_users: BTreeMap<String, BTreeSet<EndpointKey>>,
    /// profile → node → number of that node's endpoints listing it.
    profile_nodes: BTreeMap<String, BTreeMap<String, usize>>,
    /// tag → node → number of profiles used on the node whose rules refer to the tag.
    tag_nodes: BTreeMap<String, BTreeMap<String, usize>>,
    /// tag → IP → number of endpoints carrying the tag with that IP.
    members: BTreeMap<String, BTreeMap<IpNet, usize>>,
}

fn compile(p: &Profile) -> CompiledProfile {
    let c = |r: &Rule| CompiledRule {
        rule: r.clone(),
        src_set: r.src_tag.as_deref().map(set_id),
        dst_set: r.dst_tag.as_deref().map(set_id),
    };
    CompiledProfile {
        name: p.name.clone(),
        inbound: p.rules.inbound_rules.iter().map(c).collect(),
        outbound: p.rules.outbound_rules.iter().map(c).collect(),
    }
}

fn bump<K: Ord>(map: &mut BTreeMap<K, usize>, k: K, up: bool) {
    if up {
        *map.entry(k).or_default() += 1;
    } else if let Some(n) = map.get_mut(&k) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&k);
        }
    }
}

impl AclCompiler {
    /// An empty compiler.
    pub fn new() -> Self {
        Self::default()
    }

    fn has_profile(&self, node: &str, p: &str) -> bool {
        self.profiles.contains_key(p)
            && self
                .profile_nodes
                .get(p)
                .is_some_and(|m| m.contains_key(node))
    }

    fn has_set(&self, tag: &str, node: &str) -> bool {
        self.tag_nodes
            .get(tag)
            .is_some_and(|m| m.contains_key(node))
    }

    fn present(&self, tag: &str, ip: &IpNet) -> bool {
        self.members.get(tag).is_some_and(|m| m.contains_key(ip))
    }

    fn rule_tags(&self, p: &str) -> BTreeSet<String> {
        self.profiles
            .get(p)
            .map(|p| p.rules.tags().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn ep_tags(&self, profile_ids: &[String]) -> BTreeSet<String> {
        profile_ids
            .iter()
            .filter_map(|p| self.profiles.get(p))
            .flat_map(|p| p.tags.iter().cloned())
            .collect()
    }

    fn bump_tag_node(&mut self, tr: &mut Tracker, tag: &str, node: &str, up: bool) {
        let had = self.has_set(tag, node);
        tr.tag_node
            .entry((tag.to_owned(), node.to_owned()))
            .or_insert(had);
        let m = self.tag_nodes.entry(tag.to_owned()).or_default();
        bump(m, node.to_owned(), up);
        if m.is_empty() {
            self.tag_nodes.remove(tag);
        }
    }

    fn bump_member(&mut self, tr: &mut Tracker, tag: &str, ip: IpNet, up: bool) {
        let had = self.present(tag, &ip);
        tr.member.entry((tag.to_owned(), ip)).or_insert(had);
        let m = self.members.entry(tag.to_owned()).or_default();
        bump(m, ip, up);
        if m.is_empty() {
            self.members.remove(tag);
        }
    }

    fn bump_node_profile(&mut self, tr: &mut Tracker, node: &str, p: &str, up: bool) {
        let had = self.has_profile(node, p);
        tr.node_profile
            .entry((node.to_owned(), p.to_owned()))
            .or_insert(had);
        let m = self.profile_nodes.entry(p.to_owned()).or_default();
        let before = m.get(node).copied().unwrap_or(0);
        bump(m, node.to_owned(), up);
        let after = m.get(node).copied().unwrap_or(0);
        if m.is_empty() {
            self.profile_nodes.remove(p);
        }
        if (before == 0) != (after == 0) {
            for tag in self.rule_tags(p) {
                self.bump_tag_node(tr, &tag, node, after > 0);
            }
        }
    }

    fn attach(&mut self, tr: &mut Tracker, key: &EndpointKey, info: &EpInfo, up: bool) {
        for tag in self.ep_tags(&info.profile_ids) {
            for ip in &info.ips {
                self.bump_member(tr, &tag, *ip, up);
            }
        }
        let unique: BTreeSet<&String> = info.profile_ids.iter().collect();
        for p in unique {
            self.bump_node_profile(tr, &key.hostname, p, up);
            let users = self.profile_users.entry(p.clone()).or_default();
            if up {
                users.insert(key.clone());
            } else {
                users.remove(key);
                if users.is_empty() {
                    self.profile_users.remove(p);
                }
            }
        }
    }

    /// Add or change an endpoint.
    pub fn upsert_endpoint(&mut self, ep: &Endpoint) -> NodeDeltas {
        let key = EndpointKey::of(ep);
        let info = EpInfo {
            profile_ids: ep.profile_ids.clone(),
            ips: ep
                .ipv4_nets
                .iter()
                .map(|n| IpNet::V4(*n))
                .chain(ep.ipv6_nets.iter().map(|n| IpNet::V6(*n)))
                .collect(),
        };
        let mut tr = Tracker::default();
        let old = self.endpoints.remove(&key);
        if old.as_ref() == Some(&info) {
            self.endpoints.insert(key, info);
            return NodeDeltas::new();
        }
        if let Some(old) = &old {
            self.attach(&mut tr, &key, old, false);
        }
        self.attach(&mut tr, &key, &info, true);
        if old.as_ref().map(|o| &o.profile_ids) != Some(&info.profile_ids) {
            tr.endpoint.push((
                key.hostname.clone(),
                AclDelta::EndpointUpdate {
                    key: key.clone(),
                    profile_ids: info.profile_ids.clone(),
                },
            ));
        }
        self.endpoints.insert(key, info);
        self.finish(tr)
    }

    /// Remove an endpoint (no deltas if it was unknown).
    pub fn remove_endpoint(&mut self, key: &EndpointKey) -> NodeDeltas {
        let Some(old) = self.endpoints.remove(key) else {
            return NodeDeltas::new();
        };
        let mut tr = Tracker::default();
        self.attach(&mut tr, key, &old, false);
        tr.endpoint.push((
            key.hostname.clone(),
            AclDelta::EndpointRemove { key: key.clone() },
        ));
        self.finish(tr)
    }

    /// Add or change a profile.
    pub fn upsert_profile(&mut self, profile: &Profile) -> NodeDeltas {
        self.set_profile(&profile.name, Some(profile.clone()))
    }

    /// Remove a profile (endpoints may still list it; their nodes drop it).
    pub fn remove_profile(&mut self, name: &str) -> NodeDeltas {
        self.set_profile(name, None)
    }

    fn set_profile(&mut self, name: &str, new: Option<Profile>) -> NodeDeltas {
        if self.profiles.get(name) == new.as_ref() {
            return NodeDeltas::new();
        }
        let mut tr = Tracker::default();
        let nodes: Vec<String> = self
            .profile_nodes
            .get(name)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for n in &nodes {
            let had = self.has_profile(n, name);
            tr.node_profile
                .entry((n.clone(), name.to_owned()))
                .or_insert(had);
        }
        let users: Vec<EndpointKey> = self
            .profile_users
            .get(name)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let old_ep_tags: Vec<BTreeSet<String>> = users
            .iter()
            .map(|k| {
                self.endpoints
                    .get(k)
                    .map(|i| self.ep_tags(&i.profile_ids))
                    .unwrap_or_default()
            })
            .collect();
        let old_rule_tags = self.rule_tags(name);
        let old_compiled = self.compiled.remove(name);
        match new {
            Some(p) => {
                self.compiled.insert(name.to_owned(), compile(&p));
                self.profiles.insert(name.to_owned(), p);
            }
            None => {
                self.profiles.remove(name);
            }
        }
        if self.compiled.get(name) != old_compiled.as_ref() {
            tr.rules_changed.insert(name.to_owned());
        }
        let new_rule_tags = self.rule_tags(name);
        for n in &nodes {
            for t in old_rule_tags.difference(&new_rule_tags) {
                self.bump_tag_node(&mut tr, t, n, false);
            }
            for t in new_rule_tags.difference(&old_rule_tags) {
                self.bump_tag_node(&mut tr, t, n, true);
            }
        }
        for (key, old_tags) in users.iter().zip(old_ep_tags) {
            let Some(info) = self.endpoints.get(key).cloned() else {
                continue;
            };
            let new_tags = self.ep_tags(&info.profile_ids);
            for t in old_tags.difference(&new_tags) {
                for ip in &info.ips {
                    self.bump_member(&mut tr, t, *ip, false);
                }
            }
            for t in new_tags.difference(&old_tags) {
                for ip in &info.ips {
                    self.bump_member(&mut tr, t, *ip, true);
                }
            }
        }
        self.finish(tr)
    }

    fn members_of(&self, tag: &str) -> BTreeSet<IpNet> {
        self.members
            .get(tag)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    fn finish(&self, tr: Tracker) -> NodeDeltas {
        let mut out = NodeDeltas::new();
        let mut push = |node: &str, d: AclDelta| out.entry(node.to_owned()).or_default().push(d);
        for ((node, p), had) in &tr.node_profile {
            let compiled = self.compiled.get(p).filter(|_| self.has_profile(node, p));
            match (had, compiled) {
                (false, Some(c)) => push(node, AclDelta::ProfileUpdate(c.clone())),
                (true, Some(c)) if tr.rules_changed.contains(p) => {
                    push(node, AclDelta::ProfileUpdate(c.clone()))
                }
                (true, None) => push(node, AclDelta::ProfileRemove { name: p.clone() }),
                _ => {}
            }
        }
        for ((tag, node), had) in &tr.tag_node {
            match (had, self.has_set(tag, node)) {
                (false, true) => push(
                    node,
                    AclDelta::SetReplace {
                        set_id: set_id(tag),
                        tag: tag.clone(),
                        members: self.members_of(tag),
                    },
                ),
                (true, false) => push(
                    node,
                    AclDelta::SetDelete {
                        set_id: set_id(tag),
                    },
                ),
                _ => {}
            }
        }
        let mut changes: BTreeMap<&str, (BTreeSet<IpNet>, BTreeSet<IpNet>)> = BTreeMap::new();
        for ((tag, ip), had) in &tr.member {
            let now = self.present(tag, ip);
            if *had != now {
                let e = changes.entry(tag.as_str()).or_default();
                if now { &mut e.0 } else { &mut e.1 }.insert(*ip);
            }
        }
        for (tag, (added, removed)) in changes {
            let Some(nodes) = self.tag_nodes.get(tag) else {
                continue;
            };
            for node in nodes.keys() {
                // A node that just got the set received it whole.
                if tr.tag_node.get(&(tag.to_owned(), node.clone())) == Some(&false) {
                    continue;
                }
                if !added.is_empty() {
                    push(
                        node,
                        AclDelta::SetAdd {
                            set_id: set_id(tag),
                            members: added.clone(),
                        },
                    );
                }
                if !removed.is_empty() {
                    push(
                        node,
                        AclDelta::SetRemove {
                            set_id: set_id(tag),
                            members: removed.clone(),
                        },
                    );
                }
            }
        }
        for (node, d) in tr.endpoint {
            push(&node, d);
        }
        for v in out.values_mut() {
            v.sort_by_key(AclDelta::phase);
        }
        out
    }

    /// Everything `node` needs now, as a view (the sync stream's snapshot).
    pub fn snapshot(&self, node: &str) -> NodeView {
        let mut v = NodeView::default();
        for (p, nodes) in &self.profile_nodes {
            if nodes.contains_key(node) {
                if let Some(c) = self.compiled.get(p) {
                    v.profiles.insert(p.clone(), c.clone());
                }
            }
        }
        for (k, info) in &self.endpoints {
            if k.hostname == node {
                v.endpoints.insert(k.clone(), info.profile_ids.clone());
            }
        }
        for (tag, nodes) in &self.tag_nodes {
            if nodes.contains_key(node) {
                v.sets.insert(set_id(tag), self.members_of(tag));
            }
        }
        v
    }

    /// The snapshot as a list of deltas that builds it from an empty view.
    pub fn snapshot_deltas(&self, node: &str) -> Vec<AclDelta> {
        let mut out = Vec::new();
        for (tag, nodes) in &self.tag_nodes {
            if nodes.contains_key(node) {
                out.push(AclDelta::SetReplace {
                    set_id: set_id(tag),
                    tag: tag.clone(),
                    members: self.members_of(tag),
                });
            }
        }
        let view = self.snapshot(node);
        out.extend(view.profiles.into_values().map(AclDelta::ProfileUpdate));
        out.extend(
            view.endpoints
                .into_iter()
                .map(|(key, profile_ids)| AclDelta::EndpointUpdate { key, profile_ids }),
        );
        out
    }
}
