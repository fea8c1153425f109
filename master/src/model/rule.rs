//! Firewall rules: the entries of a profile's inbound and outbound lists.
//!
//! Role: the typed [`Rule`] with the original's JSON keys (`action`, `protocol`, `src_tag`, `src_net`,
//! `src_ports`, `dst_tag`, `dst_net`, `dst_ports`, `icmp_type`, `icmp_code`, `ip_version`), absent fields
//! omitted; its field-by-field JSON reader (so a bad value is reported against its own field); and
//! [`Rule::validate`], the cross-field checks (ports only with tcp/udp, ICMP type/code 0–254 and code only
//! with type, icmp only for IPv4 and icmpv6 only for IPv6, nets of one IP version, no empty port lists).
//!
//! Inputs: JSON values or values built by the rule grammar. Outputs: `Rule` or a [`ValidationError`].

use std::{fmt, net::IpAddr, str::FromStr};

use ipnet::IpNet;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{names::validate_name, PortRange, ValidationError};

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let the packet through (this profile accepts it).
    Allow,
    /// Drop the packet.
    Deny,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        })
    }
}

/// The IP protocol a rule matches. Numbers with a name (6, 17, 1, 58) are stored as the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP for IPv4 (1).
    Icmp,
    /// ICMP for IPv6 (58).
    Icmpv6,
    /// Any other protocol by number.
    Number(u8),
}

impl Protocol {
    /// The protocol for an IANA number, named where it has a name here.
    pub fn from_number(n: u8) -> Self {
        match n {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            1 => Protocol::Icmp,
            58 => Protocol::Icmpv6,
            n => Protocol::Number(n),
        }
    }

    /// Whether rules with this protocol may match ports.
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }

    /// Whether rules with this protocol may match ICMP type and code.
    pub fn is_icmp(self) -> bool {
        matches!(self, Protocol::Icmp | Protocol::Icmpv6)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::Icmp => f.write_str("icmp"),
            Protocol::Icmpv6 => f.write_str("icmpv6"),
            Protocol::Number(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for Protocol {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "icmp" => Ok(Protocol::Icmp),
            "icmpv6" => Ok(Protocol::Icmpv6),
            n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                n.parse::<u8>().map(Protocol::from_number).map_err(|_| {
                    ValidationError::new("protocol", format!("protocol number {s} is above 255"))
                })
            }
            _ => Err(ValidationError::new(
                "protocol",
                format!("`{s}` is not a protocol; use tcp, udp, icmp, icmpv6 or a number 0–255"),
            )),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Protocol::Number(n) => s.serialize_u8(*n),
            named => s.collect_str(named),
        }
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Protocol::from_json(&Value::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl Protocol {
    fn from_json(v: &Value) -> Result<Self, ValidationError> {
        match v {
            Value::String(s) => s.parse(),
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .map(Protocol::from_number)
                .ok_or_else(|| ValidationError::new("protocol", format!("protocol number {n} is not 0–255"))),
            other => Err(ValidationError::new(
                "protocol",
                format!("{other} is not a protocol; use \"tcp\", \"udp\", \"icmp\", \"icmpv6\" or a number"),
            )),
        }
    }
}

/// The IP version a rule applies to; serialized as the number 4 or 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpVersion {
    /// The version of a network.
    pub fn of_net(net: &IpNet) -> Self {
        match net {
            IpNet::V4(_) => IpVersion::V4,
            IpNet::V6(_) => IpVersion::V6,
        }
    }

    /// 4 or 6.
    pub fn number(self) -> u8 {
        match self {
            IpVersion::V4 => 4,
            IpVersion::V6 => 6,
        }
    }
}

impl fmt::Display for IpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IPv{}", self.number())
    }
}

impl Serialize for IpVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.number())
    }
}

impl<'de> Deserialize<'de> for IpVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u64::deserialize(d)? {
            4 => Ok(IpVersion::V4),
            6 => Ok(IpVersion::V6),
            n => Err(de::Error::custom(format!("ip_version: {n} is not 4 or 6"))),
        }
    }
}

/// One firewall rule. Every match field is optional; absent means "any".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Rule {
    /// allow or deny.
    pub action: Action,
    /// The protocol; ports need tcp/udp, ICMP type/code need icmp/icmpv6.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Source must be an endpoint whose profiles carry this tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_tag: Option<String>,
    /// Source address must be in this network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_net: Option<IpNet>,
    /// Source port must be one of these.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_ports: Option<Vec<PortRange>>,
    /// Destination must be an endpoint whose profiles carry this tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_tag: Option<String>,
    /// Destination address must be in this network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_net: Option<IpNet>,
    /// Destination port must be one of these.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_ports: Option<Vec<PortRange>>,
    /// ICMP type, 0–254.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    /// ICMP code, 0–254, only with `icmp_type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    /// Restrict the rule to IPv4 or IPv6.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<IpVersion>,
}

/// The JSON keys a rule may have.
pub const RULE_FIELDS: &[&str] = &[
    "action",
    "protocol",
    "src_tag",
    "src_net",
    "src_ports",
    "dst_tag",
    "dst_net",
    "dst_ports",
    "icmp_type",
    "icmp_code",
    "ip_version",
];

impl Rule {
    /// A rule with only an action (matches everything).
    pub fn new(action: Action) -> Self {
        Rule {
            action,
            protocol: None,
            src_tag: None,
            src_net: None,
            src_ports: None,
            dst_tag: None,
            dst_net: None,
            dst_ports: None,
            icmp_type: None,
            icmp_code: None,
            ip_version: None,
        }
    }

    /// The IP version this rule is limited to: `ip_version`, else that of its nets, else that of its
    /// protocol (icmp → 4, icmpv6 → 6). `None` if it applies to both.
    pub fn effective_ip_version(&self) -> Option<IpVersion> {
        self.ip_version
            .or_else(|| self.src_net.as_ref().map(IpVersion::of_net))
            .or_else(|| self.dst_net.as_ref().map(IpVersion::of_net))
            .or(match self.protocol {
                Some(Protocol::Icmp) => Some(IpVersion::V4),
                Some(Protocol::Icmpv6) => Some(IpVersion::V6),
                _ => None,
            })
    }

    /// The tags this rule refers to (source first).
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.src_tag
            .iter()
            .chain(self.dst_tag.iter())
            .map(String::as_str)
    }

    /// Read a rule from JSON, one field at a time, so that an error names the field it is in, then
    /// [`validate`](Rule::validate) it. `null` values count as absent; unknown keys are rejected.
    pub fn from_json(v: &Value) -> Result<Rule, ValidationError> {
        let rule = Rule::from_json_unchecked(v)?;
        rule.validate()?;
        Ok(rule)
    }

    fn from_json_unchecked(v: &Value) -> Result<Rule, ValidationError> {
        let obj = v.as_object().ok_or_else(|| {
            ValidationError::new(
                "rule",
                format!(
                    "{v} is not a rule; a rule is a JSON object like {{\"action\": \"allow\"}}"
                ),
            )
        })?;
        let mut rule = Rule::new(Action::Allow);
        let mut action = None;
        for (key, val) in obj {
            if val.is_null() {
                continue;
            }
            let k = key.as_str();
            match k {
                "action" => {
                    action = Some(match val.as_str() {
                        Some("allow") => Action::Allow,
                        Some("deny") => Action::Deny,
                        _ => {
                            return Err(ValidationError::new(
                                k,
                                format!("{val} is not an action; use \"allow\" or \"deny\""),
                            ))
                        }
                    })
                }
                "protocol" => rule.protocol = Some(Protocol::from_json(val)?),
                "src_tag" | "dst_tag" => {
                    let tag = val.as_str().ok_or_else(|| {
                        ValidationError::new(k, format!("{val} is not a tag name; use a string"))
                    })?;
                    *if k == "src_tag" {
                        &mut rule.src_tag
                    } else {
                        &mut rule.dst_tag
                    } = Some(tag.to_owned());
                }
                "src_net" | "dst_net" => {
                    let s = val.as_str().ok_or_else(|| {
                        ValidationError::new(
                            k,
                            format!("{val} is not a network; use a string like \"10.0.0.0/8\""),
                        )
                    })?;
                    *if k == "src_net" {
                        &mut rule.src_net
                    } else {
                        &mut rule.dst_net
                    } = Some(parse_net(k, s)?);
                }
                "src_ports" | "dst_ports" => {
                    let items = val.as_array().ok_or_else(|| {
                        ValidationError::new(
                            k,
                            format!("{val} is not a list; use e.g. [80, \"2048:4000\"]"),
                        )
                    })?;
                    let ports = items
                        .iter()
                        .map(|i| PortRange::from_json(k, i))
                        .collect::<Result<Vec<_>, _>>()?;
                    *if k == "src_ports" {
                        &mut rule.src_ports
                    } else {
                        &mut rule.dst_ports
                    } = Some(ports);
                }
                "icmp_type" | "icmp_code" => {
                    let n = val
                        .as_u64()
                        .and_then(|n| u8::try_from(n).ok())
                        .filter(|n| *n <= 254)
                        .ok_or_else(|| ValidationError::new(k, format!("{val} is not 0–254")))?;
                    *if k == "icmp_type" {
                        &mut rule.icmp_type
                    } else {
                        &mut rule.icmp_code
                    } = Some(n);
                }
                "ip_version" => {
                    rule.ip_version = Some(match val.as_u64() {
                        Some(4) => IpVersion::V4,
                        Some(6) => IpVersion::V6,
                        _ => return Err(ValidationError::new(k, format!("{val} is not 4 or 6"))),
                    })
                }
                other => {
                    return Err(ValidationError::new(
                        other,
                        format!("unknown rule field; rules have {}", RULE_FIELDS.join(", ")),
                    ))
                }
            }
        }
        rule.action = action.ok_or_else(|| {
            ValidationError::new(
                "action",
                "missing; every rule needs \"action\": \"allow\" or \"deny\"",
            )
        })?;
        Ok(rule)
    }

    /// Check the rule's fields together. Does not change the rule.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (field, tag) in [("src_tag", &self.src_tag), ("dst_tag", &self.dst_tag)] {
            if let Some(t) = tag {
                validate_name(field, t)?;
            }
        }
        for (field, ports) in [
            ("src_ports", &self.src_ports),
            ("dst_ports", &self.dst_ports),
        ] {
            let Some(ports) = ports else { continue };
            match self.protocol {
                Some(p) if p.has_ports() => {}
                Some(p) => {
                    return Err(ValidationError::new(
                        field,
                        format!("ports are only allowed with protocol tcp or udp, not {p}"),
                    ))
                }
                None => {
                    return Err(ValidationError::new(
                        field,
                        "ports are only allowed with protocol tcp or udp; add a protocol",
                    ))
                }
            }
            if ports.is_empty() {
                return Err(ValidationError::new(
                    field,
                    "the port list is empty; list at least one port or leave the field out to match any port",
                ));
            }
            if let Some(p) = ports.iter().find(|p| p.lo > p.hi) {
                return Err(ValidationError::new(
                    field,
                    format!(
                        "range {}:{} is backwards; write the lower port first",
                        p.lo, p.hi
                    ),
                ));
            }
        }
        for (field, v) in [("icmp_type", self.icmp_type), ("icmp_code", self.icmp_code)] {
            let Some(v) = v else { continue };
            if !self.protocol.is_some_and(Protocol::is_icmp) {
                return Err(ValidationError::new(
                    field,
                    "only allowed with protocol icmp or icmpv6",
                ));
            }
            if v == 255 {
                return Err(ValidationError::new(
                    field,
                    "255 is not a valid value (it means \"any\" to the kernel); use 0–254 or leave it out",
                ));
            }
        }
        if self.icmp_code.is_some() && self.icmp_type.is_none() {
            return Err(ValidationError::new(
                "icmp_code",
                "a code needs a type; set icmp_type too",
            ));
        }
        for (field, net) in [("src_net", &self.src_net), ("dst_net", &self.dst_net)] {
            let Some(net) = net else { continue };
            if net.trunc() != *net {
                return Err(ValidationError::new(
                    field,
                    format!("{net} has host bits set; did you mean {}?", net.trunc()),
                ));
            }
            if let Some(v) = self.ip_version {
                if IpVersion::of_net(net) != v {
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "{net} is {} but ip_version is {}",
                            IpVersion::of_net(net),
                            v.number()
                        ),
                    ));
                }
            }
        }
        if let (Some(s), Some(d)) = (&self.src_net, &self.dst_net) {
            if IpVersion::of_net(s) != IpVersion::of_net(d) {
                return Err(ValidationError::new(
                    "dst_net",
                    format!(
                        "{d} is {} but src_net {s} is {}; a rule applies to one IP version",
                        IpVersion::of_net(d),
                        IpVersion::of_net(s)
                    ),
                ));
            }
        }
        let nets_version = self
            .ip_version
            .or_else(|| self.src_net.as_ref().map(IpVersion::of_net))
            .or_else(|| self.dst_net.as_ref().map(IpVersion::of_net));
        match (self.protocol, nets_version) {
            (Some(Protocol::Icmp), Some(IpVersion::V6)) => Err(ValidationError::new(
                "protocol",
                "icmp is ICMP for IPv4 but this rule is for IPv6; use icmpv6",
            )),
            (Some(Protocol::Icmpv6), Some(IpVersion::V4)) => Err(ValidationError::new(
                "protocol",
                "icmpv6 is ICMP for IPv6 but this rule is for IPv4; use icmp",
            )),
            _ => Ok(()),
        }
    }
}

impl<'de> Deserialize<'de> for Rule {
    /// Field-level checks only (types and ranges); call [`Rule::validate`] for the cross-field ones.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Rule::from_json_unchecked(&Value::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// Parse a network `10.0.0.0/8` or a bare address (taken as /32 or /128); errors name `field`.
pub fn parse_net(field: &str, s: &str) -> Result<IpNet, ValidationError> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ValidationError::new(
                field,
                format!("`{s}` is not a network; write a CIDR like 10.0.0.0/8 or fd00::/64"),
            )
        })
}

#[cfg(test)]
#[path = "rule_tests.rs"]
mod tests;
