//! One compiled rule → nftables rule text, for one direction of one profile.
//!
//! A rule that names nothing IP-version-specific renders once and matches IPv4 and IPv6; one that names a
//! tag but no version renders once per version (a tag has an IPv4 set and an IPv6 set); one whose net,
//! ICMP protocol or `ip_version` pins a version renders only for that version. An allow sets the
//! "matched" mark bit and returns to the profile-list chain; a deny drops.

use std::fmt::Write as _;

use ipnet::IpNet;

use super::names::tag_set;
use super::MARK_MATCHED;
use crate::model::{Action, Port, Protocol, Rule};

/// Which way the traffic flows relative to the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// To the endpoint.
    Inbound,
    /// From the endpoint.
    Outbound,
}

impl Direction {
    /// The short form used in object names.
    pub fn short(self) -> &'static str {
        match self {
            Direction::Inbound => "in",
            Direction::Outbound => "out",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// The IP versions a rule applies to: `None` means both, matched by one version-neutral rule.
fn versions(rule: &Rule) -> Option<Vec<u8>> {
    let net_version = |net: &Option<IpNet>| match net {
        Some(IpNet::V4(_)) => Some(4),
        Some(IpNet::V6(_)) => Some(6),
        None => None,
    };
    let proto_version = match rule.protocol {
        Some(Protocol::Icmp) => Some(4),
        Some(Protocol::Icmpv6) => Some(6),
        _ => None,
    };
    let pinned: Vec<u8> = [
        rule.ip_version,
        net_version(&rule.src_net),
        net_version(&rule.dst_net),
        proto_version,
    ]
    .into_iter()
    .flatten()
    .collect();
    match pinned.first() {
        // Contradictory pins (e.g. an IPv4 net with ip_version 6) match nothing.
        Some(&v) if pinned.iter().all(|p| *p == v) => Some(vec![v]),
        Some(_) => Some(vec![]),
        None if rule.src_tag.is_some() || rule.dst_tag.is_some() => Some(vec![4, 6]),
        None => None,
    }
}

fn ports(list: &[Port]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|p| match p {
            Port::One(n) => n.to_string(),
            Port::Range(a, b) => format!("{a}-{b}"),
        })
        .collect();
    if items.len() == 1 {
        items[0].clone()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

/// The rule as nftables statements (one line per IP version it renders to), with a comment naming its
/// profile, direction and 1-based position.
pub fn render(rule: &Rule, profile: &str, direction: Direction, position: usize) -> Vec<String> {
    let comment = format!("{profile} {} rule {position}", direction.word());
    match versions(rule) {
        None => vec![render_one(rule, None, &comment)],
        Some(vs) => vs
            .into_iter()
            .map(|v| render_one(rule, Some(v), &comment))
            .collect(),
    }
}

fn render_one(rule: &Rule, version: Option<u8>, comment: &str) -> String {
    let mut line = String::new();
    let ip = match version {
        Some(6) => "ip6",
        _ => "ip",
    };
    let has_addr_match = rule.src_net.is_some()
        || rule.dst_net.is_some()
        || rule.src_tag.is_some()
        || rule.dst_tag.is_some();
    if let (Some(v), false) = (version, has_addr_match) {
        let _ = write!(line, "meta nfproto ipv{v} ");
    }
    let proto_word = match rule.protocol {
        Some(Protocol::Tcp) => Some("tcp".to_string()),
        Some(Protocol::Udp) => Some("udp".to_string()),
        Some(Protocol::Icmp) => Some("icmp".to_string()),
        Some(Protocol::Icmpv6) => Some("ipv6-icmp".to_string()),
        Some(Protocol::Number(n)) => Some(n.to_string()),
        None => None,
    };
    if let Some(p) = &proto_word {
        let _ = write!(line, "meta l4proto {p} ");
    }
    for (net, tag, ports_list, side) in [
        (&rule.src_net, &rule.src_tag, &rule.src_ports, "saddr"),
        (&rule.dst_net, &rule.dst_tag, &rule.dst_ports, "daddr"),
    ] {
        if let Some(net) = net {
            let _ = write!(line, "{ip} {side} {net} ");
        }
        if let Some(tag) = tag {
            let set = tag_set(tag, version.unwrap_or(4));
            let _ = write!(line, "{ip} {side} @{set} ");
        }
        if !ports_list.is_empty() {
            let header = match rule.protocol {
                Some(Protocol::Tcp) => "tcp",
                Some(Protocol::Udp) => "udp",
                _ => {
                    line.push_str("meta l4proto { tcp, udp } ");
                    "th"
                }
            };
            let port_side = if side == "saddr" { "sport" } else { "dport" };
            let _ = write!(line, "{header} {port_side} {} ", ports(ports_list));
        }
    }
    if let Some(t) = rule.icmp_type {
        let icmp = if version == Some(6) { "icmpv6" } else { "icmp" };
        let _ = write!(line, "{icmp} type {t} ");
        if let Some(c) = rule.icmp_code {
            let _ = write!(line, "{icmp} code {c} ");
        }
    }
    match rule.action.unwrap_or(Action::Allow) {
        Action::Allow => {
            let _ = write!(
                line,
                "meta mark set meta mark | {MARK_MATCHED:#010x} return"
            );
        }
        Action::Deny => line.push_str("drop"),
    }
    let _ = write!(line, " comment \"{comment}\"");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> Rule {
        Rule {
            action: Some(Action::Allow),
            ..Rule::default()
        }
    }

    #[test]
    fn allow_all_is_one_version_neutral_rule() {
        assert_eq!(
            render(&allow(), "web", Direction::Outbound, 1),
            ["meta mark set meta mark | 0x01000000 return comment \"web outbound rule 1\""]
        );
    }

    #[test]
    fn a_tag_renders_once_per_version() {
        let rule = Rule {
            src_tag: Some("db".into()),
            protocol: Some(Protocol::Tcp),
            dst_ports: vec![Port::One(5432), Port::Range(2048, 4000)],
            ..allow()
        };
        assert_eq!(
            render(&rule, "db", Direction::Inbound, 2),
            [
                "meta l4proto tcp ip saddr @t4-db tcp dport { 5432, 2048-4000 } meta mark set meta mark | 0x01000000 return comment \"db inbound rule 2\"",
                "meta l4proto tcp ip6 saddr @t6-db tcp dport { 5432, 2048-4000 } meta mark set meta mark | 0x01000000 return comment \"db inbound rule 2\"",
            ]
        );
    }

    #[test]
    fn nets_and_icmp_pin_the_version() {
        let rule = Rule {
            action: Some(Action::Deny),
            protocol: Some(Protocol::Icmpv6),
            src_net: Some("fd00:65::/64".parse().unwrap()),
            icmp_type: Some(128),
            icmp_code: Some(0),
            ..Rule::default()
        };
        assert_eq!(
            render(&rule, "p", Direction::Inbound, 1),
            ["meta l4proto ipv6-icmp ip6 saddr fd00:65::/64 icmpv6 type 128 icmpv6 code 0 drop comment \"p inbound rule 1\""]
        );
        let v4_only = Rule {
            ip_version: Some(4),
            protocol: Some(Protocol::Udp),
            ..allow()
        };
        assert_eq!(
            render(&v4_only, "p", Direction::Outbound, 3)[0],
            "meta nfproto ipv4 meta l4proto udp meta mark set meta mark | 0x01000000 return comment \"p outbound rule 3\""
        );
    }

    #[test]
    fn contradictory_versions_render_nothing() {
        let rule = Rule {
            ip_version: Some(6),
            dst_net: Some("10.0.0.0/8".parse().unwrap()),
            ..allow()
        };
        assert!(render(&rule, "p", Direction::Outbound, 1).is_empty());
    }

    #[test]
    fn ports_without_a_protocol_match_tcp_and_udp() {
        let rule = Rule {
            dst_ports: vec![Port::One(53)],
            ..allow()
        };
        assert!(render(&rule, "p", Direction::Outbound, 1)[0]
            .starts_with("meta l4proto { tcp, udp } th dport 53 "));
    }
}
