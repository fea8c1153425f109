//! The lab itself: a fake data centre of network namespaces on one machine.
//!
//! A [`Lab`] owns: a switch namespace (`lab-<name>-sw`) whose bridges are the L2 segments; hosts
//! (`lab-<name>-h1`, …) each with an IPv4 and an IPv6 address on its fabric link; optionally a ToR
//! (`lab-<name>-tor`) routing between subnet A and subnet B; a management link from the root namespace
//! into subnet A (where the master and etcd listen); and whatever workloads, containers and daemons a
//! test adds. Dropping the lab (also while a test panics) removes all of it and, when panicking, prints
//! every daemon's log first. A new lab removes whatever a crashed run of the same name left.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cleanup::{self, lab_dir, RUN_DIR};
use crate::cmd::Cmd;
use crate::docker::{self, Container};
use crate::etcd::Etcd;
use crate::place::Place;
use crate::plan::{Plan, Subnet, MAX_HOSTS, SLOTS};
use crate::procs::Daemon;

/// A lab host: a network namespace with one fabric link (`eth0`).
#[derive(Debug, Clone)]
pub struct Host {
    /// `h1`, `h2`, …
    pub name: String,
    /// The namespace, `lab-<lab>-<name>`.
    pub ns: String,
    pub subnet: Subnet,
    /// The address the node on this host is started with as `--ip`.
    pub ip: Ipv4Addr,
    /// The address the node on this host is started with as `--ip6`.
    pub ip6: Ipv6Addr,
}

impl Host {
    /// The host's network namespace.
    pub fn place(&self) -> Place {
        Place::Netns(self.ns.clone())
    }

    /// A command run on the host.
    pub fn cmd(&self, argv: &[&str]) -> Cmd {
        self.place().cmd(argv)
    }
}

/// A bare workload: a network namespace wired to a host through a veth, for scale tests.
#[derive(Debug, Clone)]
pub struct Workload {
    pub ns: String,
    /// The host side of the veth (`cali` + 11 hex characters).
    pub host_iface: String,
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
}

impl Workload {
    pub fn place(&self) -> Place {
        Place::Netns(self.ns.clone())
    }

    /// The MAC address of the workload's `eth0`.
    pub fn mac(&self) -> Result<[u8; 6]> {
        let text = Cmd::new([
            "ip",
            "-n",
            self.ns.as_str(),
            "-o",
            "link",
            "show",
            "dev",
            "eth0",
        ])
        .stdout()?;
        let hex = text
            .split_whitespace()
            .skip_while(|f| *f != "link/ether")
            .nth(1)
            .context("no MAC on eth0")?;
        let mut mac = [0u8; 6];
        let bytes: Vec<&str> = hex.split(':').collect();
        if bytes.len() != 6 {
            bail!("unexpected MAC {hex:?}");
        }
        for (slot, byte) in mac.iter_mut().zip(bytes) {
            *slot = u8::from_str_radix(byte, 16)?;
        }
        Ok(mac)
    }
}

/// How a lab is laid out; see [`Lab::builder`].
#[derive(Debug, Clone)]
pub struct LabBuilder {
    name: String,
    hosts: Vec<Subnet>,
    tor: bool,
    slot: Option<u8>,
}

impl LabBuilder {
    /// Adds `n` hosts on the fabric (subnet A).
    pub fn hosts(mut self, n: usize) -> Self {
        self.hosts.extend(std::iter::repeat_n(Subnet::A, n));
        self
    }

    /// Adds `n` hosts in subnet B, reachable from subnet A only through the ToR (which this adds).
    pub fn hosts_behind_tor(mut self, n: usize) -> Self {
        self.hosts.extend(std::iter::repeat_n(Subnet::B, n));
        self.tor = true;
        self
    }

    /// Uses this slot rather than the first free one (slot 0 is the demo's).
    pub fn slot(mut self, slot: u8) -> Self {
        self.slot = Some(slot);
        self
    }

    /// Removes any leftovers of a lab with this name, then builds the lab.
    pub fn build(self) -> Result<Lab> {
        Lab::create(self)
    }

    /// Builds the lab, runs `body` in it and tears it down; if `body` fails or panics, every daemon's
    /// log is printed first, so the failure comes with its evidence.
    pub fn run<F>(self, body: F) -> Result<()>
    where
        F: FnOnce(&Lab) -> Result<()>,
    {
        let lab = self.build()?;
        let result = body(&lab);
        if result.is_err() {
            lab.print_logs();
        }
        result
    }
}

/// A running lab; see the module docs.
#[derive(Debug)]
pub struct Lab {
    name: String,
    plan: Plan,
    dir: PathBuf,
    hosts: Vec<Host>,
    tor: bool,
    keep: bool,
    _slot_lock: fs::File,
}

impl Lab {
    /// Starts describing a lab called `name` (1–20 of `a-z0-9`; unique per test).
    pub fn builder(name: &str) -> LabBuilder {
        LabBuilder {
            name: name.to_string(),
            hosts: Vec::new(),
            tor: false,
            slot: None,
        }
    }

    fn create(spec: LabBuilder) -> Result<Lab> {
        let name = spec.name;
        if name.is_empty()
            || name.len() > 20
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            bail!("lab name {name:?} must be 1-20 characters of a-z and 0-9");
        }
        if spec.hosts.len() > usize::from(MAX_HOSTS) {
            bail!("a lab has at most {MAX_HOSTS} hosts");
        }
        let stale = cleanup::teardown(&name)?;
        if !stale.is_empty() {
            eprintln!(
                "lab {name}: removed leftovers of an earlier run: {}",
                stale.join(", ")
            );
        }
        let (slot, slot_lock) = take_slot(spec.slot)?;
        let plan = Plan::new(slot);
        // A link of this slot can only be a crashed run's: nobody holds the slot's lock.
        cleanup::remove_link(&plan.mgmt_link())?;
        let dir = lab_dir(&name);
        fs::create_dir_all(dir.join("logs"))?;
        fs::write(dir.join("slot"), format!("{slot}\n"))?;

        let hosts = spec
            .hosts
            .iter()
            .enumerate()
            .map(|(i, subnet)| {
                let n = (i + 1) as u8;
                Host {
                    name: format!("h{n}"),
                    ns: format!("lab-{name}-h{n}"),
                    subnet: *subnet,
                    ip: plan.host_v4(*subnet, n),
                    ip6: plan.host_v6(*subnet, n),
                }
            })
            .collect();
        let lab = Lab {
            name,
            plan,
            dir,
            hosts,
            tor: spec.tor,
            keep: false,
            _slot_lock: slot_lock,
        };
        // From here on, a failure drops `lab`, which removes what was built so far.
        lab.build_switch()?;
        lab.build_mgmt_link()?;
        if lab.tor {
            lab.build_tor()?;
        }
        for host in &lab.hosts {
            lab.build_host(host)?;
        }
        Ok(lab)
    }

    fn ns(&self, part: &str) -> String {
        format!("lab-{}-{part}", self.name)
    }

    fn switch(&self) -> Place {
        Place::Netns(self.ns("sw"))
    }

    fn build_switch(&self) -> Result<()> {
        let ns = self.ns("sw");
        Cmd::new(["ip", "netns", "add", ns.as_str()]).run()?;
        let sw = self.switch();
        // The switch only bridges: no addresses, no IPv6 on its ports.
        sw.sysctl(&[
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ])
        .run()?;
        let mut lines = vec!["link set lo up".to_string()];
        let bridges: &[Subnet] = if self.tor {
            &[Subnet::A, Subnet::B]
        } else {
            &[Subnet::A]
        };
        for subnet in bridges {
            let br = subnet.bridge();
            lines.push(format!(
                "link add {br} type bridge stp_state 0 forward_delay 0 mcast_snooping 0"
            ));
            lines.push(format!("link set {br} up"));
        }
        sw.ip_batch(&lines).run()?;
        Ok(())
    }

    /// Joins `iface` (in `place`, created here as a veth) to the bridge of `subnet` as port `port`.
    fn plug(&self, place: &Place, iface: &str, port: &str, subnet: Subnet) -> Result<()> {
        let peer_ns = self.ns("sw");
        let argv = [
            "ip", "link", "add", iface, "type", "veth", "peer", "name", port, "netns", &peer_ns,
        ];
        match place {
            Place::Netns(ns) => Cmd::new(
                ["ip", "-n", ns.as_str()]
                    .into_iter()
                    .chain(argv[1..].iter().copied()),
            )
            .run()?,
            other => other.cmd(&argv).run()?,
        };
        self.switch()
            .ip_batch(&[
                format!("link set {port} master {}", subnet.bridge()),
                format!("link set {port} up"),
            ])
            .run()?;
        Ok(())
    }

    fn build_mgmt_link(&self) -> Result<()> {
        let link = self.plan.mgmt_link();
        self.plug(&Place::Root, &link, "mgmt", Subnet::A)?;
        let mut lines = vec![
            format!("addr add {}/24 dev {link}", self.plan.mgmt_v4()),
            format!("addr add {}/64 dev {link} nodad", self.plan.mgmt_v6()),
            format!("link set {link} up"),
        ];
        if self.tor {
            let (a, b) = (Subnet::A, Subnet::B);
            lines.push(format!(
                "route add {} via {} dev {link}",
                self.plan.v4_net(b),
                self.plan.tor_v4(a)
            ));
            lines.push(format!(
                "route add {} via {} dev {link}",
                self.plan.v6_net(b),
                self.plan.tor_v6(a)
            ));
        }
        Place::Root.ip_batch(&lines).run()?;
        Ok(())
    }

    fn build_tor(&self) -> Result<()> {
        let ns = self.ns("tor");
        Cmd::new(["ip", "netns", "add", ns.as_str()]).run()?;
        let tor = Place::Netns(ns);
        tor.sysctl(&[
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv6.conf.default.accept_dad=0",
        ])
        .run()?;
        let mut lines = vec!["link set lo up".to_string()];
        for (i, subnet) in [Subnet::A, Subnet::B].into_iter().enumerate() {
            let iface = format!("eth{i}");
            self.plug(&tor, &iface, &format!("tor{i}"), subnet)?;
            lines.push(format!(
                "addr add {}/24 dev {iface}",
                self.plan.tor_v4(subnet)
            ));
            lines.push(format!(
                "addr add {}/64 dev {iface} nodad",
                self.plan.tor_v6(subnet)
            ));
            lines.push(format!("link set {iface} up"));
        }
        tor.ip_batch(&lines).run()?;
        Ok(())
    }

    fn build_host(&self, host: &Host) -> Result<()> {
        Cmd::new(["ip", "netns", "add", host.ns.as_str()]).run()?;
        let place = host.place();
        // No duplicate address detection: addresses are usable at once, as on a real fabric after boot.
        place
            .sysctl(&[
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ])
            .run()?;
        self.plug(&place, "eth0", &host.name, host.subnet)?;
        let mut lines = vec![
            "link set lo up".to_string(),
            format!("addr add {}/24 dev eth0", host.ip),
            format!("addr add {}/64 dev eth0 nodad", host.ip6),
            "link set eth0 up".to_string(),
        ];
        if self.tor {
            let other = host.subnet.other();
            lines.push(format!(
                "route add {} via {}",
                self.plan.v4_net(other),
                self.plan.tor_v4(host.subnet)
            ));
            lines.push(format!(
                "route add {} via {}",
                self.plan.v6_net(other),
                self.plan.tor_v6(host.subnet)
            ));
        }
        place.ip_batch(&lines).run()?;
        Ok(())
    }

    /// The lab's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lab's address plan.
    pub fn plan(&self) -> Plan {
        self.plan
    }

    /// The lab's runtime directory (logs, pid files, data dirs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// All hosts, in order h1, h2, ….
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Host `hN` (N from 1).
    pub fn host(&self, n: usize) -> &Host {
        &self.hosts[n - 1]
    }

    /// The management address in the root namespace, reachable from every host.
    pub fn mgmt_ip(&self) -> Ipv4Addr {
        self.plan.mgmt_v4()
    }

    /// The management IPv6 address in the root namespace.
    pub fn mgmt_ip6(&self) -> Ipv6Addr {
        self.plan.mgmt_v6()
    }

    /// The ToR's namespace, when the lab has one.
    pub fn tor(&self) -> Option<Place> {
        self.tor.then(|| Place::Netns(self.ns("tor")))
    }

    /// Starts a daemon in `place`; it is stopped when the returned handle or the lab is dropped, and its
    /// log is printed if the test fails.
    pub fn spawn<S: AsRef<str>>(&self, name: &str, place: &Place, argv: &[S]) -> Result<Daemon> {
        Daemon::spawn(&self.dir, name, place, argv)
    }

    /// Starts a real etcd in the root namespace, listening on the management address.
    pub fn etcd(&self) -> Result<Etcd> {
        Etcd::start(self)
    }

    /// Makes sure the lab's dockerd and image are there.
    pub fn docker(&self) -> Result<()> {
        docker::ensure_dockerd()?;
        docker::ensure_image()
    }

    /// Runs a `--net=none` container of this lab running `argv` (the lab image's `sleep 1d` if empty).
    pub fn container(&self, name: &str, argv: &[&str]) -> Result<Container> {
        self.docker()?;
        let argv: &[&str] = if argv.is_empty() {
            &["sleep", "1d"]
        } else {
            argv
        };
        Container::run(&self.name, name, argv)
    }

    /// Creates the bare workload namespace `lab-<lab>-<host>-<name>` wired to `host`, with the host's
    /// side routed by hand (a route to each address, a proxy neighbour for the IPv6 gateway).
    pub fn workload(
        &self,
        host: &Host,
        name: &str,
        ip: Option<Ipv4Addr>,
        ip6: Option<Ipv6Addr>,
    ) -> Result<Workload> {
        self.add_workload(host, name, ip, ip6, true)
    }

    /// Like [`Lab::workload`], but the host's side is only a veth that is up: no route, no sysctl, no
    /// neighbour entry. This is what the Docker proxy leaves for Felix to finish.
    pub fn workload_unrouted(
        &self,
        host: &Host,
        name: &str,
        ip: Option<Ipv4Addr>,
        ip6: Option<Ipv6Addr>,
    ) -> Result<Workload> {
        self.add_workload(host, name, ip, ip6, false)
    }

    fn add_workload(
        &self,
        host: &Host,
        name: &str,
        ip: Option<Ipv4Addr>,
        ip6: Option<Ipv6Addr>,
        host_side: bool,
    ) -> Result<Workload> {
        let ns = format!("{}-{name}", host.ns);
        Cmd::new(["ip", "netns", "add", ns.as_str()]).run()?;
        let place = Place::Netns(ns.clone());
        let host_iface = iface_name(&ns);
        self.wire(host, &place, &host_iface, ip, ip6, host_side)?;
        Ok(Workload {
            ns,
            host_iface,
            ip,
            ip6,
        })
    }

    /// Wires `container` into `host` by hand (a veth, addresses, routes), as calico-node would.
    pub fn wire_container(
        &self,
        host: &Host,
        container: &Container,
        ip: Option<Ipv4Addr>,
        ip6: Option<Ipv6Addr>,
    ) -> Result<String> {
        let host_iface = iface_name(&container.id);
        self.wire(host, &container.place(), &host_iface, ip, ip6, true)?;
        Ok(host_iface)
    }

    /// A veth from `host` (`host_iface`) into `target` (`eth0`), the addresses as /32 and /128 inside,
    /// and the host's own addresses as the workload's gateways; with `host_side`, also routes to them on
    /// the host and a proxy neighbour for the IPv6 gateway (as Felix would make them).
    fn wire(
        &self,
        host: &Host,
        target: &Place,
        host_iface: &str,
        ip: Option<Ipv4Addr>,
        ip6: Option<Ipv6Addr>,
        host_side: bool,
    ) -> Result<()> {
        // Settle the workload side's IPv6 before its interface exists: on when asked for (Docker turns
        // it off in `--net=none` containers), and no DAD on its link-local address.
        let mut settings = vec!["net.ipv6.conf.default.accept_dad=0"];
        if ip6.is_some() {
            settings.extend([
                "net.ipv6.conf.all.disable_ipv6=0",
                "net.ipv6.conf.default.disable_ipv6=0",
            ]);
        }
        target.sysctl(&settings).run()?;
        Cmd::new([
            "ip",
            "-n",
            host.ns.as_str(),
            "link",
            "add",
            host_iface,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &target.netns_arg(),
        ])
        .run()?;
        let mut host_lines = vec![format!("link set {host_iface} up")];
        let mut inside = vec!["link set lo up".to_string(), "link set eth0 up".to_string()];
        if let (Some(ip), true) = (ip, host_side) {
            host_lines.push(format!("route add {ip}/32 dev {host_iface}"));
        }
        if let Some(ip) = ip {
            inside.push(format!("addr add {ip}/32 dev eth0"));
            inside.push(format!("route add {} dev eth0 scope link", host.ip));
            inside.push(format!("route add default via {} dev eth0", host.ip));
        }
        if let (Some(ip6), true) = (ip6, host_side) {
            // The kernel answers for a proxy neighbour only on an interface that forwards; calico-node
            // turns forwarding on for the same reason.
            host.place()
                .sysctl(&[
                    "net.ipv6.conf.all.forwarding=1",
                    &format!("net.ipv6.conf.{host_iface}.proxy_ndp=1"),
                ])
                .run()?;
            host_lines.push(format!("route add {ip6}/128 dev {host_iface}"));
            host_lines.push(format!("neigh add proxy {} dev {host_iface}", host.ip6));
        }
        if let Some(ip6) = ip6 {
            inside.push(format!("addr add {ip6}/128 dev eth0 nodad"));
            inside.push(format!("route add {} dev eth0", host.ip6));
            inside.push(format!("route add default via {} dev eth0", host.ip6));
        }
        host.place().ip_batch(&host_lines).run()?;
        target.ip_batch(&inside).run()?;
        Ok(())
    }

    /// Keeps everything running after the lab is dropped (for `calico-lab up`); `calico-lab down`
    /// removes it.
    pub fn keep(mut self) {
        self.keep = true;
    }

    /// The tail of every daemon's log (the last 200 lines of each), headed by the daemon's name.
    pub fn logs_report(&self) -> String {
        let mut report = String::new();
        let Ok(entries) = fs::read_dir(self.dir.join("logs")) else {
            return report;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let text = fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(200)..];
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            report.push_str(&format!(
                "----- lab {} log {name} (last {} lines) -----\n",
                self.name,
                tail.len()
            ));
            for line in tail {
                report.push_str(line);
                report.push('\n');
            }
        }
        report
    }

    /// Prints [`Lab::logs_report`] to stderr (the test harness shows it with the failure).
    pub fn print_logs(&self) {
        eprint!("{}", self.logs_report());
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if std::thread::panicking() {
            self.print_logs();
        }
        if let Err(err) = cleanup::teardown(&self.name) {
            eprintln!("lab {}: teardown failed: {err:#}", self.name);
        }
    }
}

/// Takes `wanted` or the first free test slot (1..SLOTS), holding its lock for the lab's lifetime.
fn take_slot(wanted: Option<u8>) -> Result<(u8, fs::File)> {
    let dir = Path::new(RUN_DIR).join("slots");
    fs::create_dir_all(&dir)?;
    let candidates: Vec<u8> = match wanted {
        Some(s) if s < SLOTS => vec![s],
        Some(s) => bail!("slot {s} is out of range (0..{SLOTS})"),
        None => (1..SLOTS).collect(),
    };
    for _round in 0..600 {
        for &slot in &candidates {
            let file = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(format!("{slot}.lock")))?;
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok((slot, file)),
                Err(rustix::io::Errno::WOULDBLOCK) => continue,
                Err(err) => return Err(err).context("locking a lab slot"),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("no free lab slot among {candidates:?} after 60 s")
}

/// A stable interface name `cali` + 11 hex characters derived from `seed` (FNV-1a, 64 bits).
pub fn iface_name(seed: &str) -> String {
    let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("cali{:011x}", hash & 0x0fff_ffff_ffff)
}

/// True when `ip` is one of the lab's documented ranges (hosts, fabric and pools), for sanity checks.
pub fn in_lab_ranges(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 10 && (o[1] == 250 || o[1] == 65)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            s[0] == 0xfd00 && (s[1] == 0x250 || s[1] == 0x65) && s[2] == 0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_stable_and_fit() {
        let a = iface_name("lab-x-h1-w1");
        assert_eq!(a, iface_name("lab-x-h1-w1"));
        assert_ne!(a, iface_name("lab-x-h1-w2"));
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("cali"));
        assert!(a[4..].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn lab_ranges() {
        assert!(in_lab_ranges("10.65.0.2".parse().unwrap()));
        assert!(in_lab_ranges("fd00:250::11".parse().unwrap()));
        assert!(!in_lab_ranges("8.8.8.8".parse().unwrap()));
        assert!(!in_lab_ranges("fd00:1::1".parse().unwrap()));
    }

    #[test]
    fn bad_names_are_refused_before_anything_is_made() {
        for name in ["", "Has-Caps", "with-dash", "waytoolongforalabname123"] {
            let err = Lab::builder(name).hosts(1).build().unwrap_err();
            assert!(err.to_string().contains("lab name"), "{err}");
        }
    }
}
