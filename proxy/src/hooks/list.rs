//! `GET /containers/json` (`docker ps`), pure: show each Calico container's own command in its
//! `Command` field, not the init wrapper that stands in front of it.
//!
//! Input: Docker's list answer (an array of container summaries, each with its `Labels`). Output: the
//! same answer with `Command` of every container that carries the wrapper's labels
//! (`org.projectcalico.entrypoint`, `.cmd`) rebuilt from them, formatted as dockerd formats it (the
//! path, then the arguments, each one that holds a space in single quotes). Other containers and
//! every other field are left alone: rows that do not name the Calico node label are copied as Docker
//! wrote them, without being parsed, and a rewritten row keeps its members' order and text.

use std::borrow::Cow;

use serde_json::Value;

use super::rawjson::{array, elements, RawObject};
use super::workload::{mentions_calico, recorded};

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

/// Rewrites one container summary; `None` when it is left as it is.
fn rewrite_row(row: &str) -> Option<String> {
    let mut obj = RawObject::parse(row)?;
    let (ep, cmd) = recorded(obj.value::<Value>("Labels").as_ref())?.argv?;
    let mut argv = strings(&ep);
    argv.extend(strings(&cmd));
    if argv.is_empty() {
        return None;
    }
    let line = command_line(&argv);
    if obj.value::<String>("Command").as_deref() == Some(line.as_str()) {
        return None;
    }
    obj.set("Command", &line);
    Some(obj.to_json())
}

/// Rewrites a list answer (the text of Docker's JSON array); `None` when no container's `Command`
/// changed (or it is not a list), and the answer is to go on as it came.
pub fn rewrite(answer: &str) -> Option<String> {
    let mut changed = false;
    let mut rows: Vec<Cow<str>> = Vec::new();
    for row in elements(answer)? {
        let new = mentions_calico(row.as_bytes())
            .then(|| rewrite_row(row))
            .flatten();
        changed |= new.is_some();
        rows.push(new.map_or(Cow::Borrowed(row), Cow::Owned));
    }
    changed.then(|| array(&rows))
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
        let out = rewrite(&v.to_string()).expect("Calico rows change");
        v = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["Command"], "sh -c 'echo hi; exec sleep 1d'");
        assert_eq!(v[0]["State"], "running");
        assert_eq!(v[1]["Command"], "/entry serve");
        assert_eq!(v[2], before[2]);
        assert_eq!(v[3], before[3]);
        // A second pass changes nothing.
        assert_eq!(rewrite(&out), None);
    }

    #[test]
    fn only_calico_rows_are_rewritten_and_the_rest_is_copied_as_it_came() {
        let calico = format!(
            r#"{{"Id":"abc","Names":["/web"],"Command":"/.calico-init -- sleep 1d","Created":1.7e9,"Labels":{{"{NODE_LABEL}":"h1","{ENTRYPOINT_LABEL}":"null","{CMD_LABEL}":"[\"sleep\",\"1d\"]"}},"State":"running"}}"#
        );
        let plain = r#"{"Id":"p","Command":"sleep  1d","Created":1.70e9,"Labels":{"app":"\u0078"},"Ports":[ ]}"#;
        let unwrapped = format!(r#"{{"Id":"n","Command":"x","Labels":{{"{NODE_LABEL}":"h1"}}}}"#);
        let answer = format!("[{plain},{calico},{unwrapped},{plain}]");
        let out = rewrite(&answer).expect("the Calico row changes");
        let rows = elements(&out).unwrap();
        assert_eq!(rows[0], plain);
        assert_eq!(rows[2], unwrapped);
        assert_eq!(rows[3], plain);
        let row = RawObject::parse(rows[1]).unwrap();
        assert_eq!(
            row.names().collect::<Vec<_>>(),
            ["Id", "Names", "Command", "Created", "Labels", "State"]
        );
        assert_eq!(row.get("Command"), Some(r#""sleep 1d""#));
        assert_eq!(row.get("Created"), Some("1.7e9"));
        let before = RawObject::parse(&calico).unwrap();
        assert_eq!(row.get("Labels"), before.get("Labels"));
    }

    #[test]
    fn malformed_lists_are_left_alone() {
        let row = format!(
            r#"{{"Id":"abc","Command":"w","Labels":{{"{NODE_LABEL}":"h1","{ENTRYPOINT_LABEL}":"null","{CMD_LABEL}":"[\"a\"]"}}}}"#
        );
        assert!(rewrite(&format!("[{row}]")).is_some());
        assert_eq!(rewrite(&format!("[{row}")), None);
        assert_eq!(rewrite(&format!("[{row},]")), None);
        assert_eq!(rewrite(&format!("[{row}] [")), None);
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
        assert_eq!(
            rewrite(&json!({"message": "page not found"}).to_string()),
            None
        );
        assert_eq!(rewrite("[]"), None);
    }
}
