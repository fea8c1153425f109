//! Pieces the BGP benchmarks (`bgp-converge`, `bgp-send`) share: the routes they announce, BIRD 2
//! started in a lab host and driven with `birdc`, the `calico-bgp` binary, a process's peak RSS and CPU
//! time from `/proc`, and a series of timings with its median and range.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use calico_lab::cmd::Cmd;
use calico_lab::procs::Daemon;
use calico_lab::wait::wait_until;
use calico_lab::{Host, Lab};

/// The `i`th announced route: /32s counting up from 10.96.0.0 (10.96.0.0/12 holds 1,048,576).
pub fn route(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i)
}

/// The index of `addr` among [`route`]s, if it is one of the first `n`.
pub fn route_index(addr: u32, n: u32) -> Option<u32> {
    addr.checked_sub(u32::from(Ipv4Addr::new(10, 96, 0, 0)))
        .filter(|i| *i < n)
}

/// The path of a lab host's network namespace.
pub fn netns(host: &Host) -> PathBuf {
    PathBuf::from("/run/netns").join(&host.ns)
}

/// Fails unless this runs as root with BIRD 2 (`bird`, `birdc`) installed.
pub fn preflight() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    ensure!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")),
        "needs root"
    );
    ensure!(
        Cmd::new(["sh", "-c", "command -v bird && command -v birdc"]).succeeds()?,
        "BIRD 2 is missing: apt-get install -y bird2"
    );
    Ok(())
}

/// The `calico-bgp` binary: `given`, else the one beside this executable.
pub fn bgp_bin(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe()?;
    let p = exe.with_file_name("calico-bgp");
    ensure!(
        p.is_file(),
        "{} not found: cargo build --release -p calico-bgp, or --bgp-bin",
        p.display()
    );
    Ok(p)
}

/// The start of a BIRD config: logging, the router id and a device protocol.
pub fn bird_header(router_id: Ipv4Addr) -> String {
    format!(
        "log stderr {{ warning, error, fatal, bug }};\nrouter id {router_id};\n\
         protocol device {{ scan time 60; }}\n"
    )
}

/// A static protocol `name` with the first `routes` [`route`]s as blackhole /32s.
pub fn bird_static(name: &str, routes: u32, disabled: bool) -> String {
    let mut conf = format!(
        "protocol static {name} {{\n  ipv4;\n{}",
        if disabled { "  disabled;\n" } else { "" }
    );
    for i in 0..routes {
        conf.push_str(&format!("  route {}/32 blackhole;\n", route(i)));
    }
    conf.push_str("}\n");
    conf
}

/// Runs one `birdc` command against the control socket `sock`.
pub fn birdc(sock: &Path, command: &str) -> Result<String> {
    let mut argv = vec!["birdc".to_string(), "-s".into(), sock.display().to_string()];
    argv.extend(command.split_whitespace().map(String::from));
    Ok(Cmd::new(argv)
        .timeout(Duration::from_secs(20))
        .run()?
        .stdout)
}

/// Starts BIRD in `host` with `config` (files `<name>.conf`, `.ctl`, `.pid` in the lab's directory) and
/// waits until its control socket answers.
pub fn start_bird(lab: &Lab, host: &Host, name: &str, config: &str) -> Result<(Daemon, PathBuf)> {
    let conf = lab.dir().join(format!("{name}.conf"));
    std::fs::write(&conf, config)?;
    start_bird_with(lab, host, name, &conf)
}

/// [`start_bird`] with a config file already written.
pub fn start_bird_with(
    lab: &Lab,
    host: &Host,
    name: &str,
    conf: &Path,
) -> Result<(Daemon, PathBuf)> {
    let sock = lab.dir().join(format!("{name}.ctl"));
    let pid = lab.dir().join(format!("{name}.pid"));
    let argv = [
        "bird".to_string(),
        "-f".into(),
        "-c".into(),
        conf.display().to_string(),
        "-s".into(),
        sock.display().to_string(),
        "-P".into(),
        pid.display().to_string(),
    ];
    let daemon = lab.spawn(name, &host.place(), &argv)?;
    wait_until(Duration::from_secs(30), "BIRD's control socket", || {
        Ok(birdc(&sock, "show status").is_ok_and(|o| o.contains("Daemon is up")))
    })?;
    Ok((daemon, sock))
}

/// `/proc/<pid>/<what>`.
pub fn proc_text(pid: u32, what: &str) -> Result<String> {
    let path = format!("/proc/{pid}/{what}");
    std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))
}

/// A process's peak resident set size (VmHWM) in KiB.
pub fn hwm_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmHWM")
}

/// A process's resident set size now (VmRSS) in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS")
}

/// A KiB field of `/proc/PID/status`.
fn status_kib(pid: u32, field: &str) -> Result<u64> {
    proc_text(pid, "status")?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("{field} of process {pid}"))
}

/// The CPU time a process has used (utime + stime of `/proc/PID/stat`, all threads), at the clock
/// tick's resolution (10 ms here).
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let text = proc_text(pid, "stat")?;
    // The command name may hold spaces; the fields after it start at the last ')'.
    let rest = text.rsplit_once(')').context("/proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, utime 14, stime 15 (1-based over the whole line).
    let tick = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .context("/proc/PID/stat is short")?
            .parse()
            .context("/proc/PID/stat")
    };
    let ticks = tick(11)? + tick(12)?;
    Ok(Duration::from_millis(ticks * 1000 / CLK_TCK))
}

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`; 100 on every Linux this runs on).
const CLK_TCK: u64 = 100;

/// A series of timings (or CPU times) with its median and range.
#[derive(Default)]
pub struct Series(pub Vec<Duration>);

impl Series {
    /// The median in seconds (NaN when empty).
    pub fn median(&self) -> f64 {
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64()).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// "median s (min–max)".
    pub fn show(&self) -> String {
        let min = self.0.iter().min().map_or(f64::NAN, |d| d.as_secs_f64());
        let max = self.0.iter().max().map_or(f64::NAN, |d| d.as_secs_f64());
        format!("{:.3} s ({min:.3}–{max:.3})", self.median())
    }
}
