//! `POST /containers/create`: decide what to do with a container that asks for Calico networking.
//!
//! Input: the request body (the container's config as JSON) and this node's name. Output: pass it
//! through untouched (no `CALICO_IP`: byte for byte), reject it with a Docker-style 400 naming the variable
//! and the offending value (nothing is created, nothing reserved), or the Calico request (the addresses to
//! reserve, the profiles) with the body rewritten for Docker: network mode `none` (and no
//! `NetworkingConfig.EndpointsConfig`, which newer CLIs fill with a `default` entry that a `none`
//! container refuses) and a label with the node's name.

use calico_master::ipam::{IpRequest, PoolSelector};
use calico_master::model::{validate_name, IpVersion};
use serde_json::{Map, Value};

pub use super::workload::NODE_LABEL;

/// What the container asked of Calico.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalicoRequest {
    /// The addresses to reserve, at most one IPv4 and one IPv6.
    pub ips: Vec<IpRequest>,
    /// The same, as the user wrote them (what the master's IPAM API takes).
    pub ip_texts: Vec<String>,
    /// The profiles, in order (none given: the caller picks the default).
    pub profiles: Vec<String>,
}

/// What to do with a create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateDecision {
    /// Not a Calico container: forward the request untouched.
    PassThrough,
    /// Refuse it with this message (status 400).
    Reject(String),
    /// A Calico container: reserve `request`, then forward `body` instead of the original.
    Calico {
        request: CalicoRequest,
        body: Vec<u8>,
    },
}

fn env_value<'a>(env: &'a [Value], name: &str) -> Option<&'a str> {
    env.iter()
        .filter_map(Value::as_str)
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn family(req: &IpRequest) -> IpVersion {
    match req {
        IpRequest::Explicit(ip) if ip.is_ipv4() => IpVersion::V4,
        IpRequest::Explicit(_) => IpVersion::V6,
        IpRequest::Auto(PoolSelector::Family(v)) => *v,
        IpRequest::Auto(PoolSelector::Pool(net)) => match net {
            ipnet::IpNet::V4(_) => IpVersion::V4,
            ipnet::IpNet::V6(_) => IpVersion::V6,
        },
    }
}

fn parse_ips(value: &str) -> Result<Vec<IpRequest>, String> {
    let mut ips: Vec<IpRequest> = Vec::new();
    for item in value.split(',').map(str::trim) {
        let req: IpRequest = item.parse().map_err(|_| {
            format!(
                "CALICO_IP: `{item}` is not an IP address, a pool CIDR, `auto`, `ipv4` or `ipv6` \
                 (several, comma-separated, e.g. CALICO_IP=auto,ipv6)"
            )
        })?;
        if ips.iter().any(|r| family(r) == family(&req)) {
            return Err(format!(
                "CALICO_IP: `{value}` asks for two IPv{} addresses; a container gets at most one IPv4 and one IPv6",
                if family(&req) == IpVersion::V4 { 4 } else { 6 }
            ));
        }
        ips.push(req);
    }
    Ok(ips)
}

fn parse_profiles(value: &str) -> Result<Vec<String>, String> {
    value
        .split(',')
        .map(str::trim)
        .map(|p| {
            validate_name("CALICO_PROFILE", p)
                .map(|()| p.to_string())
                .map_err(|e| format!("CALICO_PROFILE: `{p}` is not a valid profile name: {e}"))
        })
        .collect()
}

fn publishes_ports(host_config: Option<&Map<String, Value>>) -> bool {
    let Some(hc) = host_config else { return false };
    let bindings = hc
        .get("PortBindings")
        .and_then(Value::as_object)
        .is_some_and(|b| !b.is_empty());
    bindings
        || hc
            .get("PublishAllPorts")
            .and_then(Value::as_bool)
            .unwrap_or(false)
}

/// Decides what to do with a create request's `body` on node `node`.
pub fn decide(body: &[u8], node: &str) -> CreateDecision {
    let Ok(Value::Object(mut config)) = serde_json::from_slice::<Value>(body) else {
        // Not ours to judge: Docker answers malformed bodies itself.
        return CreateDecision::PassThrough;
    };
    let env: Vec<Value> = config
        .get("Env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(ip_value) = env_value(&env, "CALICO_IP") else {
        return CreateDecision::PassThrough;
    };
    let ip_texts: Vec<String> = ip_value.split(',').map(|s| s.trim().to_string()).collect();
    let ips = match parse_ips(ip_value) {
        Ok(ips) => ips,
        Err(message) => return CreateDecision::Reject(message),
    };
    let profiles = match env_value(&env, "CALICO_PROFILE").filter(|v| !v.trim().is_empty()) {
        Some(v) => match parse_profiles(v) {
            Ok(p) => p,
            Err(message) => return CreateDecision::Reject(message),
        },
        None => Vec::new(),
    };
    if publishes_ports(config.get("HostConfig").and_then(Value::as_object)) {
        return CreateDecision::Reject(
            "a Calico container's IP is routable, so it publishes no ports: drop -p/-P and open the port \
             with a profile rule, e.g. `calicoctl profile <P> rule add inbound allow tcp to ports 80`"
                .to_string(),
        );
    }
    let host_config = config
        .entry("HostConfig")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(hc) = host_config {
        hc.insert("NetworkMode".into(), Value::String("none".into()));
    }
    if let Some(Value::Object(nc)) = config.get_mut("NetworkingConfig") {
        nc.remove("EndpointsConfig");
    }
    let labels = config
        .entry("Labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    if let Value::Object(l) = labels {
        l.insert(NODE_LABEL.into(), Value::String(node.to_string()));
    }
    let body = serde_json::to_vec(&Value::Object(config)).unwrap_or_else(|_| body.to_vec());
    CreateDecision::Calico {
        request: CalicoRequest {
            ips,
            ip_texts,
            profiles,
        },
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A create body as the docker CLI (28.x) sends it, trimmed.
    fn body(env: &[&str], extra_host_config: Value) -> Vec<u8> {
        let mut hc = json!({"NetworkMode": "default", "PortBindings": {}});
        if let (Value::Object(hc), Value::Object(extra)) = (&mut hc, extra_host_config) {
            hc.extend(extra);
        }
        serde_json::to_vec(&json!({
            "Image": "busybox",
            "Env": env,
            "Cmd": ["sleep", "1d"],
            "Labels": {"app": "web"},
            "HostConfig": hc,
            "NetworkingConfig": {"EndpointsConfig": {"default": {}}}
        }))
        .unwrap()
    }

    fn calico(d: CreateDecision) -> (CalicoRequest, Value) {
        match d {
            CreateDecision::Calico { request, body } => {
                (request, serde_json::from_slice(&body).unwrap())
            }
            other => panic!("expected a Calico container, got {other:?}"),
        }
    }

    fn rejected(d: CreateDecision) -> String {
        match d {
            CreateDecision::Reject(m) => m,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn containers_without_calico_ip_pass_untouched() {
        assert_eq!(
            decide(&body(&["A=1"], json!({})), "h1"),
            CreateDecision::PassThrough
        );
        assert_eq!(decide(b"not json", "h1"), CreateDecision::PassThrough);
        assert_eq!(
            decide(br#"{"Image":"x"}"#, "h1"),
            CreateDecision::PassThrough
        );
    }

    #[test]
    fn a_calico_container_is_switched_to_network_none_and_labelled() {
        let (req, cfg) = calico(decide(
            &body(
                &["CALICO_IP=10.65.0.2", "CALICO_PROFILE=web,db", "B=2"],
                json!({}),
            ),
            "h1",
        ));
        assert_eq!(
            req.ips,
            vec![IpRequest::Explicit("10.65.0.2".parse().unwrap())]
        );
        assert_eq!(req.profiles, ["web", "db"]);
        assert_eq!(cfg["HostConfig"]["NetworkMode"], "none");
        assert!(cfg["NetworkingConfig"].get("EndpointsConfig").is_none());
        assert_eq!(cfg["Labels"]["app"], "web", "the user's labels stay");
        assert_eq!(cfg["Labels"][NODE_LABEL], "h1");
        assert_eq!(cfg["Env"][2], "B=2", "the rest of the config is unchanged");
        assert_eq!(cfg["Cmd"], json!(["sleep", "1d"]));
    }

    #[test]
    fn auto_ipv6_and_pools_are_understood() {
        let (req, _) = calico(decide(&body(&["CALICO_IP=auto,ipv6"], json!({})), "h1"));
        assert_eq!(
            req.ips,
            vec![
                IpRequest::Auto(PoolSelector::Family(IpVersion::V4)),
                IpRequest::Auto(PoolSelector::Family(IpVersion::V6))
            ]
        );
        assert!(req.profiles.is_empty());
        let (req, _) = calico(decide(&body(&["CALICO_IP=10.65.0.0/16"], json!({})), "h1"));
        assert_eq!(
            req.ips,
            vec![IpRequest::Auto(PoolSelector::Pool(
                "10.65.0.0/16".parse().unwrap()
            ))]
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_the_value() {
        let m = rejected(decide(&body(&["CALICO_IP=garbage"], json!({})), "h1"));
        assert!(m.contains("CALICO_IP") && m.contains("`garbage`"), "{m}");
        let m = rejected(decide(
            &body(&["CALICO_IP=10.65.0.2,auto"], json!({})),
            "h1",
        ));
        assert!(m.contains("two IPv4"), "{m}");
        let m = rejected(decide(
            &body(&["CALICO_IP=auto", "CALICO_PROFILE=web,add"], json!({})),
            "h1",
        ));
        assert!(m.contains("CALICO_PROFILE") && m.contains("`add`"), "{m}");
        let m = rejected(decide(
            &body(&["CALICO_IP=auto", "CALICO_PROFILE=bad name"], json!({})),
            "h1",
        ));
        assert!(m.contains("`bad name`"), "{m}");
    }

    #[test]
    fn published_ports_are_refused_with_what_to_do_instead() {
        let with_p = json!({"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}});
        let m = rejected(decide(&body(&["CALICO_IP=auto"], with_p), "h1"));
        assert!(m.contains("-p") && m.contains("rule add inbound"), "{m}");
        let with_big_p = json!({"PublishAllPorts": true});
        rejected(decide(&body(&["CALICO_IP=auto"], with_big_p), "h1"));
    }
}
