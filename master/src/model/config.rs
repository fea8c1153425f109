//! Cluster configuration: Felix's settings, cluster-wide and per host.
//!
//! Role: the original's `/calico/v1/config/<Key>` (every node) and `/calico/v1/host/<h>/config/<Key>`
//! (one node, overriding the cluster-wide value), whose values are plain strings (not JSON), as
//! `etcdctl set /calico/v1/config/LogSeverityScreen INFO` wrote them. Known keys ([`KNOWN_KEYS`]) have
//! their values checked; other keys (settings of a later Felix) are accepted when the name is a word
//! and the value printable. Inputs: key names and values. Outputs: the value to store, or a
//! [`ValidationError`] naming `key` or `value`; [`effective`] merges the two levels for a node.

use std::collections::BTreeMap;

use super::ValidationError;

/// Longest key name accepted.
pub const MAX_KEY_LEN: usize = 64;
/// Longest value accepted.
pub const MAX_VALUE_LEN: usize = 1024;

/// A known setting: its name, what it takes (for messages and `config show`), and its check.
#[derive(Debug, Clone, Copy)]
pub struct KnownKey {
    /// The key, e.g. `DefaultEndpointToHostAction`.
    pub name: &'static str,
    /// What a value must be, in words.
    pub takes: &'static str,
    check: fn(&str) -> bool,
}

fn one_of(v: &str, options: &[&str]) -> bool {
    options.contains(&v)
}

fn severity(v: &str) -> bool {
    one_of(
        v,
        &["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NONE"],
    )
}

fn uint_in(v: &str, lo: u64, hi: u64) -> bool {
    !v.starts_with('+') && v.parse::<u64>().is_ok_and(|n| (lo..=hi).contains(&n))
}

/// The settings of the original's Felix whose values are checked.
pub const KNOWN_KEYS: &[KnownKey] = &[
    KnownKey {
        name: "DefaultEndpointToHostAction",
        takes: "DROP, RETURN or ACCEPT",
        check: |v| one_of(v, &["DROP", "RETURN", "ACCEPT"]),
    },
    KnownKey {
        name: "InterfacePrefix",
        takes: "1-10 letters and digits, e.g. cali",
        check: |v| (1..=10).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric()),
    },
    KnownKey {
        name: "LogSeverityFile",
        takes: "DEBUG, INFO, WARNING, ERROR, CRITICAL or NONE",
        check: severity,
    },
    KnownKey {
        name: "LogSeverityScreen",
        takes: "DEBUG, INFO, WARNING, ERROR, CRITICAL or NONE",
        check: severity,
    },
    KnownKey {
        name: "LogSeveritySys",
        takes: "DEBUG, INFO, WARNING, ERROR, CRITICAL or NONE",
        check: severity,
    },
    KnownKey {
        name: "LogFilePath",
        takes: "an absolute path or none",
        check: |v| v == "none" || (v.starts_with('/') && !v.contains(char::is_whitespace)),
    },
    KnownKey {
        name: "IpInIpEnabled",
        takes: "true or false",
        check: |v| one_of(v, &["true", "false"]),
    },
    KnownKey {
        name: "IpInIpMtu",
        takes: "an MTU from 576 to 9000",
        check: |v| uint_in(v, 576, 9000),
    },
    KnownKey {
        name: "ResyncIntervalSecs",
        takes: "whole seconds from 0 (never) to 86400",
        check: |v| uint_in(v, 0, 86_400),
    },
    KnownKey {
        name: "ReportingIntervalSecs",
        takes: "whole seconds from 0 (never) to 86400",
        check: |v| uint_in(v, 0, 86_400),
    },
    KnownKey {
        name: "StartupCleanupDelay",
        takes: "whole seconds from 0 to 86400",
        check: |v| uint_in(v, 0, 86_400),
    },
    KnownKey {
        name: "MetadataAddr",
        takes: "an IP address, a host name or None",
        check: |v| {
            v == "None"
                || v.parse::<std::net::IpAddr>().is_ok()
                || super::validate_hostname("value", v).is_ok()
        },
    },
    KnownKey {
        name: "MetadataPort",
        takes: "a port from 1 to 65535",
        check: |v| uint_in(v, 1, 65_535),
    },
];

/// The known setting called `name`, if any.
pub fn known_key(name: &str) -> Option<&'static KnownKey> {
    KNOWN_KEYS.iter().find(|k| k.name == name)
}

/// Check a key name: a letter, then letters, digits and `_`, at most [`MAX_KEY_LEN`] (Felix's setting
/// names are CamelCase words).
pub fn validate_config_key(name: &str) -> Result<(), ValidationError> {
    let ok = name.len() <= MAX_KEY_LEN
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "key",
            format!(
                "`{name}` is not a setting name: use a letter, then letters, digits or _ (at most {MAX_KEY_LEN}), e.g. DefaultEndpointToHostAction"
            ),
        ))
    }
}

/// Check a setting: the key's name, and the value against the key's rule when the key is known (else
/// printable ASCII, 1 to [`MAX_VALUE_LEN`] characters).
pub fn validate_config(name: &str, value: &str) -> Result<(), ValidationError> {
    validate_config_key(name)?;
    if let Some(k) = known_key(name) {
        if !(k.check)(value) {
            return Err(ValidationError::new(
                "value",
                format!("`{value}` is not a valid {name}: it takes {}", k.takes),
            ));
        }
        return Ok(());
    }
    if value.is_empty()
        || value.len() > MAX_VALUE_LEN
        || !value.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return Err(ValidationError::new(
            "value",
            format!("a value is 1 to {MAX_VALUE_LEN} printable ASCII characters"),
        ));
    }
    Ok(())
}

/// A node's effective settings: the cluster-wide ones, overridden by the node's own.
pub fn effective(
    global: &BTreeMap<String, String>,
    host: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = global.clone();
    if let Some(h) = host {
        out.extend(h.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_check_their_values() {
        for (k, good, bad) in [
            ("DefaultEndpointToHostAction", "RETURN", "drop"),
            ("InterfacePrefix", "tap", "cali-"),
            ("LogSeverityScreen", "INFO", "VERBOSE"),
            ("LogFilePath", "/var/log/calico/felix.log", "relative.log"),
            ("IpInIpEnabled", "true", "yes"),
            ("IpInIpMtu", "1440", "100"),
            ("ResyncIntervalSecs", "0", "-1"),
            ("MetadataAddr", "169.254.169.254", "not a host"),
            ("MetadataPort", "8775", "70000"),
            ("StartupCleanupDelay", "30", "+30"),
        ] {
            validate_config(k, good).unwrap_or_else(|e| panic!("{k}={good}: {e}"));
            let e = validate_config(k, bad).expect_err(bad);
            assert_eq!(e.field, "value", "{k}={bad}");
            assert!(e.reason.contains(k) && e.reason.contains(bad), "{e}");
        }
    }

    #[test]
    fn unknown_keys_need_a_word_and_a_printable_value() {
        validate_config("SomeLaterSetting", "anything at all").unwrap();
        for bad in [
            "",
            "9Lives",
            "has space",
            "a/b",
            &"K".repeat(MAX_KEY_LEN + 1),
        ] {
            assert_eq!(
                validate_config(bad, "x").unwrap_err().field,
                "key",
                "{bad:?}"
            );
        }
        for bad in ["", "tab\there", &"v".repeat(MAX_VALUE_LEN + 1)] {
            assert_eq!(validate_config("Other", bad).unwrap_err().field, "value");
        }
    }

    #[test]
    fn host_settings_override_global_ones() {
        let g: BTreeMap<String, String> = [("A", "1"), ("B", "2")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let h: BTreeMap<String, String> = [("B", "3"), ("C", "4")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let e = effective(&g, Some(&h));
        assert_eq!(
            e.into_iter().collect::<Vec<_>>(),
            [("A", "1"), ("B", "3"), ("C", "4")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(effective(&g, None), g);
    }
}
