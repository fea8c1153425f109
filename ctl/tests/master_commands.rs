//! End to end: `calicoctl master run` itself (signals, persistence, auth) and how calicoctl reports
//! a master it cannot reach (exit 2) or fails over between several.

mod support;

use support::{ctl_env, free_port, Master};

#[test]
fn unreachable_master_exits_2_saying_where_it_looked() {
    let mut m = Master::start(None);
    m.ctl(&["pool", "show"]).ok();
    assert!(m.terminate().success(), "SIGTERM exits 0: {}", m.log_text());
    let url = m.url.clone();
    for args in [
        &["pool", "show"][..],
        &["profile", "add", "WEB"],
        &["profile", "WEB", "rule", "show"],
        &["pool", "add", "10.0.0.0/8"],
    ] {
        let err = m.ctl(args).fails(2, "cannot reach any master");
        assert!(err.contains(&url), "{err}");
    }
    // Bad input is still a user error, found before the master is needed.
    m.ctl(&["pool", "add", "not-a-cidr"])
        .fails(1, "Invalid CIDR");
    m.ctl(&[
        "profile", "WEB", "rule", "add", "inbound", "allow", "tcp", "frm",
    ])
    .fails(1, "invalid rule");
}

#[test]
fn several_masters_fail_over_in_order() {
    let m = Master::start(None);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let both = format!("{dead},{}", m.url);
    ctl_env(&["profile", "add", "WEB"], Some(&both), None).ok();
    let out = ctl_env(&["--master", &both, "profile", "show"], None, None);
    assert_eq!(out.ok(), "NAME\nWEB\n");
    let out = ctl_env(
        &["profile", "show", "--master", &format!("{dead},{dead}")],
        None,
        None,
    );
    let err = out.fails(2, "cannot reach any master");
    assert_eq!(err.matches(&dead).count(), 2, "{err}");
}

#[test]
fn data_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("master.db");
    let mut m = Master::spawn(&db, None, dir.path());
    m.ctl(&["pool", "add", "10.65.0.0/16", "--nat-outgoing"])
        .ok();
    m.ctl(&["profile", "add", "WEB"]).ok();
    m.ctl(&["profile", "WEB", "tag", "add", "DB"]).ok();
    assert!(m.terminate().success());
    drop(m);
    let m = Master::spawn(&db, None, dir.path());
    assert_eq!(
        m.ctl(&["pool", "show", "-o", "json"]).json()[0]["nat_outgoing"],
        true
    );
    assert_eq!(
        m.ctl(&["profile", "WEB", "tag", "show"]).ok(),
        "TAG\nWEB\nDB\n"
    );
}

#[test]
fn token_is_required_when_configured() {
    let m = Master::start(Some("t0ken"));
    m.ctl(&["pool", "show"]).fails(1, "bearer token");
    let token = m.token_file.clone().expect("token file");
    let token = token.to_str().expect("utf-8 path");
    assert_eq!(
        m.ctl(&["pool", "show", "--token-file", token]).ok(),
        "CIDR  IPIP  NAT_OUTGOING  DISABLED\n"
    );
    m.ctl(&["--token-file", token, "profile", "add", "WEB"])
        .ok();
    m.ctl(&["profile", "WEB", "tag", "show", "--token-file", token])
        .ok();
    let wrong = m.token_file.as_ref().expect("file").with_file_name("wrong");
    std::fs::write(&wrong, "nope").expect("write");
    m.ctl(&[
        "pool",
        "show",
        "--token-file",
        wrong.to_str().expect("utf-8"),
    ])
    .fails(1, "bearer token");
    m.ctl(&["pool", "show", "--token-file", "/nonexistent/token"])
        .fails(1, "token file /nonexistent/token");
}

#[test]
fn master_run_reports_bad_setup() {
    // The port is taken by a running master: the second one says so and exits 1.
    let m = Master::start(None);
    let out = ctl_env(
        &[
            "master",
            "run",
            "--listen",
            &m.addr.to_string(),
            "--datastore",
            &format!("{}.other", m.datastore.display()),
        ],
        None,
        None,
    );
    out.fails(1, "cannot listen on");
    let out = ctl_env(
        &[
            "master",
            "run",
            "--listen",
            "127.0.0.1:0",
            "--datastore",
            "/proc/nope/master.db",
        ],
        None,
        None,
    );
    out.fails(1, "cannot open the datastore");
}
