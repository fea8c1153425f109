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

use crate::model::DesiredState;
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
    /// Phase 2: element changes (one netlink batch).
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

/// The plan from `old` (what the kernel holds) to `new`.
pub fn plan(old: &DesiredState, new: &DesiredState) -> Plan {
    let mut create = String::new();
    let mut prune = String::new();

    // Tag sets: create the new ones first; they may be referenced by the chains below.
    let (old_tags, new_tags) = (used_tags(old), used_tags(new));
    for tag in new_tags.difference(&old_tags) {
        for v in [4, 6] {
            let _ = writeln!(
                create,
                "add set inet {TABLE} {} {{ {} }}",
                tag_set(tag, v),
                tag_set_body(tag, v)
            );
        }
    }

    // Profile chains: (re)write those that are new or whose rules changed.
    for (name, profile) in &new.profiles {
        if old.profiles.get(name) == Some(profile) {
            continue;
        }
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

    // Profile-list chains: their rules depend on which of their profiles exist.
    let (old_lists, new_lists) = (profile_lists(old), profile_lists(new));
    for list in &new_lists {
        for d in DIRECTIONS {
            let rules = list_chain_rules(list, d, new);
            if !old_lists.contains(list) || list_chain_rules(list, d, old) != rules {
                rewrite_chain(&mut create, &profile_list_chain(list, d.short()), &rules);
            }
        }
    }

    let elements = element_changes(old, new);

    // Prune in dependency order: list chains (reference profile chains), profile chains (reference
    // tag sets), tag sets.
    for list in old_lists.difference(&new_lists) {
        for d in DIRECTIONS {
            let _ = writeln!(
                prune,
                "delete chain inet {TABLE} {}",
                profile_list_chain(list, d.short())
            );
        }
    }
    for name in old
        .profiles
        .keys()
        .filter(|n| !new.profiles.contains_key(*n))
    {
        for d in DIRECTIONS {
            let _ = writeln!(
                prune,
                "delete chain inet {TABLE} {}",
                profile_chain(name, d.short())
            );
        }
    }
    for tag in old_tags.difference(&new_tags) {
        for v in [4, 6] {
            let _ = writeln!(prune, "delete set inet {TABLE} {}", tag_set(tag, v));
        }
    }

    Plan {
        create: (!create.is_empty()).then_some(create),
        elements,
        prune: (!prune.is_empty()).then_some(prune),
    }
}

/// Adds (if missing), flushes and refills `chain`, all inside the script's one transaction.
fn rewrite_chain(script: &mut String, chain: &str, rules: &[String]) {
    let _ = writeln!(script, "add chain inet {TABLE} {chain}");
    let _ = writeln!(script, "flush chain inet {TABLE} {chain}");
    for rule in rules {
        let _ = writeln!(script, "add rule inet {TABLE} {chain} {rule}");
    }
}

/// Every element `state` puts in the kernel: (set, key) → the chain a map entry goes to.
fn elements(state: &DesiredState) -> BTreeMap<(String, Vec<u8>), Option<String>> {
    let mut all = BTreeMap::new();
    for ep in state.endpoints.values() {
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
    }
    let tags: BTreeSet<String> = used_tags(state);
    for tag in &tags {
        if let Some(members) = state.tags.get(tag) {
            for ip in &members.ipv4 {
                all.insert((tag_set(tag, 4), ip.octets().to_vec()), None);
            }
            for ip in &members.ipv6 {
                all.insert((tag_set(tag, 6), ip.octets().to_vec()), None);
            }
        }
    }
    all
}

fn element_changes(old: &DesiredState, new: &DesiredState) -> Vec<ElementOp> {
    let (before, after) = (elements(old), elements(new));
    let dropped_sets: BTreeSet<String> = used_tags(old)
        .difference(&used_tags(new))
        .flat_map(|t| [tag_set(t, 4), tag_set(t, 6)])
        .collect();
    let mut ops = Vec::new();
    for ((set, key), goto) in &before {
        // Elements of a set that is about to be deleted go with it.
        if after.get(&(set.clone(), key.clone())) != Some(goto) && !dropped_sets.contains(set) {
            ops.push(ElementOp::Delete {
                set: set.clone(),
                key: key.clone(),
            });
        }
    }
    for ((set, key), goto) in &after {
        if before.get(&(set.clone(), key.clone())) != Some(goto) {
            ops.push(ElementOp::Add {
                set: set.clone(),
                key: key.clone(),
                goto: goto.clone(),
            });
        }
    }
    ops
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
