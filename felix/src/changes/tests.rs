//! The incremental planner against the full diff, on random states and random changes.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;
use crate::model::{Action, Mac, Rule};
use crate::plan::plan;

const PROFILES: [&str; 3] = ["web", "db", "ops"];
const TAGS: [&str; 3] = ["web", "db", "all"];

fn profile(tags: Vec<usize>, deny: bool) -> Profile {
    Profile {
        inbound: tags
            .into_iter()
            .map(|t| Rule {
                action: Some(if deny { Action::Deny } else { Action::Allow }),
                src_tag: Some(TAGS[t].to_string()),
                ..Rule::default()
            })
            .collect(),
        outbound: vec![Rule {
            action: Some(Action::Allow),
            ..Rule::default()
        }],
    }
}

fn endpoint(n: u8, profiles: Vec<usize>) -> Endpoint {
    Endpoint {
        iface: format!("cali{n:011}"),
        mac: Mac([2, 0, 0, 0, 0, n]),
        ipv4: vec![Ipv4Addr::new(10, 65, 0, n)],
        ipv6: vec![],
        profiles: profiles
            .into_iter()
            .map(|p| PROFILES[p].to_string())
            .collect(),
    }
}

fn arb_profile() -> impl Strategy<Value = Profile> {
    (prop::collection::vec(0..TAGS.len(), 0..3), any::<bool>()).prop_map(|(t, d)| profile(t, d))
}

fn arb_change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (
            0u8..8,
            prop::option::of(prop::collection::vec(0..PROFILES.len(), 0..3))
        )
            .prop_map(|(n, p)| Change::Endpoint(format!("ep{n}"), p.map(|p| endpoint(n, p)))),
        (0..PROFILES.len(), prop::option::of(arb_profile()))
            .prop_map(|(i, p)| Change::Profile(PROFILES[i].to_string(), p)),
        (0..TAGS.len(), 0u8..8, any::<bool>()).prop_map(|(t, n, present)| Change::TagMember(
            TAGS[t].to_string(),
            IpAddr::V4(Ipv4Addr::new(10, 65, 0, n)),
            present
        )),
        (
            0..TAGS.len(),
            prop::option::of(prop::collection::btree_set(0u8..8, 0..4))
        )
            .prop_map(|(t, m)| Change::Tag(
                TAGS[t].to_string(),
                m.map(|m| TagMembers {
                    ipv4: m.into_iter().map(|n| Ipv4Addr::new(10, 65, 0, n)).collect(),
                    ipv6: Default::default(),
                })
            )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn incremental_plans_equal_the_full_diff(
        setup in prop::collection::vec(arb_change(), 0..12),
        changes in prop::collection::vec(arb_change(), 1..6),
    ) {
        let mut current = DesiredState::default();
        fold(&mut current, &setup);
        let mut after = current.clone();
        fold(&mut after, &changes);
        prop_assert_eq!(plan_changes(&current, &changes), plan(&current, &after));
    }
}

#[test]
fn adding_one_endpoint_among_many_touches_only_its_elements() {
    let mut current = DesiredState::default();
    current
        .profiles
        .insert("web".into(), profile(vec![0], false));
    for n in 1..200u8 {
        current
            .endpoints
            .insert(format!("ep{n}"), endpoint(n, vec![0]));
    }
    let changes = [
        Change::Endpoint("ep200".into(), Some(endpoint(200, vec![0]))),
        Change::TagMember(
            "web".into(),
            IpAddr::V4(Ipv4Addr::new(10, 65, 0, 200)),
            true,
        ),
    ];
    let p = plan_changes(&current, &changes);
    assert!(p.create.is_none() && p.prune.is_none(), "{p:?}");
    // Its source, its interface in the list's set, its address in the tag: plain additions only.
    assert_eq!(p.elements.len(), 3);
    assert!(p
        .elements
        .iter()
        .all(|op| matches!(op, crate::nft::elements::ElementOp::Add { .. })));
}

#[test]
fn a_new_profile_list_and_the_last_endpoint_of_one_change_the_dispatch() {
    let mut current = DesiredState::default();
    current
        .profiles
        .insert("web".into(), profile(vec![0], false));
    current.profiles.insert("db".into(), profile(vec![], false));
    for n in 1..50u8 {
        current
            .endpoints
            .insert(format!("ep{n}"), endpoint(n, vec![0]));
    }
    current
        .endpoints
        .insert("ep50".into(), endpoint(50, vec![1, 0]));
    // ep51 brings a new list (db); ep50, the only one with [db, web], leaves.
    let changes = [
        Change::Endpoint("ep51".into(), Some(endpoint(51, vec![1]))),
        Change::Endpoint("ep50".into(), None),
    ];
    let p = plan_changes(&current, &changes);
    let mut after = current.clone();
    fold(&mut after, &changes);
    assert_eq!(p, plan(&current, &after));
    let create = p.create.as_deref().expect("db's list");
    assert!(
        create.contains("add set inet calico pl-ifaces-db "),
        "{create}"
    );
    assert!(create.contains("to-endpoint oifname @pl-ifaces-db goto pl-in-db"));
    let prune = p.prune.as_deref().expect("[db, web] goes");
    let gone = crate::nft::names::profile_list_set(&["db".into(), "web".into()]);
    assert!(
        prune.contains(&format!("delete set inet calico {gone}\n")),
        "{prune}"
    );
    assert!(!prune.contains(&format!("@{gone}")), "{prune}");
}
