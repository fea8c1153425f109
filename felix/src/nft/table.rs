//! The whole `inet calico` table as one `nft -f` script, replaced atomically.
//!
//! Input: the host's [`DesiredState`]. Output: a script that creates (or replaces, in the same
//! transaction) Felix's table: base chains, dispatch chains, one chain per profile and direction, one per
//! distinct profile list, tag sets, and the per-endpoint set and map elements. Packets never see a half
//! state: `nft -f` applies the script as one transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::names::{profile_chain, profile_list_chain, tag_set};
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
    s.push_str("\tmap ep-out {\n\t\ttype ifname : verdict\n\t\tcomment \"endpoint interface to its outbound policy\"\n\t}\n");
    s.push_str("\tmap ep-in {\n\t\ttype ifname : verdict\n\t\tcomment \"endpoint interface to its inbound policy\"\n\t}\n");
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
\t\tct state invalid drop
\t\tct state established,related meta mark set meta mark | {MARK_ALLOWED:#010x} accept
\t\tiifname \"{prefix}\" jump from-endpoint
\t\toifname \"{prefix}\" jump to-endpoint
\t\tmeta mark set meta mark | {MARK_ALLOWED:#010x} accept comment \"allowed by policy\"
\t}}
\tchain input {{
\t\ttype filter hook input priority filter - 1; policy accept;
\t\tiifname != \"{prefix}\" return comment \"not from an endpoint\"
\t\tct state invalid drop
\t\tct state established,related accept
\t\ticmpv6 type {{ nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert }} accept comment \"IPv6 neighbour discovery\"
\t\tudp sport 68 udp dport 67 accept comment \"DHCP\"
\t\tjump from-endpoint
\t\t{host_action} comment \"DefaultEndpointToHostAction\"
\t}}
\tchain from-endpoint {{
\t\tiifname . ip saddr . ether saddr @ep-src-v4 iifname vmap @ep-out
\t\tiifname . ip6 saddr . ether saddr @ep-src-v6 iifname vmap @ep-out
\t\tdrop comment \"anti-spoofing: source IP or MAC is not the endpoint's, or no policy\"
\t}}
\tchain to-endpoint {{
\t\toifname vmap @ep-in
\t\tdrop comment \"no policy for this endpoint\"
\t}}
\tchain nat-outgoing {{
\t\ttype nat hook postrouting priority srcnat - 1; policy accept;
\t\tip saddr @nat-pools-v4 ip daddr != @pools-v4 masquerade comment \"nat-outgoing: leaving the pools\"
\t\tip6 saddr @nat-pools-v6 ip6 daddr != @pools-v6 masquerade comment \"nat-outgoing: leaving the pools\"
\t}}
"
    );
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
    let mut rules = vec![format!("meta mark set meta mark & {:#010x}", !MARK_MATCHED)];
    for profile in list {
        // A profile that is not (yet) known contributes no rules: its traffic meets the default deny.
        if state.profiles.contains_key(profile) {
            rules.push(format!("jump {}", profile_chain(profile, d)));
            rules.push(format!(
                "meta mark & {MARK_MATCHED:#010x} != 0 return comment \"allowed by profile {profile}\""
            ));
        }
    }
    rules.push("drop comment \"no profile allowed it\"".to_string());
    rules
}

fn render_elements(s: &mut String, state: &DesiredState) {
    let mut src4 = Vec::new();
    let mut src6 = Vec::new();
    let mut outs = Vec::new();
    let mut ins = Vec::new();
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
        outs.push(format!(
            "\"{iface}\" : goto {}",
            profile_list_chain(&ep.profiles, "out")
        ));
        ins.push(format!(
            "\"{iface}\" : goto {}",
            profile_list_chain(&ep.profiles, "in")
        ));
    }
    add_elements(s, "ep-src-v4", &src4);
    add_elements(s, "ep-src-v6", &src6);
    add_elements(s, "ep-out", &outs);
    add_elements(s, "ep-in", &ins);
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
        // forward: 6 rules; input: 7; from-endpoint: 3; to-endpoint: 2; no profile chains.
        assert_eq!(counts.get("forward"), Some(&6));
        assert_eq!(counts.get("input"), Some(&7));
        assert_eq!(counts.get("from-endpoint"), Some(&3));
        assert_eq!(counts.get("to-endpoint"), Some(&2));
        assert_eq!(counts.get("nat-outgoing"), Some(&2));
        assert_eq!(counts.len(), 5);
    }
}
