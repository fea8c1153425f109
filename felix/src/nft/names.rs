//! Stable, readable nftables object names derived from profile and tag names.
//!
//! Names users gave (profiles, tags) appear as they are when they are short and made of safe characters,
//! so `nft list ruleset` reads like the policy; anything else is replaced by a hash, so a name can never
//! break the ruleset's syntax or exceed the kernel's limits.

/// The longest user name used as it is inside an object name.
const MAX_PLAIN: usize = 40;

/// `prefix` + `name`, or `prefix` + `h` + a 64-bit hash of `name` when `name` is not plain.
pub fn ident(prefix: &str, name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= MAX_PLAIN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if plain {
        format!("{prefix}{name}")
    } else {
        format!("{prefix}h{:016x}", fnv1a(name.as_bytes()))
    }
}

/// The chain holding a profile's rules for one direction (`in` or `out`).
pub fn profile_chain(profile: &str, direction: &str) -> String {
    ident(&format!("p-{direction}-"), profile)
}

/// The id of an ordered list of profiles: the profile's name (or its hash) for a list of one, a hash of
/// the names otherwise. The list's chains and interface set are named after it.
pub fn profile_list_id(profiles: &[String]) -> String {
    if let [only] = profiles {
        return ident("", only);
    }
    format!("h{:016x}", fnv1a(profiles.join("\n").as_bytes()))
}

/// The chain that tries a list of profiles in order, for one direction.
pub fn profile_list_chain(profiles: &[String], direction: &str) -> String {
    format!("pl-{direction}-{}", profile_list_id(profiles))
}

/// The set of the interfaces of the endpoints that have this list of profiles (both directions use it).
pub fn profile_list_set(profiles: &[String]) -> String {
    format!("pl-ifaces-{}", profile_list_id(profiles))
}

/// `text` made safe inside a double-quoted nftables comment: no quotes, backslashes or control
/// characters, and short enough for the kernel's 256-byte user data.
pub fn comment(text: &str) -> String {
    const MAX: usize = 200;
    let mut out = String::new();
    for c in text.chars() {
        if out.len() + c.len_utf8() > MAX {
            out.push_str("...");
            break;
        }
        out.push(if c == '"' || c == '\\' || c.is_control() {
            '?'
        } else {
            c
        });
    }
    out
}

/// The set of a tag's addresses for one IP version.
pub fn tag_set(tag: &str, version: u8) -> String {
    ident(&format!("t{version}-"), tag)
}

/// FNV-1a, 64 bits: stable across runs and versions (unlike std's hasher).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_stay_readable() {
        assert_eq!(profile_chain("web", "in"), "p-in-web");
        assert_eq!(tag_set("db.prod-1", 6), "t6-db.prod-1");
        assert_eq!(profile_list_chain(&["web".into()], "out"), "pl-out-web");
        assert_eq!(profile_list_set(&["web".into()]), "pl-ifaces-web");
    }

    #[test]
    fn odd_or_long_names_are_hashed_and_stable() {
        let long = "x".repeat(41);
        let a = tag_set(&long, 4);
        assert!(a.starts_with("t4-h") && a.len() == 3 + 1 + 16, "{a}");
        assert_eq!(a, tag_set(&long, 4));
        assert!(ident("p-", "a b\"c").starts_with("p-h"));
        assert!(ident("p-", "").starts_with("p-h"));
    }

    #[test]
    fn profile_lists_differ_by_order() {
        let ab = profile_list_chain(&["a".into(), "b".into()], "in");
        let ba = profile_list_chain(&["b".into(), "a".into()], "in");
        assert_ne!(ab, ba);
        assert!(ab.starts_with("pl-in-h") && ab.len() == 6 + 1 + 16, "{ab}");
        assert_eq!(
            profile_list_set(&["a".into(), "b".into()]),
            format!("pl-ifaces-{}", &ab[6..])
        );
    }

    #[test]
    fn comments_cannot_break_the_script() {
        assert_eq!(comment("a \"b\"\\\n"), "a ?b???");
        let long = comment(&"é".repeat(300));
        assert!(long.len() <= 203 && long.ends_with("..."), "{long}");
    }
}
