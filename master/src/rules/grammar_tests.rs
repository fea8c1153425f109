//! Tests for the rule grammar: the reference's forms, bad input (errors name the word), and the
//! print → parse round trip as a property.

use super::*;
use crate::model::is_reserved_word;
use proptest::prelude::*;
use serde_json::json;

fn parse(s: &str) -> Rule {
    match parse_rule_str(s) {
        Ok(r) => r,
        Err(e) => panic!("`{s}` rejected: {e}"),
    }
}

fn json_of(s: &str) -> serde_json::Value {
    serde_json::to_value(parse(s)).unwrap()
}

#[test]
fn reference_forms() {
    assert_eq!(json_of("allow"), json!({"action": "allow"}));
    assert_eq!(json_of("deny"), json!({"action": "deny"}));
    assert_eq!(
        json_of("allow from tag WEB"),
        json!({"action": "allow", "src_tag": "WEB"})
    );
    assert_eq!(
        json_of("allow tcp to ports 80,443,2048:4000"),
        json!({"action": "allow", "protocol": "tcp", "dst_ports": [80, 443, "2048:4000"]})
    );
    assert_eq!(
        json_of("deny udp from ports 53 tag DNS 10.0.0.0/8 to ports 1:1024 tag X 192.168.0.0/16"),
        json!({"action": "deny", "protocol": "udp", "src_ports": [53], "src_tag": "DNS", "src_net": "10.0.0.0/8",
               "dst_ports": ["1:1024"], "dst_tag": "X", "dst_net": "192.168.0.0/16", "ip_version": 4})
    );
    assert_eq!(
        json_of("allow icmp type 8 code 0 from tag A 10.1.0.0/16"),
        json!({"action": "allow", "protocol": "icmp", "icmp_type": 8, "icmp_code": 0, "src_tag": "A",
               "src_net": "10.1.0.0/16", "ip_version": 4})
    );
    assert_eq!(
        json_of("allow icmp type 128 from fd80:24e2:f998:72d6::/64"),
        json!({"action": "allow", "protocol": "icmpv6", "icmp_type": 128,
               "src_net": "fd80:24e2:f998:72d6::/64", "ip_version": 6}),
        "icmp with an IPv6 CIDR becomes icmpv6, as in the original"
    );
    assert_eq!(
        json_of("allow icmp"),
        json!({"action": "allow", "protocol": "icmp", "ip_version": 4})
    );
    assert_eq!(
        json_of("allow icmpv6"),
        json!({"action": "allow", "protocol": "icmpv6", "ip_version": 6})
    );
    assert_eq!(
        json_of("deny to tag B fd00::/8"),
        json!({"action": "deny", "dst_tag": "B", "dst_net": "fd00::/8", "ip_version": 6})
    );
    assert_eq!(
        json_of("allow from 10.0.0.5"),
        json!({"action": "allow", "src_net": "10.0.0.5/32", "ip_version": 4})
    );
    assert_eq!(
        json_of("allow 47 to 10.0.0.0/8"),
        json!({"action": "allow", "protocol": 47,
        "dst_net": "10.0.0.0/8", "ip_version": 4})
    );
    // Any order inside a clause.
    assert_eq!(
        parse("allow tcp from 10.0.0.0/8 tag A ports 22"),
        parse("allow tcp from ports 22 tag A 10.0.0.0/8")
    );
    assert_eq!(parse("allow 6"), parse("allow tcp"));
}

fn bad(s: &str, word: Option<(usize, &str)>, why: &str) {
    let e = parse_rule_str(s).expect_err(s);
    match (&e, word) {
        (
            RuleSpecError::Token {
                position,
                token,
                reason,
            },
            Some((p, t)),
        ) => {
            assert_eq!((*position, token.as_str()), (p, t), "{s}: {e}");
            assert!(reason.contains(why), "{s}: `{reason}` lacks `{why}`");
        }
        (RuleSpecError::UnexpectedEnd(reason), None)
        | (RuleSpecError::Invalid(ValidationError { reason, .. }), None) => {
            assert!(reason.contains(why), "{s}: `{reason}` lacks `{why}`")
        }
        (RuleSpecError::Empty, None) => assert!(e.to_string().contains(why)),
        _ => panic!("{s}: unexpected error {e:?}"),
    }
}

#[test]
fn bad_input_names_the_word() {
    bad("", None, "allow");
    assert_eq!(
        parse_rule_str("allow bogus").unwrap_err().field(),
        "rule_spec"
    );
    bad("permit tcp", Some((1, "permit")), "allow");
    bad("allow sctp", Some((2, "sctp")), "expected tcp");
    bad("allow 256", Some((2, "256")), "0–255");
    bad("allow tcp from", Some((3, "from")), "needs ports");
    bad("allow tcp to ports", None, "port list");
    bad(
        "allow tcp to ports 80,,443",
        Some((5, "80,,443")),
        "not a port",
    );
    bad("allow tcp to ports 70000", Some((5, "70000")), "0–65535");
    bad(
        "allow tcp to ports 4000:2048",
        Some((5, "4000:2048")),
        "backwards",
    );
    bad(
        "allow icmp to ports 80",
        Some((4, "ports")),
        "only allowed after tcp or udp",
    );
    bad(
        "allow from ports 80",
        Some((3, "ports")),
        "only allowed after tcp or udp",
    );
    bad(
        "allow tcp type 8",
        Some((3, "type")),
        "only allowed right after `icmp`",
    );
    bad("allow icmp code 1", Some((3, "code")), "needs `type`");
    bad("allow icmp type 255", Some((4, "255")), "0–254");
    bad("allow icmp type x", Some((4, "x")), "0–254");
    bad("allow icmp type", None, "ICMP type");
    bad("allow icmp type 3 code 300", Some((6, "300")), "0–254");
    bad("allow from tag", None, "tag name");
    bad("allow from tag a/b", Some((4, "a/b")), "contains");
    bad("allow from tag allow", Some((4, "allow")), "keyword");
    bad("allow from tag A tag B", Some((5, "tag")), "twice");
    bad(
        "allow from 10.0.0.0/8 10.1.0.0/16",
        Some((4, "10.1.0.0/16")),
        "only one CIDR",
    );
    bad(
        "allow from 10.0.0.1/8",
        Some((3, "10.0.0.1/8")),
        "did you mean 10.0.0.0/8",
    );
    bad("allow from banana", Some((3, "banana")), "CIDR");
    bad(
        "allow to tag A from tag B",
        Some((5, "from")),
        "`from` first",
    );
    bad("allow from tag A from tag B", Some((5, "from")), "once");
    bad(
        "allow from 10.0.0.0/8 to fd00::/8",
        Some((5, "fd00::/8")),
        "one IP version",
    );
    bad(
        "allow icmpv6 from 10.0.0.0/8",
        Some((2, "icmpv6")),
        "use icmp",
    );
    bad(
        "allow tcp ports 80",
        Some((3, "ports")),
        "inside a `from` or `to`",
    );
    bad("allow tcp to tag A extra", Some((6, "extra")), "CIDR");
    bad(
        "allow tcp bogus",
        Some((3, "bogus")),
        "expected `from` or `to`",
    );
}

#[test]
fn printer_and_show() {
    for s in [
        "allow",
        "deny tcp from ports 22,80:90 tag A 10.0.0.0/8 to ports 443 tag B 10.1.0.0/16",
        "allow icmp type 3 code 1 to tag X",
        "allow icmpv6 type 128 from fd00::/8",
        "deny 47 from 192.168.0.0/16",
        "allow udp to ports 53",
    ] {
        assert_eq!(format_rule(&parse(s)), s);
    }
    let rules = crate::model::Rules::default_for("WEB");
    assert_eq!(
        format_rules_show(&rules),
        "Inbound rules:\n   1 allow from tag WEB\nOutbound rules:\n   1 allow\n"
    );
    assert_eq!(
        format_rules_show(&crate::model::Rules::default()),
        "Inbound rules:\nOutbound rules:\n"
    );
}

fn arb_tag() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_.-]{0,12}".prop_filter("not a keyword", |s| !is_reserved_word(s))
}

fn arb_ports() -> impl Strategy<Value = Vec<PortRange>> {
    prop::collection::vec(
        (any::<u16>(), any::<u16>(), any::<bool>()).prop_map(|(a, b, r)| {
            if r {
                PortRange {
                    lo: a.min(b),
                    hi: a.max(b),
                }
            } else {
                PortRange::single(a)
            }
        }),
        1..20,
    )
}

fn arb_net(v6: bool) -> BoxedStrategy<IpNet> {
    if v6 {
        (any::<u128>(), 0..=128u8)
            .prop_map(|(a, l)| IpNet::new(IpAddr::from(a.to_be_bytes()), l).map(|n| n.trunc()))
            .prop_filter_map("prefix", Result::ok)
            .boxed()
    } else {
        (any::<u32>(), 0..=32u8)
            .prop_map(|(a, l)| IpNet::new(IpAddr::from(a.to_be_bytes()), l).map(|n| n.trunc()))
            .prop_filter_map("prefix", Result::ok)
            .boxed()
    }
}

type Side = (Option<Vec<PortRange>>, Option<String>, Option<IpNet>);

fn arb_side(v6: bool) -> impl Strategy<Value = Side> {
    (
        prop::option::of(arb_ports()),
        prop::option::of(arb_tag()),
        prop::option::of(arb_net(v6)),
    )
}

/// Rules in the grammar's space, built as the parser would build them.
fn arb_rule() -> impl Strategy<Value = Rule> {
    let proto = prop_oneof![
        Just(None),
        Just(Some(Protocol::Tcp)),
        Just(Some(Protocol::Udp)),
        Just(Some(Protocol::Icmp)),
        Just(Some(Protocol::Icmpv6)),
        any::<u8>().prop_map(|n| Some(Protocol::from_number(n))),
    ];
    (any::<bool>(), proto, any::<bool>())
        .prop_flat_map(|(deny, proto, v6)| {
            let v6 = match proto {
                Some(Protocol::Icmp) => false,
                Some(Protocol::Icmpv6) => true,
                _ => v6,
            };
            (
                Just(deny),
                Just(proto),
                arb_side(v6),
                arb_side(v6),
                prop::option::of((0..=254u8, prop::option::of(0..=254u8))),
            )
        })
        .prop_map(|(deny, proto, src, dst, icmp)| {
            let mut r = Rule::new(if deny { Action::Deny } else { Action::Allow });
            r.protocol = proto;
            let ports_ok = proto.is_some_and(Protocol::has_ports);
            (r.src_ports, r.src_tag, r.src_net) = (src.0.filter(|_| ports_ok), src.1, src.2);
            (r.dst_ports, r.dst_tag, r.dst_net) = (dst.0.filter(|_| ports_ok), dst.1, dst.2);
            if proto.is_some_and(Protocol::is_icmp) {
                if let Some((t, c)) = icmp {
                    r.icmp_type = Some(t);
                    r.icmp_code = c;
                }
            }
            r.ip_version = r.effective_ip_version();
            r
        })
}

const VOCAB: &[&str] = &[
    "allow",
    "deny",
    "tcp",
    "udp",
    "icmp",
    "icmpv6",
    "47",
    "from",
    "to",
    "ports",
    "80",
    "80,443",
    "1:2",
    "tag",
    "A",
    "type",
    "code",
    "8",
    "255",
    "10.0.0.0/8",
    "fd00::/8",
    "10.0.0.1",
    "x",
];

proptest! {
    #[test]
    fn print_then_parse_is_identity(r in arb_rule()) {
        prop_assert_eq!(r.validate(), Ok(()));
        let text = format_rule(&r);
        prop_assert_eq!(parse_rule_str(&text), Ok(r), "{}", text);
    }

    #[test]
    fn arbitrary_words_never_panic_and_reparse(words in prop::collection::vec(prop::sample::select(VOCAB), 0..10)) {
        if let Ok(r) = parse_rule(&words) {
            prop_assert_eq!(r.validate(), Ok(()));
            prop_assert_eq!(parse_rule_str(&format_rule(&r)), Ok(r));
        }
    }
}
