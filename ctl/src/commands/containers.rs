//! calico-node and the master as Docker containers: `calicoctl node --ip=<IP> …` starts `calico-node`,
//! `calicoctl master --ip=<IP>` starts `calico-master`, `calicoctl node stop [--force]` and `calicoctl
//! master stop` remove them.
//!
//! No registry may be reachable, so the image is built locally when missing: a root filesystem holding
//! this very `calicoctl` binary and the host tools Felix runs (`nft`, `iptables`, `ip6tables`) with the
//! shared libraries `ldd` names for each, imported with `docker import`. The node container has the
//! capabilities it needs (see [`NODE_PRIVILEGES`]; not `--privileged`), is on the host's network, in the
//! host's PID namespace (so containers' namespaces are reached by PID), with the Docker socket and the data
//! directory (`--data-dir`, default /var/lib/calico) mounted at their own paths, and restarts always.
//!
//! Inputs: the arguments and the host's Docker (through the `docker` CLI at `--docker-socket`). Outputs:
//! the running container, or a message saying what to do.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use clap::Args;

use crate::cli::GlobalOpts;

/// The image both containers run unless told otherwise.
pub fn default_image() -> String {
    format!("calico/node:{}", env!("CARGO_PKG_VERSION"))
}

/// The host tools Felix runs, and where the multi-call iptables keeps its extensions.
const TOOLS: &[&str] = &["nft", "iptables", "ip6tables"];
const XTABLES_DIRS: &[&str] = &["/usr/lib/x86_64-linux-gnu/xtables", "/usr/lib/xtables"];

/// `calicoctl node --ip=<IP> …` (no subcommand).
#[derive(Debug, Args, Clone)]
pub struct NodeStartArgs {
    /// The host's IPv4 address (BGP, router id, containers' gateway).
    #[arg(long, value_name = "IP")]
    pub ip: Option<Ipv4Addr>,
    /// The host's IPv6 address.
    #[arg(long, value_name = "IP6")]
    pub ip6: Option<Ipv6Addr>,
    /// The host's own AS number.
    #[arg(long = "as", value_name = "ASN")]
    pub asn: Option<u32>,
    /// The host's name in the cluster (default: the host name).
    #[arg(long, value_name = "HOST")]
    pub name: Option<String>,
    /// The image to run (built locally when missing and it is the default).
    #[arg(long, value_name = "IMAGE")]
    pub node_image: Option<String>,
    /// Where the Docker proxy listens.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:2375")]
    pub proxy_listen: String,
    /// The Docker daemon's socket.
    #[arg(long, value_name = "PATH", default_value = "/var/run/docker.sock")]
    pub docker_socket: PathBuf,
    /// Do not create the default pools.
    #[arg(long)]
    pub no_default_pools: bool,
    /// The host directory for the node's state (`<DIR>/node/<HOST>`), mounted at the same path.
    #[arg(long, value_name = "DIR", default_value = DATA_DIR)]
    pub data_dir: PathBuf,
}

/// `calicoctl master --ip=<IP>` (no subcommand).
#[derive(Debug, Args, Clone)]
pub struct MasterStartArgs {
    /// The address the master listens on (port 9900), besides 127.0.0.1.
    #[arg(long, value_name = "IP")]
    pub ip: Option<Ipv4Addr>,
    /// The image to run.
    #[arg(long, value_name = "IMAGE")]
    pub master_image: Option<String>,
    /// The Docker daemon's socket.
    #[arg(long, value_name = "PATH", default_value = "/var/run/docker.sock")]
    pub docker_socket: PathBuf,
    /// The host directory for the embedded store (`<DIR>/master.db`), mounted at the same path.
    #[arg(long, value_name = "DIR", default_value = DATA_DIR)]
    pub data_dir: PathBuf,
}

/// Where both containers keep their state, on the host and inside.
const DATA_DIR: &str = "/var/lib/calico";

/// What calico-node needs instead of `--privileged`: routes, firewall and interfaces (NET_ADMIN, NET_RAW),
/// entering containers' network namespaces by PID (SYS_ADMIN, SYS_PTRACE, no seccomp or AppArmor filter)
/// and writing interface sysctls (/proc/sys writable). `--privileged` would also grant every other
/// capability, and it fails outright where the host's own capability bounding set lacks one of them (a
/// host that is itself a container or sandbox: runc then answers "unable to apply caps").
const NODE_PRIVILEGES: &[&str] = &[
    "--cap-add=NET_ADMIN",
    "--cap-add=NET_RAW",
    "--cap-add=SYS_ADMIN",
    "--cap-add=SYS_PTRACE",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    "--security-opt=systempaths=unconfined",
];

/// The `-v` that mounts `dir` into the container at the same path (created first: a missing source would
/// become a directory made by Docker). The same path inside and out matters: the node hands Docker paths
/// under its state directory (the containers' init wrapper) as bind-mount sources, which Docker resolves
/// on the host.
fn data_volume(dir: &Path) -> anyhow::Result<[String; 2]> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(["-v".into(), format!("{0}:{0}", dir.display())])
}

fn docker(socket: &Path) -> Command {
    let mut c = Command::new("docker");
    c.arg("-H").arg(format!("unix://{}", socket.display()));
    c
}

fn run_docker(socket: &Path, args: &[String]) -> anyhow::Result<String> {
    let out = docker(socket)
        .args(args)
        .output()
        .context("cannot run the docker CLI; install docker.io")?;
    if !out.status.success() {
        bail!(
            "`docker {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn exists(socket: &Path, kind: &str, name: &str) -> bool {
    docker(socket)
        .args([kind, "inspect", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The files of the image: this binary as /calicoctl, the tools, their libraries.
pub fn image_files() -> anyhow::Result<(PathBuf, BTreeSet<PathBuf>)> {
    let me = std::env::current_exe().context("cannot find the calicoctl binary")?;
    let mut files = BTreeSet::new();
    let mut binaries = vec![me.clone()];
    for tool in TOOLS {
        let path = which(tool).with_context(|| {
            format!("`{tool}` is not installed; the node image needs it (apt-get install nftables iptables)")
        })?;
        files.insert(path.clone());
        binaries.push(path);
    }
    for dir in XTABLES_DIRS {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                files.insert(e.path());
                binaries.push(e.path());
            }
        }
    }
    for b in &binaries {
        files.extend(libraries(b)?);
    }
    files.remove(&me);
    Ok((me, files))
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The shared libraries (and the loader) `ldd` lists for `binary`.
fn libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("cannot run ldd (libc-bin)")?;
    Ok(parse_ldd(&String::from_utf8_lossy(&out.stdout)))
}

/// Paths in `ldd` output: `libx.so => /lib/libx.so (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`.
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Builds `image` from [`image_files`] unless Docker has it already.
pub fn ensure_image(socket: &Path, image: &str) -> anyhow::Result<()> {
    if exists(socket, "image", image) {
        return Ok(());
    }
    if image != default_image() {
        bail!("image {image} is not on this host and cannot be pulled here; build it or omit the image option to use the built-in one");
    }
    eprintln!("Building {image} locally from this calicoctl and the host's nft/iptables…");
    let (me, files) = image_files()?;
    let root = tempfile_dir()?;
    let copy = |src: &Path, dst: &Path| -> anyhow::Result<()> {
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Dereference symlinks: iptables is a link to a multi-call binary that dispatches on its name.
        std::fs::copy(src, dst).with_context(|| format!("copying {}", src.display()))?;
        Ok(())
    };
    copy(&me, &root.join("calicoctl"))?;
    for f in &files {
        copy(f, &root.join(f.strip_prefix("/").unwrap_or(f)))?;
    }
    // /lib64 and /lib may be symlinks on the host (merged /usr); the loader path must resolve in the image.
    for dir in ["tmp", "run", "var/lib/calico", "etc"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    let tar = Command::new("tar")
        .args(["-C"])
        .arg(&root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run tar")?;
    let mut import = docker(socket)
        .args([
            "import",
            "--change",
            "ENTRYPOINT [\"/calicoctl\"]",
            "--change",
            "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "-",
            image,
        ])
        .stdin(tar.stdout.context("tar has no stdout")?)
        .stdout(Stdio::null())
        .spawn()
        .context("cannot run docker import")?;
    let status = import.wait()?;
    let _ = std::fs::remove_dir_all(&root);
    if !status.success() {
        bail!("docker import of {image} failed");
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("calico-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `calicoctl node --ip=<IP> …`: starts the `calico-node` container.
pub fn start_node(global: &GlobalOpts, args: &NodeStartArgs) -> anyhow::Result<()> {
    let Some(ip) = args.ip else {
        bail!("calicoctl node needs --ip=<IP> (this host's address) to start calico-node, or a subcommand (run, show, stop, …); see calicoctl node --help");
    };
    let socket = &args.docker_socket;
    if exists(socket, "container", "calico-node") {
        bail!(
            "a calico-node container already runs here; stop it first with `calicoctl node stop`"
        );
    }
    let image = args.node_image.clone().unwrap_or_else(default_image);
    ensure_image(socket, &image)?;
    let name = super::node::hostname(args.name.as_deref())?;
    let mut a: Vec<String> = [
        "run",
        "-d",
        "--name",
        "calico-node",
        "--net=host",
        "--pid=host",
        "--restart=always",
    ]
    .map(String::from)
    .to_vec();
    a.extend(NODE_PRIVILEGES.iter().map(|s| s.to_string()));
    a.push("-v".into());
    a.push(format!("{0}:{0}", socket.display()));
    a.extend(data_volume(&args.data_dir)?);
    if let Some(t) = &global.token_file {
        a.push("-v".into());
        a.push(format!("{0}:{0}:ro", t.display()));
    }
    a.push(image);
    a.extend(["--master".into(), global.master.join(",")]);
    if let Some(t) = &global.token_file {
        a.extend(["--token-file".into(), t.display().to_string()]);
    }
    a.extend([
        "node".into(),
        "run".into(),
        "--ip".into(),
        ip.to_string(),
        "--name".into(),
        name.clone(),
        "--state-dir".into(),
        args.data_dir.join("node").join(&name).display().to_string(),
    ]);
    if let Some(ip6) = args.ip6 {
        a.extend(["--ip6".into(), ip6.to_string()]);
    }
    if let Some(asn) = args.asn {
        a.extend(["--as".into(), asn.to_string()]);
    }
    a.extend([
        "--proxy-listen".into(),
        args.proxy_listen.clone(),
        "--docker-socket".into(),
        socket.display().to_string(),
    ]);
    if args.no_default_pools {
        a.push("--no-default-pools".into());
    }
    let id = run_docker(socket, &a)?;
    println!("calico-node is running as container {} on {name}; `calicoctl status --node {name}` shows its state", short(&id));
    Ok(())
}

/// `calicoctl master --ip=<IP>`: starts the `calico-master` container (embedded store in /var/lib/calico).
pub fn start_master(global: &GlobalOpts, args: &MasterStartArgs) -> anyhow::Result<()> {
    let Some(ip) = args.ip else {
        bail!("calicoctl master needs --ip=<IP> (the address nodes reach it on) to start calico-master, or `calicoctl master run` to run it in the foreground");
    };
    let socket = &args.docker_socket;
    if exists(socket, "container", "calico-master") {
        bail!("a calico-master container already runs here; stop it first with `calicoctl master stop`");
    }
    let image = args.master_image.clone().unwrap_or_else(default_image);
    ensure_image(socket, &image)?;
    let mut a: Vec<String> = [
        "run",
        "-d",
        "--name",
        "calico-master",
        "--net=host",
        "--restart=always",
    ]
    .map(String::from)
    .to_vec();
    a.extend(data_volume(&args.data_dir)?);
    if let Some(t) = &global.token_file {
        a.push("-v".into());
        a.push(format!("{0}:{0}:ro", t.display()));
    }
    a.push(image);
    if let Some(t) = &global.token_file {
        a.extend(["--token-file".into(), t.display().to_string()]);
    }
    a.extend([
        "master".into(),
        "run".into(),
        "--listen".into(),
        format!("{ip}:9900"),
        "--listen".into(),
        "127.0.0.1:9900".into(),
        "--datastore".into(),
        args.data_dir.join("master.db").display().to_string(),
    ]);
    let id = run_docker(socket, &a)?;
    println!("calico-master is running as container {} on {ip}:9900; point nodes at --master http://{ip}:9900", short(&id));
    Ok(())
}

/// `calicoctl node stop [--force]`: refuses while the host has endpoints, unless forced.
pub fn stop_node(
    global: &GlobalOpts,
    name: Option<&str>,
    force: bool,
    socket: &Path,
) -> anyhow::Result<()> {
    let name = super::node::hostname(name)?;
    if !force {
        let eps = super::client(global)?.get(&format!("/v1/endpoints?host={name}"))?;
        let n = eps.as_array().map_or(0, Vec::len);
        if n > 0 {
            bail!("{name} still has {n} endpoint(s); remove its containers first, or pass --force (their traffic stops being policed and routed)");
        }
    }
    stop_container(socket, "calico-node")
}

/// Stops and removes a container this module started.
pub fn stop_container(socket: &Path, name: &str) -> anyhow::Result<()> {
    if !exists(socket, "container", name) {
        bail!("no {name} container runs here");
    }
    run_docker(socket, &["rm".into(), "-f".into(), name.into()])?;
    println!("{name} stopped and removed");
    let _ = std::io::stdout().flush();
    Ok(())
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn node_and_master_start_without_a_subcommand_and_stop_with_one() {
        let cli =
            Cli::try_parse_from(["calicoctl", "node", "--ip=10.0.0.1", "--as", "65001"]).unwrap();
        let Command::Node(n) = cli.command else {
            panic!("node")
        };
        assert!(n.command.is_none());
        assert_eq!(n.start.ip, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(n.start.asn, Some(65001));
        let cli = Cli::try_parse_from(["calicoctl", "node", "stop", "--force"]).unwrap();
        let Command::Node(n) = cli.command else {
            panic!("node")
        };
        assert!(matches!(
            n.command,
            Some(crate::commands::node::NodeCommand::Stop { force: true, .. })
        ));
        let cli = Cli::try_parse_from(["calicoctl", "master", "--ip", "10.0.0.1"]).unwrap();
        let Command::Master(m) = cli.command else {
            panic!("master")
        };
        assert!(m.command.is_none());
        assert_eq!(m.start.ip, Some("10.0.0.1".parse().unwrap()));
        // A subcommand's own flags do not mix with the container-start flags.
        assert!(Cli::try_parse_from(["calicoctl", "node", "--ip=10.0.0.1", "show"]).is_err());
    }

    #[test]
    fn ldd_output_is_read() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibnftables.so.1 => /lib/x86_64-linux-gnu/libnftables.so.1 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\tnot a dynamic executable\n";
        assert_eq!(
            parse_ldd(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libnftables.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }
}
