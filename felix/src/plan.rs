//! The planner: (the state the kernel was last brought to, the desired state) → the minimal changes.
//!
//! Pure. The changes come in three phases so that nothing is ever referenced before it exists or
//! deleted while still referenced: [`Plan::create`] (an `nft -f` script adding new sets and chains and
//! rewriting changed chains), [`Plan::elements`] (one netlink batch of set element changes), and
//! [`Plan::prune`] (an `nft -f` script deleting chains and sets nothing uses any more). Adding an endpoint
//! whose profile list and tags already exist is plain set elements only: its source addresses, its
//! interface in its profile list's interface set, and its addresses in the tag sets it joins. None is a
//! verdict, so the kernel's commit does not re-validate the table. A profile list that appears gets its
//! interface set, its two chains and a dispatch rule in each dispatch chain (those chains are rewritten
//! whole, with the new list's rule, before its first interface is added); one that loses its last
//! endpoint loses them after its last interface is removed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::model::{DesiredState, Endpoint, Profile, TagMembers};
use crate::nft::elements::{key_ifname, key_src_v4, key_src_v6, ElementOp};
use crate::nft::names::{profile_chain, profile_list_chain, profile_list_set, tag_set};
use crate::nft::rule::Direction;
use crate::nft::table::{
    dispatch_chain, dispatch_chain_rules, list_chain_rules, list_set_body, profile_chain_rules,
    profile_lists, tag_set_body, used_tags,
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

/// Elements: (set, key).
pub type Elements = BTreeSet<(String, Vec<u8>)>;

/// Distinct ordered profile lists.
pub type Lists = BTreeSet<Vec<String>>;

/// Collects what a plan must do, in any order, and renders it in the one safe order.
#[derive(Debug, Default)]
pub struct PlanBuilder {
    new_tags: BTreeSet<String>,
    profiles: BTreeMap<String, Profile>,
    new_lists: Lists,
    lists: BTreeMap<String, Vec<String>>,
    /// Every profile list before and after, when lists appear or go (the dispatch chains change).
    dispatch: Option<(Lists, Lists)>,
    deletes: Elements,
    adds: Elements,
    gone_lists: Lists,
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

    /// Creates the profile lists in `after` but not in `before` (interface set, both chains, as
    /// `state`'s profiles make them) and deletes those in `before` but not in `after`, and rewrites the
    /// dispatch chains to match. `before` is every list the kernel holds, `after` every list it must.
    pub fn change_lists(&mut self, before: &Lists, after: &Lists, state: &DesiredState) {
        if before == after {
            return;
        }
        for list in after.difference(before) {
            self.new_lists.insert(list.clone());
            for d in DIRECTIONS {
                self.rewrite_list_direction(list, d, state);
            }
        }
        self.gone_lists.extend(before.difference(after).cloned());
        self.dispatch = Some((before.clone(), after.clone()));
    }

    /// Rewrites one chain of an existing profile list.
    pub fn rewrite_list_direction(&mut self, list: &[String], d: Direction, state: &DesiredState) {
        self.lists.insert(
            profile_list_chain(list, d.short()),
            list_chain_rules(list, d, state),
        );
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
        for key in before.difference(&after) {
            self.deletes.insert(key.clone());
        }
        for key in after {
            if !before.contains(&key) {
                self.adds.insert(key);
            }
        }
    }

    /// The plan: create tag and interface sets, then profile chains, then list chains, then the
    /// dispatch rules for new lists; elements; prune the dispatch rules of lists that went, then their
    /// chains and interface sets, then profile chains, then tag sets.
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
        for list in &self.new_lists {
            let _ = writeln!(
                create,
                "add set inet {TABLE} {} {{ {} }}",
                profile_list_set(list),
                list_set_body(list)
            );
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
        let (before, after) = self.dispatch.unwrap_or_default();
        if !self.new_lists.is_empty() {
            // Lists that go keep their dispatch rules until their last interface has left.
            let all: BTreeSet<&Vec<String>> = before.union(&after).collect();
            rewrite_dispatch(&mut create, &all);
        }
        let mut prune = String::new();
        if !self.gone_lists.is_empty() {
            rewrite_dispatch(&mut prune, &after.iter().collect());
        }
        for list in &self.gone_lists {
            for d in DIRECTIONS {
                let _ = writeln!(
                    prune,
                    "delete chain inet {TABLE} {}",
                    profile_list_chain(list, d.short())
                );
            }
            let _ = writeln!(prune, "delete set inet {TABLE} {}", profile_list_set(list));
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
                .map(|(set, key)| ElementOp::Add { set, key }),
        );
        Plan {
            create: (!create.is_empty()).then_some(create),
            elements,
            prune: (!prune.is_empty()).then_some(prune),
        }
    }
}

/// Rewrites both dispatch chains for these profile lists.
fn rewrite_dispatch(script: &mut String, lists: &BTreeSet<&Vec<String>>) {
    for d in [Direction::Outbound, Direction::Inbound] {
        rewrite_chain(
            script,
            dispatch_chain(d),
            &dispatch_chain_rules(d, lists.iter().copied()),
        );
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
    b.change_lists(&old_lists, &new_lists, new);
    for list in new_lists.intersection(&old_lists) {
        for d in DIRECTIONS {
            if list_chain_rules(list, d, old) != list_chain_rules(list, d, new) {
                b.rewrite_list_direction(list, d, new);
            }
        }
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

/// The elements one endpoint puts in the kernel: its sources and its interface in its profile list's
/// interface set.
pub fn endpoint_elements(ep: Option<&Endpoint>) -> Elements {
    let mut all = Elements::new();
    let Some(ep) = ep else { return all };
    for ip in &ep.ipv4 {
        all.insert(("ep-src-v4".to_string(), key_src_v4(&ep.iface, *ip, ep.mac)));
    }
    for ip in &ep.ipv6 {
        all.insert(("ep-src-v6".to_string(), key_src_v6(&ep.iface, *ip, ep.mac)));
    }
    all.insert((profile_list_set(&ep.profiles), key_ifname(&ep.iface)));
    all
}

/// The elements of a tag's two sets.
pub fn tag_elements(tag: &str, members: Option<&TagMembers>) -> Elements {
    let mut all = Elements::new();
    if let Some(m) = members {
        for ip in &m.ipv4 {
            all.insert((tag_set(tag, 4), ip.octets().to_vec()));
        }
        for ip in &m.ipv6 {
            all.insert((tag_set(tag, 6), ip.octets().to_vec()));
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

    fn element_sets(p: &Plan) -> Vec<String> {
        p.elements
            .iter()
            .map(|op| match op {
                ElementOp::Add { set, .. } => format!("+{set}"),
                ElementOp::Delete { set, .. } => format!("-{set}"),
            })
            .collect()
    }

    #[test]
    fn adding_an_endpoint_to_an_existing_profile_list_is_set_element_additions_only() {
        let old = state(&[("a", "10.65.0.2", "web")]);
        let new = state(&[("a", "10.65.0.2", "web"), ("b", "10.65.0.3", "web")]);
        let p = plan(&old, &new);
        assert!(p.create.is_none() && p.prune.is_none(), "{p:?}");
        // Its source, its interface in its list's set, its address in the tag set: plain elements.
        assert_eq!(
            element_sets(&p),
            ["+ep-src-v4", "+pl-ifaces-web", "+t4-web"]
        );
        assert!(p.elements.contains(&ElementOp::Add {
            set: "pl-ifaces-web".into(),
            key: key_ifname("calib"),
        }));
        // And removing it again is the same elements' deletions.
        let back = plan(&new, &old);
        assert!(back.create.is_none() && back.prune.is_none(), "{back:?}");
        assert_eq!(
            element_sets(&back),
            ["-ep-src-v4", "-pl-ifaces-web", "-t4-web"]
        );
    }

    #[test]
    fn a_new_profile_list_gets_its_set_chains_and_dispatch_rules_first() {
        let old = state(&[("a", "10.65.0.2", "web")]);
        let mut new = state(&[("a", "10.65.0.2", "web"), ("b", "10.65.0.3", "db")]);
        new.profiles.insert("db".into(), Profile::default());
        let p = plan(&old, &new);
        let create = p.create.as_deref().expect("the new list's objects");
        let at = |needle: &str| {
            create
                .find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing from {create}"))
        };
        let set = at("add set inet calico pl-ifaces-db { type ifname;");
        let chain_in = at("add chain inet calico pl-in-db\n");
        let chain_out = at("add chain inet calico pl-out-db\n");
        // Both dispatch chains are rewritten with a rule for each list, the new one included.
        at("flush chain inet calico to-endpoint\n");
        at("flush chain inet calico from-endpoint-dispatch\n");
        let rule_in =
            at("add rule inet calico to-endpoint oifname @pl-ifaces-db goto pl-in-db comment");
        let rule_out = at(
            "add rule inet calico from-endpoint-dispatch iifname @pl-ifaces-db goto pl-out-db comment",
        );
        at("add rule inet calico to-endpoint oifname @pl-ifaces-web goto pl-in-web comment");
        assert!(
            set < rule_in && chain_in < rule_in && chain_out < rule_out,
            "{create}"
        );
        assert!(
            !create.contains("pl-in-web\n"),
            "web's chain is untouched: {create}"
        );
        assert_eq!(
            element_sets(&p),
            ["+ep-src-v4", "+pl-ifaces-db"],
            "db is no tag"
        );
        assert!(p.prune.is_none(), "{:?}", p.prune);
    }

    #[test]
    fn removing_the_last_endpoint_of_a_profile_list_prunes_its_set_chains_and_dispatch_rules() {
        let old = state(&[("a", "10.65.0.2", "web")]);
        let new = state(&[]);
        let p = plan(&old, &new);
        assert!(p.create.is_none(), "{:?}", p.create);
        assert_eq!(
            element_sets(&p),
            ["-ep-src-v4", "-pl-ifaces-web", "-t4-web"]
        );
        let prune = p.prune.expect("the list's objects go");
        let at = |needle: &str| {
            prune
                .find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing from {prune}"))
        };
        // The dispatch chains lose the list's rules before its chains and set are deleted.
        let flush = at("flush chain inet calico to-endpoint\n");
        at("flush chain inet calico from-endpoint-dispatch\n");
        assert!(!prune.contains("@pl-ifaces-web"), "{prune}");
        assert!(at("delete chain inet calico pl-in-web\n") > flush);
        assert!(at("delete chain inet calico pl-out-web\n") > flush);
        assert!(at("delete set inet calico pl-ifaces-web\n") > flush);
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
    fn moving_an_endpoint_to_another_profile_moves_its_interface_between_sets() {
        let old = state(&[("a", "10.65.0.2", "web")]);
        let mut new = state(&[("a", "10.65.0.2", "db")]);
        new.profiles.insert("db".into(), Profile::default());
        let p = plan(&old, &new);
        let create = p.create.as_deref().expect("new chains");
        assert!(create.contains("add chain inet calico pl-in-db"));
        assert!(
            create.contains("@pl-ifaces-web"),
            "web keeps its rules until it is empty"
        );
        assert_eq!(
            element_sets(&p),
            ["-pl-ifaces-web", "-t4-web", "+pl-ifaces-db"]
        );
        let prune = p.prune.expect("old list chains go");
        assert!(prune.contains("pl-out-web") && !prune.contains("@pl-ifaces-web"));
        assert!(
            prune.contains("oifname @pl-ifaces-db goto pl-in-db"),
            "{prune}"
        );
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
