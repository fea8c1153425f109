//! End to end on etcd: a real etcd (Debian's `etcd`, on free loopback ports with a temporary data
//! directory) and two `calicoctl master run --etcd-endpoints …` children sharing it. What one master
//! writes the other serves, `etcdctl get --prefix /calico` reads the original's layout, and a master
//! whose etcd is unreachable refuses to start, naming the endpoints. Every child is killed in `Drop`.

mod support;

use std::{
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Output, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use support::{ctl_env, free_port, BIN};

/// A child process killed (SIGKILL) and reaped on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait until `addr` accepts connections, or panic with `what`'s log.
fn wait_port(addr: SocketAddr, child: &mut Child, log: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        let log = || std::fs::read_to_string(log).unwrap_or_default();
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early ({status}): {}", log());
        }
        assert!(Instant::now() < deadline, "{what} not ready: {}", log());
        sleep(Duration::from_millis(50));
    }
}

fn start_etcd(dir: &Path) -> (Guard, String) {
    let client = format!("http://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let log = dir.join("etcd.log");
    let logf = std::fs::File::create(&log).expect("etcd log");
    let child = Command::new("etcd")
        .arg("--name=e2e")
        .arg(format!("--data-dir={}", dir.join("etcd").display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=e2e={peer}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run etcd: {e}; install etcd-server (apt-get install etcd-server)")
        });
    let mut guard = Guard(child);
    let addr: SocketAddr = client.trim_start_matches("http://").parse().expect("addr");
    wait_port(addr, &mut guard.0, &log, "etcd");
    (guard, client)
}

fn start_master(dir: &Path, etcd: &str) -> (Guard, String) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let log = dir.join(format!("master-{}.log", addr.port()));
    let logf = std::fs::File::create(&log).expect("master log");
    let child = Command::new(BIN)
        .args(["master", "run", "--listen", &addr.to_string()])
        .args(["--etcd-endpoints", etcd])
        .env_remove("CALICO_MASTER")
        .env_remove("CALICO_TOKEN_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .expect("spawn calicoctl master run");
    let mut guard = Guard(child);
    wait_port(addr, &mut guard.0, &log, "master");
    (guard, format!("http://{addr}"))
}

fn etcdctl(endpoint: &str, args: &[&str]) -> Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .output()
        .expect("etcdctl (install the etcd-client package)")
}

#[test]
fn two_masters_share_one_etcd_in_the_original_layout() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_etcd, endpoint) = start_etcd(dir.path());
    let (_a, url_a) = start_master(dir.path(), &endpoint);
    let (_b, url_b) = start_master(dir.path(), &endpoint);
    ctl_env(
        &["pool", "add", "10.65.0.0/16", "--nat-outgoing"],
        Some(&url_a),
        None,
    )
    .ok();
    ctl_env(&["profile", "add", "WEB"], Some(&url_a), None).ok();
    ctl_env(&["profile", "add", "DB"], Some(&url_b), None).ok();
    // Each master serves what the other wrote.
    for url in [&url_a, &url_b] {
        assert_eq!(
            ctl_env(&["profile", "show"], Some(url), None).ok(),
            "NAME\nDB\nWEB\n"
        );
        let pools = ctl_env(&["pool", "show", "-o", "json"], Some(url), None).json();
        assert_eq!(pools[0]["cidr"], "10.65.0.0/16");
        assert_eq!(pools[0]["nat_outgoing"], true);
    }
    // etcdctl reads the original's keys and JSON values.
    let out = etcdctl(&endpoint, &["get", "--prefix", "/calico", "--keys-only"]);
    assert!(out.status.success(), "{out:?}");
    let keys = String::from_utf8_lossy(&out.stdout);
    for k in [
        "/calico/v1/policy/profile/WEB/tags",
        "/calico/v1/policy/profile/WEB/rules",
        "/calico/v1/policy/profile/DB/tags",
        "/calico/v1/ipam/v4/pool/10.65.0.0-16",
    ] {
        assert!(keys.lines().any(|l| l == k), "{k} missing from:\n{keys}");
    }
    let out = etcdctl(
        &endpoint,
        &[
            "get",
            "/calico/v1/policy/profile/WEB/tags",
            "--print-value-only",
        ],
    );
    let tags: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the tags are JSON");
    assert_eq!(tags, serde_json::json!(["WEB"]));
    // A write straight into etcd (as another tool would) is served too.
    let out = etcdctl(
        &endpoint,
        &["put", "/calico/v1/policy/profile/APP/tags", "[\"APP\"]"],
    );
    assert!(out.status.success(), "{out:?}");
    let out = etcdctl(
        &endpoint,
        &[
            "put",
            "/calico/v1/policy/profile/APP/rules",
            "{\"inbound_rules\":[],\"outbound_rules\":[]}",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        ctl_env(&["profile", "show"], Some(&url_b), None).ok(),
        "NAME\nAPP\nDB\nWEB\n"
    );
}

#[test]
fn a_master_whose_etcd_is_unreachable_refuses_to_start_naming_it() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let t = Instant::now();
    let out = ctl_env(
        &[
            "master",
            "run",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--etcd-endpoints",
            &dead,
        ],
        None,
        None,
    );
    let err = out.fails(1, "cannot use etcd");
    assert!(err.contains(&dead), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let out = ctl_env(
        &[
            "master",
            "run",
            "--datastore",
            "/tmp/x.db",
            "--etcd-endpoints",
            &dead,
        ],
        None,
        None,
    );
    // A usage error: exit 1 (exit 2 means "cannot reach the master").
    out.fails(1, "cannot be used with");
}
