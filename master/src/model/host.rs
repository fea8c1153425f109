//! Hosts (calico nodes): name, BGP addresses, AS number, per-node peers, route-reflector role.
//!
//! Role: the [`Host`] type, stored in the original under `/calico/bgp/v1/host/<h>/{ip_addr_v4, ip_addr_v6,
//! as_num, peer_v4/<ip>, peer_v6/<ip>}` (hence the JSON names here). Inputs: `calicoctl node` / API
//! writes. Outputs: validated values and the node's effective AS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::{
    bgp::validate_peers, names::validate_hostname, AsNumber, BgpConfig, BgpPeer, ValidationError,
};

/// This node acts as a BGP route reflector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteReflector {
    /// The RR cluster id (RFC 4456); reflectors of one cluster share it.
    pub cluster_id: Ipv4Addr,
    /// Addresses of the clients it reflects to (they also appear as this node's peers or are nodes).
    #[serde(default)]
    pub clients: Vec<IpAddr>,
}

/// A Calico node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// The host name (its identity).
    pub name: String,
    /// The IPv4 address BGP uses.
    #[serde(
        default,
        rename = "ip_addr_v4",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4: Option<Ipv4Addr>,
    /// The IPv6 address BGP uses.
    #[serde(
        default,
        rename = "ip_addr_v6",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6: Option<Ipv6Addr>,
    /// The node's own AS; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_num: Option<AsNumber>,
    /// Peers of this node only.
    #[serde(default)]
    pub peers: Vec<BgpPeer>,
    /// Set when this node is a route reflector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_reflector: Option<RouteReflector>,
}

impl Host {
    /// The AS this node speaks: its own, else the cluster's.
    pub fn effective_as(&self, config: &BgpConfig) -> AsNumber {
        self.as_num.unwrap_or(config.as_num)
    }

    /// Check name, addresses, peers and route-reflector settings.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_hostname("name", &self.name)?;
        if self.ipv4.is_none() && self.ipv6.is_none() {
            return Err(ValidationError::new(
                "ip_addr_v4",
                "a node needs an address for BGP; give its IPv4 (or IPv6) address",
            ));
        }
        if let Some(a) = self.ipv4 {
            if a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback() {
                return Err(ValidationError::new(
                    "ip_addr_v4",
                    format!(
                        "{a} cannot be a node's address; use an address other hosts reach it on"
                    ),
                ));
            }
        }
        if let Some(a) = self.ipv6 {
            if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
                return Err(ValidationError::new(
                    "ip_addr_v6",
                    format!(
                        "{a} cannot be a node's address; use an address other hosts reach it on"
                    ),
                ));
            }
        }
        validate_peers("peers", &self.peers)?;
        let own = |ip: IpAddr| {
            Some(ip) == self.ipv4.map(IpAddr::V4) || Some(ip) == self.ipv6.map(IpAddr::V6)
        };
        if let Some(p) = self.peers.iter().find(|p| own(p.ip)) {
            return Err(ValidationError::new(
                "peers",
                format!(
                    "{} is this node's own address; a node cannot peer with itself",
                    p.ip
                ),
            ));
        }
        if let Some(rr) = &self.route_reflector {
            if rr.cluster_id.is_unspecified() {
                return Err(ValidationError::new(
                    "cluster_id",
                    "0.0.0.0 is not a cluster id; use e.g. the reflector's own IPv4 address",
                ));
            }
            for (i, c) in rr.clients.iter().enumerate() {
                if own(*c) || rr.clients[..i].contains(c) {
                    return Err(ValidationError::new(
                        "clients",
                        format!("client {c} is this node itself or listed twice"),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host() -> Host {
        Host {
            name: "core-01".into(),
            ipv4: Some("172.17.8.101".parse().unwrap()),
            ipv6: None,
            as_num: None,
            peers: vec![],
            route_reflector: None,
        }
    }

    #[test]
    fn json_and_effective_as() {
        let mut h = host();
        assert_eq!(h.validate(), Ok(()));
        assert_eq!(
            serde_json::to_value(&h).unwrap(),
            json!({"name": "core-01", "ip_addr_v4": "172.17.8.101", "peers": []})
        );
        let cfg = BgpConfig::default();
        assert_eq!(h.effective_as(&cfg).get(), 64511);
        h.as_num = AsNumber::new(64512);
        assert_eq!(h.effective_as(&cfg).get(), 64512);
        let back: Host = serde_json::from_value(serde_json::to_value(&h).unwrap()).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn validation_names_fields() {
        let asn = AsNumber::new(65000).unwrap();
        let mut h = host();
        h.ipv4 = None;
        assert_eq!(h.validate().unwrap_err().field, "ip_addr_v4");
        h.ipv4 = Some("127.0.0.1".parse().unwrap());
        assert_eq!(h.validate().unwrap_err().field, "ip_addr_v4");
        let mut h = host();
        h.ipv6 = Some("ff02::1".parse().unwrap());
        assert_eq!(h.validate().unwrap_err().field, "ip_addr_v6");
        let mut h = host();
        h.peers
            .push(BgpPeer::new("172.17.8.101".parse().unwrap(), asn));
        assert!(h.validate().unwrap_err().reason.contains("itself"));
        let mut h = host();
        h.route_reflector = Some(RouteReflector {
            cluster_id: "0.0.0.0".parse().unwrap(),
            clients: vec![],
        });
        assert_eq!(h.validate().unwrap_err().field, "cluster_id");
        h.route_reflector = Some(RouteReflector {
            cluster_id: "1.0.0.1".parse().unwrap(),
            clients: vec![
                "172.17.8.102".parse().unwrap(),
                "172.17.8.102".parse().unwrap(),
            ],
        });
        assert_eq!(h.validate().unwrap_err().field, "clients");
        h.route_reflector.as_mut().unwrap().clients.pop();
        assert_eq!(h.validate(), Ok(()));
        let mut h = host();
        h.name = "bad name".into();
        assert_eq!(h.validate().unwrap_err().field, "name");
    }
}
