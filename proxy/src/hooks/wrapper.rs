//! The create body's last rewrite, pure: record the reserved addresses and profiles as labels, and put
//! the init wrapper in front of the container's real command.
//!
//! Inputs: the body [`super::create::decide`] produced, the addresses the master reserved, the profiles,
//! and (for the wrapper) where the wrapper binary is on the host and, when the body leaves entrypoint
//! or command to the image, the image's own. Output: the body to send to Docker. The real entrypoint and
//! command are computed as Docker would merge them (a user entrypoint drops the image's command) and
//! kept in labels, so inspect can show them and nothing else is needed to undo the rewrite.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::workload::{record_labels, CMD_LABEL, ENTRYPOINT_LABEL};

/// Where the wrapper appears inside the container (bind-mounted read-only).
pub const WRAPPER_PATH: &str = "/.calico-init";

/// The image's entrypoint and command (`Config.Entrypoint`, `Config.Cmd` of `GET /images/{name}/json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageArgv {
    pub entrypoint: Value,
    pub cmd: Value,
}

/// A Docker "strslice": null, a string, or a list of strings.
fn strslice(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
        ),
        _ => None,
    }
}

/// True when the body leaves the entrypoint to the image, so the image's config must be read.
pub fn needs_image(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .is_some_and(|v| strslice(v.get("Entrypoint")).is_none_or(|e| e.is_empty()))
}

/// The entrypoint and command Docker would run, as it merges the body with the image.
fn effective(config: &Map<String, Value>, image: &ImageArgv) -> (Option<Vec<String>>, Vec<String>) {
    let user_ep = strslice(config.get("Entrypoint"));
    let user_cmd = strslice(config.get("Cmd")).unwrap_or_default();
    if user_ep.as_ref().is_some_and(|e| !e.is_empty()) {
        return (user_ep, user_cmd);
    }
    let cmd = if user_cmd.is_empty() {
        strslice(Some(&image.cmd)).unwrap_or_default()
    } else {
        user_cmd
    };
    let ep = match user_ep {
        None => strslice(Some(&image.entrypoint)),
        Some(empty) => Some(empty),
    };
    (ep, cmd)
}

fn as_json(v: &Option<Vec<String>>) -> Value {
    match v {
        Some(list) => Value::from(list.clone()),
        None => Value::Null,
    }
}

/// The wrapper to put in front: its path on the host and the image's argv.
#[derive(Debug, Clone, Copy)]
pub struct Wrap<'a> {
    pub host_path: &'a str,
    pub image: &'a ImageArgv,
}

/// Finishes a Calico container's create `body`: labels for `ips` and `profiles`, and with `wrap`, the
/// wrapper as entrypoint (waiting for `eth0` and `ips`), the real entrypoint and command after it and in
/// labels, and the wrapper's read-only bind mount. Without a command to run, no wrapper is added (Docker
/// then refuses the create as it would have anyway).
pub fn finish(body: &[u8], ips: &[IpAddr], profiles: &[String], wrap: Option<Wrap<'_>>) -> Vec<u8> {
    let Ok(Value::Object(mut config)) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let mut labels = match config.remove("Labels") {
        Some(Value::Object(l)) => l,
        _ => Map::new(),
    };
    record_labels(&mut labels, ips, profiles);
    if let Some(wrap) = wrap {
        let (ep, cmd) = effective(&config, wrap.image);
        let argv_len = ep.as_ref().map_or(0, Vec::len) + cmd.len();
        if argv_len > 0 {
            labels.insert(
                ENTRYPOINT_LABEL.into(),
                Value::String(as_json(&ep).to_string()),
            );
            labels.insert(
                CMD_LABEL.into(),
                Value::String(as_json(&Some(cmd.clone())).to_string()),
            );
            let mut entry = vec![WRAPPER_PATH.to_string(), "--iface".into(), "eth0".into()];
            for ip in ips {
                entry.push("--ip".into());
                entry.push(ip.to_string());
            }
            entry.push("--".into());
            entry.extend(ep.unwrap_or_default());
            config.insert("Entrypoint".into(), Value::from(entry));
            config.insert("Cmd".into(), Value::from(cmd));
            let hc = config
                .entry("HostConfig")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(hc) = hc {
                let bind = format!("{}:{WRAPPER_PATH}:ro", wrap.host_path);
                match hc.get_mut("Binds") {
                    Some(Value::Array(binds)) => binds.push(Value::String(bind)),
                    _ => {
                        hc.insert("Binds".into(), Value::from(vec![bind]));
                    }
                }
            }
        }
    }
    config.insert("Labels".into(), Value::Object(labels));
    serde_json::to_vec(&Value::Object(config)).unwrap_or_else(|_| body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::workload::{recorded, IPS_LABEL, PROFILES_LABEL};
    use serde_json::json;

    fn image(ep: Value, cmd: Value) -> ImageArgv {
        ImageArgv {
            entrypoint: ep,
            cmd,
        }
    }

    fn run(body: Value, img: &ImageArgv) -> Value {
        let ips = ["10.65.0.2".parse().unwrap(), "fd00:65::2".parse().unwrap()];
        let out = finish(
            &serde_json::to_vec(&body).unwrap(),
            &ips,
            &["web".into()],
            Some(Wrap {
                host_path: "/var/lib/calico/calico-init",
                image: img,
            }),
        );
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn the_wrapper_goes_in_front_of_the_users_command() {
        let v = run(
            json!({"Image": "busybox", "Cmd": ["sleep", "1d"], "Entrypoint": null, "Labels": {"app": "x"},
                   "HostConfig": {"NetworkMode": "none", "Binds": ["/a:/b"]}}),
            &image(Value::Null, json!(["sh"])),
        );
        assert_eq!(
            v["Entrypoint"],
            json!([
                WRAPPER_PATH,
                "--iface",
                "eth0",
                "--ip",
                "10.65.0.2",
                "--ip",
                "fd00:65::2",
                "--"
            ])
        );
        assert_eq!(v["Cmd"], json!(["sleep", "1d"]));
        assert_eq!(
            v["HostConfig"]["Binds"],
            json!(["/a:/b", "/var/lib/calico/calico-init:/.calico-init:ro"])
        );
        assert_eq!(v["Labels"]["app"], "x");
        assert_eq!(v["Labels"][IPS_LABEL], "10.65.0.2,fd00:65::2");
        assert_eq!(v["Labels"][PROFILES_LABEL], "web");
        let mut labels = v["Labels"].clone();
        labels[super::super::workload::NODE_LABEL] = json!("h1");
        let r = recorded(Some(&labels)).unwrap();
        assert_eq!(r.argv, Some((Value::Null, json!(["sleep", "1d"]))));
    }

    #[test]
    fn docker_merge_rules_are_kept() {
        // No command: the image's entrypoint and command.
        let v = run(
            json!({"Image": "x"}),
            &image(json!(["/entry"]), json!(["serve"])),
        );
        assert_eq!(
            v["Entrypoint"].as_array().unwrap().last().unwrap(),
            "/entry"
        );
        assert_eq!(v["Cmd"], json!(["serve"]));
        // A user entrypoint drops the image's command.
        let v = run(
            json!({"Image": "x", "Entrypoint": "/mine"}),
            &image(json!(["/entry"]), json!(["serve"])),
        );
        assert_eq!(v["Entrypoint"].as_array().unwrap().last().unwrap(), "/mine");
        assert_eq!(v["Cmd"], json!([]));
        // A user command keeps the image's entrypoint.
        let v = run(
            json!({"Image": "x", "Cmd": ["other"]}),
            &image(json!(["/entry"]), json!(["serve"])),
        );
        assert_eq!(
            v["Entrypoint"].as_array().unwrap().last().unwrap(),
            "/entry"
        );
        assert_eq!(v["Cmd"], json!(["other"]));
        // Nothing to run: no wrapper, Docker refuses as it would.
        let v = run(json!({"Image": "x"}), &ImageArgv::default());
        assert!(v.get("Entrypoint").is_none());
        assert!(v["Labels"].get(ENTRYPOINT_LABEL).is_none());
    }

    #[test]
    fn the_image_is_read_only_when_needed() {
        assert!(needs_image(br#"{"Cmd":["a"]}"#));
        assert!(needs_image(br#"{"Entrypoint":[]}"#));
        assert!(!needs_image(br#"{"Entrypoint":"/x"}"#));
        let plain = finish(br#"{"Image":"x"}"#, &[], &[], None);
        let v: Value = serde_json::from_slice(&plain).unwrap();
        assert!(v.get("Entrypoint").is_none());
        assert_eq!(v["Labels"][IPS_LABEL], "");
    }
}
