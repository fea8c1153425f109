//! Incremental planning: the plan for a list of changes to the state the kernel holds, computed from the
//! touched entries only, so adding one endpoint to a host with 10,000 costs about the same as adding one
//! to an empty host.
//!
//! Pure. [`plan_changes`] must give the same plan as the full diff ([`crate::plan::plan`]) between the
//! state and the state with the changes folded in ([`fold`]); a property test holds it to that.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::model::{DesiredState, Endpoint, Profile, TagMembers};
use crate::nft::rule::Direction;
use crate::nft::table::{list_chain_rules, profile_lists, used_tags};
use crate::plan::{endpoint_elements, tag_elements, Elements, Plan, PlanBuilder};

/// One change to a host's desired state, as the sync stream delivers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An endpoint added or updated (`Some`), or removed (`None`).
    Endpoint(String, Option<Endpoint>),
    /// A profile added or updated, or removed.
    Profile(String, Option<Profile>),
    /// A tag's members replaced, or the tag removed.
    Tag(String, Option<TagMembers>),
    /// One address joins (`true`) or leaves a tag.
    TagMember(String, IpAddr, bool),
}

/// `state` with `changes` applied, in order.
pub fn fold(state: &mut DesiredState, changes: &[Change]) {
    for change in changes {
        match change {
            Change::Endpoint(id, Some(ep)) => {
                state.endpoints.insert(id.clone(), ep.clone());
            }
            Change::Endpoint(id, None) => {
                state.endpoints.remove(id);
            }
            Change::Profile(name, Some(p)) => {
                state.profiles.insert(name.clone(), p.clone());
            }
            Change::Profile(name, None) => {
                state.profiles.remove(name);
            }
            Change::Tag(tag, Some(m)) => {
                state.tags.insert(tag.clone(), m.clone());
            }
            Change::Tag(tag, None) => {
                state.tags.remove(tag);
            }
            Change::TagMember(tag, ip, present) => {
                let m = state.tags.entry(tag.clone()).or_default();
                match (ip, present) {
                    (IpAddr::V4(v4), true) => m.ipv4.insert(*v4),
                    (IpAddr::V4(v4), false) => m.ipv4.remove(v4),
                    (IpAddr::V6(v6), true) => m.ipv6.insert(*v6),
                    (IpAddr::V6(v6), false) => m.ipv6.remove(v6),
                };
            }
        }
    }
}

/// The touched entries, before and after the changes.
struct Touched<'a> {
    current: &'a DesiredState,
    endpoints: BTreeMap<String, Option<Endpoint>>,
    profiles: BTreeMap<String, Option<Profile>>,
    tags: BTreeMap<String, TagMembers>,
}

impl<'a> Touched<'a> {
    fn new(current: &'a DesiredState, changes: &[Change]) -> Touched<'a> {
        let mut t = Touched {
            current,
            endpoints: BTreeMap::new(),
            profiles: BTreeMap::new(),
            tags: BTreeMap::new(),
        };
        for change in changes {
            match change {
                Change::Endpoint(id, ep) => {
                    t.endpoints.insert(id.clone(), ep.clone());
                }
                Change::Profile(name, p) => {
                    t.profiles.insert(name.clone(), p.clone());
                }
                Change::Tag(tag, m) => {
                    t.tags.insert(tag.clone(), m.clone().unwrap_or_default());
                }
                Change::TagMember(tag, ..) => {
                    // Only the touched tags are copied (one tag's members, not the whole state).
                    let m = t
                        .tags
                        .entry(tag.clone())
                        .or_insert_with(|| current.tags.get(tag).cloned().unwrap_or_default());
                    fold_member(m, change);
                }
            }
        }
        t
    }

    fn profile_after(&self, name: &str) -> Option<&Profile> {
        match self.profiles.get(name) {
            Some(p) => p.as_ref(),
            None => self.current.profiles.get(name),
        }
    }

    /// The state after the changes, restricted to what list chains and tag usage depend on: every
    /// profile (few) but no endpoint (many).
    fn profiles_state_after(&self) -> DesiredState {
        let mut s = DesiredState::default();
        for name in self.current.profiles.keys().chain(self.profiles.keys()) {
            if let Some(p) = self.profile_after(name) {
                s.profiles.insert(name.clone(), p.clone());
            }
        }
        s
    }
}

fn fold_member(m: &mut TagMembers, change: &Change) {
    if let Change::TagMember(_, ip, present) = change {
        match (ip, present) {
            (IpAddr::V4(v4), true) => m.ipv4.insert(*v4),
            (IpAddr::V4(v4), false) => m.ipv4.remove(v4),
            (IpAddr::V6(v6), true) => m.ipv6.insert(*v6),
            (IpAddr::V6(v6), false) => m.ipv6.remove(v6),
        };
    }
}

/// The plan for `changes` to `current` (what the kernel holds).
pub fn plan_changes(current: &DesiredState, changes: &[Change]) -> Plan {
    let t = Touched::new(current, changes);
    // What list chains and tag usage depend on: the profiles after the changes. When no profile is
    // touched (an endpoint or tag change, the common case at scale) that is `current` itself, and
    // neither profiles nor list chains are copied or rendered twice.
    let owned;
    let after_profiles: &DesiredState = if t.profiles.is_empty() {
        current
    } else {
        owned = t.profiles_state_after();
        &owned
    };
    let mut b = PlanBuilder::default();

    // Tags: usage depends on profiles only.
    let old_tags = used_tags(current);
    let new_tags = if t.profiles.is_empty() {
        old_tags.clone()
    } else {
        used_tags(after_profiles)
    };
    for tag in new_tags.difference(&old_tags) {
        b.create_tag_sets(tag);
    }

    // Profiles whose rules changed.
    for (name, after) in &t.profiles {
        if let Some(p) = after {
            if current.profiles.get(name) != Some(p) {
                b.rewrite_profile(name, p);
            }
        }
    }

    // Profile lists: those of touched endpoints, plus every list naming a profile that appeared or
    // disappeared (its chain's rules change).
    let appeared_or_gone: BTreeSet<&str> = t
        .profiles
        .iter()
        .filter(|(name, after)| current.profiles.contains_key(*name) != after.is_some())
        .map(|(name, _)| name.as_str())
        .collect();
    let mut lists: BTreeSet<Vec<String>> = BTreeSet::new();
    for (id, after) in &t.endpoints {
        lists.extend(current.endpoints.get(id).map(|e| e.profiles.clone()));
        lists.extend(after.as_ref().map(|e| e.profiles.clone()));
    }
    if !appeared_or_gone.is_empty() {
        for ep in current.endpoints.values() {
            if ep
                .profiles
                .iter()
                .any(|p| appeared_or_gone.contains(p.as_str()))
                && !lists.contains(&ep.profiles)
            {
                lists.insert(ep.profiles.clone());
            }
        }
    }
    let (mut created, mut gone) = (BTreeSet::new(), BTreeSet::new());
    for list in &lists {
        let leaving = t
            .endpoints
            .keys()
            .filter(|id| {
                current
                    .endpoints
                    .get(*id)
                    .is_some_and(|e| &e.profiles == list)
            })
            .count();
        let joining = t
            .endpoints
            .values()
            .filter(|after| after.as_ref().is_some_and(|e| &e.profiles == list))
            .count();
        // Whether the list has users before and after: counting stops once more users than leave are
        // found, so adding one endpoint to a list shared by thousands does not scan them all.
        let users_before = current
            .endpoints
            .values()
            .filter(|e| &e.profiles == list)
            .take(leaving + 1)
            .count();
        let used_after = joining > 0 || users_before > leaving;
        match (users_before > 0, used_after) {
            (false, true) => {
                created.insert(list.clone());
            }
            (true, false) => {
                gone.insert(list.clone());
            }
            (true, true) if !t.profiles.is_empty() => {
                for d in [Direction::Inbound, Direction::Outbound] {
                    if list_chain_rules(list, d, current)
                        != list_chain_rules(list, d, after_profiles)
                    {
                        b.rewrite_list_direction(list, d, after_profiles);
                    }
                }
            }
            // No profile changed: the list chain's rules are the same.
            (true, true) => {}
            (false, false) => {}
        }
    }
    // A list appeared or went (rare): the dispatch chains are rewritten with every list, which takes
    // one pass over the endpoints.
    if !created.is_empty() || !gone.is_empty() {
        let before = profile_lists(current);
        let mut after: BTreeSet<Vec<String>> = before.difference(&gone).cloned().collect();
        after.extend(created);
        b.change_lists(&before, &after, after_profiles);
    }

    // Elements: touched endpoints, touched tags, and whole sets of tags that became used.
    for (id, after) in &t.endpoints {
        b.diff_elements(
            endpoint_elements(current.endpoints.get(id)),
            endpoint_elements(after.as_ref()),
        );
    }
    for tag in new_tags.iter() {
        let was_used = old_tags.contains(tag);
        let after = match t.tags.get(tag) {
            Some(m) => tag_elements(tag, Some(m)),
            // Untouched and already in the kernel: nothing to do (and nothing to compute).
            None if was_used => continue,
            None => tag_elements(tag, current.tags.get(tag)),
        };
        let before = if was_used {
            tag_elements(tag, current.tags.get(tag))
        } else {
            Elements::new()
        };
        b.diff_elements(before, after);
    }

    // Prune: list chains, then profile chains, then tag sets.
    for (name, after) in &t.profiles {
        if after.is_none() && current.profiles.contains_key(name) {
            b.prune_profile(name);
        }
    }
    for tag in old_tags.difference(&new_tags) {
        b.prune_tag_sets(tag);
    }
    b.finish()
}

#[cfg(test)]
mod tests;
