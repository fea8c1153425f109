//! Where a command runs: the root namespace, a named network namespace (a lab host, switch, ToR or bare
//! workload), or the network namespace of a process (a Docker container, found by its PID).
//!
//! The tools run are the root filesystem's (`ip`, `ping`, `sysctl`, …); only the network namespace changes.

use crate::cmd::Cmd;

/// A network namespace to run commands in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The root network namespace.
    Root,
    /// A namespace created with `ip netns add`.
    Netns(String),
    /// The network namespace of a process.
    Pid(u32),
}

impl Place {
    /// The argv that runs `argv` inside this namespace.
    pub fn wrap<S: AsRef<str>>(&self, argv: &[S]) -> Vec<String> {
        let mut full: Vec<String> = match self {
            Place::Root => vec![],
            Place::Netns(ns) => vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()],
            Place::Pid(pid) => vec![
                "nsenter".into(),
                "-t".into(),
                pid.to_string(),
                "-n".into(),
                "--".into(),
            ],
        };
        full.extend(argv.iter().map(|a| a.as_ref().to_string()));
        full
    }

    /// A command that runs `argv` inside this namespace.
    pub fn cmd<S: AsRef<str>>(&self, argv: &[S]) -> Cmd {
        Cmd::new(self.wrap(argv))
    }

    /// An `ip -batch -` command that applies `lines` (one `ip` command each, without the `ip`) here.
    pub fn ip_batch(&self, lines: &[String]) -> Cmd {
        let mut script = lines.join("\n");
        script.push('\n');
        match self {
            Place::Netns(ns) => Cmd::new(["ip", "-n", ns.as_str(), "-batch", "-"]),
            _ => self.cmd(&["ip", "-batch", "-"]),
        }
        .stdin(script)
    }

    /// How `ip link … netns X` names this namespace.
    pub fn netns_arg(&self) -> String {
        match self {
            Place::Root => "1".to_string(),
            Place::Netns(ns) => ns.clone(),
            Place::Pid(pid) => pid.to_string(),
        }
    }

    /// Sets sysctls (`key=value`) in this namespace with one `sysctl` process.
    pub fn sysctl(&self, settings: &[&str]) -> Cmd {
        let mut argv = vec!["sysctl", "-q", "-w"];
        argv.extend_from_slice(settings);
        self.cmd(&argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_enter_the_namespace() {
        assert_eq!(
            Place::Netns("lab-x-h1".into())
                .cmd(&["ip", "addr"])
                .display(),
            "ip netns exec lab-x-h1 ip addr"
        );
        assert_eq!(
            Place::Pid(42).cmd(&["ping", "-c1", "x"]).display(),
            "nsenter -t 42 -n -- ping -c1 x"
        );
        assert_eq!(Place::Root.cmd(&["true"]).display(), "true");
        assert_eq!(
            Place::Netns("n".into())
                .ip_batch(&["link".into()])
                .display(),
            "ip -n n -batch -"
        );
    }
}
