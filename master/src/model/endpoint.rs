//! Workload endpoints: one container interface wired by Calico.
//!
//! Role: the [`Endpoint`] type. Its identity (host, orchestrator, workload id, endpoint id) forms the etcd
//! key `/calico/v1/host/<h>/workload/<orch>/<workload>/endpoint/<ep>`; the rest is the value, whose JSON
//! matches the original exactly: every key present (`"ipv6_gateway": null` when unset), nets sorted.
//!
//! Inputs: values built by the proxy / API, or etcd values. Outputs: the value JSON and
//! [`Endpoint::validate`] errors. Pool membership and uniqueness of the IPs are IPAM's checks.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    names::{validate_hostname, validate_interface_name, validate_name},
    MacAddr, ValidationError,
};

/// The orchestrator id of Docker containers.
pub const ORCHESTRATOR_DOCKER: &str = "docker";

/// Whether the endpoint is up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointState {
    /// Wired and in use.
    #[default]
    Active,
    /// Known but down.
    Inactive,
}

/// A workload endpoint. The first four fields are its key and are not part of the stored value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The host the workload runs on.
    pub hostname: String,
    /// Who created the workload; `docker` here.
    pub orchestrator: String,
    /// The workload (container) id.
    pub workload_id: String,
    /// The endpoint id (a hex uuid in the original).
    pub endpoint_id: String,
    /// active or inactive.
    pub state: EndpointState,
    /// Host-side interface: `cali` + 11 hex characters.
    pub name: String,
    /// The container interface's MAC.
    pub mac: Option<MacAddr>,
    /// The interface name inside the container (`eth1`).
    #[serde(rename = "container:if_name")]
    pub if_name: Option<String>,
    /// Profiles applied in order.
    pub profile_ids: Vec<String>,
    /// IPv4 addresses as /32s.
    pub ipv4_nets: Vec<Ipv4Net>,
    /// IPv6 addresses as /128s.
    pub ipv6_nets: Vec<Ipv6Net>,
    /// The container's IPv4 next hop (the host).
    pub ipv4_gateway: Option<Ipv4Addr>,
    /// The container's IPv6 next hop.
    pub ipv6_gateway: Option<Ipv6Addr>,
}

const KEY_FIELDS: [&str; 4] = ["hostname", "orchestrator", "workload_id", "endpoint_id"];

impl Endpoint {
    /// The stored value: the JSON without the key fields, nets sorted as the original wrote them.
    pub fn etcd_value(&self) -> Value {
        let mut e = self.clone();
        e.ipv4_nets.sort();
        e.ipv6_nets.sort();
        let mut v = serde_json::to_value(&e).unwrap_or(Value::Null);
        if let Some(obj) = v.as_object_mut() {
            for k in KEY_FIELDS {
                obj.remove(k);
            }
        }
        v
    }

    /// Rebuild from a key's parts and a stored value (missing optional keys are taken as empty/null).
    pub fn from_etcd_value(
        hostname: &str,
        orchestrator: &str,
        workload_id: &str,
        endpoint_id: &str,
        value: &Value,
    ) -> Result<Self, ValidationError> {
        let mut obj = value.as_object().cloned().ok_or_else(|| {
            ValidationError::new("endpoint", "the stored value is not a JSON object")
        })?;
        for (k, v) in KEY_FIELDS
            .iter()
            .zip([hostname, orchestrator, workload_id, endpoint_id])
        {
            obj.insert((*k).to_owned(), Value::String(v.to_owned()));
        }
        for k in ["mac", "container:if_name", "ipv4_gateway", "ipv6_gateway"] {
            obj.entry(k).or_insert(Value::Null);
        }
        for k in ["profile_ids", "ipv4_nets", "ipv6_nets"] {
            obj.entry(k).or_insert(Value::Array(vec![]));
        }
        obj.entry("state").or_insert(Value::String("active".into()));
        serde_json::from_value(Value::Object(obj)).map_err(|e| {
            ValidationError::new("endpoint", format!("stored value is malformed: {e}"))
        })
    }

    /// Check identity, interface names, MAC, profiles and addresses.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_hostname("hostname", &self.hostname)?;
        for (field, v) in [
            ("orchestrator", &self.orchestrator),
            ("workload_id", &self.workload_id),
            ("endpoint_id", &self.endpoint_id),
        ] {
            if v.is_empty()
                || v.len() > 128
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                || v.starts_with(['.', '-'])
            {
                return Err(ValidationError::new(
                    field,
                    format!("`{v}` must be 1–128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"),
                ));
            }
        }
        let hex11 = self.name.strip_prefix("cali").is_some_and(|h| {
            h.len() == 11
                && h.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        });
        if !hex11 {
            return Err(ValidationError::new(
                "name",
                format!("`{}` is not an endpoint interface name; it must be `cali` + 11 lowercase hex digits", self.name),
            ));
        }
        if let Some(m) = &self.mac {
            if !m.is_unicast() {
                return Err(ValidationError::new(
                    "mac",
                    format!("{m} is a multicast address; use a unicast MAC"),
                ));
            }
        }
        if let Some(n) = &self.if_name {
            validate_interface_name("container:if_name", n)?;
        }
        for (i, p) in self.profile_ids.iter().enumerate() {
            validate_name("profile_ids", p)?;
            if self.profile_ids[..i].contains(p) {
                return Err(ValidationError::new(
                    "profile_ids",
                    format!("profile `{p}` is listed twice"),
                ));
            }
        }
        for (i, n) in self.ipv4_nets.iter().enumerate() {
            if n.prefix_len() != 32 {
                return Err(ValidationError::new(
                    "ipv4_nets",
                    format!("{n} must be a single address (/32)"),
                ));
            }
            if self.ipv4_nets[..i].contains(n) {
                return Err(ValidationError::new(
                    "ipv4_nets",
                    format!("{n} is listed twice"),
                ));
            }
        }
        for (i, n) in self.ipv6_nets.iter().enumerate() {
            if n.prefix_len() != 128 {
                return Err(ValidationError::new(
                    "ipv6_nets",
                    format!("{n} must be a single address (/128)"),
                ));
            }
            if self.ipv6_nets[..i].contains(n) {
                return Err(ValidationError::new(
                    "ipv6_nets",
                    format!("{n} is listed twice"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Endpoint {
        Endpoint {
            hostname: "core-01".into(),
            orchestrator: ORCHESTRATOR_DOCKER.into(),
            workload_id: "3f2a".into(),
            endpoint_id: "0123456789abcdef0123456789abcdef".into(),
            state: EndpointState::Active,
            name: "cali0123456789a".into(),
            mac: Some("ee:ee:ee:ee:ee:ee".parse().unwrap()),
            if_name: Some("eth1".into()),
            profile_ids: vec!["P".into()],
            ipv4_nets: vec!["192.168.1.1/32".parse().unwrap()],
            ipv6_nets: vec![],
            ipv4_gateway: Some("172.17.8.101".parse().unwrap()),
            ipv6_gateway: None,
        }
    }

    #[test]
    fn value_matches_reference_exactly() {
        let expected = json!({"state":"active","name":"cali0123456789a","mac":"ee:ee:ee:ee:ee:ee",
            "container:if_name":"eth1","profile_ids":["P"],"ipv4_nets":["192.168.1.1/32"],"ipv6_nets":[],
            "ipv4_gateway":"172.17.8.101","ipv6_gateway":null});
        let ep = sample();
        assert_eq!(ep.validate(), Ok(()));
        assert_eq!(ep.etcd_value(), expected);
        let back =
            Endpoint::from_etcd_value("core-01", "docker", "3f2a", &ep.endpoint_id, &expected)
                .unwrap();
        assert_eq!(back, ep);
    }

    #[test]
    fn from_value_tolerates_missing_optionals() {
        let v = json!({"state": "inactive", "name": "cali0123456789a", "ipv4_nets": ["10.0.0.2/32", "10.0.0.1/32"]});
        let ep = Endpoint::from_etcd_value("h", "docker", "w", "e", &v).unwrap();
        assert_eq!(ep.state, EndpointState::Inactive);
        assert_eq!(ep.mac, None);
        assert_eq!(
            ep.etcd_value()["ipv4_nets"],
            json!(["10.0.0.1/32", "10.0.0.2/32"])
        );
        assert!(Endpoint::from_etcd_value("h", "docker", "w", "e", &json!([])).is_err());
        assert!(Endpoint::from_etcd_value(
            "h",
            "docker",
            "w",
            "e",
            &json!({"name": "x", "state": "up"})
        )
        .is_err());
    }

    #[test]
    fn validation_names_fields() {
        let check = |f: &dyn Fn(&mut Endpoint), field: &str| {
            let mut ep = sample();
            f(&mut ep);
            assert_eq!(ep.validate().unwrap_err().field, field);
        };
        check(&|e| e.hostname = "".into(), "hostname");
        check(&|e| e.workload_id = "a/b".into(), "workload_id");
        check(&|e| e.endpoint_id = "".into(), "endpoint_id");
        check(&|e| e.orchestrator = "-x".into(), "orchestrator");
        check(&|e| e.name = "tap0123456789a".into(), "name");
        check(&|e| e.name = "cali0123456789A".into(), "name");
        check(&|e| e.name = "cali0123456789".into(), "name");
        check(
            &|e| e.mac = Some("01:00:5e:00:00:01".parse().unwrap()),
            "mac",
        );
        check(&|e| e.if_name = Some("eth 1".into()), "container:if_name");
        check(&|e| e.profile_ids.push("P".into()), "profile_ids");
        check(&|e| e.profile_ids.push("show".into()), "profile_ids");
        check(
            &|e| e.ipv4_nets.push("10.0.0.0/24".parse().unwrap()),
            "ipv4_nets",
        );
        check(
            &|e| e.ipv4_nets.push("192.168.1.1/32".parse().unwrap()),
            "ipv4_nets",
        );
        check(
            &|e| e.ipv6_nets.push("fd00::/64".parse().unwrap()),
            "ipv6_nets",
        );
    }
}
