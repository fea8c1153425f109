//! End to end: `calicoctl config set|unset|show [--host H]` against a real `calicoctl master run`.

mod support;

use serde_json::json;
use support::Master;

#[test]
fn set_show_override_and_unset() {
    let m = Master::start(None);
    assert_eq!(m.ctl(&["config", "show"]).ok(), "KEY  VALUE  SOURCE\n");
    assert_eq!(
        m.ctl(&["config", "set", "DefaultEndpointToHostAction", "RETURN"])
            .ok(),
        "Set DefaultEndpointToHostAction to RETURN cluster-wide\n"
    );
    m.ctl(&["config", "set", "LogSeverityScreen", "INFO"]).ok();
    assert_eq!(
        m.ctl(&[
            "config",
            "set",
            "DefaultEndpointToHostAction",
            "ACCEPT",
            "--host",
            "h1"
        ])
        .ok(),
        "Set DefaultEndpointToHostAction to ACCEPT for host h1\n"
    );
    assert_eq!(
        m.ctl(&["config", "show", "--host", "h1"]).ok(),
        "KEY                          VALUE   SOURCE\n\
         DefaultEndpointToHostAction  ACCEPT  host\n\
         LogSeverityScreen            INFO    global\n"
    );
    assert_eq!(
        m.ctl(&["config", "show", "-o", "json"]).json(),
        json!([
            {"key": "DefaultEndpointToHostAction", "value": "RETURN", "source": "global"},
            {"key": "LogSeverityScreen", "value": "INFO", "source": "global"},
        ])
    );
    assert_eq!(
        m.ctl(&[
            "config",
            "unset",
            "DefaultEndpointToHostAction",
            "--host",
            "h1",
            "-o",
            "json"
        ])
        .json(),
        json!([{"message": "Unset DefaultEndpointToHostAction for host h1", "changed": true}])
    );
    assert_eq!(
        m.ctl(&["config", "show", "--host", "h1", "-o", "json"])
            .json()[0]["value"],
        "RETURN"
    );
    m.ctl(&["config", "unset", "LogSeverityScreen"]).ok();
    m.ctl(&["config", "unset", "LogSeverityScreen"])
        .fails(1, "LogSeverityScreen is not set cluster-wide");
}

#[test]
fn bad_settings_exit_1_and_change_nothing() {
    let m = Master::start(None);
    m.ctl(&["config", "set", "DefaultEndpointToHostAction", "drop"])
        .fails(1, "takes DROP, RETURN or ACCEPT");
    m.ctl(&["config", "set", "IpInIpMtu", "10"])
        .fails(1, "576 to 9000");
    m.ctl(&["config", "set", "Bad/Key", "x"])
        .fails(1, "Invalid setting");
    m.ctl(&[
        "config",
        "set",
        "LogSeverityScreen",
        "INFO",
        "--host",
        "a b",
    ])
    .fails(1, "Invalid host name");
    m.ctl(&["config", "set", "LogSeverityScreen"])
        .fails(1, "VALUE");
    assert_eq!(m.ctl(&["config", "show", "-o", "json"]).json(), json!([]));
}
