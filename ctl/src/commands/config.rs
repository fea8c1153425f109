//! `calicoctl config set <KEY> <VALUE> [--host H]`, `config unset <KEY> [--host H]` and
//! `config show [--host H]`: Felix's settings, cluster-wide or for one host.
//!
//! Inputs: the arguments and the master's `/v1/config` routes. Outputs: for `set`/`unset`, the
//! master's message; for `show`, a table (KEY, VALUE, SOURCE: `global`, or `host` for the host's own
//! value, which wins over the cluster-wide one) or the same fields as JSON. A bad key or value is
//! refused by the master naming it (exit 1); known keys (e.g. `DefaultEndpointToHostAction`: DROP,
//! RETURN or ACCEPT) have their values checked.

use clap::{Args, Subcommand};
use serde_json::json;

use super::{client, items, object, print_message};
use crate::cli::GlobalOpts;
use crate::output::print_rows;

/// Manage Felix's settings, cluster-wide or for one host.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Set a setting, e.g. `config set DefaultEndpointToHostAction RETURN`.
    Set {
        /// The setting, e.g. DefaultEndpointToHostAction, LogSeverityScreen, IpInIpMtu.
        key: String,
        /// Its value, e.g. RETURN.
        value: String,
        /// Set it for this host only (it then wins over the cluster-wide value there).
        #[arg(long, value_name = "H")]
        host: Option<String>,
    },
    /// Remove a setting (cluster-wide, or the host's own with --host).
    Unset {
        /// The setting.
        key: String,
        /// Remove the host's own value (the cluster-wide one then applies there).
        #[arg(long, value_name = "H")]
        host: Option<String>,
    },
    /// Show the cluster-wide settings, or a host's effective ones with --host.
    Show {
        /// Show what applies on this host (its own values and the cluster-wide ones).
        #[arg(long, value_name = "H")]
        host: Option<String>,
    },
}

/// The columns of `config show`.
pub const COLUMNS: &[&str] = &["key", "value", "source"];

/// The API path for `key` (or the list), at the level `host` names.
pub fn path(key: Option<&str>, host: Option<&str>) -> String {
    let mut p = String::from("/v1/config");
    if let Some(k) = key {
        p.push('/');
        p.push_str(k);
    }
    if let Some(h) = host {
        p.push_str("?host=");
        p.push_str(h);
    }
    p
}

/// Refuse what cannot be put in a URL path segment or query before asking the master (which checks
/// the rest and names the field).
fn check_word(what: &str, s: &str) -> anyhow::Result<()> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        anyhow::bail!(
            "Invalid {what} `{s}`: use letters, digits, `_`, `.` and `-` (e.g. DefaultEndpointToHostAction)"
        );
    }
    Ok(())
}

pub fn run(global: &GlobalOpts, args: &ConfigArgs) -> anyhow::Result<()> {
    let host = match &args.command {
        ConfigCommand::Set { host, .. }
        | ConfigCommand::Unset { host, .. }
        | ConfigCommand::Show { host } => host.as_deref(),
    };
    if let Some(h) = host {
        check_word("host name", h)?;
    }
    match &args.command {
        ConfigCommand::Set { key, value, .. } => {
            check_word("setting", key)?;
            let answer =
                client(global)?.put(&path(Some(key), host), Some(&json!({ "value": value })))?;
            print_message(global.output, &answer)
        }
        ConfigCommand::Unset { key, .. } => {
            check_word("setting", key)?;
            let answer = client(global)?.delete(&path(Some(key), host))?;
            print_message(global.output, &answer)
        }
        ConfigCommand::Show { .. } => {
            let list = client(global)?.get(&path(None, host))?;
            let rows: Vec<_> = items(&list)
                .iter()
                .map(|r| {
                    object(json!({"key": r["key"], "value": r["value"], "source": r["source"]}))
                })
                .collect();
            print_rows(global.output, COLUMNS, &rows)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_key_and_the_host() {
        assert_eq!(path(None, None), "/v1/config");
        assert_eq!(path(None, Some("h1")), "/v1/config?host=h1");
        assert_eq!(
            path(Some("LogSeverityScreen"), Some("core-01")),
            "/v1/config/LogSeverityScreen?host=core-01"
        );
    }

    #[test]
    fn words_that_would_break_the_url_are_refused() {
        check_word("setting", "DefaultEndpointToHostAction").unwrap();
        for bad in ["", "a/b", "a?b", "a b", "a&host=x"] {
            let e = check_word("setting", bad).unwrap_err().to_string();
            assert!(e.contains("Invalid setting"), "{e}");
        }
    }
}
