//! From the master's view of a node to Felix's desired state, and from one desired state to the next as
//! Felix's changes.
//!
//! Pure. Inputs: a [`NodeState`] (what the sync stream folded) and the node's Felix settings. Outputs: a
//! [`DesiredState`], and the list of [`Change`]s that turns one desired state into another (only what
//! differs, so a profile rule change is one profile change however many endpoints use it).

use std::collections::BTreeMap;

use calico_felix::changes::Change;
use calico_felix::model::{
    self as felix, Config, DesiredState, Mac, Pool, Port, Profile, TagMembers,
};
use calico_master::acl::CompiledRule;
use calico_master::model::{self as m, EndpointState, PortRange};
use calico_master::sync::NodeState;
use ipnet::IpNet;

/// Felix's desired state for `state`, with `config` as the node's Felix settings (pools are taken from
/// the state).
pub fn desired(state: &NodeState, mut config: Config) -> DesiredState {
    config.pools = state
        .pools
        .iter()
        .filter(|p| !p.disabled)
        .map(|p| Pool {
            cidr: p.cidr,
            nat_outgoing: p.nat_outgoing,
        })
        .collect();
    // The cluster config (`calicoctl config set DefaultEndpointToHostAction ACCEPT [--host H]`); the
    // master validated the value, and anything else keeps the node's own setting.
    match state
        .config
        .get("DefaultEndpointToHostAction")
        .map(|v| v.to_ascii_uppercase())
        .as_deref()
    {
        Some("DROP") => config.endpoint_to_host = felix::EndpointToHost::Drop,
        Some("ACCEPT") => config.endpoint_to_host = felix::EndpointToHost::Accept,
        Some("RETURN") => config.endpoint_to_host = felix::EndpointToHost::Return,
        _ => {}
    }
    // Felix checks the kernel and refuses these on one without IPIP (the node reports why).
    config.ipip_pools = state
        .pools
        .iter()
        .filter(|p| !p.disabled && p.ipip)
        .map(|p| p.cidr)
        .collect();
    let endpoints = state
        .endpoints
        .values()
        .filter(|e| e.state == EndpointState::Active)
        .filter_map(|e| {
            Some((
                e.endpoint_id.clone(),
                felix::Endpoint {
                    iface: e.name.clone(),
                    mac: Mac(e.mac?.0),
                    ipv4: e.ipv4_nets.iter().map(|n| n.addr()).collect(),
                    ipv6: e.ipv6_nets.iter().map(|n| n.addr()).collect(),
                    profiles: e.profile_ids.clone(),
                },
            ))
        })
        .collect();
    let profiles = state
        .acl
        .profiles
        .iter()
        .map(|(name, p)| {
            (
                name.clone(),
                Profile {
                    inbound: p.inbound.iter().map(rule).collect(),
                    outbound: p.outbound.iter().map(rule).collect(),
                },
            )
        })
        .collect();
    let tags = state
        .acl
        .sets
        .iter()
        .map(|(id, members)| {
            let mut t = TagMembers::default();
            for net in members {
                match net {
                    IpNet::V4(n) => {
                        t.ipv4.insert(n.addr());
                    }
                    IpNet::V6(n) => {
                        t.ipv6.insert(n.addr());
                    }
                }
            }
            (id.clone(), t)
        })
        .collect();
    DesiredState {
        endpoints,
        profiles,
        tags,
        config,
    }
}

/// One compiled rule as Felix takes it: tags are replaced by their set ids, which are also the keys of
/// [`DesiredState::tags`].
fn rule(c: &CompiledRule) -> felix::Rule {
    let r = &c.rule;
    let ports = |p: &Option<Vec<PortRange>>| {
        p.iter()
            .flatten()
            .map(|r| {
                if r.lo == r.hi {
                    Port::One(r.lo)
                } else {
                    Port::Range(r.lo, r.hi)
                }
            })
            .collect()
    };
    felix::Rule {
        action: Some(match r.action {
            m::Action::Allow => felix::Action::Allow,
            m::Action::Deny => felix::Action::Deny,
        }),
        protocol: r.protocol.map(|p| match p {
            m::Protocol::Tcp => felix::Protocol::Tcp,
            m::Protocol::Udp => felix::Protocol::Udp,
            m::Protocol::Icmp => felix::Protocol::Icmp,
            m::Protocol::Icmpv6 => felix::Protocol::Icmpv6,
            m::Protocol::Number(n) => felix::Protocol::Number(n),
        }),
        src_net: r.src_net,
        src_tag: c.src_set.clone(),
        src_ports: ports(&r.src_ports),
        dst_net: r.dst_net,
        dst_tag: c.dst_set.clone(),
        dst_ports: ports(&r.dst_ports),
        icmp_type: r.icmp_type,
        icmp_code: r.icmp_code,
        ip_version: r.ip_version.map(|v| match v {
            m::IpVersion::V4 => 4,
            m::IpVersion::V6 => 6,
        }),
    }
}

/// The changes that turn `old` into `new` (config aside: see [`DesiredState::config`]).
pub fn changes(old: &DesiredState, new: &DesiredState) -> Vec<Change> {
    let mut out = Vec::new();
    diff(&old.tags, &new.tags, &mut out, Change::Tag);
    diff(&old.profiles, &new.profiles, &mut out, Change::Profile);
    diff(&old.endpoints, &new.endpoints, &mut out, Change::Endpoint);
    out
}

fn diff<V: Clone + PartialEq>(
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    out: &mut Vec<Change>,
    make: impl Fn(String, Option<V>) -> Change,
) {
    for (k, v) in new {
        if old.get(k) != Some(v) {
            out.push(make(k.clone(), Some(v.clone())));
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            out.push(make(k.clone(), None));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_felix::changes::fold;
    use calico_master::acl::CompiledProfile;
    use calico_master::model::{Endpoint, IpPool, MacAddr, Rule};
    use std::collections::BTreeSet;

    fn endpoint(id: &str, ip: &str, profiles: &[&str]) -> Endpoint {
        Endpoint {
            hostname: "h1".into(),
            orchestrator: "docker".into(),
            workload_id: format!("w{id}"),
            endpoint_id: id.into(),
            state: EndpointState::Active,
            name: format!("cali{id}"),
            mac: Some(MacAddr([0xee, 0xee, 0, 0, 0, 1])),
            if_name: Some("eth0".into()),
            profile_ids: profiles.iter().map(|s| s.to_string()).collect(),
            ipv4_nets: vec![format!("{ip}/32").parse().unwrap()],
            ipv6_nets: vec![],
            ipv4_gateway: None,
            ipv6_gateway: None,
        }
    }

    fn state() -> NodeState {
        let mut s = NodeState {
            node: "h1".into(),
            ..Default::default()
        };
        s.endpoints
            .insert("e1".into(), endpoint("e1", "10.65.0.2", &["web"]));
        let mut down = endpoint("e2", "10.65.0.3", &["web"]);
        down.state = EndpointState::Inactive;
        s.endpoints.insert("e2".into(), down);
        let rule: Rule = serde_json::from_value(serde_json::json!(
            {"action": "allow", "protocol": "tcp", "src_tag": "web", "dst_ports": [80, "8000:8080"]}
        ))
        .unwrap();
        s.acl.profiles.insert(
            "web".into(),
            CompiledProfile {
                name: "web".into(),
                inbound: vec![CompiledRule {
                    rule,
                    src_set: Some("tweb".into()),
                    dst_set: None,
                }],
                outbound: vec![],
            },
        );
        s.acl.sets.insert(
            "tweb".into(),
            BTreeSet::from([
                "10.65.0.2/32".parse().unwrap(),
                "fd00::2/128".parse().unwrap(),
            ]),
        );
        s.pools.push(IpPool {
            cidr: "10.65.0.0/16".parse().unwrap(),
            ipip: false,
            nat_outgoing: true,
            disabled: false,
        });
        s
    }

    #[test]
    fn converts_endpoints_profiles_sets_and_pools() {
        let d = desired(&state(), Config::default());
        assert_eq!(
            d.endpoints.len(),
            1,
            "inactive endpoints are not programmed"
        );
        let e = &d.endpoints["e1"];
        assert_eq!(e.iface, "calie1");
        assert_eq!(
            e.ipv4,
            vec!["10.65.0.2".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        let r = &d.profiles["web"].inbound[0];
        assert_eq!(r.src_tag.as_deref(), Some("tweb"));
        assert_eq!(r.dst_ports, vec![Port::One(80), Port::Range(8000, 8080)]);
        assert_eq!(r.protocol, Some(felix::Protocol::Tcp));
        assert_eq!(d.tags["tweb"].ipv4.len(), 1);
        assert_eq!(d.tags["tweb"].ipv6.len(), 1);
        assert!(d.config.pools[0].nat_outgoing);
        assert!(d.config.ipip_pools.is_empty());
        assert_eq!(d.config.endpoint_to_host, felix::EndpointToHost::Drop);
        let mut s = state();
        s.config
            .insert("DefaultEndpointToHostAction".into(), "ACCEPT".into());
        assert_eq!(
            desired(&s, Config::default()).config.endpoint_to_host,
            felix::EndpointToHost::Accept,
            "the cluster config reaches Felix"
        );
        s.pools[0].ipip = true;
        assert_eq!(
            desired(&s, Config::default()).config.ipip_pools,
            vec!["10.65.0.0/16".parse::<IpNet>().unwrap()],
            "Felix is told which pools ask for IPIP (it refuses them here)"
        );
    }

    #[test]
    fn changes_fold_to_the_new_state_and_touch_only_what_differs() {
        let old = desired(&state(), Config::default());
        let mut s = state();
        s.acl.profiles.get_mut("web").unwrap().outbound.clear();
        s.acl
            .profiles
            .get_mut("web")
            .unwrap()
            .inbound
            .first_mut()
            .unwrap()
            .rule
            .dst_ports = None;
        s.endpoints
            .insert("e3".into(), endpoint("e3", "10.65.0.4", &["web"]));
        s.acl.sets.remove("tweb");
        let new = desired(&s, Config::default());
        let c = changes(&old, &new);
        assert_eq!(c.len(), 3, "{c:?}");
        let mut folded = old.clone();
        fold(&mut folded, &c);
        assert_eq!(folded, new);
        assert!(changes(&new, &new).is_empty());
    }
}
