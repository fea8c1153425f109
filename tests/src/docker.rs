//! The lab's Docker: one dockerd in the root namespace (started by the lab when none answers), a local
//! busybox image (no registry can be reached), and containers created `--net=none` for the lab to wire.
//!
//! A dockerd the lab starts runs with `--iptables=false --ip6tables=false --bridge=none`, so it leaves the
//! root namespace's firewall and interfaces alone; its PID goes to a marker file so `calico-lab
//! stop-dockerd` ends exactly that daemon (and never one the machine was already running).
//!
//! Its data root is in memory ([`DATA_ROOT`], on the /dev/shm tmpfs), not /var/lib/docker: removing a
//! container unmounts its overlay, and the kernel then syncs the filesystem under the overlay's upper
//! directory, waiting for every dirty page of that filesystem. On the disk that holds the build's
//! target directory dockerd was seen blocked there (`sync_filesystem` in its kernel stack) while a build
//! or another test wrote, with the tests' `docker run`s waiting behind it; on tmpfs the sync costs
//! nothing. The lab image is small and is
//! imported again whenever the lab starts a dockerd.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cleanup::RUN_DIR;
use crate::cmd::Cmd;
use crate::place::Place;
use crate::procs;
use crate::wait::wait_until;

/// The image every lab container runs: static busybox with `sh`, `ip`, `ping`, `nc`, `wget`, `sleep`, ….
pub const IMAGE: &str = "calico-lab/busybox:latest";
/// The label that marks a container as a lab's; its value is the lab's name.
pub const LABEL: &str = "calico-lab";
/// Where Debian's `busybox-static` installs its binary.
const BUSYBOX: &str = "/bin/busybox";
/// The busybox applets the image links.
const APPLETS: &[&str] = &[
    "sh",
    "ash",
    "ip",
    "ping",
    "ping6",
    "nc",
    "wget",
    "sleep",
    "cat",
    "echo",
    "ls",
    "ps",
    "kill",
    "true",
    "false",
    "hostname",
    "ifconfig",
    "route",
    "grep",
    "sed",
    "head",
    "tail",
    "wc",
    "env",
    "mkdir",
    "rm",
    "cp",
    "mv",
    "date",
    "id",
    "uname",
    "tee",
    "touch",
    "timeout",
    "seq",
    "dd",
    "md5sum",
    "sha256sum",
    "httpd",
    "netstat",
    "arp",
    "mount",
    "test",
    "[",
    "printf",
    "xargs",
];

/// The data root of a dockerd the lab starts: a tmpfs directory, removed when the lab stops it.
pub const DATA_ROOT: &str = "/dev/shm/calico-lab-docker";

fn marker() -> PathBuf {
    Path::new(RUN_DIR).join("dockerd.started")
}

/// True when a Docker daemon answers on the default socket.
pub fn daemon_answers() -> bool {
    Path::new("/var/run/docker.sock").exists()
        && Cmd::new(["docker", "version", "--format", "{{.Server.Version}}"])
            .timeout(Duration::from_secs(20))
            .succeeds()
            .unwrap_or(false)
}

/// Makes sure a Docker daemon answers, starting one (detached, logged) if none does.
pub fn ensure_dockerd() -> Result<()> {
    if daemon_answers() {
        return Ok(());
    }
    fs::create_dir_all(RUN_DIR)?;
    let _lock = lock("dockerd.lock")?;
    if daemon_answers() {
        return Ok(());
    }
    let log = fs::File::create(Path::new(RUN_DIR).join("dockerd.log"))?;
    fs::create_dir_all(DATA_ROOT)?;
    let child = std::process::Command::new("dockerd")
        .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
        .args(["--data-root", DATA_ROOT])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: it outlives the test that started it and ignores the test's signals.
        .process_group(0)
        .spawn()
        .context("cannot start dockerd: is the docker.io package installed?")?;
    let pid = child.id();
    fs::write(
        marker(),
        format!("{pid} {}\n", procs::start_time(pid).unwrap_or(0)),
    )?;
    wait_until(Duration::from_secs(60), "dockerd to answer", || {
        if !procs::alive(pid) {
            bail!(
                "dockerd exited; its log: {}",
                fs::read_to_string(Path::new(RUN_DIR).join("dockerd.log")).unwrap_or_default()
            );
        }
        Ok(daemon_answers())
    })
}

/// Stops the dockerd the lab started, if it did and no lab container remains; says what it did.
pub fn stop_dockerd_if_ours() -> Result<String> {
    if !marker().exists() {
        return Ok("no dockerd started by the lab".into());
    }
    let Some(record) = procs::read_record(&marker()) else {
        fs::remove_file(marker())?;
        return Ok("removed an unreadable dockerd marker".into());
    };
    let pid = record.0;
    if !procs::record_alive(record) {
        fs::remove_file(marker())?;
        return Ok("the dockerd the lab started is gone already".into());
    }
    let remaining = lab_containers(None)?;
    if !remaining.is_empty() {
        return Ok(format!(
            "kept dockerd {pid}: {} lab container(s) still exist (run `calico-lab down <name>` first)",
            remaining.len()
        ));
    }
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        rustix::process::kill_process(p, rustix::process::Signal::TERM)?;
    }
    wait_until(Duration::from_secs(30), "dockerd to stop", || {
        Ok(!procs::alive(pid))
    })?;
    fs::remove_file(marker())?;
    remove_data_root()?;
    Ok(format!("stopped dockerd {pid}"))
}

/// Removes the stopped daemon's data root, after unmounting anything mounted on it or below it. A
/// daemon that did not stop cleanly leaves overlay mounts below it, which must not be deleted
/// through, and dockerd bind-mounts a data root on a shared mount (as /dev/shm is) onto itself: a
/// daemon killed earlier leaves that bind behind, the next daemon finds the root mounted already and
/// does not unmount it when it stops, and removing the directory then fails with EBUSY.
fn remove_data_root() -> Result<()> {
    if !Path::new(DATA_ROOT).exists() {
        return Ok(());
    }
    let mounts = fs::read_to_string("/proc/self/mounts")?;
    for m in mounts_at_or_below(&mounts, DATA_ROOT) {
        Cmd::new(["umount", "--lazy", m]).run()?;
    }
    fs::remove_dir_all(DATA_ROOT).with_context(|| format!("removing {DATA_ROOT}"))
}

/// The mount points at `root` or below it in a /proc/self/mounts text, in the order to unmount them:
/// deepest first, and a point mounted several times (stacked) once per mount.
fn mounts_at_or_below<'a>(mounts: &'a str, root: &str) -> Vec<&'a str> {
    let inside = format!("{root}/");
    let mut found: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| *m == root || m.starts_with(&inside))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.len()));
    found
}

/// Makes sure the lab image exists, building it from Debian's static busybox if it does not.
pub fn ensure_image() -> Result<()> {
    let exists =
        || Cmd::new(["docker", "image", "inspect", "--format", "{{.Id}}", IMAGE]).succeeds();
    if exists()? {
        return Ok(());
    }
    let _lock = lock("image.lock")?;
    if exists()? {
        return Ok(());
    }
    if !Path::new(BUSYBOX).exists() {
        bail!("{BUSYBOX} is missing: install Debian's busybox-static package");
    }
    let root = Path::new(RUN_DIR).join(format!("image-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "run", "var"] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::copy(BUSYBOX, root.join("bin/busybox"))?;
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n")?;
    fs::write(root.join("etc/group"), "root:x:0:\n")?;
    let script = format!(
        "tar -C '{}' -cf - . | docker import -c 'ENV PATH=/bin' -c 'CMD [\"sh\"]' - {IMAGE}",
        root.display()
    );
    let result = Cmd::new(["sh", "-c", script.as_str()])
        .timeout(Duration::from_secs(120))
        .run();
    fs::remove_dir_all(&root)?;
    result.context("building the lab image")?;
    Ok(())
}

/// The IDs of the lab containers (of lab `name`, or of every lab); none when no daemon answers.
pub fn lab_containers(name: Option<&str>) -> Result<Vec<String>> {
    Ok(lab_containers_with_labs()?
        .into_iter()
        .filter(|(_, lab)| name.is_none_or(|n| n == lab))
        .map(|(id, _)| id)
        .collect())
}

/// Every lab container as (id, lab name); none when no daemon answers.
pub fn lab_containers_with_labs() -> Result<Vec<(String, String)>> {
    if !Path::new("/var/run/docker.sock").exists() {
        return Ok(Vec::new());
    }
    let out = Cmd::new([
        "docker",
        "ps",
        "-a",
        "--filter",
        &format!("label={LABEL}"),
        "--format",
        &format!("{{{{.ID}}}} {{{{.Label \"{LABEL}\"}}}}"),
    ])
    .timeout(Duration::from_secs(20))
    .output()?;
    if !out.success() {
        // No daemon behind the socket: there can be no container to clean.
        return Ok(Vec::new());
    }
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| {
            let (id, lab) = l.split_once(' ')?;
            Some((id.to_string(), lab.to_string()))
        })
        .collect())
}

/// A Docker container of the lab, created with `--net=none`.
#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub id: String,
    /// The PID of its first process, whose network namespace is the container's.
    pub pid: u32,
}

impl Container {
    /// Runs a container of lab `lab` called `name` (Docker name `lab-<lab>-<name>`), `--net=none`.
    pub fn run(lab: &str, name: &str, argv: &[&str]) -> Result<Container> {
        let docker_name = format!("lab-{lab}-{name}");
        let label = format!("{LABEL}={lab}");
        let mut args = vec![
            "docker",
            "run",
            "-d",
            "--net=none",
            "--label",
            &label,
            "--name",
            &docker_name,
            IMAGE,
        ];
        args.extend_from_slice(argv);
        let id = Cmd::new(args).timeout(Duration::from_secs(60)).stdout()?;
        let pid: u32 = Cmd::new([
            "docker",
            "inspect",
            "--format",
            "{{.State.Pid}}",
            id.as_str(),
        ])
        .stdout()?
        .parse()
        .context("reading the container's PID")?;
        Ok(Container {
            name: docker_name,
            id,
            pid,
        })
    }

    /// A command run inside the container with `docker exec` (the image's tools, not the host's).
    pub fn exec(&self, argv: &[&str]) -> Cmd {
        let mut args = vec!["docker", "exec", self.id.as_str()];
        args.extend_from_slice(argv);
        Cmd::new(args)
    }

    /// The container's network namespace, for the host's tools.
    pub fn place(&self) -> Place {
        Place::Pid(self.pid)
    }
}

/// An exclusive lock on `RUN_DIR/<file>`, held until the returned file is dropped.
fn lock(file: &str) -> Result<fs::File> {
    fs::create_dir_all(RUN_DIR)?;
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Path::new(RUN_DIR).join(file))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)?;
    Ok(f)
}

/// A dockerd of its own inside a lab host's network namespace, so that `--net=host` containers (calico-node
/// and the master run as containers) land in that host's namespace and never in the machine's.
///
/// It runs in the host's network namespace and a private mount namespace (`nsenter --net` then `unshare
/// --mount --propagation slave`; not `ip netns exec`, whose fresh /sys hides the cgroup mounts dockerd
/// needs), with its socket, data and state under the lab's directory. Dropping it removes every container
/// it holds, then stops it (and with it its containerd), before the lab goes.
pub struct HostDockerd {
    dir: PathBuf,
    daemon: Option<procs::Daemon>,
}

impl HostDockerd {
    /// Starts it for `host` of `lab` and waits until it answers.
    pub fn start(lab: &crate::Lab, host: &crate::Host) -> Result<HostDockerd> {
        let dir = lab.dir().join(format!("dockerd-{}", host.name));
        fs::create_dir_all(&dir)?;
        let path = |p: &str| dir.join(p).display().to_string();
        let argv = vec![
            "nsenter".to_string(),
            format!("--net=/run/netns/{}", host.ns),
            "unshare".into(),
            "--mount".into(),
            "--propagation".into(),
            "slave".into(),
            "dockerd".into(),
            "--host".into(),
            format!("unix://{}", path("docker.sock")),
            "--data-root".into(),
            path("data"),
            "--exec-root".into(),
            path("exec"),
            "--pidfile".into(),
            path("docker.pid"),
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--bridge=none".into(),
        ];
        let daemon = lab.spawn(&format!("dockerd-{}", host.name), &Place::Root, &argv)?;
        let d = HostDockerd {
            dir,
            daemon: Some(daemon),
        };
        wait_until(
            Duration::from_secs(60),
            "the host's dockerd answers",
            || {
                d.cli(&["version", "--format", "{{.Server.Version}}"])
                    .succeeds()
            },
        )?;
        Ok(d)
    }

    /// Its API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// The `docker` CLI pointed at it.
    pub fn cli(&self, args: &[&str]) -> Cmd {
        let host = format!("unix://{}", self.socket().display());
        let mut argv = vec!["docker", "-H", host.as_str()];
        argv.extend_from_slice(args);
        Cmd::new(argv).timeout(Duration::from_secs(60))
    }

    /// Copies `image` from the machine's dockerd into this one (no registry can be reached).
    pub fn load_image(&self, image: &str) -> Result<()> {
        let script = format!(
            "docker save '{image}' | docker -H 'unix://{}' load",
            self.socket().display()
        );
        Cmd::new(["sh", "-c", script.as_str()])
            .timeout(Duration::from_secs(120))
            .run()
            .with_context(|| format!("copying {image} into the host's dockerd"))?;
        Ok(())
    }
}

impl Drop for HostDockerd {
    fn drop(&mut self) {
        if let Ok(ids) = self.cli(&["ps", "-aq"]).stdout() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.split_whitespace());
            if args.len() > 2 {
                let _ = self.cli(&args).run();
            }
        }
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(30));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_root_itself_and_everything_below_it_are_unmounted_deepest_first() {
        let mounts = "\
tmpfs /dev/shm tmpfs rw 0 0
tmpfs /dev/shm/calico-lab-docker tmpfs rw 0 0
overlay /dev/shm/calico-lab-docker/overlay2/ab/merged overlay rw 0 0
tmpfs /dev/shm/calico-lab-docker tmpfs rw 0 0
tmpfs /dev/shm/calico-lab-docker-other tmpfs rw 0 0
shm /dev/shm/calico-lab-docker/containers/cd/mounts/shm tmpfs rw 0 0
";
        assert_eq!(
            mounts_at_or_below(mounts, "/dev/shm/calico-lab-docker"),
            [
                "/dev/shm/calico-lab-docker/containers/cd/mounts/shm",
                "/dev/shm/calico-lab-docker/overlay2/ab/merged",
                "/dev/shm/calico-lab-docker",
                "/dev/shm/calico-lab-docker",
            ]
        );
    }
}
