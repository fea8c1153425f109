//! The planner: (the state the kernel was last brought to, the desired state) → the minimal changes.
//!
//! Pure. The changes come in three phases so that nothing is ever referenced before it exists or
//! deleted while still referenced: [`Plan::create`] (an `nft -f` script adding new sets and chains and
//! rewriting changed chains), [`Plan::elements`] (one netlink batch of set and map element changes), and
//! [`Plan::prune`] (an `nft -f` script deleting chains and sets nothing uses any more). Adding an endpoint
//! whose profiles and tags already exist is element changes only: its source addresses, its two map
//! entries, and its addresses in the tag sets it joins.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::model::{DesiredState, Endpoint, Profile, TagMembers};
use crate::nft::elements::{key_ifname, key_src_v4, key_src_v6, ElementOp};
use crate::nft::names::{profile_chain, profile_list_chain, tag_set};
use crate::nft::rule::Direction;
use crate::nft::table::{
    list_chain_rules, profile_chain_rules, profile_lists, tag_set_body, used_tags,
};
use crate::nft::TABLE;

/// The changes that take the kernel from one state to another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Phase 1: new sets and chains, rewritten chains (an `nft -f` script), if any.
    pub create: Option<String>,
    /// Phase 2: element changes (one netlink batch): deletes, then adds.
    pub elements: Vec<ElementOp>,
    /// Phase 3: chains and sets no longer used (an `nft -f` script), if any.
    pub prune: Option<String>,
}

impl Plan {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.create.is_none() && self.elements.is_empty() && self.prune.is_none()
    }
}

const DIRECTIONS: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

/// An element: (set, key) → the chain a map entry goes to (`None` in a plain set).
pub type Elements = BTreeMap<(String, Vec<u8>), Option<String>>;

/// Collects what a plan must do, in any order, and renders it in the one safe order.
#[derive(Debug, Default)]
pub struct PlanBuilder {
    new_tags: BTreeSet<String>,
    profiles: BTreeMap<String, Profile>,
    lists: BTreeMap<String, Vec<String>>,
    deletes: BTreeSet<(String, Vec<u8>)>,
    adds: Elements,
    gone_lists: BTreeSet<String>,
    gone_profiles: BTreeSet<String>,
    gone_tags: BTreeSet<String>,
}

impl PlanBuilder {
    /// Creates a tag's IPv4 and IPv6 sets.
    pub fn create_tag_sets(&mut self, tag: &str) {
        self.new_tags.insert(tag.to_string());
    }

    /// Creates or rewrites a profile's two chains.
    pub fn rewrite_profile(&mut self, name: &str, profile: &Profile) {
        self.profiles.insert(name.to_string(), profile.clone());
    }

    /// Creates or rewrites both chains of a profile list, as `state`'s profiles make them.
    pub fn rewrite_list(&mut self, list: &[String], state: &DesiredState) {
        for d in DIRECTIONS {
            self.rewrite_list_direction(list, d, state);
        }
    }

    /// Creates or rewrites one chain of a profile list.
    pub fn rewrite_list_direction(&mut self, list: &[String], d: Direction, state: &DesiredState) {
        self.lists.insert(
            profile_list_chain(list, d.short()),
            list_chain_rules(list, d, state),
        );
    }

    /// Deletes both chains of a profile list.
    pub fn prune_list(&mut self, list: &[String]) {
        for d in DIRECTIONS {
            self.gone_lists.insert(profile_list_chain(list, d.short()));
        }
    }

    /// Deletes a profile's chains.
    pub fn prune_profile(&mut self, name: &str) {
        self.gone_profiles.insert(name.to_string());
    }

    /// Deletes a tag's sets (with their elements).
    pub fn prune_tag_sets(&mut self, tag: &str) {
        self.gone_tags.insert(tag.to_string());
    }

    /// The element changes that turn `before` into `after`.
    pub fn diff_elements(&mut self, before: Elements, after: Elements) {
        for (key, goto) in &before {
            if after.get(key) != Some(goto) {
                self.deletes.insert(key.clone());
            }
        }
        for (key, goto) in after {
            if before.get(&key) != Some(&goto) {
                self.adds.insert(key, goto);
            }
        }
    }

    /// The plan: create tag sets, then profile chains, then list chains; elements; prune list chains,
    /// then profile chains, then tag sets.
    pub fn finish(self) -> Plan {
        let mut create = String::new();
        for tag in &self.new_tags {
            for v in [4, 6] {
                let _ = writeln!(
                    create,
                    "add set inet {TABLE} {} {{ {} }}",
                    tag_set(tag, v),
                    tag_set_body(tag, v)
                );
            }
        }
        for (name, profile) in &self.profiles {
            for (d, rules) in [
                (Direction::Inbound, &profile.inbound),
                (Direction::Outbound, &profile.outbound),
            ] {
                rewrite_chain(
                    &mut create,
                    &profile_chain(name, d.short()),
                    &profile_chain_rules(name, d, rules),
                );
            }
        }
        for (chain, rules) in &self.lists {
            rewrite_chain(&mut create, chain, rules);
        }
        let mut prune = String::new();
        for chain in &self.gone_lists {
            let _ = writeln!(prune, "delete chain inet {TABLE} {chain}");
        }
        for name in &self.gone_profiles {
            for d in DIRECTIONS {
                let _ = writeln!(
                    prune,
                    "delete chain inet {TABLE} {}",
                    profile_chain(name, d.short())
                );
            }
        }
        for tag in &self.gone_tags {
            for v in [4, 6] {
                let _ = writeln!(prune, "delete set inet {TABLE} {}", tag_set(tag, v));
            }
        }
        let mut elements: Vec<ElementOp> = self
            .deletes
            .into_iter()
            .map(|(set, key)| ElementOp::Delete { set, key })
            .collect();
        elements.extend(
            self.adds
                .into_iter()
                .map(|((set, key), goto)| ElementOp::Add { set, key, goto }),
        );
        Plan {
            create: (!create.is_empty()).then_some(create),
            elements,
            prune: (!prune.is_empty()).then_some(prune),
        }
    }
}

/// The plan from `old` (what the kernel holds) to `new`, by comparing them whole.
pub fn plan(old: &DesiredState, new: &DesiredState) -> Plan {
    let mut b = PlanBuilder::default();
    let (old_tags, new_tags) = (used_tags(old), used_tags(new));
    for tag in new_tags.difference(&old_tags) {
        b.create_tag_sets(tag);
    }
    for tag in old_tags.difference(&new_tags) {
        b.prune_tag_sets(tag);
    }
    for (name, profile) in &new.profiles {
        if old.profiles.get(name) != Some(profile) {
            b.rewrite_profile(name, profile);
        }
    }
    for name in old
        .profiles
        .keys()
        .filter(|n| !new.profiles.contains_key(*n))
    {
        b.prune_profile(name);
    }
    let (old_lists, new_lists) = (profile_lists(old), profile_lists(new));
    for list in &new_lists {
        for d in DIRECTIONS {
            let rules = list_chain_rules(list, d, new);
            if !old_lists.contains(list) || list_chain_rules(list, d, old) != rules {
                b.rewrite_list_direction(list, d, new);
            }
        }
    }
    for list in old_lists.difference(&new_lists) {
        b.prune_list(list);
    }
    let ids: BTreeSet<&String> = old.endpoints.keys().chain(new.endpoints.keys()).collect();
    for id in ids {
        let (before, after) = (old.endpoints.get(id), new.endpoints.get(id));
        if before != after {
            b.diff_elements(endpoint_elements(before), endpoint_elements(after));
        }
    }
    for tag in &new_tags {
        let before = if old_tags.contains(tag) {
            tag_elements(tag, old.tags.get(tag))
        } else {
            Elements::new()
        };
        b.diff_elements(before, tag_elements(tag, new.tags.get(tag)));
    }
    b.finish()
}

/// Adds (if missing), flushes and refills `chain`, all inside the script's one transaction.
fn rewrite_chain(script: &mut String, chain: &str, rules: &[String]) {
    let _ = writeln!(script, "add chain inet {TABLE} {chain}");
    let _ = writeln!(script, "flush chain inet {TABLE} {chain}");
    for rule in rules {
        let _ = writeln!(script, "add rule inet {TABLE} {chain} {rule}");
    }
}

/// The elements one endpoint puts in the kernel: its sources and its two map entries.
pub fn endpoint_elements(ep: Option<&Endpoint>) -> Elements {
    let mut all = Elements::new();
    let Some(ep) = ep else { return all };
    for ip in &ep.ipv4 {
        all.insert(
            ("ep-src-v4".to_string(), key_src_v4(&ep.iface, *ip, ep.mac)),
            None,
        );
    }
    for ip in &ep.ipv6 {
        all.insert(
            ("ep-src-v6".to_string(), key_src_v6(&ep.iface, *ip, ep.mac)),
            None,
        );
    }
    for d in DIRECTIONS {
        all.insert(
            (format!("ep-{}", d.short()), key_ifname(&ep.iface)),
            Some(profile_list_chain(&ep.profiles, d.short())),
        );
    }
    all
}

/// The elements of a tag's two sets.
pub fn tag_elements(tag: &str, members: Option<&TagMembers>) -> Elements {
    let mut all = Elements::new();
    if let Some(m) = members {
        for ip in &m.ipv4 {
            all.insert((tag_set(tag, 4), ip.octets().to_vec()), None);
        }
        for ip in &m.ipv6 {
            all.insert((tag_set(tag, 6), ip.octets().to_vec()), None);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, Endpoint, Mac, Profile, Rule, TagMembers};

    fn state(endpoints: &[(&str, &str, &str)]) -> DesiredState {
        let mut s = DesiredState::default();
        let allow = |tag: Option<&str>| Rule {
            action: Some(Action::Allow),
            src_tag: tag.map(String::from),
            ..Rule::default()
        };
        s.profiles.insert(
            "web".into(),
            Profile {
                inbound: vec![allow(Some("web"))],
                outbound: vec![allow(None)],
            },
        );
        let mut web = TagMembers::default();
        for (i, (id, ip, profile)) in endpoints.iter().enumerate() {
            s.endpoints.insert(
                id.to_string(),
                Endpoint {
                    iface: format!("cali{id}"),
                    mac: Mac([2, 0, 0, 0, 0, i as u8]),
                    ipv4: vec![ip.parse().unwrap()],
                    ipv6: vec![],
                    profiles: vec![profile.to_string()],
                },
            );
            if *profile == "web" {
                web.ipv4.insert(ip.parse().unwrap());
            }
        }
        s.tags.insert("web".into(), web);
        s
    }

    #[test]
    fn nothing_changed_means_nothing_to_do() {
        let s = state(&[("a", "10.65.0.2", "web")]);
        assert!(plan(&s, &s).is_empty());
    }

    #[test]
    fn adding_an_endpoint_to_an_existing_profile_is_elements_only() {
        let old = state(&[("a", "10.65.0.2", "web")]);
        let new = state(&[("a", "10.65.0.2", "web"), ("b", "10.65.0.3", "web")]);
        let p = plan(&old, &new);
        assert!(p.create.is_none() && p.prune.is_none(), "{p:?}");
        let sets: Vec<&str> = p
            .elements
            .iter()
            .map(|op| match op {
                ElementOp::Add { set, .. } => set.as_str(),
                ElementOp::Delete { .. } => "DELETE",
            })
            .collect();
        // Its source, its two map entries, its address in the tag set: four elements, nothing else.
        assert_eq!(sets, ["ep-in", "ep-out", "ep-src-v4", "t4-web"]);
    }

    #[test]
    fn removing_the_last_endpoint_of_a_profile_list_prunes_its_chains() {
        let old = state(&[("a", "10.65.0.2", "web")]);
        let new = state(&[]);
        let p = plan(&old, &new);
        assert_eq!(
            p.elements
                .iter()
                .filter(|o| matches!(o, ElementOp::Delete { .. }))
                .count(),
            4
        );
        let prune = p.prune.expect("list chains go");
        assert!(
            prune.contains("delete chain inet calico pl-in-web"),
            "{prune}"
        );
        assert!(
            !prune.contains("p-in-web\n"),
            "the profile itself stays: {prune}"
        );
    }

    #[test]
    fn a_rule_change_rewrites_only_that_profiles_chains() {
        let old = state(&[("a", "10.65.0.2", "web")]);
        let mut new = old.clone();
        new.profiles.get_mut("web").unwrap().outbound[0].action = Some(Action::Deny);
        let p = plan(&old, &new);
        let create = p.create.expect("chains rewritten");
        assert!(create.contains("flush chain inet calico p-out-web"));
        assert!(create.contains("flush chain inet calico p-in-web"));
        assert!(!create.contains("pl-"), "{create}");
        assert!(p.elements.is_empty() && p.prune.is_none());
    }

    #[test]
    fn moving_an_endpoint_to_another_profile_replaces_its_map_entries() {
        let old = state(&[("a", "10.65.0.2", "web")]);
        let mut new = state(&[("a", "10.65.0.2", "db")]);
        new.profiles.insert("db".into(), Profile::default());
        let p = plan(&old, &new);
        let create = p.create.expect("new chains");
        assert!(create.contains("add chain inet calico pl-in-db"));
        let replaced: Vec<_> = p
            .elements
            .iter()
            .filter_map(|op| match op {
                ElementOp::Add {
                    set,
                    goto: Some(chain),
                    ..
                } => Some((set.as_str(), chain.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(replaced, [("ep-in", "pl-in-db"), ("ep-out", "pl-out-db")]);
        assert!(p.prune.expect("old list chains go").contains("pl-out-web"));
    }

    #[test]
    fn a_new_tag_gets_its_sets_before_the_chains_that_use_them() {
        let old = state(&[("a", "10.65.0.2", "web")]);
        let mut new = old.clone();
        new.profiles.get_mut("web").unwrap().inbound.push(Rule {
            action: Some(Action::Allow),
            src_tag: Some("db".into()),
            ..Rule::default()
        });
        let create = plan(&old, &new).create.unwrap();
        let set_at = create.find("add set inet calico t4-db").unwrap();
        let rule_at = create.find("@t4-db").unwrap();
        assert!(set_at < rule_at, "{create}");
    }
}
