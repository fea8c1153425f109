//! What a Calico workload is, derived deterministically, pure: from a container's labels (or the
//! `calicoctl container` arguments) to its endpoint id, host interface name, MAC and endpoint record.
//!
//! Inputs: the node name, the workload id (container id or netns name), the interface name inside, the
//! addresses, profiles and gateways. Outputs: a [`WorkloadSpec`] whose derived values never change for
//! the same inputs, so a restarted container gets back the same interface name and MAC; and the
//! `POST /v1/endpoints` body for it. The labels the create hook records on a container are defined and
//! read here too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use calico_master::model::{interface_name_for, MacAddr};
use serde_json::{json, Map, Value};

/// The label that marks a container as belonging to a node.
pub const NODE_LABEL: &str = "org.projectcalico.node";
/// The addresses reserved for the container, comma-separated.
pub const IPS_LABEL: &str = "org.projectcalico.ips";
/// Its profiles, comma-separated, in order.
pub const PROFILES_LABEL: &str = "org.projectcalico.profiles";
/// Its real entrypoint (JSON), when the init wrapper stands in front of it.
pub const ENTRYPOINT_LABEL: &str = "org.projectcalico.entrypoint";
/// Its real command (JSON), when the init wrapper stands in front of it.
pub const CMD_LABEL: &str = "org.projectcalico.cmd";
/// The orchestrator name of Docker containers.
pub const DOCKER: &str = "docker";
/// The orchestrator name of bare namespaces wired by `calicoctl container add --netns`.
pub const NETNS: &str = "netns";

/// True when `text` (JSON as Docker wrote it) names [`NODE_LABEL`] anywhere: a container or an answer
/// without it is no Calico container's and needs no parsing.
pub fn mentions_calico(text: &[u8]) -> bool {
    static FINDER: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(NODE_LABEL));
    FINDER.find(text).is_some()
}

/// What the create hook recorded on a Calico container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub node: String,
    pub ips: Vec<IpAddr>,
    pub profiles: Vec<String>,
    /// The real entrypoint and command, when the wrapper is in front of them.
    pub argv: Option<(Value, Value)>,
}

fn list(v: Option<&str>) -> Vec<&str> {
    v.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Reads the Calico labels of a container (`Config.Labels`); `None` unless it is a Calico container.
pub fn recorded(labels: Option<&Value>) -> Option<Recorded> {
    let labels = labels?.as_object()?;
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    let node = get(NODE_LABEL)?.to_string();
    let ips = list(get(IPS_LABEL))
        .into_iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let profiles = list(get(PROFILES_LABEL))
        .into_iter()
        .map(String::from)
        .collect();
    let json_label = |k: &str| get(k).and_then(|s| serde_json::from_str::<Value>(s).ok());
    let argv = match (json_label(ENTRYPOINT_LABEL), json_label(CMD_LABEL)) {
        (Some(e), Some(c)) => Some((e, c)),
        _ => None,
    };
    Some(Recorded {
        node,
        ips,
        profiles,
        argv,
    })
}

/// The labels the create hook adds for the addresses and profiles.
pub fn record_labels(labels: &mut Map<String, Value>, ips: &[IpAddr], profiles: &[String]) {
    let ips: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    labels.insert(IPS_LABEL.into(), Value::String(ips.join(",")));
    labels.insert(PROFILES_LABEL.into(), Value::String(profiles.join(",")));
}

/// One workload endpoint, as wired and as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSpec {
    pub node: String,
    pub orchestrator: String,
    pub workload_id: String,
    /// The interface inside the workload (`eth0` for the proxy, `eth1` for `calicoctl container add`).
    pub if_name: String,
    pub ips: Vec<IpAddr>,
    pub profiles: Vec<String>,
    pub gateway_v4: Option<Ipv4Addr>,
    pub gateway_v6: Option<Ipv6Addr>,
}

/// 64-bit FNV-1a of `parts` joined by NUL, from `seed`.
fn fnv(seed: u64, parts: &[&str]) -> u64 {
    let mut h = seed;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h = (h ^ 0xff).wrapping_mul(0x0100_0000_01b3);
        }
        for b in p.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

impl WorkloadSpec {
    /// The endpoint id: 32 hex digits derived from node, orchestrator, workload and interface, so it is
    /// the same every time the workload is wired and differs between nodes and interfaces.
    pub fn endpoint_id(&self) -> String {
        let parts = [
            self.node.as_str(),
            self.orchestrator.as_str(),
            self.workload_id.as_str(),
            self.if_name.as_str(),
        ];
        format!(
            "{:016x}{:016x}",
            fnv(0xcbf2_9ce4_8422_2325, &parts),
            fnv(0x6c62_272e_07bb_0142, &parts)
        )
    }

    /// The host-side interface: `cali` + the first 11 hex digits of the endpoint id.
    pub fn host_iface(&self) -> String {
        let id = self.endpoint_id();
        interface_name_for(&id).unwrap_or_else(|| format!("cali{}", &id[..11]))
    }

    /// The workload interface's MAC: locally administered, unicast, derived from the endpoint id.
    pub fn mac(&self) -> [u8; 6] {
        let h = fnv(0x0123_4567_89ab_cdef, &[&self.endpoint_id()]).to_be_bytes();
        [(h[0] & 0xfc) | 0x02, h[1], h[2], h[3], h[4], h[5]]
    }

    /// The `POST /v1/endpoints` body, `active` or `inactive`.
    pub fn endpoint_json(&self, active: bool) -> Value {
        let v4: Vec<String> = self
            .ips
            .iter()
            .filter(|ip| ip.is_ipv4())
            .map(|ip| format!("{ip}/32"))
            .collect();
        let v6: Vec<String> = self
            .ips
            .iter()
            .filter(|ip| ip.is_ipv6())
            .map(|ip| format!("{ip}/128"))
            .collect();
        json!({
            "hostname": self.node,
            "orchestrator": self.orchestrator,
            "workload_id": self.workload_id,
            "endpoint_id": self.endpoint_id(),
            "state": if active { "active" } else { "inactive" },
            "name": self.host_iface(),
            "mac": MacAddr(self.mac()).to_string(),
            "container:if_name": self.if_name,
            "profile_ids": self.profiles,
            "ipv4_nets": v4,
            "ipv6_nets": v6,
            "ipv4_gateway": if self.ips.iter().any(IpAddr::is_ipv4) { self.gateway_v4.map(|g| g.to_string()) } else { None },
            "ipv6_gateway": if self.ips.iter().any(IpAddr::is_ipv6) { self.gateway_v6.map(|g| g.to_string()) } else { None },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(workload: &str, if_name: &str) -> WorkloadSpec {
        WorkloadSpec {
            node: "h1".into(),
            orchestrator: DOCKER.into(),
            workload_id: workload.into(),
            if_name: if_name.into(),
            ips: vec!["10.65.0.2".parse().unwrap(), "fd00:65::2".parse().unwrap()],
            profiles: vec!["web".into()],
            gateway_v4: Some("10.250.0.11".parse().unwrap()),
            gateway_v6: Some("fd00:250::11".parse().unwrap()),
        }
    }

    #[test]
    fn derived_names_are_stable_and_distinct() {
        let a = spec("abc", "eth0");
        assert_eq!(a.endpoint_id(), spec("abc", "eth0").endpoint_id());
        assert_eq!(a.endpoint_id().len(), 32);
        assert_ne!(a.endpoint_id(), spec("abc", "eth1").endpoint_id());
        assert_ne!(a.endpoint_id(), spec("abd", "eth0").endpoint_id());
        let mut other_node = a.clone();
        other_node.node = "h2".into();
        assert_ne!(a.endpoint_id(), other_node.endpoint_id());
        let iface = a.host_iface();
        assert_eq!((iface.len(), &iface[..4]), (15, "cali"));
        assert_eq!(&iface[4..], &a.endpoint_id()[..11]);
        let mac = a.mac();
        assert_eq!(mac[0] & 0x03, 0x02, "locally administered unicast");
        assert_eq!(mac, spec("abc", "eth0").mac());
        assert_ne!(mac, spec("abd", "eth0").mac());
    }

    #[test]
    fn the_endpoint_record() {
        let v = spec("abc", "eth0").endpoint_json(true);
        assert_eq!(v["state"], "active");
        assert_eq!(v["ipv4_nets"], json!(["10.65.0.2/32"]));
        assert_eq!(v["ipv6_nets"], json!(["fd00:65::2/128"]));
        assert_eq!(v["ipv4_gateway"], "10.250.0.11");
        assert_eq!(v["container:if_name"], "eth0");
        let mut v4only = spec("abc", "eth0");
        v4only.ips.truncate(1);
        let v = v4only.endpoint_json(false);
        assert_eq!(v["state"], "inactive");
        assert_eq!(v["ipv6_gateway"], Value::Null);
    }

    #[test]
    fn labels_round_trip() {
        let mut labels = Map::new();
        labels.insert(NODE_LABEL.into(), json!("h1"));
        record_labels(
            &mut labels,
            &["10.65.0.2".parse().unwrap(), "fd00:65::2".parse().unwrap()],
            &["web".into(), "db".into()],
        );
        let r = recorded(Some(&Value::Object(labels.clone()))).unwrap();
        assert_eq!(r.node, "h1");
        assert_eq!(r.ips.len(), 2);
        assert_eq!(r.profiles, ["web", "db"]);
        assert_eq!(r.argv, None);
        labels.insert(ENTRYPOINT_LABEL.into(), json!("null"));
        labels.insert(CMD_LABEL.into(), json!(r#"["sleep","1d"]"#));
        let r = recorded(Some(&Value::Object(labels))).unwrap();
        assert_eq!(r.argv, Some((Value::Null, json!(["sleep", "1d"]))));
        assert_eq!(recorded(Some(&json!({"app": "x"}))), None);
        assert_eq!(recorded(None), None);
    }
}
