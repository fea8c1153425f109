//! The lab's own tests: each builds a small data centre and proves one piece of it works with traffic,
//! and that nothing is left behind (also after a panic and after a crash).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use calico_lab::cleanup::{self, namespaces};
use calico_lab::cmd::Cmd;
use calico_lab::reach::{assert_no_ping, assert_no_tcp, assert_ping, assert_tcp};
use calico_lab::{procs, Lab, Place};

const CONVERGE: Duration = Duration::from_secs(10);

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the lab tests need root (network namespaces, veths, dockerd): run the README's test command"
    );
}

fn ns_of(lab: &str) -> Vec<String> {
    let prefix = cleanup::ns_prefix(lab);
    namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn two_hosts_ping_each_other_and_the_management_address() -> Result<()> {
    require_root();
    Lab::builder("fabric").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        assert_eq!(ns_of("fabric").len(), 3, "switch + two hosts");
        assert_ping(h1, IpAddr::V4(h2.ip), CONVERGE)?;
        assert_ping(h2, IpAddr::V4(h1.ip), CONVERGE)?;
        assert_ping(h1, IpAddr::V6(h2.ip6), CONVERGE)?;
        assert_ping(h2, IpAddr::V6(h1.ip6), CONVERGE)?;
        assert_ping(h1, IpAddr::V4(lab.mgmt_ip()), CONVERGE)?;
        assert_ping(h2, IpAddr::V6(lab.mgmt_ip6()), CONVERGE)?;
        assert_ping(&Place::Root, IpAddr::V4(h2.ip), CONVERGE)?;
        // An address on the fabric that nobody holds does not answer.
        assert_no_ping(h1, IpAddr::V4(lab.plan().host_v4(h1.subnet, 50)))?;
        // The root namespace gets no route to any container pool.
        let routes = Cmd::new(["ip", "-4", "route", "show"]).stdout()?
            + &Cmd::new(["ip", "-6", "route", "show"]).stdout()?;
        ensure!(
            !routes.contains("10.65.") && !routes.contains("fd00:65:"),
            "{routes}"
        );
        Ok(())
    })
}

#[test]
fn hosts_in_two_subnets_reach_each_other_through_the_tor() -> Result<()> {
    require_root();
    Lab::builder("tor").hosts(1).hosts_behind_tor(1).run(|lab| {
        let (a, b) = (lab.host(1), lab.host(2));
        ensure!(
            a.ip.octets()[2] != b.ip.octets()[2],
            "{} and {} share a subnet",
            a.ip,
            b.ip
        );
        assert_ping(a, IpAddr::V4(b.ip), CONVERGE)?;
        assert_ping(b, IpAddr::V4(a.ip), CONVERGE)?;
        assert_ping(a, IpAddr::V6(b.ip6), CONVERGE)?;
        assert_ping(b, IpAddr::V6(a.ip6), CONVERGE)?;
        // Subnet B reaches the management address only through the ToR.
        assert_ping(b, IpAddr::V4(lab.mgmt_ip()), CONVERGE)?;
        let route = b
            .cmd(&["ip", "route", "get", &lab.mgmt_ip().to_string()])
            .stdout()?;
        let tor = lab.plan().tor_v4(b.subnet).to_string();
        ensure!(route.contains(&format!("via {tor}")), "{route}");
        // Take the ToR's forwarding away: the subnets are cut off from each other.
        let tor_ns = lab.tor().context("the lab has a ToR")?;
        tor_ns.sysctl(&["net.ipv4.ip_forward=0"]).run()?;
        assert_no_ping(a, IpAddr::V4(b.ip))?;
        Ok(())
    })
}

#[test]
fn tcp_checks_see_both_success_and_refusal() -> Result<()> {
    require_root();
    Lab::builder("tcp").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let bin = calico_lab::lab_bin().display().to_string();
        let _server = lab.spawn(
            "echo",
            &h2.place(),
            &[bin.as_str(), "serve", "tcp", "[::]:7001"],
        )?;
        assert_tcp(h1, SocketAddr::new(IpAddr::V4(h2.ip), 7001), CONVERGE)?;
        assert_tcp(h1, SocketAddr::new(IpAddr::V6(h2.ip6), 7001), CONVERGE)?;
        assert_no_tcp(h1, SocketAddr::new(IpAddr::V4(h2.ip), 7002))?;
        // Checks refuse to send traffic outside the lab's ranges.
        ensure!(assert_tcp(h1, "192.0.2.1:80".parse()?, Duration::from_secs(1)).is_err());
        Ok(())
    })
}

#[test]
fn bare_workloads_are_wired_into_their_host() -> Result<()> {
    require_root();
    Lab::builder("workloads").hosts(2).run(|lab| {
        let h1 = lab.host(1);
        // Workload to workload goes through the host's routing (IPv6 forwarding the wiring turns on).
        h1.place().sysctl(&["net.ipv4.ip_forward=1"]).run()?;
        let w1 = lab.workload(
            h1,
            "w1",
            Some("10.65.0.11".parse()?),
            Some("fd00:65::11".parse()?),
        )?;
        let w2 = lab.workload(
            h1,
            "w2",
            Some("10.65.0.12".parse()?),
            Some("fd00:65::12".parse()?),
        )?;
        ensure!(w1.host_iface.starts_with("cali") && w1.host_iface.len() == 15);
        assert_ping(h1, ip("10.65.0.11"), CONVERGE)?;
        assert_ping(h1, ip("fd00:65::11"), CONVERGE)?;
        assert_ping(&w1, IpAddr::V4(h1.ip), CONVERGE)?;
        assert_ping(&w1, IpAddr::V6(h1.ip6), CONVERGE)?;
        // Through the host's routing: workload to workload.
        assert_ping(&w1, ip("10.65.0.12"), CONVERGE)?;
        assert_ping(&w2, ip("fd00:65::11"), CONVERGE)?;
        // h2 has no route to the pool: the workloads are unreachable from it.
        assert_no_ping(lab.host(2), ip("10.65.0.11"))?;
        Ok(())
    })
}

#[test]
fn a_container_wired_by_hand_is_reachable_from_its_host() -> Result<()> {
    require_root();
    Lab::builder("docker").hosts(1).run(|lab| {
        let h1 = lab.host(1);
        let c = lab.container("c1", &[])?;
        // --net=none: only loopback inside before wiring.
        let links = c.exec(&["ip", "-o", "link"]).stdout()?;
        ensure!(
            links.lines().count() == 1 && links.contains("lo"),
            "{links}"
        );
        let iface = lab.wire_container(
            h1,
            &c,
            Some("10.65.0.2".parse()?),
            Some("fd00:65::2".parse()?),
        )?;
        assert_ping(h1, ip("10.65.0.2"), CONVERGE)?;
        assert_ping(h1, ip("fd00:65::2"), CONVERGE)?;
        // From inside, with the image's own tools.
        assert_ping(&c, IpAddr::V4(h1.ip), CONVERGE)?;
        assert_ping(&c, IpAddr::V6(h1.ip6), CONVERGE)?;
        let addrs = c
            .exec(&["ip", "-o", "addr", "show", "dev", "eth0"])
            .stdout()?;
        ensure!(
            addrs.contains("10.65.0.2/32") && addrs.contains("fd00:65::2/128"),
            "{addrs}"
        );
        let host_links = h1
            .cmd(&["ip", "-o", "link", "show", "dev", &iface])
            .stdout()?;
        ensure!(host_links.contains(&iface), "{host_links}");
        // The image has what later tests need.
        for tool in ["sh", "ip", "ping", "nc", "wget", "sleep"] {
            c.exec(&["which", tool])
                .run()
                .or_else(|_| c.exec(&["ls", &format!("/bin/{tool}")]).run())?;
        }
        Ok(())
    })
}

#[test]
fn etcd_answers_from_the_hosts() -> Result<()> {
    require_root();
    Lab::builder("etcd").hosts(1).run(|lab| {
        let etcd = lab.etcd()?;
        let h1 = lab.host(1);
        let ctl = |args: &[&str]| {
            let mut argv = vec![
                "env",
                "ETCDCTL_API=3",
                "etcdctl",
                "--endpoints",
                etcd.url.as_str(),
            ];
            argv.extend_from_slice(args);
            h1.cmd(&argv)
        };
        ctl(&["put", "/calico/v1/Ready", "true"]).run()?;
        let got = ctl(&["get", "--print-value-only", "/calico/v1/Ready"]).stdout()?;
        ensure!(got == "true", "{got:?}");
        let local = Cmd::new([
            "env",
            "ETCDCTL_API=3",
            "etcdctl",
            "--endpoints",
            etcd.local_url.as_str(),
            "get",
            "--print-value-only",
            "/calico/v1/Ready",
        ])
        .stdout()?;
        ensure!(local == "true", "{local:?}");
        Ok(())
    })
}

#[test]
fn a_panicking_test_leaves_nothing_behind() -> Result<()> {
    require_root();
    let mut sleeper_pid = 0;
    let mut container_id = String::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::builder("panics").hosts(2).build().unwrap();
        let daemon = lab
            .spawn("sleeper", &lab.host(1).place(), &["sleep", "300"])
            .unwrap();
        sleeper_pid = daemon.pid();
        std::mem::forget(daemon); // only the lab's teardown can end it now
        lab.workload(lab.host(2), "w1", Some("10.65.0.21".parse().unwrap()), None)
            .unwrap();
        container_id = lab.container("c1", &[]).unwrap().id;
        assert_eq!(ns_of("panics").len(), 4);
        panic!("the test fails here on purpose");
    }));
    ensure!(result.is_err(), "the closure panicked");
    ensure!(ns_of("panics").is_empty(), "{:?}", ns_of("panics"));
    ensure!(
        !procs::alive(sleeper_pid),
        "process {sleeper_pid} outlived the lab"
    );
    let left = Cmd::new([
        "docker",
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("id={container_id}"),
    ])
    .stdout()?;
    ensure!(left.is_empty(), "container {container_id} outlived the lab");
    ensure!(!cleanup::lab_dir("panics").exists());
    Ok(())
}

#[test]
fn a_crashed_run_is_cleaned_up_by_the_next() -> Result<()> {
    require_root();
    let mut victim = std::process::Command::new(calico_lab::lab_bin())
        .args(["hold", "crashy"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting calico-lab hold")?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(victim.stdout.take().context("stdout")?),
        &mut line,
    )?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    ensure!(fields.first() == Some(&"ready"), "unexpected: {line:?}");
    let sleeper: u32 = fields[2].parse()?;
    victim.kill()?; // SIGKILL: no destructor runs
    victim.wait()?;
    ensure!(
        ns_of("crashy").len() == 3 && procs::alive(sleeper),
        "the crash left its lab"
    );
    Lab::builder("crashy").hosts(1).run(|_lab| {
        ensure!(
            !procs::alive(sleeper),
            "the next run ended the crashed run's daemon"
        );
        ensure!(ns_of("crashy").len() == 2, "{:?}", ns_of("crashy"));
        Ok(())
    })?;
    ensure!(ns_of("crashy").is_empty());
    Ok(())
}

#[test]
fn a_failing_body_comes_with_the_daemons_logs() -> Result<()> {
    require_root();
    let mut report = String::new();
    let result = Lab::builder("logs").hosts(1).run(|lab| {
        let mut d = lab.spawn(
            "talker",
            &lab.host(1).place(),
            &["sh", "-c", "echo hello from h1"],
        )?;
        calico_lab::wait::wait_until(CONVERGE, "the talker to finish", || Ok(!d.running()))?;
        report = lab.logs_report();
        anyhow::bail!("this body fails on purpose")
    });
    ensure!(result.is_err_and(|e| e.to_string().contains("on purpose")));
    ensure!(
        report.contains("log talker.log") && report.contains("hello from h1"),
        "{report}"
    );
    ensure!(ns_of("logs").is_empty());
    Ok(())
}
