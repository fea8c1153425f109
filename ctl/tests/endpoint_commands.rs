//! End to end: `calicoctl endpoint show` and `endpoint <EP> profile …`, `ipam info|release`, and
//! `profile remove` refusing a profile that a real endpoint uses, against a real master. Endpoints are
//! registered through the API (as the Docker proxy does): addresses first, then the endpoint.

mod support;

use calico_master::client::{BlockingClient, Client};
use serde_json::{json, Value};
use support::Master;

const EP1: &str = "0123456789abcdef0123456789abcdef";
const EP2: &str = "fedcba9876543210fedcba9876543210";

fn api(m: &Master) -> BlockingClient {
    BlockingClient::new(Client::new(&[&m.url], None).expect("client")).expect("blocking client")
}

/// Pools, profiles WEB and DB, EP1 (h1/w1: 10.65.0.1 + fd80…::1, WEB) and EP2 (h2/w2: 10.65.1.5, none).
fn setup(m: &Master) -> BlockingClient {
    m.ctl(&["pool", "add", "10.65.0.0/16"]).ok();
    m.ctl(&["pool", "add", "fd80:24e2:f998:72d6::/64"]).ok();
    m.ctl(&["profile", "add", "WEB"]).ok();
    m.ctl(&["profile", "add", "DB"]).ok();
    let c = api(m);
    c.post(
        "/v1/ipam/assign",
        &json!({"host": "h1", "handle_id": "w1", "requests": ["auto", "ipv6"]}),
    )
    .expect("assign w1");
    c.post(
        "/v1/ipam/assign",
        &json!({"host": "h2", "handle_id": "w2", "request": "10.65.1.5"}),
    )
    .expect("assign w2");
    let ep = |host: &str, w: &str, id: &str, v4: &str, v6: Value, profiles: Value| {
        json!({"hostname": host, "orchestrator": "docker", "workload_id": w, "endpoint_id": id,
               "mac": "ee:ee:ee:ee:ee:ee", "profile_ids": profiles, "ipv4_nets": [v4], "ipv6_nets": v6})
    };
    c.post(
        "/v1/endpoints",
        &ep(
            "h1",
            "w1",
            EP1,
            "10.65.0.1/32",
            json!(["fd80:24e2:f998:72d6::1/128"]),
            json!(["WEB"]),
        ),
    )
    .expect("EP1");
    c.post(
        "/v1/endpoints",
        &ep("h2", "w2", EP2, "10.65.1.5/32", json!([]), json!([])),
    )
    .expect("EP2");
    c
}

#[test]
fn endpoint_show_and_profiles() {
    let m = Master::start(None);
    setup(&m);
    assert_eq!(
        m.ctl(&["endpoint", "show"]).ok(),
        "HOST  WORKLOAD  ENDPOINT                          INTERFACE        IPS                               PROFILES  STATE\n\
         h1    w1        0123456789abcdef0123456789abcdef  cali0123456789a  10.65.0.1,fd80:24e2:f998:72d6::1  WEB       active\n\
         h2    w2        fedcba9876543210fedcba9876543210  califedcba98765  10.65.1.5                         -         active\n"
    );
    assert_eq!(
        m.ctl(&["endpoint", "show", "--host", "h2", "-o", "json"])
            .json(),
        json!([{"host": "h2", "workload": "w2", "endpoint": EP2, "interface": "califedcba98765",
                "ips": ["10.65.1.5"], "profiles": [], "state": "active"}])
    );
    let detailed = m
        .ctl(&["endpoint", "show", "--detailed", "-o", "json"])
        .json();
    assert_eq!(detailed[0]["mac"], "ee:ee:ee:ee:ee:ee");
    assert_eq!(detailed[0]["orchestrator"], "docker");
    assert!(m
        .ctl(&["endpoint", "show", "--detailed"])
        .ok()
        .lines()
        .next()
        .unwrap_or("")
        .ends_with("ORCHESTRATOR  MAC                IPV4_GATEWAY  IPV6_GATEWAY"));
    assert_eq!(
        m.ctl(&["endpoint", "show", "--host", "h9"]).ok(),
        "HOST  WORKLOAD  ENDPOINT  INTERFACE  IPS  PROFILES  STATE\n"
    );
    let by_workload = m
        .ctl(&[
            "endpoint",
            "show",
            "--workload",
            "w1",
            "--orchestrator",
            "docker",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(by_workload.as_array().map(Vec::len), Some(1));
    assert_eq!(by_workload[0]["endpoint"], EP1);
    assert_eq!(
        m.ctl(&["endpoint", "show", "--endpoint", EP2, "-o", "json"])
            .json()[0]["workload"],
        "w2"
    );
    assert_eq!(
        m.ctl(&["endpoint", "show", "--orchestrator", "rkt", "-o", "json"])
            .json(),
        json!([])
    );
    m.ctl(&["endpoint", "show", "--host", "bad host"])
        .fails(1, "invalid --host");

    assert_eq!(
        m.ctl(&["endpoint", EP1, "profile", "show"]).ok(),
        "PROFILE\nWEB\n"
    );
    assert_eq!(
        m.ctl(&["endpoint", EP1, "profile", "append", "DB"]).ok(),
        format!("Profiles of endpoint {EP1} are now: WEB, DB\n")
    );
    assert_eq!(
        m.ctl(&["endpoint", EP1, "profile", "show", "-o", "json"])
            .json(),
        json!([{"profile": "WEB"}, {"profile": "DB"}])
    );
    assert_eq!(
        m.ctl(&["endpoint", EP1, "profile", "remove", "WEB", "-o", "json"])
            .json(),
        json!([{"message": format!("Profiles of endpoint {EP1} are now: DB"), "changed": true}])
    );
    m.ctl(&["endpoint", EP1, "profile", "remove", "WEB"])
        .fails(1, "Profile WEB is not on endpoint");
    m.ctl(&["endpoint", EP1, "profile", "append", "NOPE"])
        .fails(1, "Profile NOPE not found");
    m.ctl(&["endpoint", EP1, "profile", "append"])
        .fails(1, "PROFILES");
    m.ctl(&["endpoint", EP1, "profile", "append", "bad/name"])
        .fails(1, "invalid profile name");
    m.ctl(&["endpoint", EP2, "profile", "set", "WEB", "DB"])
        .ok();
    assert_eq!(
        m.ctl(&["endpoint", EP2, "profile", "show"]).ok(),
        "PROFILE\nWEB\nDB\n"
    );
    m.ctl(&["endpoint", EP2, "profile", "set"]).ok();
    assert_eq!(
        m.ctl(&["endpoint", EP2, "profile", "show"]).ok(),
        "PROFILE\n"
    );
    m.ctl(&["endpoint", "nope", "profile", "show"])
        .fails(1, "Endpoint nope not found");
    m.ctl(&["endpoint", EP1, "frobnicate"])
        .fails(1, "unrecognized subcommand");

    // profile remove refuses while a real endpoint uses the profile.
    m.ctl(&["profile", "remove", "DB"])
        .fails(1, &format!("Profile DB is in use by endpoint(s) {EP1}"));
    let detailed = m
        .ctl(&["profile", "show", "--detailed", "-o", "json"])
        .json();
    assert_eq!(
        detailed[0],
        json!({"name": "DB", "host": "h1", "orchestrator": "docker", "workload": "w1", "endpoint": EP1, "state": "active"})
    );
    m.ctl(&["endpoint", EP1, "profile", "set", "WEB"]).ok();
    assert_eq!(
        m.ctl(&["profile", "remove", "DB"]).ok(),
        "Deleted profile DB\n"
    );
}

#[test]
fn ipam_info_and_release() {
    let m = Master::start(None);
    let c = setup(&m);
    assert_eq!(
        m.ctl(&["ipam", "info", "10.65.1.5"]).ok(),
        "IP         HANDLE_ID  HOST  BLOCK         BLOCK_AFFINITY  HOST_ROUTE  POOL\n\
         10.65.1.5  w2         h2    10.65.1.0/26  h2              false       10.65.0.0/16\n"
    );
    assert_eq!(
        m.ctl(&["ipam", "info", "fd80:24e2:f998:72d6::1", "-o", "json"])
            .json(),
        json!([{"ip": "fd80:24e2:f998:72d6::1", "handle_id": "w1", "host": "h1", "block": "fd80:24e2:f998:72d6::/122",
                "block_affinity": "h1", "host_route": false, "pool": "fd80:24e2:f998:72d6::/64"}])
    );
    m.ctl(&["ipam", "info", "10.65.9.9"])
        .fails(1, "10.65.9.9 is not assigned");
    m.ctl(&["ipam", "info", "10.65.9.300"])
        .fails(1, "Invalid IP address specified");
    m.ctl(&["ipam", "release", "10.65.1.5"])
        .fails(1, &format!("used by endpoint {EP2}"));
    // Removing the endpoint releases its address.
    c.delete(&format!("/v1/endpoints/{EP2}"))
        .expect("delete EP2");
    m.ctl(&["ipam", "info", "10.65.1.5"])
        .fails(1, "not assigned");
    c.post(
        "/v1/ipam/assign",
        &json!({"host": "h2", "handle_id": "w3", "request": "10.65.1.6"}),
    )
    .expect("assign w3");
    assert_eq!(
        m.ctl(&["ipam", "release", "10.65.1.6"]).ok(),
        "Released 10.65.1.6 (held by w3 on host h2)\n"
    );
    m.ctl(&["ipam", "release", "10.65.1.6"])
        .fails(1, "10.65.1.6 is not assigned");
    assert_eq!(
        m.ctl(&["ipam", "release", "10.65.0.1", "--force", "-o", "json"])
            .json(),
        json!([{"message": "Released 10.65.0.1 (held by w1 on host h1)", "changed": true}])
    );
    support::ctl_env(
        &["ipam", "info", "10.65.0.1"],
        Some(&format!("http://127.0.0.1:{}", support::free_port())),
        None,
    )
    .fails(2, "cannot reach any master");
}
