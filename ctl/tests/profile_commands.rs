//! End to end: `calicoctl profile …` (profiles, tags, rules) against a real `calicoctl master run`.

mod support;

use serde_json::json;
use support::Master;

#[test]
fn profiles_and_tags() {
    let m = Master::start(None);
    assert_eq!(
        m.ctl(&["profile", "add", "WEB"]).ok(),
        "Created profile WEB\n"
    );
    m.ctl(&["profile", "add", "DB"]).ok();
    m.ctl(&["profile", "add", "WEB"])
        .fails(1, "Profile WEB already exists");
    m.ctl(&["profile", "add", "rule"])
        .fails(1, "calicoctl keyword");
    m.ctl(&["profile", "add", "no/slash"])
        .fails(1, "contains '/'");
    assert_eq!(m.ctl(&["profile", "show"]).ok(), "NAME\nDB\nWEB\n");
    assert_eq!(
        m.ctl(&["profile", "show", "-o", "json"]).json(),
        json!([{"name": "DB"}, {"name": "WEB"}])
    );
    assert_eq!(
        m.ctl(&["profile", "show", "--detailed"]).ok(),
        "NAME  HOST  ORCHESTRATOR  WORKLOAD  ENDPOINT  STATE\n\
         DB    -     -             -         -         -\n\
         WEB   -     -             -         -         -\n"
    );
    let detailed = m
        .ctl(&["profile", "show", "--detailed", "-o", "json"])
        .json();
    assert_eq!(detailed[1]["name"], "WEB");
    assert_eq!(detailed[1]["endpoint"], json!(null));

    assert_eq!(m.ctl(&["profile", "WEB", "tag", "show"]).ok(), "TAG\nWEB\n");
    assert_eq!(
        m.ctl(&["profile", "WEB", "tag", "add", "FRONT"]).ok(),
        "Tag FRONT added to profile WEB\n"
    );
    let again = m.ctl(&["profile", "WEB", "tag", "add", "FRONT"]);
    assert!(again.ok().contains("already on profile WEB"), "{again:?}");
    assert_eq!(
        m.ctl(&["profile", "WEB", "tag", "show", "-o", "json"])
            .json(),
        json!([{"tag": "WEB"}, {"tag": "FRONT"}])
    );
    assert_eq!(
        m.ctl(&["profile", "WEB", "tag", "remove", "WEB"]).ok(),
        "Tag WEB removed from profile WEB\n"
    );
    m.ctl(&["profile", "WEB", "tag", "remove", "WEB"])
        .fails(1, "Tag WEB is not on profile WEB");
    m.ctl(&["profile", "WEB", "tag", "add", "bad tag"])
        .fails(1, "invalid tag");
    m.ctl(&["profile", "NOPE", "tag", "show"])
        .fails(1, "Profile NOPE not found");

    assert_eq!(
        m.ctl(&["profile", "remove", "DB"]).ok(),
        "Deleted profile DB\n"
    );
    m.ctl(&["profile", "remove", "DB"])
        .fails(1, "Profile DB not found");
    m.ctl(&["profile", "remove", "WEB", "--force"]).ok();
    assert_eq!(m.ctl(&["profile", "show"]).ok(), "NAME\n");
}

#[test]
fn rules_add_show_remove_update() {
    let m = Master::start(None);
    m.ctl(&["profile", "add", "WEB"]).ok();
    let show = |m: &Master| m.ctl(&["profile", "WEB", "rule", "show"]).ok().to_owned();
    assert_eq!(
        show(&m),
        "Inbound rules:\n   1 allow from tag WEB\nOutbound rules:\n   1 allow\n"
    );
    assert_eq!(
        m.ctl(&[
            "profile", "WEB", "rule", "add", "inbound", "allow", "tcp", "from", "tag", "LB", "to",
            "ports", "80,443"
        ])
        .ok(),
        "Added inbound rule 2 to profile WEB\n"
    );
    m.ctl(&[
        "profile",
        "WEB",
        "rule",
        "add",
        "inbound",
        "--at=1",
        "deny",
        "from",
        "10.0.0.0/8",
    ])
    .ok();
    m.ctl(&[
        "profile", "WEB", "rule", "add", "outbound", "--at", "1", "allow", "icmp", "type", "8",
    ])
    .ok();
    // Already present: said, exit 0, nothing changes.
    assert_eq!(
        m.ctl(&[
            "profile",
            "WEB",
            "rule",
            "add",
            "inbound",
            "deny",
            "from",
            "10.0.0.0/8"
        ])
        .ok(),
        "Rule already present, skipping.\n"
    );
    assert_eq!(
        show(&m),
        "Inbound rules:\n   1 deny from 10.0.0.0/8\n   2 allow from tag WEB\n   3 allow tcp from tag LB to ports 80,443\n\
         Outbound rules:\n   1 allow icmp type 8\n   2 allow\n"
    );
    // Global options after the profile name.
    let rows = m
        .ctl(&["profile", "WEB", "rule", "show", "-o", "json"])
        .json();
    assert_eq!(
        rows[0],
        json!({"direction": "inbound", "position": 1, "rule": "deny from 10.0.0.0/8"})
    );
    assert_eq!(
        rows[4],
        json!({"direction": "outbound", "position": 2, "rule": "allow"})
    );
    assert_eq!(rows.as_array().map(Vec::len), Some(5));

    // Bad input: exit 1, nothing written.
    m.ctl(&[
        "profile", "WEB", "rule", "add", "inbound", "allow", "tcp", "frm", "tag", "X",
    ])
    .fails(1, "invalid rule");
    m.ctl(&[
        "profile", "WEB", "rule", "add", "inbound", "allow", "icmp", "type", "255",
    ])
    .fails(1, "ICMP type is a number 0–254");
    m.ctl(&[
        "profile", "WEB", "rule", "add", "inbound", "allow", "from", "ports", "80",
    ])
    .fails(1, "invalid rule");
    m.ctl(&[
        "profile", "WEB", "rule", "add", "inbound", "--at=9", "allow", "udp",
    ])
    .fails(1, "past the end");
    m.ctl(&["profile", "WEB", "rule", "add", "sideways", "allow"])
        .fails(1, "invalid value 'sideways'");
    m.ctl(&["profile", "WEB", "rule", "frobnicate"])
        .fails(1, "unrecognized subcommand");
    m.ctl(&["profile", "NOPE", "rule", "add", "inbound", "allow"])
        .fails(1, "Profile NOPE not found");
    assert_eq!(m.ctl(&["profile", "WEB", "rule", "--help"]).code, 0);

    // Remove by position and by spec.
    assert_eq!(
        m.ctl(&["profile", "WEB", "rule", "remove", "inbound", "--at=1"])
            .ok(),
        "Removed inbound rule 1 from profile WEB\n"
    );
    m.ctl(&[
        "profile", "WEB", "rule", "remove", "outbound", "allow", "icmp", "type", "8",
    ])
    .ok();
    m.ctl(&[
        "profile", "WEB", "rule", "remove", "outbound", "allow", "icmp", "type", "8",
    ])
    .fails(1, "Rule not found");
    m.ctl(&["profile", "WEB", "rule", "remove", "inbound", "--at=7"])
        .fails(1, "there is no inbound rule 7");
    m.ctl(&["profile", "WEB", "rule", "remove", "inbound"])
        .fails(1, "RULE_SPEC");
    assert_eq!(
        show(&m),
        "Inbound rules:\n   1 allow from tag WEB\n   2 allow tcp from tag LB to ports 80,443\nOutbound rules:\n   1 allow\n"
    );

    // json → edit → update round trip through stdin.
    let mut rules = m.ctl(&["profile", "WEB", "rule", "json"]).json();
    assert_eq!(rules["id"], "WEB");
    rules["outbound_rules"] =
        json!([{"action": "deny", "protocol": "udp", "dst_ports": ["2048:4000"]}]);
    let text = serde_json::to_string_pretty(&rules).expect("json");
    m.ctl_stdin(&["profile", "WEB", "rule", "update"], &text)
        .ok();
    assert_eq!(m.ctl(&["profile", "WEB", "rule", "json"]).json(), rules);
    assert!(show(&m).ends_with("Outbound rules:\n   1 deny udp to ports 2048:4000\n"));
    m.ctl_stdin(&["profile", "WEB", "rule", "update"], "{not json")
        .fails(1, "stdin is not valid JSON");
    m.ctl_stdin(&["profile", "WEB", "rule", "update"], r#"{"id": "DB"}"#)
        .fails(1, "does not match");
    m.ctl_stdin(
        &["profile", "WEB", "rule", "update"],
        r#"{"inbound_rules": [{"action": "allow", "dst_ports": [80]}]}"#,
    )
    .fails(1, "dst_ports");
    assert_eq!(m.ctl(&["profile", "WEB", "rule", "json"]).json(), rules);
}
