//! `GET /containers/{id}/json`, pure: make `docker inspect` of a Calico container show what the user
//! expects rather than what the proxy did underneath.
//!
//! Input: Docker's inspect answer (its text), this node's name and gateways. Output: the same answer
//! (text again, or `None` for one to pass on unchanged) with the real entrypoint and command back in
//! `Config.Entrypoint`, `Config.Cmd`, `Path` and `Args` (not the init wrapper), and the Calico
//! addresses in `NetworkSettings` (`IPAddress`, `IPPrefixLen`, `GlobalIPv6Address`,
//! `GlobalIPv6PrefixLen`, `MacAddress`, `Gateway`, `IPv6Gateway`) and in a
//! `NetworkSettings.Networks.calico` entry. The gateways are only known for containers of this node.
//! Everything else is copied as Docker wrote it, in Docker's order ([`super::rawjson`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use calico_master::model::MacAddr;
use serde_json::{json, Value};

use super::rawjson::RawObject;
use super::workload::{recorded, WorkloadSpec, DOCKER};

/// Rewrites an inspect answer (the text of Docker's JSON object); `None` when it is not a Calico
/// container's (or not JSON), and the answer is to go on as it came.
///
/// Only `Id`, `Config`, `Path`, `Args` and `NetworkSettings` are read; every other member is copied
/// as Docker wrote it, and all members, nested ones too, keep Docker's order (new ones come last).
pub fn rewrite(
    answer: &str,
    node: &str,
    gateway_v4: Option<Ipv4Addr>,
    gateway_v6: Option<Ipv6Addr>,
) -> Option<String> {
    let mut top = RawObject::parse(answer)?;
    let mut config = RawObject::parse(top.get("Config")?)?;
    let rec = recorded(config.value::<Value>("Labels").as_ref())?;
    let id: String = top.value("Id")?;
    if let Some((ep, cmd)) = &rec.argv {
        config.set("Entrypoint", ep);
        config.set("Cmd", cmd);
        top.set_json("Config", config.to_json());
        let mut argv: Vec<&Value> = Vec::new();
        for part in [ep, cmd] {
            if let Value::Array(a) = part {
                argv.extend(a);
            }
        }
        if let Some((path, args)) = argv.split_first() {
            top.set("Path", path);
            top.set("Args", args);
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
    let fields = [
        ("IPAddress", json!(v4.clone().unwrap_or_default())),
        ("IPPrefixLen", json!(if v4.is_some() { 32 } else { 0 })),
        ("GlobalIPv6Address", json!(v6.clone().unwrap_or_default())),
        (
            "GlobalIPv6PrefixLen",
            json!(if v6.is_some() { 128 } else { 0 }),
        ),
        ("MacAddress", json!(mac)),
        ("Gateway", json!(gw4.unwrap_or_default())),
        ("IPv6Gateway", json!(gw6.unwrap_or_default())),
    ];
    // A missing or malformed `NetworkSettings` (or `Networks`) becomes an object of its own.
    let mut ns = top
        .get("NetworkSettings")
        .and_then(RawObject::parse)
        .unwrap_or_default();
    let mut network: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    network.insert("NetworkID".into(), json!("calico"));
    network.insert("EndpointID".into(), json!(spec.endpoint_id()));
    for (k, v) in &fields {
        ns.set(k, v);
    }
    let mut networks = ns
        .get("Networks")
        .and_then(RawObject::parse)
        .unwrap_or_default();
    networks.set("calico", &network);
    ns.set_json("Networks", networks.to_json());
    top.set_json("NetworkSettings", ns.to_json());
    Some(top.to_json())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hooks::workload::{CMD_LABEL, ENTRYPOINT_LABEL, IPS_LABEL, NODE_LABEL};

    /// Rewrites `v` as the proxy does its text: the rewritten answer, parsed, or `None`.
    fn run(
        v: &Value,
        node: &str,
        gateway_v4: Option<Ipv4Addr>,
        gateway_v6: Option<Ipv6Addr>,
    ) -> Option<Value> {
        let out = rewrite(&v.to_string(), node, gateway_v4, gateway_v6)?;
        Some(serde_json::from_str(&out).expect("the rewrite writes JSON"))
    }

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
        let v = run(
            &answer(),
            "h1",
            Some("10.250.0.11".parse().unwrap()),
            Some("fd00:250::11".parse().unwrap()),
        )
        .expect("a Calico container");
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
        let v = run(&answer(), "h2", Some("10.250.0.12".parse().unwrap()), None)
            .expect("a Calico container");
        assert_eq!(v["NetworkSettings"]["Gateway"], "");
        assert_eq!(v["NetworkSettings"]["IPAddress"], "10.65.0.2");
        let plain = json!({"Id": "x", "Config": {"Labels": {"a": "b"}}});
        assert_eq!(run(&plain, "h1", None, None), None);
    }

    #[test]
    fn missing_or_odd_network_settings_are_made_whole() {
        let mut v = answer();
        v.as_object_mut().unwrap().remove("NetworkSettings");
        let out = run(&v, "h1", None, None).unwrap();
        assert_eq!(out["NetworkSettings"]["IPAddress"], "10.65.0.2");
        assert_eq!(
            out["NetworkSettings"]["Networks"]["calico"]["NetworkID"],
            "calico"
        );
        v["NetworkSettings"] = json!({"Networks": null});
        let out = run(&v, "h1", None, None).unwrap();
        assert_eq!(
            out["NetworkSettings"]["Networks"]["calico"]["IPPrefixLen"],
            32
        );
        assert_eq!(
            out["NetworkSettings"]["Networks"]
                .as_object()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn without_recorded_argv_the_command_stays() {
        let mut v = answer();
        let labels = v["Config"]["Labels"].as_object_mut().unwrap();
        labels.remove(CMD_LABEL);
        let out = run(&v, "h1", None, None).unwrap();
        assert_eq!(out["Path"], "/.calico-init");
        assert_eq!(out["Config"]["Cmd"], json!(["sleep", "1d"]));
        assert_eq!(out["NetworkSettings"]["IPAddress"], "10.65.0.2");
    }

    /// Removes the whitespace outside strings, as Docker sends its JSON.
    fn compact(pretty: &str) -> String {
        let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
        for c in pretty.chars() {
            if in_string {
                in_string = escaped || c != '"';
                escaped = !escaped && c == '\\';
            } else if c.is_whitespace() {
                continue;
            } else {
                in_string = c == '"';
            }
            out.push(c);
        }
        out
    }

    /// A `docker inspect` answer (~8 KB, shaped and ordered as Docker writes it) of an nginx
    /// container made through the proxy, with `labels` (a JSON object's text).
    pub(crate) fn docker_answer(labels: &str) -> String {
        let pretty = include_str!("testdata/inspect.json");
        compact(&pretty.replacen(r#""Labels": {}"#, &format!(r#""Labels": {labels}"#), 1))
    }

    /// The labels of a Calico container running `nginx -g 'daemon off;'` on node h1.
    pub(crate) fn calico_labels() -> String {
        json!({
            "maintainer": "NGINX Docker Maintainers <docker-maint@nginx.com>",
            NODE_LABEL: "h1",
            IPS_LABEL: "10.65.0.2,fd00:65::2",
            "org.projectcalico.profiles": "web",
            "com.docker.compose.project": "shop",
            "com.docker.compose.service": "web",
            "com.docker.compose.version": "2.27.0",
            ENTRYPOINT_LABEL: r#"["/docker-entrypoint.sh"]"#,
            CMD_LABEL: r#"["nginx","-g","daemon off;"]"#,
        })
        .to_string()
    }

    #[test]
    fn a_real_answer_keeps_its_order_and_its_untouched_members_byte_for_byte() {
        let text = docker_answer(&calico_labels());
        assert!(text.len() > 7_500, "{}", text.len());
        let out = rewrite(&text, "h1", Some("10.250.0.11".parse().unwrap()), None).unwrap();
        let (before, after) = (
            RawObject::parse(&text).unwrap(),
            RawObject::parse(&out).unwrap(),
        );
        assert_eq!(
            before.names().collect::<Vec<_>>(),
            after.names().collect::<Vec<_>>()
        );
        for name in before.names() {
            if !["Path", "Args", "Config", "NetworkSettings"].contains(&name.as_ref()) {
                assert_eq!(before.get(&name), after.get(&name), "{name}");
            }
        }
        assert_eq!(after.get("Path"), Some(r#""/docker-entrypoint.sh""#));
        assert_eq!(after.get("Args"), Some(r#"["nginx","-g","daemon off;"]"#));
        let (config_before, config_after) = (
            RawObject::parse(before.get("Config").unwrap()).unwrap(),
            RawObject::parse(after.get("Config").unwrap()).unwrap(),
        );
        assert_eq!(
            config_before.names().collect::<Vec<_>>(),
            config_after.names().collect::<Vec<_>>()
        );
        assert_eq!(
            config_after.get("Entrypoint"),
            Some(r#"["/docker-entrypoint.sh"]"#)
        );
        assert_eq!(config_after.get("Env"), config_before.get("Env"));
        assert_eq!(config_after.get("Labels"), config_before.get("Labels"));
        let ns = RawObject::parse(after.get("NetworkSettings").unwrap()).unwrap();
        let ns_before = RawObject::parse(before.get("NetworkSettings").unwrap()).unwrap();
        assert_eq!(
            ns.names().collect::<Vec<_>>(),
            ns_before.names().collect::<Vec<_>>()
        );
        assert_eq!(ns.get("IPAddress"), Some(r#""10.65.0.2""#));
        assert_eq!(ns.get("SandboxKey"), ns_before.get("SandboxKey"));
        let networks = RawObject::parse(ns.get("Networks").unwrap()).unwrap();
        assert_eq!(networks.names().collect::<Vec<_>>(), ["none", "calico"]);
        let networks_before = RawObject::parse(ns_before.get("Networks").unwrap()).unwrap();
        assert_eq!(networks.get("none"), networks_before.get("none"));
        // The same as the whole answer parsed and rewritten member by member would give.
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["NetworkSettings"]["Networks"]["calico"]["Gateway"],
            "10.250.0.11"
        );
        assert_eq!(v["NetworkSettings"]["GlobalIPv6Address"], "fd00:65::2");
        assert_eq!(v["Config"]["Cmd"], json!(["nginx", "-g", "daemon off;"]));
    }

    #[test]
    fn plain_and_malformed_answers_are_not_rewritten() {
        let plain =
            docker_answer(r#"{"maintainer":"NGINX Docker Maintainers <docker-maint@nginx.com>"}"#);
        assert_eq!(rewrite(&plain, "h1", None, None), None);
        let calico = docker_answer(&calico_labels());
        for cut in [calico.len() - 1, calico.len() / 2, 1] {
            assert_eq!(rewrite(&calico[..cut], "h1", None, None), None, "{cut}");
        }
        let trailing = format!("{calico}x");
        assert_eq!(rewrite(&trailing, "h1", None, None), None);
        assert_eq!(rewrite("[]", "h1", None, None), None);
    }
}
