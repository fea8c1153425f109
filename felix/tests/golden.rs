//! Golden tests: desired states in, the rendered nftables script out, compared with the checked-in files
//! in `tests/golden/`. Run with `UPDATE_GOLDEN=1` to rewrite them after an intended change, and review
//! the diff like code.

use std::path::PathBuf;

use calico_felix::model::{
    Action, DesiredState, Endpoint, EndpointToHost, Mac, Pool, Port, Profile, Protocol, Rule,
    TagMembers,
};
use calico_felix::nft::table::render_table;

fn check(name: &str, state: &DesiredState) {
    let text = render_table(state);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.nft"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert!(
        text == expected,
        "{name}: the rendered table differs from {}; run with UPDATE_GOLDEN=1 and review the diff\n{text}",
        path.display()
    );
}

fn allow() -> Rule {
    Rule {
        action: Some(Action::Allow),
        ..Rule::default()
    }
}

fn endpoint(iface: &str, mac: u8, v4: &[&str], v6: &[&str], profiles: &[&str]) -> Endpoint {
    Endpoint {
        iface: iface.into(),
        mac: Mac([0xee, 0xee, 0, 0, 0, mac]),
        ipv4: v4.iter().map(|s| s.parse().unwrap()).collect(),
        ipv6: v6.iter().map(|s| s.parse().unwrap()).collect(),
        profiles: profiles.iter().map(|s| s.to_string()).collect(),
    }
}

/// The Getting Started's profiles with a richer rule set: tags, port ranges, ICMP, IPv6, deny rules.
fn two_profiles() -> DesiredState {
    let mut s = DesiredState::default();
    s.profiles.insert(
        "web".into(),
        Profile {
            inbound: vec![
                Rule {
                    action: Some(Action::Deny),
                    src_net: Some("10.65.9.0/24".parse().unwrap()),
                    ..Rule::default()
                },
                Rule {
                    protocol: Some(Protocol::Tcp),
                    dst_ports: vec![Port::One(80), Port::One(443), Port::Range(2048, 4000)],
                    ..allow()
                },
                Rule {
                    protocol: Some(Protocol::Icmp),
                    icmp_type: Some(8),
                    ..allow()
                },
                Rule {
                    protocol: Some(Protocol::Icmpv6),
                    icmp_type: Some(128),
                    icmp_code: Some(0),
                    ..allow()
                },
                Rule {
                    src_tag: Some("web".into()),
                    ..allow()
                },
            ],
            outbound: vec![allow()],
        },
    );
    s.profiles.insert(
        "db".into(),
        Profile {
            inbound: vec![Rule {
                protocol: Some(Protocol::Tcp),
                src_tag: Some("web".into()),
                dst_ports: vec![Port::One(5432)],
                ..allow()
            }],
            outbound: vec![
                Rule {
                    action: Some(Action::Deny),
                    protocol: Some(Protocol::Udp),
                    dst_net: Some("fd00:65::/64".parse().unwrap()),
                    src_ports: vec![Port::Range(1024, 65535)],
                    ..Rule::default()
                },
                Rule {
                    ip_version: Some(4),
                    ..allow()
                },
            ],
        },
    );
    s.endpoints.insert(
        "ep-a".into(),
        endpoint(
            "cali00000000a01",
            1,
            &["10.65.0.2"],
            &["fd00:65::2"],
            &["web"],
        ),
    );
    s.endpoints.insert(
        "ep-b".into(),
        endpoint("cali00000000b02", 2, &["10.65.0.3"], &[], &["db"]),
    );
    s.endpoints.insert(
        "ep-c".into(),
        endpoint(
            "cali00000000c03",
            3,
            &["10.65.0.4", "10.65.0.5"],
            &["fd00:65::4"],
            &["web"],
        ),
    );
    s.tags.insert(
        "web".into(),
        TagMembers {
            ipv4: ["10.65.0.2", "10.65.0.4", "10.65.0.5", "10.65.1.9"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect(),
            ipv6: ["fd00:65::2", "fd00:65::4"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect(),
        },
    );
    s
}

#[test]
fn two_profiles_with_tags_ports_icmp_ipv6_and_deny_rules() {
    check("two_profiles", &two_profiles());
}

#[test]
fn an_endpoint_with_several_profiles_tries_them_in_order() {
    let mut s = two_profiles();
    s.endpoints.insert(
        "ep-d".into(),
        endpoint(
            "cali00000000d04",
            4,
            &["10.65.0.6"],
            &[],
            &["db", "web", "missing"],
        ),
    );
    s.config.endpoint_to_host = EndpointToHost::Accept;
    s.config.pools = vec![
        Pool {
            cidr: "10.65.0.0/16".parse().unwrap(),
            nat_outgoing: true,
        },
        Pool {
            cidr: "fd00:65::/64".parse().unwrap(),
            nat_outgoing: false,
        },
    ];
    check("several_profiles", &s);
}

#[test]
fn removing_an_endpoint_removes_its_elements_and_unused_chains() {
    let mut s = two_profiles();
    s.endpoints.remove("ep-b");
    let text = render_table(&s);
    assert!(!text.contains("cali00000000b02") && !text.contains("10.65.0.3 "));
    // db's profile chains stay (the profile exists); its list chain goes with its last endpoint.
    assert!(text.contains("chain p-in-db") && !text.contains("chain pl-in-db"));
    check("endpoint_removed", &s);
}

#[test]
fn an_empty_host_still_guards_endpoint_interfaces() {
    check("empty", &DesiredState::default());
}
