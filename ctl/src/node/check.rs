//! The system checks calico-node runs before it starts (and `calicoctl checksystem [--fix]` on their own).
//!
//! Each check tests the feature itself, never a kernel module list (a kernel may have no loadable
//! modules at all): IP forwarding (fixable: calico-node turns it on, as Calico does), the firewall tools
//! Felix drives (`nft`, `iptables`) and the kernel's nf_tables and conntrack, and the Docker daemon's API
//! version when the proxy is used.
//!
//! Inputs: the machine (procfs, the tools, the Docker socket). Outputs: one [`Check`] per item, fixed
//! where asked and possible.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// The oldest Docker API the proxy supports (Docker 1.9, as the original required).
pub const MIN_DOCKER_API: (u32, u32) = (1, 21);

/// The outcome of one check.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it is fine now.
    pub ok: bool,
    /// Whether it was fixed just now.
    pub fixed: bool,
    /// What was found, and what to do when it is not fine.
    pub message: String,
}

fn check(name: &str, ok: bool, message: impl Into<String>) -> Check {
    Check {
        name: name.to_owned(),
        ok,
        fixed: false,
        message: message.into(),
    }
}

/// A sysctl that must be 1; turned on when `fix` is set.
fn sysctl_on(name: &str, path: &str, fix: bool) -> Check {
    match std::fs::read_to_string(path) {
        Ok(v) if v.trim() == "1" => check(name, true, format!("{path} is 1")),
        Ok(v) if fix => match std::fs::write(path, "1") {
            Ok(()) => Check {
                fixed: true,
                ..check(name, true, format!("{path} was {}, set to 1", v.trim()))
            },
            Err(e) => check(
                name,
                false,
                format!("{path} is {}; cannot set it to 1: {e}", v.trim()),
            ),
        },
        Ok(v) => check(
            name,
            false,
            format!(
                "{path} is {}; run `sysctl -w {}=1` or use --fix",
                v.trim(),
                sysctl_name(path)
            ),
        ),
        Err(e) => check(name, false, format!("cannot read {path}: {e}")),
    }
}

fn sysctl_name(path: &str) -> String {
    path.trim_start_matches("/proc/sys/").replace('/', ".")
}

/// A tool Felix runs: present and working.
fn tool(name: &str, args: &[&str], package: &str) -> Check {
    match Command::new(name).args(args).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            check(
                name,
                true,
                text.lines().next().unwrap_or("").trim().to_owned(),
            )
        }
        Ok(out) => check(
            name,
            false,
            format!(
                "`{name} {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ),
        Err(e) => check(
            name,
            false,
            format!("cannot run {name} ({e}); install the {package} package"),
        ),
    }
}

/// Every check but Docker's (see [`docker`]).
pub fn system(fix: bool) -> Vec<Check> {
    let mut out = vec![
        sysctl_on("ipv4-forwarding", "/proc/sys/net/ipv4/ip_forward", fix),
        sysctl_on(
            "ipv6-forwarding",
            "/proc/sys/net/ipv6/conf/all/forwarding",
            fix,
        ),
        tool("nft", &["--version"], "nftables"),
        tool("iptables", &["--version"], "iptables"),
    ];
    // The kernel side of nf_tables: listing the ruleset works only when the kernel has nf_tables.
    let nft_kernel = match Command::new("nft").args(["list", "tables"]).output() {
        Ok(o) if o.status.success() => check("nf_tables", true, "the kernel answers nf_tables requests"),
        Ok(o) => check(
            "nf_tables",
            false,
            format!(
                "the kernel refused an nf_tables request ({}); Felix needs nf_tables (CONFIG_NF_TABLES) and CAP_NET_ADMIN",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        ),
        Err(e) => check("nf_tables", false, format!("cannot run nft: {e}")),
    };
    out.push(nft_kernel);
    let ct = Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists();
    out.push(check(
        "conntrack",
        ct,
        if ct {
            "connection tracking is available"
        } else {
            "the kernel has no connection tracking (CONFIG_NF_CONNTRACK); policy needs it"
        },
    ));
    out
}

/// The Docker daemon behind `socket` answers and its API is recent enough.
pub async fn docker(socket: &Path) -> Check {
    match docker_api_version(socket).await {
        Ok(v) => match parse_version(&v) {
            Some(got) if got >= MIN_DOCKER_API => check(
                "docker",
                true,
                format!("Docker API {v} at {}", socket.display()),
            ),
            Some(_) => check(
                "docker",
                false,
                format!(
                    "Docker API {v} at {} is too old; {}.{} or later is needed",
                    socket.display(),
                    MIN_DOCKER_API.0,
                    MIN_DOCKER_API.1
                ),
            ),
            None => check(
                "docker",
                false,
                format!("Docker answered an unreadable API version `{v}`"),
            ),
        },
        Err(e) => check(
            "docker",
            false,
            format!(
                "cannot query Docker at {}: {e}; is dockerd running? (--docker-socket)",
                socket.display()
            ),
        ),
    }
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

async fn docker_api_version(socket: &Path) -> Result<String, String> {
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        calico_proxy::docker::get_json(socket, "/version"),
    )
    .await
    .map_err(|_| "no answer within 5 s".to_string())?
    .map_err(|e| e.to_string())?
    .ok_or("the daemon has no /version")?;
    answer["ApiVersion"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "the /version answer has no ApiVersion".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(parse_version("1.41"), Some((1, 41)));
        assert!(parse_version("1.9").unwrap() < MIN_DOCKER_API);
        assert!(parse_version("1.100").unwrap() > MIN_DOCKER_API);
        assert_eq!(parse_version("x"), None);
    }

    #[test]
    fn sysctl_names_read_like_sysctl() {
        assert_eq!(
            sysctl_name("/proc/sys/net/ipv4/ip_forward"),
            "net.ipv4.ip_forward"
        );
    }

    #[test]
    fn missing_tool_says_which_package() {
        let c = tool("calico-no-such-tool", &["--version"], "calico-pkg");
        assert!(!c.ok);
        assert!(c.message.contains("calico-pkg"), "{}", c.message);
    }

    #[tokio::test]
    async fn unreachable_docker_names_the_socket() {
        let c = docker(Path::new("/nonexistent/docker.sock")).await;
        assert!(!c.ok);
        assert!(
            c.message.contains("/nonexistent/docker.sock"),
            "{}",
            c.message
        );
    }
}
