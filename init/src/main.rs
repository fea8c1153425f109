//! `calico-init`: the first process of a Calico container started through the Docker proxy.
//!
//! Role: close the start race. Docker starts the container's process before the proxy (or the node's
//! event follower) has wired its interface; this wrapper runs first, waits until the interface has
//! every address it was given and a default route for each of their families, then replaces itself
//! (`exec`) with the container's real command, which therefore starts with its network in place and
//! runs as the same PID with the same environment, user and working directory.
//!
//! Inputs: `calico-init [--iface eth0] [--ip ADDR]... [--timeout SECS] -- PROGRAM [ARGS...]` and the
//! kernel's view from inside the container (`/proc/net/route`, `/proc/net/ipv6_route`, `/proc/net/dev`,
//! and binding a socket to each address, which only succeeds once the address is assigned and usable).
//! Outputs: the exec, or an error on stderr with exit 127 (program not found), 126 (not runnable) or 1
//! (bad arguments, or `--timeout` ran out; 0, the default, waits for ever and says so once after 10 s).
//!
//! No dependencies and no libc needed in the image: the binary is linked statically (see build.rs).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

/// What to wait for and what to run.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    iface: String,
    ips: Vec<IpAddr>,
    timeout: Option<Duration>,
    argv: Vec<String>,
}

fn parse(args: &[String]) -> Result<Plan, String> {
    let mut plan = Plan {
        iface: "eth0".into(),
        ips: Vec::new(),
        timeout: None,
        argv: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--" => {
                plan.argv = it.cloned().collect();
                break;
            }
            "--iface" => plan.iface = value("--iface")?,
            "--ip" => {
                let v = value("--ip")?;
                plan.ips.push(
                    v.parse()
                        .map_err(|_| format!("--ip: `{v}` is not an address"))?,
                );
            }
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout: `{v}` is not a number of seconds"))?;
                plan.timeout = (secs > 0).then(|| Duration::from_secs(secs));
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if plan.argv.is_empty() {
        return Err("no command after `--`".into());
    }
    Ok(plan)
}

/// True when `table` (`/proc/net/route`) has a default route out of `iface`.
fn has_v4_default(table: &str, iface: &str) -> bool {
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() > 7 && f[0] == iface && f[1] == "00000000" && f[7] == "00000000"
    })
}

/// True when `table` (`/proc/net/ipv6_route`) has a default route out of `iface`.
fn has_v6_default(table: &str, iface: &str) -> bool {
    table.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() > 9 && f[9] == iface && f[1] == "00" && f[0].bytes().all(|b| b == b'0')
    })
}

/// True when `dev` (`/proc/net/dev`) lists `iface`.
fn has_iface(dev: &str, iface: &str) -> bool {
    dev.lines()
        .filter_map(|l| l.split_once(':'))
        .any(|(name, _)| name.trim() == iface)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// True once the interface is ready: present, every address usable, a default route per family.
fn ready(plan: &Plan) -> bool {
    if !has_iface(&read("/proc/net/dev"), &plan.iface) {
        return false;
    }
    let usable = |ip: &IpAddr| UdpSocket::bind(SocketAddr::new(*ip, 0)).is_ok();
    if !plan.ips.iter().all(usable) {
        return false;
    }
    if plan.ips.iter().any(IpAddr::is_ipv4)
        && !has_v4_default(&read("/proc/net/route"), &plan.iface)
    {
        return false;
    }
    if plan.ips.iter().any(IpAddr::is_ipv6)
        && !has_v6_default(&read("/proc/net/ipv6_route"), &plan.iface)
    {
        return false;
    }
    true
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan = match parse(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("calico-init: {e}");
            eprintln!(
                "usage: calico-init [--iface eth0] [--ip ADDR]... [--timeout SECS] -- PROGRAM [ARGS...]"
            );
            std::process::exit(1);
        }
    };
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    let mut told = false;
    while !ready(&plan) {
        let waited = start.elapsed();
        if plan.timeout.is_some_and(|t| waited >= t) {
            eprintln!(
                "calico-init: {} was not wired within {} s; is calico-node running on this host?",
                plan.iface,
                waited.as_secs()
            );
            std::process::exit(1);
        }
        if !told && waited >= Duration::from_secs(10) {
            eprintln!(
                "calico-init: waiting for calico-node to wire {} (addresses {:?})",
                plan.iface, plan.ips
            );
            told = true;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    let err = std::process::Command::new(&plan.argv[0])
        .args(&plan.argv[1..])
        .exec();
    eprintln!("calico-init: cannot run {}: {err}", plan.argv[0]);
    let code = match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments() {
        let p = parse(&args(&[
            "--ip",
            "10.65.0.2",
            "--ip",
            "fd00:65::2",
            "--timeout",
            "5",
            "--",
            "sleep",
            "--",
            "1",
        ]))
        .unwrap();
        assert_eq!(p.iface, "eth0");
        assert_eq!(p.ips.len(), 2);
        assert_eq!(p.timeout, Some(Duration::from_secs(5)));
        assert_eq!(p.argv, ["sleep", "--", "1"]);
        assert!(parse(&args(&["--ip", "x", "--", "a"])).is_err());
        assert!(parse(&args(&["--ip", "10.0.0.1"])).is_err());
        assert!(parse(&args(&["--bogus", "--", "a"])).is_err());
        let p = parse(&args(&["--iface", "eth1", "--timeout", "0", "--", "a"])).unwrap();
        assert_eq!((p.iface.as_str(), p.timeout), ("eth1", None));
    }

    #[test]
    fn route_tables() {
        let v4 =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth0\t0B00FA0A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n\
                  eth0\t00000000\t0B00FA0A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert!(has_v4_default(v4, "eth0"));
        assert!(!has_v4_default(v4, "eth1"));
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000250000000000000000000000011 00000400 00000001 00000000 00000003     eth0\n";
        assert!(has_v6_default(v6, "eth0"));
        assert!(!has_v6_default(v6, "lo"));
        let dev = "Inter-|   Receive\n face |bytes\n    lo: 0 0\n  eth0: 1 2\n";
        assert!(has_iface(dev, "eth0") && !has_iface(dev, "eth1"));
    }
}
