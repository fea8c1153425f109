//! `GET /containers/json` (`docker ps`), pure: show each Calico container's own command in its
//! `Command` field, not the init wrapper that stands in front of it.
//!
//! Input: Docker's list answer (an array of container summaries, each with its `Labels`). Output: the
//! same answer with `Command` of every container that carries the wrapper's labels
//! (`org.projectcalico.entrypoint`, `.cmd`) rebuilt from them, formatted as dockerd formats it (the
//! path, then the arguments, each one that holds a space in single quotes). Other containers and
//! every other field are left alone.

use serde_json::Value;

use super::workload::recorded;

/// A command line as dockerd's list shows it: `path arg…`, arguments with a space in single quotes.
pub fn command_line(argv: &[String]) -> String {
    let Some((path, args)) = argv.split_first() else {
        return String::new();
    };
    let mut line = path.clone();
    for arg in args {
        line.push(' ');
        if arg.contains(' ') {
            line.push('\'');
            line.push_str(arg);
            line.push('\'');
        } else {
            line.push_str(arg);
        }
    }
    line
}

/// The strings of a Docker "strslice" (null, a string or a list).
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// Rewrites a list answer in place; true when some container's `Command` changed.
pub fn rewrite(v: &mut Value) -> bool {
    let Some(list) = v.as_array_mut() else {
        return false;
    };
    let mut changed = false;
    for c in list {
        let Some((ep, cmd)) = recorded(c.get("Labels")).and_then(|r| r.argv) else {
            continue;
        };
        let mut argv = strings(&ep);
        argv.extend(strings(&cmd));
        if argv.is_empty() {
            continue;
        }
        let line = command_line(&argv);
        if let Some(obj) = c.as_object_mut() {
            if obj.get("Command").and_then(Value::as_str) != Some(line.as_str()) {
                obj.insert("Command".into(), Value::String(line));
                changed = true;
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::workload::{CMD_LABEL, ENTRYPOINT_LABEL, IPS_LABEL, NODE_LABEL};
    use serde_json::json;

    #[test]
    fn calico_containers_show_their_own_command() {
        let mut v = json!([
            {
                "Id": "abc",
                "Command": "/.calico-init --iface eth0 --ip 10.65.0.2 -- sh -c 'echo hi; exec sleep 1d'",
                "Labels": {
                    NODE_LABEL: "h1",
                    IPS_LABEL: "10.65.0.2",
                    ENTRYPOINT_LABEL: "null",
                    CMD_LABEL: r#"["sh","-c","echo hi; exec sleep 1d"]"#,
                },
                "State": "running",
            },
            {
                "Id": "def",
                "Command": "/.calico-init --iface eth0 --ip 10.65.0.3 -- /entry serve",
                "Labels": {
                    NODE_LABEL: "h2",
                    ENTRYPOINT_LABEL: r#"["/entry"]"#,
                    CMD_LABEL: r#"["serve"]"#,
                },
            },
            {"Id": "plain", "Command": "sleep 1d", "Labels": {"app": "x"}},
            {"Id": "no-wrapper", "Command": "sleep 1d", "Labels": {NODE_LABEL: "h1"}},
        ]);
        let before = v.clone();
        assert!(rewrite(&mut v));
        assert_eq!(v[0]["Command"], "sh -c 'echo hi; exec sleep 1d'");
        assert_eq!(v[0]["State"], "running");
        assert_eq!(v[1]["Command"], "/entry serve");
        assert_eq!(v[2], before[2]);
        assert_eq!(v[3], before[3]);
        // A second pass changes nothing.
        assert!(!rewrite(&mut v));
    }

    #[test]
    fn dockers_own_formatting() {
        let argv = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(command_line(&argv(&["sleep", "1d"])), "sleep 1d");
        assert_eq!(command_line(&argv(&["nginx"])), "nginx");
        assert_eq!(
            command_line(&argv(&["sh", "-c", "a b", "c"])),
            "sh -c 'a b' c"
        );
        assert_eq!(command_line(&[]), "");
    }

    #[test]
    fn answers_that_are_not_lists_are_left_alone() {
        let mut v = json!({"message": "page not found"});
        assert!(!rewrite(&mut v));
        assert_eq!(v, json!({"message": "page not found"}));
        let mut empty = json!([]);
        assert!(!rewrite(&mut empty));
    }
}
