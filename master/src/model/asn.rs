//! BGP AS numbers (4-byte, RFC 6793), parsed from plain (`64512`) or asdot (`1.10`) notation.
//!
//! Inputs: strings from the CLI and JSON numbers or strings from the datastore. Output: [`AsNumber`], which
//! serializes as a JSON number and accepts a number or a string (the original stored strings in some keys).

use std::{fmt, str::FromStr};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::ValidationError;

/// A BGP AS number, 1–4294967295 (0 is reserved and rejected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AsNumber(u32);

impl AsNumber {
    /// The AS every node uses unless configured otherwise (64511, as in the original).
    pub const DEFAULT: AsNumber = AsNumber(64511);

    /// An AS number from its numeric value; `None` for the reserved 0.
    pub fn new(n: u32) -> Option<Self> {
        (n != 0).then_some(AsNumber(n))
    }

    /// The numeric value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Parse `64512` or asdot `1.10`; errors name `field`.
    pub fn parse(field: &str, s: &str) -> Result<Self, ValidationError> {
        let bad = |why: &str| {
            ValidationError::new(
                field,
                format!("`{s}` is not an AS number: {why}; use 1–4294967295 or asdot like 1.10"),
            )
        };
        let n: u64 = match s.split_once('.') {
            None => s
                .parse::<u64>()
                .ok()
                .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| bad("not a number"))?,
            Some((hi, lo)) => {
                let part = |p: &str| {
                    p.parse::<u64>()
                        .ok()
                        .filter(|v| *v <= 65535 && p.bytes().all(|b| b.is_ascii_digit()))
                };
                match (part(hi), part(lo)) {
                    (Some(h), Some(l)) => h * 65536 + l,
                    _ => return Err(bad("each asdot half must be 0–65535")),
                }
            }
        };
        match u32::try_from(n) {
            Ok(0) => Err(bad("AS 0 is reserved")),
            Ok(v) => Ok(AsNumber(v)),
            Err(_) => Err(bad("larger than 4294967295")),
        }
    }

    /// The asdot form (`1.10`) for AS numbers above 65535, the plain number otherwise.
    pub fn to_asdot(self) -> String {
        if self.0 > 65535 {
            format!("{}.{}", self.0 >> 16, self.0 & 0xffff)
        } else {
            self.0.to_string()
        }
    }
}

impl fmt::Display for AsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for AsNumber {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AsNumber::parse("as_num", s)
    }
}

impl Serialize for AsNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let s = match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string(),
            Raw::S(s) => s,
        };
        AsNumber::parse("as_num", &s).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_asdot() {
        assert_eq!(
            AsNumber::parse("as_num", "64512").map(AsNumber::get),
            Ok(64512)
        );
        assert_eq!(
            AsNumber::parse("as_num", "1.10").map(AsNumber::get),
            Ok(65546)
        );
        assert_eq!(
            AsNumber::parse("as_num", "4294967295").map(AsNumber::get),
            Ok(u32::MAX)
        );
        assert_eq!(
            AsNumber::parse("as_num", "65535.65535").map(AsNumber::get),
            Ok(u32::MAX)
        );
        assert_eq!(
            AsNumber::new(65546).map(AsNumber::to_asdot).as_deref(),
            Some("1.10")
        );
        assert_eq!(
            AsNumber::new(64511).map(AsNumber::to_asdot).as_deref(),
            Some("64511")
        );
    }

    #[test]
    fn rejects_bad() {
        for s in [
            "0",
            "0.0",
            "4294967296",
            "-1",
            "+5",
            "",
            "abc",
            "1.65536",
            "1.",
            ".1",
            "1.2.3",
            " 1",
        ] {
            let e = AsNumber::parse("as_num", s).expect_err(s);
            assert_eq!(e.field, "as_num");
        }
        assert!(AsNumber::parse("as_num", "0")
            .unwrap_err()
            .reason
            .contains("reserved"));
    }

    #[test]
    fn serde_number_or_string() {
        let a: AsNumber = serde_json::from_str("64512").unwrap();
        let b: AsNumber = serde_json::from_str("\"64512\"").unwrap();
        let c: AsNumber = serde_json::from_str("\"0.64512\"").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(serde_json::to_string(&a).unwrap(), "64512");
        assert!(serde_json::from_str::<AsNumber>("0").is_err());
    }
}
