//! Tests for the ACL compiler: snapshots, multiple profiles, tags, incremental deltas (including the
//! 10,000-endpoint rule change), and a property test that the incremental views always equal a
//! from-scratch compilation.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use proptest::prelude::*;

use super::*;
use crate::model::{Action, Endpoint, EndpointState, Profile, Rule, Rules};

fn ep(node: &str, id: &str, profiles: &[&str], ips: &[&str]) -> Endpoint {
    let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = ips
        .iter()
        .map(|s| s.parse::<IpNet>().unwrap())
        .partition(|n| matches!(n, IpNet::V4(_)));
    Endpoint {
        hostname: node.into(),
        orchestrator: "docker".into(),
        workload_id: format!("w{id}"),
        endpoint_id: id.into(),
        state: EndpointState::Active,
        name: "cali0123456789a".into(),
        mac: None,
        if_name: None,
        profile_ids: profiles.iter().map(|s| s.to_string()).collect(),
        ipv4_nets: v4
            .into_iter()
            .filter_map(|n| if let IpNet::V4(n) = n { Some(n) } else { None })
            .collect(),
        ipv6_nets: v6
            .into_iter()
            .filter_map(|n| if let IpNet::V6(n) = n { Some(n) } else { None })
            .collect(),
        ipv4_gateway: None,
        ipv6_gateway: None,
    }
}

fn nets(ips: &[&str]) -> BTreeSet<IpNet> {
    ips.iter().map(|s| s.parse().unwrap()).collect()
}

fn allow_from(tag: &str) -> Rule {
    let mut r = Rule::new(Action::Allow);
    r.src_tag = Some(tag.into());
    r
}

#[test]
fn set_ids_are_stable_and_short() {
    assert_eq!(set_id("WEB"), set_id("WEB"));
    assert_ne!(set_id("WEB"), set_id("DB"));
    assert_eq!(set_id(&"x".repeat(40)).len(), 17);
    assert_eq!(
        set_id(""),
        "tcbf29ce484222325",
        "FNV-1a 64 offset basis for the empty string"
    );
}

#[test]
fn snapshot_of_the_reference_topology() {
    // Profiles as `calicoctl profile add` makes them; A, C, E share one profile (the getting-started demo).
    let mut c = AclCompiler::new();
    for p in ["A_C_E", "B", "D"] {
        c.upsert_profile(&Profile::new_default(p));
    }
    c.upsert_endpoint(&ep("core-01", "a", &["A_C_E"], &["192.168.1.1/32"]));
    c.upsert_endpoint(&ep("core-01", "b", &["B"], &["192.168.1.2/32"]));
    c.upsert_endpoint(&ep("core-01", "c", &["A_C_E"], &["192.168.1.3/32"]));
    c.upsert_endpoint(&ep("core-02", "d", &["D"], &["192.168.1.4/32"]));
    c.upsert_endpoint(&ep(
        "core-02",
        "e",
        &["A_C_E"],
        &["192.168.1.5/32", "fd80::5/128"],
    ));
    let s1 = c.snapshot("core-01");
    assert_eq!(s1.profiles.keys().collect::<Vec<_>>(), ["A_C_E", "B"]);
    assert_eq!(s1.endpoints.len(), 3);
    assert_eq!(
        s1.sets,
        BTreeMap::from([
            (
                set_id("A_C_E"),
                nets(&[
                    "192.168.1.1/32",
                    "192.168.1.3/32",
                    "192.168.1.5/32",
                    "fd80::5/128"
                ])
            ),
            (set_id("B"), nets(&["192.168.1.2/32"])),
        ])
    );
    let rule = &s1.profiles["A_C_E"].inbound[0];
    assert_eq!(rule.src_set.as_deref(), Some(set_id("A_C_E").as_str()));
    let s2 = c.snapshot("core-02");
    assert_eq!(s2.profiles.keys().collect::<Vec<_>>(), ["A_C_E", "D"]);
    assert_eq!(s2.sets.len(), 2);
    let mut rebuilt = NodeView::default();
    rebuilt.apply_all(&c.snapshot_deltas("core-02"));
    assert_eq!(rebuilt, s2);
    assert_eq!(c.snapshot("nowhere"), NodeView::default());
}

#[test]
fn rule_change_on_a_busy_profile_is_one_delta_per_node() {
    let mut c = AclCompiler::new();
    c.upsert_profile(&Profile::new_default("WEB"));
    for i in 0..10_000u32 {
        let ip = format!("10.{}.{}.{}/32", i >> 16, (i >> 8) & 255, i & 255);
        c.upsert_endpoint(&ep(
            ["n1", "n2", "n3"][i as usize % 3],
            &format!("e{i}"),
            &["WEB"],
            &[&ip],
        ));
    }
    let mut p = Profile::new_default("WEB");
    let mut deny = Rule::new(Action::Deny);
    deny.src_net = Some("192.0.2.0/24".parse().unwrap());
    p.rules.inbound_rules.insert(0, deny);
    let d = c.upsert_profile(&p);
    assert_eq!(d.len(), 3);
    for (node, deltas) in &d {
        assert_eq!(deltas.len(), 1, "{node}: {deltas:?}");
        assert!(matches!(&deltas[0], AclDelta::ProfileUpdate(cp) if cp.inbound.len() == 2));
    }
    assert!(
        c.upsert_profile(&p).is_empty(),
        "an unchanged write emits nothing"
    );
}

#[test]
fn tag_membership_deltas_reach_only_nodes_that_need_the_set() {
    let mut c = AclCompiler::new();
    c.upsert_profile(&Profile::new_default("WEB"));
    c.upsert_profile(&Profile::new_default("DB"));
    c.upsert_endpoint(&ep("n1", "w1", &["WEB"], &["10.0.0.1/32"]));
    c.upsert_endpoint(&ep("n2", "d1", &["DB"], &["10.0.0.2/32"]));
    // A second WEB endpoint on n3: n1 gets its IP in the WEB set; n2 does not need the WEB set.
    let d = c.upsert_endpoint(&ep("n3", "w2", &["WEB"], &["10.0.0.3/32"]));
    assert_eq!(
        d["n1"],
        [AclDelta::SetAdd {
            set_id: set_id("WEB"),
            members: nets(&["10.0.0.3/32"])
        }]
    );
    assert!(!d.contains_key("n2"));
    let n3 = &d["n3"];
    assert!(
        matches!(&n3[0], AclDelta::SetReplace { tag, members, .. } if tag == "WEB" && members.len() == 2)
    );
    assert!(matches!(&n3[1], AclDelta::ProfileUpdate(p) if p.name == "WEB"));
    assert!(
        matches!(&n3[2], AclDelta::EndpointUpdate { profile_ids, .. } if profile_ids == &["WEB"])
    );
    // An IP change is a set delta only (no endpoint delta: its profiles did not change).
    let d = c.upsert_endpoint(&ep("n3", "w2", &["WEB"], &["10.0.0.9/32"]));
    assert_eq!(d.keys().collect::<Vec<_>>(), ["n1", "n3"]);
    assert_eq!(
        d["n1"],
        [
            AclDelta::SetAdd {
                set_id: set_id("WEB"),
                members: nets(&["10.0.0.9/32"])
            },
            AclDelta::SetRemove {
                set_id: set_id("WEB"),
                members: nets(&["10.0.0.3/32"])
            },
        ]
    );
}

#[test]
fn multiple_profiles_and_shared_tags() {
    let mut c = AclCompiler::new();
    let mut web = Profile::new_default("WEB");
    web.tags.push("FRONT".into());
    c.upsert_profile(&web);
    let mut lb = Profile::new_default("LB");
    lb.tags.push("FRONT".into());
    lb.rules = Rules {
        inbound_rules: vec![allow_from("FRONT")],
        outbound_rules: vec![],
    };
    c.upsert_profile(&lb);
    c.upsert_endpoint(&ep("n1", "x", &["LB", "WEB"], &["10.0.0.1/32"]));
    let s = c.snapshot("n1");
    assert_eq!(
        s.endpoints.values().next().unwrap(),
        &["LB", "WEB"],
        "order is kept"
    );
    assert_eq!(s.sets[&set_id("FRONT")], nets(&["10.0.0.1/32"]));
    // Dropping FRONT from WEB keeps the IP in FRONT (LB still carries it): no set delta.
    web.tags.pop();
    let d = c.upsert_profile(&web);
    assert!(d.is_empty(), "{d:?}");
    // Dropping it from LB too removes the IP.
    lb.tags.pop();
    let d = c.upsert_profile(&lb);
    assert_eq!(
        d["n1"],
        [AclDelta::SetRemove {
            set_id: set_id("FRONT"),
            members: nets(&["10.0.0.1/32"])
        }]
    );
}

#[test]
fn profile_removal_and_endpoint_profile_changes() {
    let mut c = AclCompiler::new();
    c.upsert_profile(&Profile::new_default("A"));
    c.upsert_profile(&Profile::new_default("B"));
    c.upsert_endpoint(&ep("n1", "x", &["A"], &["10.0.0.1/32"]));
    let d = c.upsert_endpoint(&ep("n1", "x", &["B"], &["10.0.0.1/32"]));
    let kinds: Vec<u8> = d["n1"].iter().map(AclDelta::phase).collect();
    assert_eq!(
        kinds,
        [0, 1, 2, 4, 6],
        "B's set, B, the endpoint, then drop A and A's set: {:?}",
        d["n1"]
    );
    let d = c.remove_profile("B");
    assert_eq!(
        d["n1"],
        [
            AclDelta::ProfileRemove { name: "B".into() },
            AclDelta::SetDelete {
                set_id: set_id("B")
            }
        ]
    );
    assert_eq!(
        c.snapshot("n1").endpoints.len(),
        1,
        "the endpoint still lists B; the dataplane denies"
    );
    let d = c.upsert_profile(&Profile::new_default("B"));
    assert_eq!(d["n1"].len(), 2, "set and profile come back: {:?}", d["n1"]);
    let key = EndpointKey::of(&ep("n1", "x", &[], &[]));
    let d = c.remove_endpoint(&key);
    assert_eq!(d["n1"].len(), 3, "endpoint, profile, set: {:?}", d["n1"]);
    assert!(c.remove_endpoint(&key).is_empty());
    assert_eq!(c.snapshot("n1"), NodeView::default());
}

#[derive(Debug, Clone)]
enum Ev {
    Profile(usize, Vec<usize>, Vec<(usize, bool)>),
    RemoveProfile(usize),
    Endpoint(usize, Vec<usize>, Vec<usize>),
    RemoveEndpoint(usize),
}

const NODES: [&str; 3] = ["n0", "n1", "n2"];
const TAGS: [&str; 4] = ["T0", "T1", "T2", "T3"];
const PROFILES: [&str; 4] = ["P0", "P1", "P2", "P3"];
const IPS: [&str; 6] = [
    "10.0.0.1/32",
    "10.0.0.2/32",
    "10.0.0.3/32",
    "fd00::1/128",
    "fd00::2/128",
    "10.0.0.4/32",
];

fn arb_ev() -> impl Strategy<Value = Ev> {
    let idx = |n: usize| prop::collection::vec(0..n, 0..4);
    prop_oneof![
        3 => (0..4usize, idx(4), prop::collection::vec((0..4usize, any::<bool>()), 0..4))
            .prop_map(|(p, t, r)| Ev::Profile(p, t, r)),
        1 => (0..4usize).prop_map(Ev::RemoveProfile),
        4 => (0..6usize, idx(4), idx(6)).prop_map(|(e, p, i)| Ev::Endpoint(e, p, i)),
        1 => (0..6usize).prop_map(Ev::RemoveEndpoint),
    ]
}

fn make_profile(p: usize, tags: &[usize], rules: &[(usize, bool)]) -> Profile {
    let tags: BTreeSet<&str> = tags.iter().map(|t| TAGS[*t]).collect();
    let rule = |(t, src): &(usize, bool)| {
        let mut r = Rule::new(Action::Allow);
        if *src {
            r.src_tag = Some(TAGS[*t].into())
        } else {
            r.dst_tag = Some(TAGS[*t].into())
        }
        r
    };
    Profile {
        name: PROFILES[p].into(),
        tags: tags.into_iter().map(str::to_owned).collect(),
        rules: Rules {
            inbound_rules: rules.iter().map(rule).collect(),
            outbound_rules: vec![],
        },
    }
}

fn make_ep(e: usize, profiles: &[usize], ips: &[usize]) -> Endpoint {
    let ps: Vec<&str> = profiles
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|p| PROFILES[*p])
        .collect();
    let is: Vec<&str> = ips
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|i| IPS[*i])
        .collect();
    ep(NODES[e % 3], &format!("e{e}"), &ps, &is)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn incremental_views_equal_a_fresh_compilation(events in prop::collection::vec(arb_ev(), 1..40)) {
        let mut c = AclCompiler::new();
        let mut views: BTreeMap<&str, NodeView> = NODES.iter().map(|n| (*n, NodeView::default())).collect();
        let mut profiles: BTreeMap<usize, Profile> = BTreeMap::new();
        let mut endpoints: BTreeMap<usize, Endpoint> = BTreeMap::new();
        for ev in &events {
            let deltas = match ev {
                Ev::Profile(p, t, r) => {
                    let pr = make_profile(*p, t, r);
                    profiles.insert(*p, pr.clone());
                    c.upsert_profile(&pr)
                }
                Ev::RemoveProfile(p) => {
                    profiles.remove(p);
                    c.remove_profile(PROFILES[*p])
                }
                Ev::Endpoint(e, p, i) => {
                    let en = make_ep(*e, p, i);
                    endpoints.insert(*e, en.clone());
                    c.upsert_endpoint(&en)
                }
                Ev::RemoveEndpoint(e) => {
                    endpoints.remove(e);
                    c.remove_endpoint(&EndpointKey::of(&make_ep(*e, &[], &[])))
                }
            };
            for (node, ds) in &deltas {
                prop_assert!(!ds.is_empty());
                views.get_mut(node.as_str()).expect("known node").apply_all(ds);
            }
            let mut fresh = AclCompiler::new();
            for p in profiles.values() { fresh.upsert_profile(p); }
            for e in endpoints.values() { fresh.upsert_endpoint(e); }
            for n in NODES {
                let snap = c.snapshot(n);
                prop_assert_eq!(&views[n], &snap, "incremental view of {} after {:?}", n, ev);
                prop_assert_eq!(&fresh.snapshot(n), &snap, "fresh compilation of {}", n);
                // Every set a profile refers to is present.
                for p in snap.profiles.values() {
                    for s in p.set_ids() { prop_assert!(snap.sets.contains_key(s)); }
                }
            }
        }
    }
}
