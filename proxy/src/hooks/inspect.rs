//! `GET /containers/{id}/json`, pure: make `docker inspect` of a Calico container show what the user
//! expects rather than what the proxy did underneath.
//!
//! Input: Docker's inspect answer, this node's name and gateways. Output: the same answer with the real
//! entrypoint and command back in `Config.Entrypoint`, `Config.Cmd`, `Path` and `Args` (not the init
//! wrapper), and the Calico addresses in `NetworkSettings` (`IPAddress`, `IPPrefixLen`,
//! `GlobalIPv6Address`, `GlobalIPv6PrefixLen`, `MacAddress`, `Gateway`, `IPv6Gateway`) and in a
//! `NetworkSettings.Networks.calico` entry. The gateways are only known for containers of this node.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use calico_master::model::MacAddr;
use serde_json::{json, Value};

use super::workload::{recorded, WorkloadSpec, DOCKER};

/// Rewrites an inspect answer in place; false when it is not a Calico container's.
pub fn rewrite(
    v: &mut Value,
    node: &str,
    gateway_v4: Option<Ipv4Addr>,
    gateway_v6: Option<Ipv6Addr>,
) -> bool {
    let Some(rec) = recorded(v.pointer("/Config/Labels")) else {
        return false;
    };
    let Some(id) = v.get("Id").and_then(Value::as_str).map(String::from) else {
        return false;
    };
    if let Some((ep, cmd)) = &rec.argv {
        let mut argv: Vec<Value> = Vec::new();
        for part in [ep, cmd] {
            if let Value::Array(a) = part {
                argv.extend(a.iter().cloned());
            }
        }
        if let Some(config) = v.get_mut("Config").and_then(Value::as_object_mut) {
            config.insert("Entrypoint".into(), ep.clone());
            config.insert("Cmd".into(), cmd.clone());
        }
        if let Some(obj) = v.as_object_mut() {
            if let Some((path, args)) = argv.split_first() {
                obj.insert("Path".into(), path.clone());
                obj.insert("Args".into(), Value::from(args.to_vec()));
            }
        }
    }
    let ours = rec.node == node;
    let spec = WorkloadSpec {
        node: rec.node.clone(),
        orchestrator: DOCKER.into(),
        workload_id: id,
        if_name: "eth0".into(),
        ips: rec.ips.clone(),
        profiles: rec.profiles.clone(),
        gateway_v4: gateway_v4.filter(|_| ours),
        gateway_v6: gateway_v6.filter(|_| ours),
    };
    let v4 = rec
        .ips
        .iter()
        .find(|ip| ip.is_ipv4())
        .map(IpAddr::to_string);
    let v6 = rec
        .ips
        .iter()
        .find(|ip| ip.is_ipv6())
        .map(IpAddr::to_string);
    let gw4 = spec
        .gateway_v4
        .filter(|_| v4.is_some())
        .map(|g| g.to_string());
    let gw6 = spec
        .gateway_v6
        .filter(|_| v6.is_some())
        .map(|g| g.to_string());
    let mac = MacAddr(spec.mac()).to_string();
    let fields = json!({
        "IPAddress": v4.clone().unwrap_or_default(),
        "IPPrefixLen": if v4.is_some() { 32 } else { 0 },
        "GlobalIPv6Address": v6.clone().unwrap_or_default(),
        "GlobalIPv6PrefixLen": if v6.is_some() { 128 } else { 0 },
        "MacAddress": mac,
        "Gateway": gw4.unwrap_or_default(),
        "IPv6Gateway": gw6.unwrap_or_default(),
    });
    let Some(obj) = v.as_object_mut() else {
        return false;
    };
    let ns = obj.entry("NetworkSettings").or_insert_with(|| json!({}));
    if !ns.is_object() {
        *ns = json!({});
    }
    if let (Value::Object(ns), Value::Object(fields)) = (ns, fields) {
        let mut network = fields.clone();
        network.insert("NetworkID".into(), json!("calico"));
        network.insert("EndpointID".into(), json!(spec.endpoint_id()));
        ns.extend(fields);
        let networks = ns.entry("Networks").or_insert_with(|| json!({}));
        if let Value::Object(n) = networks {
            n.insert("calico".into(), Value::Object(network));
        } else {
            *networks = json!({ "calico": network });
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::workload::{CMD_LABEL, ENTRYPOINT_LABEL, IPS_LABEL, NODE_LABEL};

    fn answer() -> Value {
        json!({
            "Id": "abc123",
            "Path": "/.calico-init",
            "Args": ["--iface", "eth0", "--ip", "10.65.0.2", "--", "sleep", "1d"],
            "Config": {
                "Entrypoint": ["/.calico-init", "--iface", "eth0", "--ip", "10.65.0.2", "--"],
                "Cmd": ["sleep", "1d"],
                "Labels": {
                    NODE_LABEL: "h1",
                    IPS_LABEL: "10.65.0.2,fd00:65::2",
                    ENTRYPOINT_LABEL: "null",
                    CMD_LABEL: "[\"sleep\",\"1d\"]",
                },
            },
            "NetworkSettings": {"IPAddress": "", "Networks": {"none": {}}},
        })
    }

    #[test]
    fn inspect_shows_the_users_command_and_the_calico_addresses() {
        let mut v = answer();
        assert!(rewrite(
            &mut v,
            "h1",
            Some("10.250.0.11".parse().unwrap()),
            Some("fd00:250::11".parse().unwrap())
        ));
        assert_eq!(v["Path"], "sleep");
        assert_eq!(v["Args"], json!(["1d"]));
        assert_eq!(v["Config"]["Entrypoint"], Value::Null);
        assert_eq!(v["Config"]["Cmd"], json!(["sleep", "1d"]));
        let ns = &v["NetworkSettings"];
        assert_eq!(ns["IPAddress"], "10.65.0.2");
        assert_eq!(ns["IPPrefixLen"], 32);
        assert_eq!(ns["GlobalIPv6Address"], "fd00:65::2");
        assert_eq!(ns["GlobalIPv6PrefixLen"], 128);
        assert_eq!(ns["Gateway"], "10.250.0.11");
        assert_eq!(ns["Networks"]["calico"]["IPAddress"], "10.65.0.2");
        assert!(ns["Networks"].get("none").is_some());
        assert_eq!(ns["MacAddress"], ns["Networks"]["calico"]["MacAddress"]);
    }

    #[test]
    fn other_nodes_containers_show_no_gateway_and_plain_ones_are_untouched() {
        let mut v = answer();
        assert!(rewrite(
            &mut v,
            "h2",
            Some("10.250.0.12".parse().unwrap()),
            None
        ));
        assert_eq!(v["NetworkSettings"]["Gateway"], "");
        assert_eq!(v["NetworkSettings"]["IPAddress"], "10.65.0.2");
        let mut plain = json!({"Id": "x", "Config": {"Labels": {"a": "b"}}});
        let before = plain.clone();
        assert!(!rewrite(&mut plain, "h1", None, None));
        assert_eq!(plain, before);
    }
}
