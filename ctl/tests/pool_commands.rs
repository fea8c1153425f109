//! End to end: `calicoctl pool add|remove|show` against a real `calicoctl master run`.

mod support;

use serde_json::json;
use support::Master;

#[test]
fn add_show_remove_pools() {
    let m = Master::start(None);
    assert_eq!(
        m.ctl(&["pool", "show"]).ok(),
        "CIDR  IPIP  NAT_OUTGOING  DISABLED\n"
    );
    // --force: without it, `--ipip` is refused on a kernel without IPIP (this lab's); see
    // tests/tests/felix_ipip.rs for the refusal itself.
    assert_eq!(
        m.ctl(&[
            "pool",
            "add",
            "192.168.0.0/16",
            "--ipip",
            "--force",
            "--nat-outgoing"
        ])
        .ok(),
        "Added pool 192.168.0.0/16\n"
    );
    m.ctl(&["pool", "add", "fd80:24e2:f998:72d6::/64"]).ok();
    assert_eq!(
        m.ctl(&["pool", "show"]).ok(),
        "CIDR                      IPIP   NAT_OUTGOING  DISABLED\n\
         192.168.0.0/16            true   true          false\n\
         fd80:24e2:f998:72d6::/64  false  false         false\n"
    );
    assert_eq!(
        m.ctl(&["pool", "show", "--ipv6", "-o", "json"]).json(),
        json!([{"cidr": "fd80:24e2:f998:72d6::/64", "ipip": false, "nat_outgoing": false, "disabled": false}])
    );
    assert_eq!(
        m.ctl(&["-o", "json", "pool", "show", "--ipv4"]).json(),
        json!([{"cidr": "192.168.0.0/16", "ipip": true, "nat_outgoing": true, "disabled": false}])
    );
    // Re-adding changes the options.
    assert_eq!(
        m.ctl(&["pool", "add", "192.168.0.0/16"]).ok(),
        "Updated pool 192.168.0.0/16\n"
    );
    assert_eq!(
        m.ctl(&["pool", "show", "--ipv4", "-o", "json"]).json()[0]["ipip"],
        false
    );
    // -o json on a change gives a list with the message.
    assert_eq!(
        m.ctl(&["pool", "remove", "192.168.0.0/16", "-o", "json"])
            .json(),
        json!([{"message": "Removed pool 192.168.0.0/16", "changed": true}])
    );
    m.ctl(&["pool", "remove", "192.168.0.0/16"])
        .fails(1, "192.168.0.0/16 is not a configured pool");
    assert_eq!(
        m.ctl(&["pool", "show", "--ipv4"]).ok(),
        "CIDR  IPIP  NAT_OUTGOING  DISABLED\n"
    );
}

#[test]
fn bad_pools_exit_1_and_change_nothing() {
    let m = Master::start(None);
    m.ctl(&["pool", "add", "10.65.0.0/16"]).ok();
    m.ctl(&["pool", "add", "10.65.0.300/16"])
        .fails(1, "Invalid CIDR specified");
    m.ctl(&["pool", "add", "banana"])
        .fails(1, "Invalid CIDR specified");
    m.ctl(&["pool", "add", "10.65.1.0/24"])
        .fails(1, "overlaps the existing pool 10.65.0.0/16");
    m.ctl(&["pool", "add", "10.66.0.1/16"])
        .fails(1, "host bits");
    m.ctl(&["pool", "add", "fd00::/64", "--ipip"])
        .fails(1, "only supported for IPv4");
    m.ctl(&["pool", "show", "--ipv4", "--ipv6"])
        .fails(1, "cannot be used with");
    m.ctl(&["pool", "add"]).fails(1, "CIDR");
    assert_eq!(
        m.ctl(&["pool", "show", "-o", "json"]).json(),
        json!([{"cidr": "10.65.0.0/16", "ipip": false, "nat_outgoing": false, "disabled": false}])
    );
}
