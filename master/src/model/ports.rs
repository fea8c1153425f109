//! Port items of a rule's `src_ports` / `dst_ports`: single ports and inclusive ranges.
//!
//! Inputs: JSON items (`80` or `"2048:4000"`, as the original stored them) and the CLI's comma list
//! (`80,443,2048:4000`). Outputs: [`PortRange`] values, serialized back in the same shapes (a number for a
//! single port, a `"lo:hi"` string for a range). A list may hold any number of items (Felix splits them
//! into multiport chunks of 15); an empty list is rejected by rule validation.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::ValidationError;

/// One port or an inclusive range `lo..=hi` (`lo == hi` for a single port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port (inclusive), `>= lo`.
    pub hi: u16,
}

impl PortRange {
    /// A single port.
    pub fn single(p: u16) -> Self {
        PortRange { lo: p, hi: p }
    }

    /// A range; `None` unless `lo <= hi`.
    pub fn range(lo: u16, hi: u16) -> Option<Self> {
        (lo <= hi).then_some(PortRange { lo, hi })
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }

    /// Parse one item: `80` or `2048:4000`; errors name `field`.
    pub fn parse(field: &str, s: &str) -> Result<Self, ValidationError> {
        let num = |p: &str| -> Result<u16, ValidationError> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ValidationError::new(
                    field,
                    format!("`{s}` is not a port or range; write a port like 80 or a range like 2048:4000"),
                ));
            }
            p.parse::<u16>().map_err(|_| {
                ValidationError::new(
                    field,
                    format!("port `{p}` is out of range; ports are 0–65535"),
                )
            })
        };
        match s.split_once(':') {
            None => Ok(PortRange::single(num(s)?)),
            Some((lo, hi)) => {
                let (lo, hi) = (num(lo)?, num(hi)?);
                PortRange::range(lo, hi).ok_or_else(|| {
                    ValidationError::new(
                        field,
                        format!("range `{s}` is backwards; write the lower port first ({hi}:{lo})"),
                    )
                })
            }
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}:{}", self.lo, self.hi)
        }
    }
}

/// Parse the CLI's comma-separated list `80,443,2048:4000`; errors name `field`.
pub fn parse_ports(field: &str, s: &str) -> Result<Vec<PortRange>, ValidationError> {
    if s.is_empty() {
        return Err(ValidationError::new(
            field,
            "the port list is empty; give ports like 80,443 or 2048:4000",
        ));
    }
    s.split(',')
        .map(|item| PortRange::parse(field, item))
        .collect()
}

/// Format a list back into the CLI's comma-separated form.
pub fn format_ports(ports: &[PortRange]) -> String {
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.lo == self.hi {
            s.serialize_u16(self.lo)
        } else {
            s.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        PortRange::from_json("ports", &v).map_err(de::Error::custom)
    }
}

impl PortRange {
    /// One item from JSON: a number 0–65535 or a string `"80"` / `"2048:4000"`.
    pub fn from_json(field: &str, v: &serde_json::Value) -> Result<Self, ValidationError> {
        match v {
            serde_json::Value::Number(n) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .map(PortRange::single)
                .ok_or_else(|| {
                    ValidationError::new(
                        field,
                        format!("port {n} is out of range; ports are 0–65535"),
                    )
                }),
            serde_json::Value::String(s) => PortRange::parse(field, s),
            other => Err(ValidationError::new(
                field,
                format!(
                    "{other} is not a port; use a number like 80 or a string like \"2048:4000\""
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_list() {
        let p = parse_ports("dst_ports", "80,443,2048:4000,0,65535").unwrap();
        assert_eq!(
            p,
            vec![
                PortRange::single(80),
                PortRange::single(443),
                PortRange { lo: 2048, hi: 4000 },
                PortRange::single(0),
                PortRange::single(65535),
            ]
        );
        assert_eq!(format_ports(&p), "80,443,2048:4000,0,65535");
        assert!(p[2].contains(3000) && !p[2].contains(4001));
    }

    #[test]
    fn bad_lists_name_field() {
        for (s, why) in [
            ("", "empty"),
            ("80,", "not a port"),
            ("65536", "out of range"),
            ("4000:2048", "backwards"),
            ("a", "not a port"),
            ("-1", "not a port"),
            ("1:2:3", "not a port"),
            ("80, 443", "not a port"),
        ] {
            let e = parse_ports("src_ports", s).expect_err(s);
            assert_eq!(e.field, "src_ports");
            assert!(e.reason.contains(why), "{s}: {}", e.reason);
        }
    }

    #[test]
    fn json_shapes() {
        let p = vec![PortRange::single(80), PortRange { lo: 2048, hi: 4000 }];
        assert_eq!(serde_json::to_value(&p).unwrap(), json!([80, "2048:4000"]));
        let back: Vec<PortRange> = serde_json::from_value(json!([80, "2048:4000"])).unwrap();
        assert_eq!(back, p);
        let s: Vec<PortRange> = serde_json::from_value(json!(["443"])).unwrap();
        assert_eq!(s, vec![PortRange::single(443)]);
        assert!(serde_json::from_value::<Vec<PortRange>>(json!([70000])).is_err());
        assert!(serde_json::from_value::<Vec<PortRange>>(json!([true])).is_err());
    }
}
