//! End to end: `calicoctl node show|remove|bgp peer`, `shownodes`, `status` and `diags` against a real
//! master. Nodes register and report through the API, as calico-node does.

mod support;

use calico_master::client::{BlockingClient, Client};
use serde_json::json;
use support::Master;

fn api(m: &Master) -> BlockingClient {
    BlockingClient::new(Client::new(&[&m.url], None).expect("client")).expect("blocking client")
}

fn register(c: &BlockingClient) {
    c.put(
        "/v1/nodes/h1",
        Some(&json!({"ip_addr_v4": "172.17.8.101", "as_num": 64512})),
    )
    .expect("h1");
    c.put(
        "/v1/nodes/h2",
        Some(&json!({"ip_addr_v4": "172.17.8.102", "ip_addr_v6": "fd00::102"})),
    )
    .expect("h2");
}

#[test]
fn node_show_remove_and_peers() {
    let m = Master::start(None);
    assert_eq!(
        m.ctl(&["node", "show"]).ok(),
        "NAME  IP_ADDR_V4  IP_ADDR_V6  AS_NUM  PEERS\n"
    );
    let c = api(&m);
    register(&c);
    m.ctl(&[
        "node",
        "bgp",
        "peer",
        "add",
        "10.0.0.1",
        "as",
        "65000",
        "--hostname",
        "h1",
    ])
    .ok();
    assert_eq!(
        m.ctl(&["node", "show"]).ok(),
        "NAME  IP_ADDR_V4    IP_ADDR_V6  AS_NUM  PEERS\n\
         h1    172.17.8.101  -           64512   10.0.0.1 as 65000\n\
         h2    172.17.8.102  fd00::102   64511   -\n"
    );
    assert_eq!(m.ctl(&["shownodes"]).ok(), m.ctl(&["node", "show"]).ok());
    let detailed = m.ctl(&["shownodes", "--detailed", "-o", "json"]).json();
    assert_eq!(
        detailed[1],
        json!({"name": "h2", "ip_addr_v4": "172.17.8.102", "ip_addr_v6": "fd00::102", "as_num": 64511,
               "peers": [], "endpoints": 0, "state": "unknown", "reported_at": null})
    );
    assert!(m.ctl(&["node", "show", "--detailed"]).ok().starts_with(
        "NAME  IP_ADDR_V4    IP_ADDR_V6  AS_NUM  PEERS              ENDPOINTS  STATE    REPORTED_AT\n"
    ));

    // Per-node peers, --hostname before or after the words.
    assert_eq!(
        m.ctl(&[
            "node",
            "bgp",
            "peer",
            "--hostname",
            "h2",
            "add",
            "2001:db8::1",
            "as",
            "65001"
        ])
        .ok(),
        "Added node h2 BGP peer 2001:db8::1 (AS 65001)\n"
    );
    assert_eq!(
        m.ctl(&[
            "node",
            "bgp",
            "peer",
            "show",
            "--hostname",
            "h2",
            "-o",
            "json"
        ])
        .json(),
        json!([{"ip": "2001:db8::1", "as_num": 65001, "hold_time": null, "keepalive": null, "graceful_restart_time": null, "md5": false}])
    );
    assert_eq!(
        m.ctl(&["node", "bgp", "peer", "show", "--ipv4", "--hostname", "h2"])
            .ok(),
        "IP  AS_NUM  HOLD_TIME  KEEPALIVE  GRACEFUL_RESTART_TIME  MD5\n"
    );
    m.ctl(&[
        "node",
        "bgp",
        "peer",
        "add",
        "172.17.8.101",
        "as",
        "1",
        "--hostname",
        "h1",
    ])
    .fails(1, "own address");
    m.ctl(&[
        "node",
        "bgp",
        "peer",
        "add",
        "10.0.0.1",
        "as",
        "1",
        "--hostname",
        "h9",
    ])
    .fails(1, "Node h9 not found");
    m.ctl(&[
        "node",
        "bgp",
        "peer",
        "remove",
        "2001:db8::1",
        "--hostname",
        "h2",
    ])
    .ok();
    m.ctl(&[
        "node",
        "bgp",
        "peer",
        "remove",
        "2001:db8::1",
        "--hostname",
        "h2",
    ])
    .fails(1, "is not a node h2 BGP peer");

    // Remove: refused with endpoints unless forced.
    m.ctl(&["pool", "add", "10.65.0.0/16"]).ok();
    c.post(
        "/v1/ipam/assign",
        &json!({"host": "h2", "handle_id": "w1", "request": "auto"}),
    )
    .expect("assign");
    c.post(
        "/v1/endpoints",
        &json!({"hostname": "h2", "orchestrator": "docker", "workload_id": "w1",
        "endpoint_id": "0123456789abcdef", "ipv4_nets": ["10.65.0.1/32"]}),
    )
    .expect("endpoint");
    m.ctl(&["node", "remove", "--hostname", "h2"])
        .fails(1, "Node h2 still has endpoint(s) 0123456789abcdef");
    assert_eq!(
        m.ctl(&["node", "remove", "--hostname", "h2", "--force"])
            .ok(),
        "Removed node h2\n"
    );
    m.ctl(&["ipam", "info", "10.65.0.1"])
        .fails(1, "not assigned");
    assert_eq!(m.ctl(&["endpoint", "show", "-o", "json"]).json(), json!([]));
    assert_eq!(
        m.ctl(&["node", "remove", "--hostname", "h1", "-o", "json"])
            .json(),
        json!([{"message": "Removed node h1", "changed": true}])
    );
    m.ctl(&["node", "remove", "--hostname", "h1"])
        .fails(1, "Node h1 not found");
    m.ctl(&["node", "remove", "--hostname", "bad/name"])
        .fails(1, "invalid host name");
}

#[test]
fn status_and_diags() {
    let m = Master::start(None);
    assert_eq!(m.ctl(&["status"]).ok(), "No nodes are registered.\n");
    let c = api(&m);
    register(&c);
    c.put("/v1/nodes/h1/status", Some(&json!({
        "felix": {"programmed": 2, "failed": 0},
        "bgp": [
            {"peer": "172.17.8.102", "asn": 64511, "type": "mesh", "state": "Established", "since": "12:00:01",
             "routes_received": 1, "routes_accepted": 1, "routes_advertised": 1},
            {"peer": "10.0.0.1", "asn": 65000, "type": "node", "state": "Active"},
        ]})))
        .expect("report");
    let text = m.ctl(&["status", "--node", "h1"]).ok().to_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("Node h1: running, reported "),
        "{text}"
    );
    assert!(
        lines[0].ends_with("Felix: 2 endpoint(s) programmed, 0 failed"),
        "{text}"
    );
    assert_eq!(
        lines[1..].join("\n"),
        "NAME               PROTO  STATE  SINCE     INFO         PEER          ASN    TYPE  RECEIVED  ACCEPTED  ADVERTISED\n\
         Mesh_172_17_8_102  BGP    up     12:00:01  Established  172.17.8.102  64511  mesh  1         1         1\n\
         Node_10_0_0_1      BGP    start  -         Active       10.0.0.1      65000  node  0         0         0"
    );
    let j = m.ctl(&["status", "--node", "h1", "-o", "json"]).json();
    assert_eq!(j["node"], "h1");
    assert_eq!(j["state"], "running");
    assert_eq!(
        j["felix"],
        json!({"programmed": 2, "failed": 0, "errors": [], "version": null})
    );
    assert_eq!(j["bgp"][1]["type"], "node");
    let all = m.ctl(&["status", "-o", "json"]).json();
    assert_eq!(all.as_array().map(Vec::len), Some(2));
    assert_eq!(
        all[1],
        json!({"node": "h2", "state": "unknown", "reported_at": null, "felix": null, "bgp": []})
    );
    assert!(m
        .ctl(&["status"])
        .ok()
        .contains("Node h2: unknown (no status reported yet)\nNo BGP sessions.\n"));
    m.ctl(&["status", "--node", "h9"])
        .fails(1, "Node h9 not found");

    // diags: a tar.gz with the datastore, versions and the log directory.
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("log dir");
    std::fs::write(logs.join("felix.log"), "felix says hi\n").expect("log");
    let out = dir.path().join("diags.tar.gz");
    let out_s = out.to_str().expect("utf-8 path");
    assert_eq!(
        m.ctl(&[
            "diags",
            "--output-file",
            out_s,
            "--log-dir",
            logs.to_str().expect("utf-8")
        ])
        .ok(),
        format!("Diags saved to {out_s}\n")
    );
    let unpack = dir.path().join("unpacked");
    std::fs::create_dir(&unpack).expect("unpack dir");
    let st = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&out)
        .arg("-C")
        .arg(&unpack)
        .status()
        .expect("tar");
    assert!(st.success());
    let top: Vec<_> = std::fs::read_dir(&unpack)
        .expect("read")
        .flatten()
        .collect();
    assert_eq!(top.len(), 1);
    let root = top[0].path();
    let ds: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("datastore.json")).expect("datastore"),
    )
    .expect("json");
    assert_eq!(ds["keys"]["/calico/bgp/v1/host/h1/as_num"], 64512);
    let versions = std::fs::read_to_string(root.join("versions.json")).expect("versions");
    assert!(versions.contains("\"calicoctl\""), "{versions}");
    assert_eq!(
        std::fs::read_to_string(root.join("logs/felix.log")).expect("log copied"),
        "felix says hi\n"
    );
    assert!(std::fs::read_to_string(root.join("metrics.txt"))
        .expect("metrics")
        .contains("calico_master_store_revision"));
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("status.json")).expect("status"))
            .expect("json");
    assert_eq!(status[0]["felix"]["programmed"], 2);
    // This host's dataplane: the routes of both families (every host has a local table).
    for f in ["host/routes-v4.txt", "host/routes-v6.txt"] {
        let routes = std::fs::read_to_string(root.join(f)).expect(f);
        assert!(routes.contains("table local"), "{f}: {routes}");
    }
    assert!(root.join("host/links.txt").exists());
    let j = m
        .ctl(&[
            "diags",
            "-o",
            "json",
            "--output-file",
            out_s,
            "--log-dir",
            "/nonexistent",
        ])
        .json();
    assert_eq!(j, json!([{"path": out_s}]));
    support::ctl_env(
        &["diags"],
        Some(&format!("http://127.0.0.1:{}", support::free_port())),
        None,
    )
    .fails(2, "cannot reach any master");
}

#[test]
fn every_admin_command_exits_2_without_a_master() {
    let dead = format!("http://127.0.0.1:{}", support::free_port());
    let ep = "0123456789abcdef";
    for args in [
        &["node", "show"][..],
        &["shownodes", "--detailed"],
        &["node", "remove", "--hostname", "h1"],
        &["node", "bgp", "peer", "show", "--hostname", "h1"],
        &[
            "node",
            "bgp",
            "peer",
            "add",
            "10.0.0.1",
            "as",
            "1",
            "--hostname",
            "h1",
        ],
        &["status"],
        &["status", "--node", "h1"],
        &["endpoint", "show"],
        &["endpoint", ep, "profile", "show"],
        &["endpoint", ep, "profile", "append", "WEB"],
        &["ipam", "release", "10.65.0.1"],
        &["bgp", "peer", "show"],
        &["bgp", "peer", "remove", "10.0.0.1"],
        &["bgp", "default-node-as", "64512"],
        &["bgp", "timers"],
    ] {
        let r = support::ctl_env(args, Some(&dead), None);
        let err = r.fails(2, "cannot reach any master");
        assert!(err.contains(&dead), "{args:?}: {err}");
    }
}
