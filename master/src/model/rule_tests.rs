//! Tests for [`super::Rule`]: every field good and bad, each error naming the right field, and JSON shapes.

use super::*;
use serde_json::json;

fn ok(v: Value) -> Rule {
    match Rule::from_json(&v) {
        Ok(r) => r,
        Err(e) => panic!("{v} rejected: {e}"),
    }
}

fn bad(v: Value, field: &str, why: &str) {
    let e = Rule::from_json(&v).expect_err(&v.to_string());
    assert_eq!(e.field, field, "{v}: {e}");
    assert!(e.reason.contains(why), "{v}: `{}` lacks `{why}`", e.reason);
}

#[test]
fn action() {
    assert_eq!(ok(json!({"action": "allow"})), Rule::new(Action::Allow));
    assert_eq!(ok(json!({"action": "deny"})).action, Action::Deny);
    bad(json!({}), "action", "missing");
    bad(json!({"action": null}), "action", "missing");
    bad(json!({"action": "permit"}), "action", "allow");
    bad(json!({"action": 1}), "action", "allow");
    bad(json!("allow"), "rule", "JSON object");
}

#[test]
fn protocol() {
    assert_eq!(
        ok(json!({"action": "allow", "protocol": "tcp"})).protocol,
        Some(Protocol::Tcp)
    );
    assert_eq!(
        ok(json!({"action": "allow", "protocol": "UDP"})).protocol,
        Some(Protocol::Udp)
    );
    assert_eq!(
        ok(json!({"action": "allow", "protocol": "icmpv6"})).protocol,
        Some(Protocol::Icmpv6)
    );
    assert_eq!(
        ok(json!({"action": "allow", "protocol": 6})).protocol,
        Some(Protocol::Tcp)
    );
    assert_eq!(
        ok(json!({"action": "allow", "protocol": 47})).protocol,
        Some(Protocol::Number(47))
    );
    assert_eq!(
        ok(json!({"action": "allow", "protocol": "132"})).protocol,
        Some(Protocol::Number(132))
    );
    bad(
        json!({"action": "allow", "protocol": "gre"}),
        "protocol",
        "not a protocol",
    );
    bad(
        json!({"action": "allow", "protocol": 256}),
        "protocol",
        "0–255",
    );
    bad(
        json!({"action": "allow", "protocol": "300"}),
        "protocol",
        "above 255",
    );
    bad(
        json!({"action": "allow", "protocol": true}),
        "protocol",
        "not a protocol",
    );
}

#[test]
fn tags() {
    let r = ok(json!({"action": "allow", "src_tag": "WEB", "dst_tag": "db.v2"}));
    assert_eq!(r.tags().collect::<Vec<_>>(), ["WEB", "db.v2"]);
    bad(
        json!({"action": "allow", "src_tag": "a b"}),
        "src_tag",
        "contains",
    );
    bad(
        json!({"action": "allow", "dst_tag": ""}),
        "dst_tag",
        "empty",
    );
    bad(
        json!({"action": "allow", "dst_tag": "from"}),
        "dst_tag",
        "keyword",
    );
    bad(
        json!({"action": "allow", "src_tag": 5}),
        "src_tag",
        "string",
    );
}

#[test]
fn nets() {
    let r = ok(json!({"action": "allow", "src_net": "10.0.0.0/8", "dst_net": "192.168.1.1"}));
    assert_eq!(r.dst_net, Some("192.168.1.1/32".parse().unwrap()));
    assert_eq!(r.effective_ip_version(), Some(IpVersion::V4));
    let r = ok(json!({"action": "deny", "dst_net": "fd80:24e2::/64", "ip_version": 6}));
    assert_eq!(r.effective_ip_version(), Some(IpVersion::V6));
    bad(
        json!({"action": "allow", "src_net": "10.0.0.0/33"}),
        "src_net",
        "not a network",
    );
    bad(
        json!({"action": "allow", "dst_net": "banana"}),
        "dst_net",
        "not a network",
    );
    bad(
        json!({"action": "allow", "dst_net": 10}),
        "dst_net",
        "string",
    );
    bad(
        json!({"action": "allow", "src_net": "10.0.0.1/8"}),
        "src_net",
        "did you mean 10.0.0.0/8",
    );
    bad(
        json!({"action": "allow", "src_net": "10.0.0.0/8", "dst_net": "fd00::/8"}),
        "dst_net",
        "one IP version",
    );
    bad(
        json!({"action": "allow", "src_net": "fd00::/8", "ip_version": 4}),
        "src_net",
        "ip_version is 4",
    );
    bad(
        json!({"action": "allow", "dst_net": "10.0.0.0/8", "ip_version": 6}),
        "dst_net",
        "ip_version is 6",
    );
}

#[test]
fn ports() {
    let r = ok(
        json!({"action": "allow", "protocol": "tcp", "dst_ports": [80, "2048:4000"], "src_ports": ["1:2"]}),
    );
    assert_eq!(
        r.dst_ports,
        Some(vec![
            PortRange::single(80),
            PortRange { lo: 2048, hi: 4000 }
        ])
    );
    let many: Vec<u16> = (1..=40).collect();
    assert_eq!(
        ok(json!({"action": "allow", "protocol": "udp", "dst_ports": many}))
            .dst_ports
            .map(|p| p.len()),
        Some(40),
        "more than 15 ports is fine: Felix splits them"
    );
    bad(
        json!({"action": "allow", "dst_ports": [80]}),
        "dst_ports",
        "add a protocol",
    );
    bad(
        json!({"action": "allow", "protocol": "icmp", "src_ports": [80]}),
        "src_ports",
        "not icmp",
    );
    bad(
        json!({"action": "allow", "protocol": 47, "dst_ports": [80]}),
        "dst_ports",
        "not 47",
    );
    bad(
        json!({"action": "allow", "protocol": "tcp", "dst_ports": []}),
        "dst_ports",
        "empty",
    );
    bad(
        json!({"action": "allow", "protocol": "tcp", "dst_ports": [65536]}),
        "dst_ports",
        "out of range",
    );
    bad(
        json!({"action": "allow", "protocol": "tcp", "src_ports": ["9:1"]}),
        "src_ports",
        "backwards",
    );
    bad(
        json!({"action": "allow", "protocol": "tcp", "src_ports": "80"}),
        "src_ports",
        "not a list",
    );
    bad(
        json!({"action": "allow", "protocol": "tcp", "dst_ports": [-1]}),
        "dst_ports",
        "out of range",
    );
    // Built in code, bypassing the parser.
    let mut r = Rule::new(Action::Allow);
    r.protocol = Some(Protocol::Tcp);
    r.dst_ports = Some(vec![PortRange { lo: 9, hi: 1 }]);
    assert_eq!(r.validate().unwrap_err().field, "dst_ports");
}

#[test]
fn icmp() {
    let r = ok(json!({"action": "allow", "protocol": "icmp", "icmp_type": 8, "icmp_code": 0}));
    assert_eq!((r.icmp_type, r.icmp_code), (Some(8), Some(0)));
    assert_eq!(r.effective_ip_version(), Some(IpVersion::V4));
    ok(json!({"action": "allow", "protocol": "icmpv6", "icmp_type": 128, "ip_version": 6}));
    ok(json!({"action": "allow", "protocol": "icmp", "icmp_type": 254}));
    bad(
        json!({"action": "allow", "protocol": "icmp", "icmp_type": 255}),
        "icmp_type",
        "0–254",
    );
    bad(
        json!({"action": "allow", "protocol": "icmp", "icmp_type": 1, "icmp_code": 300}),
        "icmp_code",
        "0–254",
    );
    bad(
        json!({"action": "allow", "protocol": "icmp", "icmp_type": -1}),
        "icmp_type",
        "0–254",
    );
    bad(
        json!({"action": "allow", "protocol": "icmp", "icmp_code": 0}),
        "icmp_code",
        "needs a type",
    );
    bad(
        json!({"action": "allow", "protocol": "tcp", "icmp_type": 8}),
        "icmp_type",
        "only allowed with protocol icmp",
    );
    bad(
        json!({"action": "allow", "icmp_type": 8}),
        "icmp_type",
        "only allowed",
    );
    bad(
        json!({"action": "allow", "protocol": "icmp", "ip_version": 6}),
        "protocol",
        "use icmpv6",
    );
    bad(
        json!({"action": "allow", "protocol": "icmp", "src_net": "fd00::/64"}),
        "protocol",
        "use icmpv6",
    );
    bad(
        json!({"action": "allow", "protocol": "icmpv6", "dst_net": "10.0.0.0/8"}),
        "protocol",
        "use icmp",
    );
    let mut r = Rule::new(Action::Allow);
    r.protocol = Some(Protocol::Icmp);
    r.icmp_type = Some(255);
    assert_eq!(r.validate().unwrap_err().field, "icmp_type");
}

#[test]
fn ip_version_and_unknown_fields() {
    assert_eq!(
        ok(json!({"action": "allow", "ip_version": 4})).ip_version,
        Some(IpVersion::V4)
    );
    bad(
        json!({"action": "allow", "ip_version": 5}),
        "ip_version",
        "4 or 6",
    );
    bad(
        json!({"action": "allow", "ip_version": "6"}),
        "ip_version",
        "4 or 6",
    );
    bad(
        json!({"action": "allow", "dst_port": [80]}),
        "dst_port",
        "unknown rule field",
    );
}

#[test]
fn json_shape_omits_absent_fields() {
    let v = json!({"action": "allow", "protocol": "tcp", "src_tag": "WEB", "src_net": "10.1.0.0/16",
                   "dst_ports": [80, "2048:4000"], "ip_version": 4});
    let r = ok(v.clone());
    assert_eq!(serde_json::to_value(&r).unwrap(), v);
    assert_eq!(
        serde_json::to_value(Rule::new(Action::Deny)).unwrap(),
        json!({"action": "deny"})
    );
    let v = json!({"action": "deny", "protocol": "icmp", "icmp_type": 3, "icmp_code": 1, "dst_tag": "X"});
    assert_eq!(serde_json::to_value(ok(v.clone())).unwrap(), v);
    let v = json!({"action": "allow", "protocol": 47});
    assert_eq!(serde_json::to_value(ok(v.clone())).unwrap(), v);
    // serde's Deserialize goes through the same reader.
    let r: Rule = serde_json::from_value(json!({"action": "allow", "protocol": "udp"})).unwrap();
    assert_eq!(r.protocol, Some(Protocol::Udp));
    let e =
        serde_json::from_value::<Rule>(json!({"action": "allow", "protocol": "xx"})).unwrap_err();
    assert!(e.to_string().contains("protocol"), "{e}");
}
