//! Name rules: profile and tag names, host names, interface names.
//!
//! Role: the checks every named object goes through before it is stored.
//! Inputs: a field name (for the error) and the candidate string. Output: `Ok(())` or a
//! [`ValidationError`] naming the field.
//!
//! Profile and tag names are 1–40 characters of `[A-Za-z0-9_.-]` and never a word of the calicoctl
//! grammar (compared case-insensitively), because `calicoctl profile <NAME> rule add …` could not tell
//! them apart from keywords. Two refinements over the bare character class: a name may not start with `-`
//! (the CLI would read it as an option) and may not consist only of dots (`.` and `..` are path components
//! in the etcd key layout `/calico/v1/policy/profile/<name>/…`).

use super::ValidationError;

/// Longest profile or tag name.
pub const MAX_NAME_LEN: usize = 40;

/// Words of the calicoctl command and rule grammar, which profile and tag names may not be.
pub const RESERVED_WORDS: &[&str] = &[
    "add",
    "remove",
    "show",
    "append",
    "set",
    "tag",
    "tags",
    "rule",
    "rules",
    "inbound",
    "outbound",
    "allow",
    "deny",
    "from",
    "to",
    "ports",
    "type",
    "code",
    "tcp",
    "udp",
    "icmp",
    "icmpv6",
    "as",
    "json",
    "update",
    "profile",
    "profiles",
    "pool",
    "node",
    "bgp",
    "peer",
    "bgppeer",
    "node-mesh",
    "default-node-as",
    "endpoint",
    "container",
    "ip",
    "ipv4",
    "ipv6",
    "ipam",
    "info",
    "release",
    "auto",
    "master",
    "status",
    "diags",
    "help",
    "on",
    "off",
    "stop",
    "run",
];

/// Whether `word` is a word of the command grammar (case-insensitive).
pub fn is_reserved_word(word: &str) -> bool {
    RESERVED_WORDS.iter().any(|w| w.eq_ignore_ascii_case(word))
}

/// Check a profile or tag name; `field` names the field in the error (`name`, `tags`, `src_tag`, …).
pub fn validate_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            field,
            format!(
                "`{}…` is {} characters long; names are at most {MAX_NAME_LEN}",
                truncate(name, 20),
                name.chars().count()
            ),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(ValidationError::new(
            field,
            format!("`{name}` contains {bad:?}; use only letters, digits, `_`, `.` and `-`"),
        ));
    }
    if name.starts_with('-') {
        return Err(ValidationError::new(
            field,
            format!("`{name}` starts with `-`, which the command line would read as an option"),
        ));
    }
    if name.chars().all(|c| c == '.') {
        return Err(ValidationError::new(
            field,
            format!("`{name}` is only dots; use at least one letter, digit, `_` or `-`"),
        ));
    }
    if is_reserved_word(name) {
        return Err(ValidationError::new(
            field,
            format!("`{name}` is a calicoctl keyword and cannot be used as a name; choose another"),
        ));
    }
    Ok(())
}

/// Check a host name: 1–253 characters of `[A-Za-z0-9_.-]`, not starting with `-` or `.`.
pub fn validate_hostname(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() || name.len() > 253 {
        return Err(ValidationError::new(
            field,
            "a host name must be 1 to 253 characters long",
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(ValidationError::new(
            field,
            format!("host name `{name}` contains {bad:?}; use letters, digits, `_`, `.` and `-`"),
        ));
    }
    if name.starts_with(['-', '.']) {
        return Err(ValidationError::new(
            field,
            format!("host name `{name}` must start with a letter, digit or `_`"),
        ));
    }
    Ok(())
}

/// Check a Linux interface name (as in the container): 1–15 bytes, no `/`, `:` or whitespace.
pub fn validate_interface_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() || name.len() > 15 {
        return Err(ValidationError::new(
            field,
            format!("interface name `{name}` must be 1 to 15 characters long (a Linux limit)"),
        ));
    }
    if name == "." || name == ".." {
        return Err(ValidationError::new(
            field,
            format!("`{name}` is not a valid interface name"),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '/' | ':'))
    {
        return Err(ValidationError::new(
            field,
            format!("interface name `{name}` contains {bad:?}, which Linux does not allow"),
        ));
    }
    Ok(())
}

/// The host-side interface name of an endpoint: `cali` + the first 11 characters of its id, as the
/// original did. Returns `None` unless the id starts with 11 lowercase hex digits.
pub fn interface_name_for(endpoint_id: &str) -> Option<String> {
    let prefix = endpoint_id.get(..11)?;
    prefix
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        .then(|| format!("cali{prefix}"))
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names() {
        for n in [
            "WEB",
            "a",
            "prof_1",
            "my.profile-2",
            "_x",
            &"a".repeat(40),
            "Add2",
            "tcp6",
        ] {
            assert_eq!(validate_name("name", n), Ok(()), "{n}");
        }
    }

    #[test]
    fn bad_names_say_why() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            (&"a".repeat(41), "at most 40"),
            ("a b", "contains ' '"),
            ("a/b", "contains '/'"),
            ("é", "contains"),
            ("-x", "option"),
            ("..", "only dots"),
            ("add", "keyword"),
            ("ALLOW", "keyword"),
            ("icmpv6", "keyword"),
            ("json", "keyword"),
        ];
        for (name, why) in cases {
            let e = validate_name("src_tag", name).expect_err(name);
            assert_eq!(e.field, "src_tag");
            assert!(e.reason.contains(why), "{name}: {}", e.reason);
        }
    }

    #[test]
    fn hostnames() {
        assert!(validate_hostname("hostname", "core-01.example").is_ok());
        assert!(validate_hostname("hostname", "").is_err());
        assert!(validate_hostname("hostname", "a b").is_err());
        assert!(validate_hostname("hostname", "-a").is_err());
        assert!(validate_hostname("hostname", "a/b").is_err());
    }

    #[test]
    fn interface_names() {
        assert!(validate_interface_name("container:if_name", "eth1").is_ok());
        assert!(validate_interface_name("container:if_name", "").is_err());
        assert!(validate_interface_name("container:if_name", "a234567890123456").is_err());
        assert!(validate_interface_name("container:if_name", "eth 1").is_err());
        assert!(validate_interface_name("container:if_name", "a/b").is_err());
        assert_eq!(
            interface_name_for("0123456789abcdef0123").as_deref(),
            Some("cali0123456789a")
        );
        assert_eq!(interface_name_for("0123456789"), None);
        assert_eq!(interface_name_for("XYZ3456789abcdef"), None);
    }
}
