//! The whole `inet calico` table as one `nft -f` script, replaced atomically.
//!
//! Input: the host's [`DesiredState`]. Output: a script that creates (or replaces, in the same
//! transaction) Felix's table: base chains, dispatch chains, one chain per profile and direction, one per
//! distinct profile list and direction, one interface set per distinct profile list, tag sets, and the
//! per-endpoint set elements. Packets never see a half state: `nft -f` applies the script as one
//! transaction.
//!
//! Dispatch: `to-endpoint` and `from-endpoint` (after anti-spoofing) hold one rule per distinct profile
//! list, `oifname @pl-ifaces-<id> goto pl-in-<id>` (`iifname …` and `pl-out-<id>` outbound), then a
//! default drop. An endpoint's only dispatch state is its interface name in its list's set: a plain set
//! element, so adding or removing an endpoint does not make the kernel re-validate the table's jumps, which
//! it does for every element of a verdict map (`ifname : goto chain`) on each commit that adds one: at
//! 10,000 endpoints that walk of 2 × 10,000 map elements was most of an endpoint add's cost.
//!
//! The price is per packet: the dispatch tries the lists' set lookups one after the other, so the first
//! packet of a flow (established flows are accepted before the dispatch) costs one hash lookup per
//! distinct profile list ahead of its own, where a verdict map costs one. Hosts have few distinct lists
//! (one per combination of profiles that its endpoints use: the 10,000-endpoint benchmark has 100); with
//! thousands of distinct lists on one host, a verdict map would be the better dispatch for packets, at
//! the cost of a full validation on every endpoint change.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::names::{comment, profile_chain, profile_list_chain, profile_list_set, tag_set};
use super::rule::{render, Direction};
use super::{MARK_ALLOWED, MARK_MATCHED, TABLE};
use crate::model::{DesiredState, EndpointToHost, Rule};

/// The script that makes the kernel's `inet calico` table match `state`.
pub fn render_table(state: &DesiredState) -> String {
    let mut s = render_structure(state);
    render_elements(&mut s, state);
    s
}

/// The table's declarations, sets and chains, without the elements (what a rule count needs).
pub fn render_structure(state: &DesiredState) -> String {
    let mut s = String::new();
    // Create-then-delete makes the delete succeed whether or not the table exists; the new table
    // follows in the same transaction.
    let _ = writeln!(
        s,
        "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{"
    );
    render_sets(&mut s, state);
    render_base_chains(&mut s, state);
    for (name, profile) in &state.profiles {
        for (direction, rules) in [
            (Direction::Inbound, &profile.inbound),
            (Direction::Outbound, &profile.outbound),
        ] {
            render_profile_chain(&mut s, name, direction, rules);
        }
    }
    for list in profile_lists(state) {
        for direction in [Direction::Inbound, Direction::Outbound] {
            render_list_chain(&mut s, &list, direction, state);
        }
    }
    s.push_str("}\n");
    s
}

fn render_sets(s: &mut String, state: &DesiredState) {
    s.push_str(
        "\tset ep-src-v4 {\n\t\ttype ifname . ipv4_addr . ether_addr\n\t\tcomment \"endpoint interface, its IPv4 address and MAC: the only sources allowed from it\"\n\t}\n",
    );
    s.push_str(
        "\tset ep-src-v6 {\n\t\ttype ifname . ipv6_addr . ether_addr\n\t\tcomment \"endpoint interface, its IPv6 address and MAC\"\n\t}\n",
    );
    for list in profile_lists(state) {
        let _ = writeln!(
            s,
            "\tset {} {{\n\t\t{}\n\t}}",
            profile_list_set(&list),
            list_set_body(&list)
        );
    }
    for (version, ty) in [(4, "ipv4_addr"), (6, "ipv6_addr")] {
        let pools = |nat_only: bool| -> Vec<String> {
            state
                .config
                .pools
                .iter()
                .filter(|p| {
                    (p.cidr.addr().is_ipv4() == (version == 4)) && (p.nat_outgoing || !nat_only)
                })
                .map(|p| p.cidr.trunc().to_string())
                .collect()
        };
        for (name, comment, members) in [
            (format!("pools-v{version}"), "every IP pool", pools(false)),
            (
                format!("nat-pools-v{version}"),
                "IP pools with nat-outgoing",
                pools(true),
            ),
        ] {
            let elements = if members.is_empty() {
                String::new()
            } else {
                format!("\n\t\telements = {{ {} }}", members.join(", "))
            };
            let _ = writeln!(
                s,
                "\tset {name} {{\n\t\ttype {ty}; flags interval; comment \"{comment}\";{elements}\n\t}}"
            );
        }
    }
    for tag in used_tags(state) {
        for version in [4, 6] {
            let _ = writeln!(
                s,
                "\tset {} {{\n\t\t{}\n\t}}",
                tag_set(&tag, version),
                tag_set_body(&tag, version)
            );
        }
    }
}

/// The body of a tag's set declaration for one IP version.
pub fn tag_set_body(tag: &str, version: u8) -> String {
    let ty = if version == 6 {
        "ipv6_addr"
    } else {
        "ipv4_addr"
    };
    format!("type {ty}; comment \"tag {tag}\";")
}

/// The body of a profile list's interface set declaration.
pub fn list_set_body(list: &[String]) -> String {
    format!(
        "type ifname; comment \"{}\";",
        comment(&format!(
            "interfaces of the endpoints with profiles: {}",
            list.join(", ")
        ))
    )
}

/// The rules of a dispatch chain ([`dispatch_chain`]) for these profile lists: one rule per list that
/// sends traffic from (`Outbound`) or to (`Inbound`) the list's interfaces to the list's chain, then a
/// drop.
pub fn dispatch_chain_rules<'a>(
    direction: Direction,
    lists: impl IntoIterator<Item = &'a Vec<String>>,
) -> Vec<String> {
    let (meta, what) = match direction {
        Direction::Outbound => ("iifname", "from"),
        Direction::Inbound => ("oifname", "to"),
    };
    let mut rules: Vec<String> = lists
        .into_iter()
        .map(|list| {
            format!(
                "{meta} @{} goto {} comment \"{}\"",
                profile_list_set(list),
                profile_list_chain(list, direction.short()),
                comment(&format!(
                    "{what} an endpoint with profiles: {}",
                    list.join(", ")
                ))
            )
        })
        .collect();
    rules.push(format!(
        "drop comment \"{what} an interface that is no endpoint's\""
    ));
    rules
}

/// The chain that dispatches traffic from (`Outbound`, after anti-spoofing) or to (`Inbound`) an
/// endpoint to its profile list's chain.
pub fn dispatch_chain(direction: Direction) -> &'static str {
    match direction {
        Direction::Outbound => "from-endpoint-dispatch",
        Direction::Inbound => "to-endpoint",
    }
}

fn render_base_chains(s: &mut String, state: &DesiredState) {
    let prefix = format!("{}*", state.config.iface_prefix);
    let host_action = match state.config.endpoint_to_host {
        EndpointToHost::Drop => "drop",
        EndpointToHost::Accept => "accept",
        EndpointToHost::Return => "return",
    };
    let _ = write!(
        s,
        "\tchain forward {{
\t\ttype filter hook forward priority filter - 1; policy accept;
\t\tiifname != \"{prefix}\" oifname != \"{prefix}\" return comment \"not endpoint traffic\"
\t\tct state invalid drop comment \"not part of a valid connection\"
\t\tct state established,related meta mark set meta mark | {MARK_ALLOWED:#010x} accept comment \"a connection policy allowed\"
\t\tiifname \"{prefix}\" jump from-endpoint comment \"outbound policy of the sending endpoint\"
\t\toifname \"{prefix}\" jump to-endpoint comment \"inbound policy of the receiving endpoint\"
\t\tmeta mark set meta mark | {MARK_ALLOWED:#010x} accept comment \"allowed by policy\"
\t}}
\tchain input {{
\t\ttype filter hook input priority filter - 1; policy accept;
\t\tiifname != \"{prefix}\" return comment \"not from an endpoint\"
\t\tct state invalid drop comment \"not part of a valid connection\"
\t\tct state established,related accept comment \"a connection policy allowed\"
\t\ticmpv6 type {{ nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert }} accept comment \"IPv6 neighbour discovery\"
\t\tudp sport 68 udp dport 67 accept comment \"DHCP\"
\t\tjump from-endpoint comment \"outbound policy of the sending endpoint\"
\t\t{host_action} comment \"DefaultEndpointToHostAction\"
\t}}
\tchain from-endpoint {{
\t\tiifname . ip saddr . ether saddr @ep-src-v4 goto from-endpoint-dispatch comment \"anti-spoofing: the endpoint's own IPv4 address and MAC\"
\t\tiifname . ip6 saddr . ether saddr @ep-src-v6 goto from-endpoint-dispatch comment \"anti-spoofing: the endpoint's own IPv6 address and MAC\"
\t\tdrop comment \"anti-spoofing: source IP or MAC is not the endpoint's\"
\t}}
\tchain nat-outgoing {{
\t\ttype nat hook postrouting priority srcnat - 1; policy accept;
\t\tip saddr @nat-pools-v4 ip daddr != @pools-v4 masquerade comment \"nat-outgoing: leaving the pools\"
\t\tip6 saddr @nat-pools-v6 ip6 daddr != @pools-v6 masquerade comment \"nat-outgoing: leaving the pools\"
\t}}
"
    );
    let lists = profile_lists(state);
    for direction in [Direction::Outbound, Direction::Inbound] {
        let _ = writeln!(s, "\tchain {} {{", dispatch_chain(direction));
        for rule in dispatch_chain_rules(direction, &lists) {
            let _ = writeln!(s, "\t\t{rule}");
        }
        s.push_str("\t}\n");
    }
}

fn render_profile_chain(s: &mut String, profile: &str, direction: Direction, rules: &[Rule]) {
    let _ = writeln!(
        s,
        "\tchain {} {{",
        profile_chain(profile, direction.short())
    );
    for line in profile_chain_rules(profile, direction, rules) {
        let _ = writeln!(s, "\t\t{line}");
    }
    s.push_str("\t}\n");
}

/// The rules of a profile's chain for one direction.
pub fn profile_chain_rules(profile: &str, direction: Direction, rules: &[Rule]) -> Vec<String> {
    rules
        .iter()
        .enumerate()
        .flat_map(|(i, rule)| render(rule, profile, direction, i + 1))
        .collect()
}

fn render_list_chain(s: &mut String, list: &[String], direction: Direction, state: &DesiredState) {
    let _ = writeln!(
        s,
        "\tchain {} {{",
        profile_list_chain(list, direction.short())
    );
    for line in list_chain_rules(list, direction, state) {
        let _ = writeln!(s, "\t\t{line}");
    }
    s.push_str("\t}\n");
}

/// The rules of the chain that tries `list`'s profiles in order for one direction.
pub fn list_chain_rules(
    list: &[String],
    direction: Direction,
    state: &DesiredState,
) -> Vec<String> {
    let d = direction.short();
    let mut rules = vec![format!(
        "meta mark set meta mark & {:#010x} comment \"no profile allowed it yet\"",
        !MARK_MATCHED
    )];
    for profile in list {
        // A profile that is not (yet) known contributes no rules: its traffic meets the default deny.
        if state.profiles.contains_key(profile) {
            rules.push(format!(
                "jump {} comment \"{}\"",
                profile_chain(profile, d),
                comment(&format!("try profile {profile}"))
            ));
            rules.push(format!(
                "meta mark & {MARK_MATCHED:#010x} != 0 return comment \"{}\"",
                comment(&format!("allowed by profile {profile}"))
            ));
        }
    }
    rules.push("drop comment \"no profile allowed it\"".to_string());
    rules
}

fn render_elements(s: &mut String, state: &DesiredState) {
    let mut src4 = Vec::new();
    let mut src6 = Vec::new();
    let mut ifaces: BTreeMap<&[String], Vec<String>> = BTreeMap::new();
    for ep in state.endpoints.values() {
        let iface = &ep.iface;
        src4.extend(
            ep.ipv4
                .iter()
                .map(|ip| format!("\"{iface}\" . {ip} . {}", ep.mac)),
        );
        src6.extend(
            ep.ipv6
                .iter()
                .map(|ip| format!("\"{iface}\" . {ip} . {}", ep.mac)),
        );
        ifaces
            .entry(&ep.profiles)
            .or_default()
            .push(format!("\"{iface}\""));
    }
    add_elements(s, "ep-src-v4", &src4);
    add_elements(s, "ep-src-v6", &src6);
    for (list, members) in &ifaces {
        add_elements(s, &profile_list_set(list), members);
    }
    for tag in used_tags(state) {
        let members = state.tags.get(&tag);
        let v4: Vec<String> = members
            .map(|m| m.ipv4.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let v6: Vec<String> = members
            .map(|m| m.ipv6.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        add_elements(s, &tag_set(&tag, 4), &v4);
        add_elements(s, &tag_set(&tag, 6), &v6);
    }
}

/// The number of rules in each chain of a rendered table script (what a rule dump must find).
pub fn rule_counts(script: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let mut chain: Option<String> = None;
    for line in script.lines() {
        if let Some(name) = line
            .strip_prefix("\tchain ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            chain = Some(name.to_string());
            counts.insert(name.to_string(), 0);
        } else if line == "\t}" {
            chain = None;
        } else if let (Some(c), Some(rule)) = (&chain, line.strip_prefix("\t\t")) {
            if !rule.starts_with("type ") {
                *counts.entry(c.clone()).or_insert(0) += 1;
            }
        }
    }
    counts
}

fn add_elements(s: &mut String, set: &str, elements: &[String]) {
    if !elements.is_empty() {
        let _ = writeln!(
            s,
            "add element inet {TABLE} {set} {{ {} }}",
            elements.join(", ")
        );
    }
}

/// Every distinct ordered profile list that an endpoint uses.
pub fn profile_lists(state: &DesiredState) -> BTreeSet<Vec<String>> {
    state
        .endpoints
        .values()
        .map(|ep| ep.profiles.clone())
        .collect()
}

/// Every tag a rule of a known profile refers to.
pub fn used_tags(state: &DesiredState) -> BTreeSet<String> {
    state
        .profiles
        .values()
        .flat_map(|p| p.inbound.iter().chain(&p.outbound))
        .flat_map(|r| r.src_tag.iter().chain(&r.dst_tag))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_counts_read_chains_not_sets() {
        let counts = rule_counts(&render_table(&DesiredState::default()));
        // forward: 6 rules; input: 7; from-endpoint: 3; the dispatch chains: their drop only.
        assert_eq!(counts.get("forward"), Some(&6));
        assert_eq!(counts.get("input"), Some(&7));
        assert_eq!(counts.get("from-endpoint"), Some(&3));
        assert_eq!(counts.get("from-endpoint-dispatch"), Some(&1));
        assert_eq!(counts.get("to-endpoint"), Some(&1));
        assert_eq!(counts.get("nat-outgoing"), Some(&2));
        assert_eq!(counts.len(), 6);
    }

    #[test]
    fn each_profile_list_has_a_set_a_dispatch_rule_per_direction_and_two_chains() {
        let mut state = DesiredState::default();
        for (id, iface, profiles) in [
            ("a", "cali1", vec!["web"]),
            ("b", "cali2", vec!["web"]),
            ("c", "cali3", vec!["db", "web"]),
        ] {
            state.endpoints.insert(
                id.into(),
                crate::model::Endpoint {
                    iface: iface.into(),
                    mac: crate::model::Mac([2, 0, 0, 0, 0, 1]),
                    ipv4: vec![],
                    ipv6: vec![],
                    profiles: profiles.into_iter().map(String::from).collect(),
                },
            );
        }
        let script = render_table(&state);
        let counts = rule_counts(&script);
        assert_eq!(counts.get("from-endpoint-dispatch"), Some(&3));
        assert_eq!(counts.get("to-endpoint"), Some(&3));
        assert!(counts.contains_key("pl-in-web") && counts.contains_key("pl-out-web"));
        assert_eq!(counts.len(), 6 + 4);
        let multi = profile_list_set(&["db".into(), "web".into()]);
        assert!(script.contains("\tset pl-ifaces-web {\n"), "{script}");
        assert!(script.contains(&format!("\tset {multi} {{\n")), "{script}");
        assert!(script.contains("oifname @pl-ifaces-web goto pl-in-web comment"));
        assert!(script.contains("iifname @pl-ifaces-web goto pl-out-web comment"));
        assert!(script.contains("add element inet calico pl-ifaces-web { \"cali1\", \"cali2\" }"));
        assert!(!script.contains("vmap"), "no verdict map: {script}");
    }
}
