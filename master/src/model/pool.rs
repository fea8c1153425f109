//! IP pools: the ranges workload addresses come from.
//!
//! Role: [`IpPool`] with the original's JSON (`/calico/v1/ipam/v4/pool/192.168.0.0-16` =
//! `{"cidr":"192.168.0.0/16","ipip":"tunl0","masquerade":true}`): `ipip` holds the tunnel device name when
//! IP-in-IP is on, `masquerade` is NAT-outgoing, `disabled` (a later addition) stops new assignments; each
//! is omitted when off. Inputs: `calicoctl pool add` / API writes. Outputs: validated pools, the key suffix,
//! and [`IpPool::check_overlap`] against the existing pools.

use ipnet::IpNet;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::{rule::IpVersion, ValidationError};

/// The tunnel device the original named in `"ipip"`.
pub const IPIP_DEVICE: &str = "tunl0";

/// An IP pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpPool {
    /// The pool's network (no host bits).
    pub cidr: IpNet,
    /// Traffic to other hosts goes through IP-in-IP (IPv4 only).
    pub ipip: bool,
    /// Traffic leaving the pools is masqueraded (NAT-outgoing).
    pub nat_outgoing: bool,
    /// No new addresses are assigned from this pool.
    pub disabled: bool,
}

impl IpPool {
    /// An enabled pool without IPIP or NAT.
    pub fn new(cidr: IpNet) -> Self {
        IpPool {
            cidr,
            ipip: false,
            nat_outgoing: false,
            disabled: false,
        }
    }

    /// IPv4 or IPv6.
    pub fn version(&self) -> IpVersion {
        IpVersion::of_net(&self.cidr)
    }

    /// The etcd key suffix: `192.168.0.0-16`.
    pub fn key_name(&self) -> String {
        self.cidr.to_string().replace('/', "-")
    }

    /// The original's etcd key: `/calico/v1/ipam/v4/pool/192.168.0.0-16`.
    pub fn etcd_key(&self) -> String {
        Self::etcd_key_for(&self.cidr)
    }

    /// The etcd key of the pool with this CIDR (see [`IpPool::etcd_key`]).
    pub fn etcd_key_for(cidr: &IpNet) -> String {
        format!(
            "/calico/v1/ipam/v{}/pool/{}",
            IpVersion::of_net(cidr).number(),
            cidr.to_string().replace('/', "-")
        )
    }

    /// Check the CIDR has no host bits, holds at least one assignable address (the pool's network
    /// address is never assigned, so a /32 or /128 pool would be empty) and IPIP is only on IPv4.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let c = self.cidr;
        if c.trunc() != c {
            return Err(ValidationError::new(
                "cidr",
                format!("{c} has host bits set; did you mean {}?", c.trunc()),
            ));
        }
        if c.prefix_len() == c.max_prefix_len() {
            return Err(ValidationError::new(
                "cidr",
                format!("{c} holds only its network address, which is never assigned; use a shorter prefix"),
            ));
        }
        if self.ipip && self.version() == IpVersion::V6 {
            return Err(ValidationError::new(
                "ipip",
                "IP-in-IP is only supported for IPv4 pools",
            ));
        }
        Ok(())
    }

    /// Reject a new pool that overlaps one of `existing` (other than an identical CIDR, which is an
    /// update of that pool).
    pub fn check_overlap(&self, existing: &[IpPool]) -> Result<(), ValidationError> {
        match existing.iter().find(|p| {
            p.cidr != self.cidr && (p.cidr.contains(&self.cidr) || self.cidr.contains(&p.cidr))
        }) {
            Some(p) => Err(ValidationError::new(
                "cidr",
                format!(
                    "{} overlaps the existing pool {}; remove it first or choose another range",
                    self.cidr, p.cidr
                ),
            )),
            None => Ok(()),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Raw {
    cidr: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipip: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    masquerade: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disabled: Option<bool>,
}

impl Serialize for IpPool {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Raw {
            cidr: self.cidr,
            ipip: self.ipip.then(|| IPIP_DEVICE.into()),
            masquerade: self.nat_outgoing.then_some(true),
            disabled: self.disabled.then_some(true),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for IpPool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Raw::deserialize(d)?;
        let ipip = match raw.ipip {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => b,
            Some(serde_json::Value::String(s)) => !s.is_empty(),
            Some(other) => {
                return Err(de::Error::custom(format!(
                    "ipip: {other} is not a tunnel device name or true/false"
                )))
            }
        };
        Ok(IpPool {
            cidr: raw.cidr,
            ipip,
            nat_outgoing: raw.masquerade.unwrap_or(false),
            disabled: raw.disabled.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_matches_reference() {
        let mut p = IpPool::new("192.168.0.0/16".parse().unwrap());
        p.ipip = true;
        p.nat_outgoing = true;
        let v = json!({"cidr": "192.168.0.0/16", "ipip": "tunl0", "masquerade": true});
        assert_eq!(serde_json::to_value(&p).unwrap(), v);
        assert_eq!(serde_json::from_value::<IpPool>(v).unwrap(), p);
        assert_eq!(p.key_name(), "192.168.0.0-16");
        assert_eq!(p.etcd_key(), "/calico/v1/ipam/v4/pool/192.168.0.0-16");
        let plain = IpPool::new("fd80:24e2:f998:72d6::/64".parse().unwrap());
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            json!({"cidr": "fd80:24e2:f998:72d6::/64"})
        );
        let mut d = plain.clone();
        d.disabled = true;
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"cidr": "fd80:24e2:f998:72d6::/64", "disabled": true})
        );
        let b: IpPool =
            serde_json::from_value(json!({"cidr": "10.0.0.0/8", "ipip": false})).unwrap();
        assert!(!b.ipip);
        assert!(
            serde_json::from_value::<IpPool>(json!({"cidr": "10.0.0.0/8", "ipip": 3})).is_err()
        );
    }

    #[test]
    fn validation() {
        let p = |s: &str| IpPool::new(s.parse().unwrap());
        assert_eq!(p("10.0.0.0/30").validate(), Ok(()));
        assert_eq!(p("10.0.0.0/31").validate(), Ok(()));
        assert!(p("10.0.0.1/24")
            .validate()
            .unwrap_err()
            .reason
            .contains("10.0.0.0/24"));
        assert_eq!(p("10.0.0.1/32").validate().unwrap_err().field, "cidr");
        assert_eq!(p("fd00::/128").validate().unwrap_err().field, "cidr");
        let mut v6 = p("fd00::/64");
        v6.ipip = true;
        assert_eq!(v6.validate().unwrap_err().field, "ipip");
        let existing = vec![p("10.0.0.0/16"), p("fd00::/64")];
        assert!(p("10.0.1.0/24").check_overlap(&existing).is_err());
        assert!(p("10.0.0.0/8").check_overlap(&existing).is_err());
        assert!(p("10.1.0.0/16").check_overlap(&existing).is_ok());
        assert!(p("10.0.0.0/16").check_overlap(&existing).is_ok());
    }
}
