//! End to end: `calicoctl bgp peer|node-mesh|default-node-as|timers` against a real master.

mod support;

use serde_json::json;
use support::Master;

#[test]
fn global_peers() {
    let m = Master::start(None);
    assert_eq!(
        m.ctl(&["bgp", "peer", "show"]).ok(),
        "IP  AS_NUM  HOLD_TIME  KEEPALIVE  GRACEFUL_RESTART_TIME  MD5\n"
    );
    assert_eq!(
        m.ctl(&["bgp", "peer", "add", "172.17.8.200", "as", "64513"])
            .ok(),
        "Added global BGP peer 172.17.8.200 (AS 64513)\n"
    );
    m.ctl(&[
        "bgp",
        "peer",
        "add",
        "fd00::1",
        "as",
        "1.10",
        "--hold-time",
        "9",
        "--keepalive",
        "3",
    ])
    .ok();
    let again = m.ctl(&["bgp", "peer", "add", "172.17.8.200", "as", "64513"]);
    assert!(again.ok().contains("already a global peer"), "{again:?}");
    assert_eq!(
        m.ctl(&["bgp", "peer", "show"]).ok(),
        "IP            AS_NUM  HOLD_TIME  KEEPALIVE  GRACEFUL_RESTART_TIME  MD5\n\
         172.17.8.200  64513   -          -          -                      false\n\
         fd00::1       65546   9          3          -                      false\n"
    );
    assert_eq!(
        m.ctl(&["bgp", "peer", "show", "--ipv4", "-o", "json"])
            .json(),
        json!([{"ip": "172.17.8.200", "as_num": 64513, "hold_time": null, "keepalive": null, "graceful_restart_time": null, "md5": false}])
    );
    assert_eq!(
        m.ctl(&["bgp", "peer", "show", "--ipv6", "-o", "json"])
            .json()[0]["ip"],
        "fd00::1"
    );
    // TCP MD5: the key comes from a file, reaches the store, and is never shown.
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("md5");
    std::fs::write(&key, "s3cret-key\n").unwrap();
    let key_arg = key.display().to_string();
    m.ctl(&[
        "bgp",
        "peer",
        "add",
        "172.17.8.250",
        "as",
        "64514",
        "--password-file",
        &key_arg,
    ])
    .ok();
    let shown = m.ctl(&["bgp", "peer", "show", "--ipv4", "-o", "json"]);
    let rows = shown.json();
    assert_eq!(rows[1]["ip"], "172.17.8.250");
    assert_eq!(rows[1]["md5"], true);
    assert!(
        !shown.ok().contains("s3cret"),
        "the key is never shown: {shown:?}"
    );
    let dump = m.ctl(&[
        "diags",
        "--output-file",
        &dir.path().join("d.tgz").display().to_string(),
    ]);
    dump.ok();
    let listing = std::process::Command::new("tar")
        .args(["-xzOf"])
        .arg(dir.path().join("d.tgz"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(text.contains("172.17.8.250"), "the dump has the peer");
    assert!(!text.contains("s3cret"), "the dump has no key");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    m.ctl(&[
        "bgp",
        "peer",
        "add",
        "172.17.8.251",
        "as",
        "1",
        "--password-file",
        &empty.display().to_string(),
    ])
    .fails(1, "is empty");
    std::fs::write(&empty, "tab\tkey\n").unwrap();
    m.ctl(&[
        "bgp",
        "peer",
        "add",
        "172.17.8.251",
        "as",
        "1",
        "--password-file",
        &empty.display().to_string(),
    ])
    .fails(1, "printable ASCII");
    m.ctl(&["bgp", "peer", "remove", "172.17.8.250"]).ok();
    m.ctl(&["bgp", "peer", "add", "172.17.8.300", "as", "1"])
        .fails(1, "Invalid IP address");
    m.ctl(&["bgp", "peer", "add", "172.17.8.201", "as", "0"])
        .fails(1, "Invalid AS number");
    m.ctl(&["bgp", "peer", "add", "172.17.8.201", "at", "1"])
        .fails(1, "invalid value 'at'");
    m.ctl(&["bgp", "peer", "add", "0.0.0.0", "as", "1"])
        .fails(1, "not a unicast address");
    m.ctl(&[
        "bgp",
        "peer",
        "add",
        "10.0.0.1",
        "as",
        "1",
        "--hold-time",
        "2",
    ])
    .fails(1, "too short");
    m.ctl(&["bgp", "peer", "show", "--ipv4", "--ipv6"])
        .fails(1, "cannot be used with");
    assert_eq!(
        m.ctl(&["bgp", "peer", "remove", "fd00::1"]).ok(),
        "Removed global BGP peer fd00::1\n"
    );
    m.ctl(&["bgp", "peer", "remove", "fd00::1"])
        .fails(1, "fd00::1 is not a global BGP peer");
    assert_eq!(
        m.ctl(&["bgp", "peer", "show", "-o", "json"])
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn mesh_default_as_and_timers() {
    let m = Master::start(None);
    assert_eq!(m.ctl(&["bgp", "node-mesh"]).ok(), "on\n");
    assert_eq!(
        m.ctl(&["bgp", "node-mesh", "off"]).ok(),
        "Node-to-node mesh disabled\n"
    );
    assert_eq!(
        m.ctl(&["bgp", "node-mesh", "-o", "json"]).json(),
        json!([{"node_mesh": "off"}])
    );
    m.ctl(&["bgp", "node-mesh", "maybe"])
        .fails(1, "invalid value 'maybe'");
    m.ctl(&["bgp", "node-mesh", "on"]).ok();
    assert_eq!(m.ctl(&["bgp", "node-mesh"]).ok(), "on\n");

    assert_eq!(m.ctl(&["bgp", "default-node-as"]).ok(), "64511\n");
    assert_eq!(
        m.ctl(&["bgp", "default-node-as", "64512"]).ok(),
        "Default node AS number set to 64512\n"
    );
    assert_eq!(
        m.ctl(&["bgp", "default-node-as", "-o", "json"]).json(),
        json!([{"as_num": 64512}])
    );
    m.ctl(&["bgp", "default-node-as", "4294967296"])
        .fails(1, "Invalid AS number");
    m.ctl(&["bgp", "default-node-as", "abc"])
        .fails(1, "Invalid AS number");
    assert_eq!(m.ctl(&["bgp", "default-node-as"]).ok(), "64512\n");

    assert_eq!(
        m.ctl(&["bgp", "timers"]).ok(),
        "HOLD_TIME  KEEPALIVE  GRACEFUL_RESTART_TIME\n-          -          -\n"
    );
    m.ctl(&["bgp", "timers", "--hold-time", "9", "--keepalive", "3"])
        .ok();
    // Only the timers given change.
    m.ctl(&["bgp", "timers", "--graceful-restart-time", "30"])
        .ok();
    assert_eq!(
        m.ctl(&["bgp", "timers", "-o", "json"]).json(),
        json!([{"hold_time": 9, "keepalive": 3, "graceful_restart_time": 30}])
    );
    m.ctl(&["bgp", "timers", "--keepalive", "9"])
        .fails(1, "below the hold time");
    m.ctl(&["bgp", "timers", "--graceful-restart-time", "5000"])
        .fails(1, "above 4095");
    m.ctl(&["bgp", "timers", "--clear", "--hold-time", "9"])
        .fails(1, "cannot be used with");
    m.ctl(&["bgp", "timers", "--clear"]).ok();
    assert_eq!(
        m.ctl(&["bgp", "timers", "-o", "json"]).json(),
        json!([{"hold_time": null, "keepalive": null, "graceful_restart_time": null}])
    );
    support::ctl_env(
        &["bgp", "node-mesh"],
        Some(&format!("http://127.0.0.1:{}", support::free_port())),
        None,
    )
    .fails(2, "cannot reach any master");
}
