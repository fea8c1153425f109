//! `calicoctl profile …`: profiles, their tags and their rules.
//!
//! Grammar (the original v0.4's):
//! ```text
//! profile show [--detailed] | profile (add|remove) <NAME> [--force]
//! profile <NAME> tag show | profile <NAME> tag (add|remove) <TAG>
//! profile <NAME> rule add (inbound|outbound) [--at=<POS>] <rule_spec>…
//! profile <NAME> rule remove (inbound|outbound) (--at=<POS> | <rule_spec>…)
//! profile <NAME> rule (show|json|update)          (update reads the rules' JSON on stdin)
//! ```
//! The name comes before the subcommand word, so clap sees it as an external subcommand: `show`, `add`
//! and `remove` are real subcommands, and any other word is a profile name whose remaining words are
//! parsed by a second parser ([`NamedCli`]). Profile names can never be grammar words (the model
//! forbids them), so the two never clash. Global options after the name are parsed by that second
//! parser too and override the ones given before.
//!
//! Inputs: the arguments, stdin for `rule update`, and the master's `/v1/profiles` routes. Outputs:
//! messages for changes; tables or JSON for the `show` commands; `rule json` prints the rules' JSON.

use std::io::Read;

use anyhow::Context;
use calico_master::{
    model::Rules,
    rules::{format_rule, format_rules_show, parse_rule},
};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

use super::{client, items, object, print_message, Reported};
use crate::cli::GlobalOpts;
use crate::output::{print_rows, Format};

/// Manage security profiles.
#[derive(Debug, Args)]
#[command(after_help = "Per-profile commands:\n  \
    calicoctl profile <NAME> tag show\n  \
    calicoctl profile <NAME> tag (add|remove) <TAG>\n  \
    calicoctl profile <NAME> rule add (inbound|outbound) [--at=<POS>] <RULE_SPEC>...\n  \
    calicoctl profile <NAME> rule remove (inbound|outbound) (--at=<POS> | <RULE_SPEC>...)\n  \
    calicoctl profile <NAME> rule (show|json|update)")]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub command: ProfileCommand,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the profiles.
    Show(ShowArgs),
    /// Create a profile tagged with its own name, allowing inbound traffic from that tag and all
    /// outbound traffic.
    Add(NameArg),
    /// Remove a profile (refused while endpoints use it, unless --force).
    Remove(RemoveArgs),
    /// `profile <NAME> tag|rule …`.
    #[command(external_subcommand)]
    Named(Vec<String>),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Also list the endpoints using each profile.
    #[arg(long)]
    pub detailed: bool,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// The profile's name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The profile's name.
    pub name: String,
    /// Remove it even if endpoints use it.
    #[arg(long)]
    pub force: bool,
}

/// The words after `profile <NAME>`.
#[derive(Debug, Parser)]
#[command(name = "calicoctl profile <NAME>")]
pub struct NamedCli {
    #[command(flatten)]
    pub global: LateGlobals,
    #[command(subcommand)]
    pub command: NamedCommand,
}

/// The global options, when they come after the profile name.
#[derive(Debug, Args)]
pub struct LateGlobals {
    /// The master's API URL; several, comma-separated, are tried in turn.
    #[arg(long, global = true, value_name = "URL[,URL…]", value_delimiter = ',')]
    pub master: Option<Vec<String>>,
    /// A file holding the bearer token for the master's API.
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum)]
    pub output: Option<Format>,
}

impl LateGlobals {
    /// These options over `global` (each one given here wins).
    pub fn over(&self, global: &GlobalOpts) -> GlobalOpts {
        GlobalOpts {
            master: self.master.clone().unwrap_or_else(|| global.master.clone()),
            token_file: self
                .token_file
                .clone()
                .or_else(|| global.token_file.clone()),
            output: self.output.unwrap_or(global.output),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum NamedCommand {
    /// The profile's tags.
    Tag {
        #[command(subcommand)]
        command: TagCommand,
    },
    /// The profile's rules.
    Rule {
        #[command(subcommand)]
        command: RuleCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TagCommand {
    /// List the tags.
    Show,
    /// Add a tag.
    Add {
        /// The tag.
        tag: String,
    },
    /// Remove a tag.
    Remove {
        /// The tag.
        tag: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Direction {
    /// Traffic to the profile's endpoints.
    Inbound,
    /// Traffic from the profile's endpoints.
    Outbound,
}

impl Direction {
    fn word(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Print the rules, numbered as --at counts them.
    Show,
    /// Print the rules as JSON (the input of `rule update`).
    Json,
    /// Replace the rules with the JSON read on stdin.
    Update,
    /// Add a rule, e.g. `rule add inbound allow tcp from tag WEB to ports 80`.
    Add {
        /// inbound or outbound.
        #[arg(value_enum)]
        direction: Direction,
        /// Insert at this position (1 = first); default: append.
        #[arg(long, value_name = "POS")]
        at: Option<u64>,
        /// The rule: (allow|deny) [(tcp|udp) [from [ports P] [tag T] [CIDR]] [to …] | icmp [type T [code C]] …].
        #[arg(required = true, value_name = "RULE_SPEC")]
        spec: Vec<String>,
    },
    /// Remove a rule, by position or by its spec.
    Remove {
        /// inbound or outbound.
        #[arg(value_enum)]
        direction: Direction,
        /// The position of the rule to remove (see `rule show`).
        #[arg(long, value_name = "POS", conflicts_with = "spec")]
        at: Option<u64>,
        /// The rule to remove, as it was added.
        #[arg(required_unless_present = "at", value_name = "RULE_SPEC")]
        spec: Vec<String>,
    },
}

pub fn run(global: &GlobalOpts, args: &ProfileArgs) -> anyhow::Result<()> {
    match &args.command {
        ProfileCommand::Show(s) => show(global, s.detailed),
        ProfileCommand::Add(a) => {
            let answer = client(global)?.post("/v1/profiles", &json!({"name": a.name}))?;
            print_message(global.output, &answer)
        }
        ProfileCommand::Remove(r) => {
            let path = format!(
                "/v1/profiles/{}{}",
                a_segment(&r.name)?,
                if r.force { "?force=true" } else { "" }
            );
            let answer = client(global)?.delete(&path)?;
            print_message(global.output, &answer)
        }
        ProfileCommand::Named(words) => {
            let Some((name, rest)) = words.split_first() else {
                anyhow::bail!("a profile name is missing; see `calicoctl profile --help`");
            };
            let argv =
                std::iter::once(format!("calicoctl profile {name}")).chain(rest.iter().cloned());
            let named = match NamedCli::try_parse_from(argv) {
                Ok(n) => n,
                Err(e) => {
                    let code = if e.use_stderr() { 1 } else { 0 };
                    let _ = e.print();
                    return Err(Reported(code).into());
                }
            };
            let global = named.global.over(global);
            run_named(&global, name, &named.command)
        }
    }
}

/// A profile name as a path segment; names with characters that could change the path are refused
/// here (the master would refuse them too).
fn a_segment(name: &str) -> anyhow::Result<&str> {
    calico_master::model::validate_name("name", name)
        .map_err(|e| anyhow::anyhow!("invalid profile name: {e}"))?;
    Ok(name)
}

fn show(global: &GlobalOpts, detailed: bool) -> anyhow::Result<()> {
    let path = if detailed {
        "/v1/profiles?detailed=true"
    } else {
        "/v1/profiles"
    };
    let profiles = client(global)?.get(path)?;
    if !detailed {
        let rows: Vec<_> = items(&profiles)
            .iter()
            .map(|p| object(json!({"name": p["name"]})))
            .collect();
        print_rows(global.output, &["name"], &rows)?;
        return Ok(());
    }
    // One row per (profile, endpoint), as the original's detailed listing; a profile without endpoints
    // gets one row with the endpoint columns empty.
    let columns = [
        "name",
        "host",
        "orchestrator",
        "workload",
        "endpoint",
        "state",
    ];
    let mut rows = Vec::new();
    for p in items(&profiles) {
        let eps = items(&p["endpoints"]);
        if eps.is_empty() {
            rows.push(object(json!({"name": p["name"], "host": null, "orchestrator": null, "workload": null, "endpoint": null, "state": null})));
        }
        for ep in eps {
            rows.push(object(json!({
                "name": p["name"], "host": ep["hostname"], "orchestrator": ep["orchestrator"],
                "workload": ep["workload_id"], "endpoint": ep["endpoint_id"], "state": ep["state"],
            })));
        }
    }
    print_rows(global.output, &columns, &rows)?;
    Ok(())
}

fn run_named(global: &GlobalOpts, name: &str, command: &NamedCommand) -> anyhow::Result<()> {
    let base = format!("/v1/profiles/{}", a_segment(name)?);
    match command {
        NamedCommand::Tag { command } => match command {
            TagCommand::Show => {
                let tags = client(global)?.get(&format!("{base}/tags"))?;
                let rows: Vec<_> = items(&tags)
                    .iter()
                    .map(|t| object(json!({"tag": t})))
                    .collect();
                print_rows(global.output, &["tag"], &rows)?;
                Ok(())
            }
            TagCommand::Add { tag } => {
                let answer =
                    client(global)?.put(&format!("{base}/tags/{}", tag_segment(tag)?), None)?;
                print_message(global.output, &answer)
            }
            TagCommand::Remove { tag } => {
                let answer =
                    client(global)?.delete(&format!("{base}/tags/{}", tag_segment(tag)?))?;
                print_message(global.output, &answer)
            }
        },
        NamedCommand::Rule { command } => run_rule(global, &base, command),
    }
}

fn tag_segment(tag: &str) -> anyhow::Result<&str> {
    calico_master::model::validate_name("tag", tag)
        .map_err(|e| anyhow::anyhow!("invalid tag: {e}"))?;
    Ok(tag)
}

fn rule_json(spec: &[String]) -> anyhow::Result<Value> {
    let rule = parse_rule(spec).map_err(|e| {
        anyhow::anyhow!(
            "invalid rule `{}`: {e}; see `calicoctl profile --help` for the rule grammar",
            spec.join(" ")
        )
    })?;
    Ok(serde_json::to_value(&rule)?)
}

fn run_rule(global: &GlobalOpts, base: &str, command: &RuleCommand) -> anyhow::Result<()> {
    match command {
        RuleCommand::Show => {
            let v = client(global)?.get(&format!("{base}/rules"))?;
            let rules = Rules::from_json(&v)
                .map_err(|e| anyhow::anyhow!("the master sent invalid rules: {e}"))?;
            match global.output {
                Format::Table => print!("{}", format_rules_show(&rules)),
                Format::Json => {
                    let mut rows: Vec<Map<String, Value>> = Vec::new();
                    for (dir, list) in [
                        ("inbound", &rules.inbound_rules),
                        ("outbound", &rules.outbound_rules),
                    ] {
                        for (i, r) in list.iter().enumerate() {
                            rows.push(object(json!({"direction": dir, "position": i + 1, "rule": format_rule(r)})));
                        }
                    }
                    print_rows(Format::Json, &["direction", "position", "rule"], &rows)?;
                }
            }
            Ok(())
        }
        RuleCommand::Json => {
            let v = client(global)?.get(&format!("{base}/rules"))?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        RuleCommand::Update => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the rules from stdin")?;
            let v: Value = serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "stdin is not valid JSON ({e}); pipe in the output of `rule json`, edited"
                )
            })?;
            let answer = client(global)?.put(&format!("{base}/rules"), Some(&v))?;
            print_message(global.output, &answer)
        }
        RuleCommand::Add {
            direction,
            at,
            spec,
        } => {
            let mut body = json!({"rule": rule_json(spec)?});
            if let (Some(at), Some(obj)) = (at, body.as_object_mut()) {
                obj.insert("position".into(), json!(at));
            }
            let answer =
                client(global)?.post(&format!("{base}/rules/{}", direction.word()), &body)?;
            print_message(global.output, &answer)
        }
        RuleCommand::Remove {
            direction,
            at,
            spec,
        } => {
            let c = client(global)?;
            let answer = match at {
                Some(at) => c.delete(&format!("{base}/rules/{}/{at}", direction.word()))?,
                None => c.post(
                    &format!("{base}/rules/{}/remove", direction.word()),
                    &json!({"rule": rule_json(spec)?}),
                )?,
            };
            print_message(global.output, &answer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn named_grammar() {
        NamedCli::command().debug_assert();
        let parse = |words: &[&str]| {
            NamedCli::try_parse_from(
                std::iter::once("calicoctl profile WEB").chain(words.iter().copied()),
            )
        };
        let n = parse(&[
            "rule", "add", "inbound", "--at=2", "allow", "tcp", "to", "ports", "80", "-o", "json",
        ])
        .expect("parses");
        assert_eq!(n.global.output, Some(Format::Json));
        match n.command {
            NamedCommand::Rule {
                command:
                    RuleCommand::Add {
                        direction,
                        at,
                        spec,
                    },
            } => {
                assert_eq!((direction, at), (Direction::Inbound, Some(2)));
                assert_eq!(spec, ["allow", "tcp", "to", "ports", "80"]);
            }
            other => panic!("{other:?}"),
        }
        let n = parse(&["rule", "remove", "outbound", "--at", "1"]).expect("parses");
        assert!(matches!(
            n.command,
            NamedCommand::Rule {
                command: RuleCommand::Remove { at: Some(1), .. }
            }
        ));
        assert!(
            parse(&["rule", "remove", "outbound"]).is_err(),
            "needs --at or a spec"
        );
        assert!(parse(&["rule", "remove", "outbound", "--at=1", "allow"]).is_err());
        assert!(parse(&["rule", "add", "sideways", "allow"]).is_err());
        assert!(parse(&["rule", "add", "inbound"]).is_err());
        let n = parse(&["tag", "add", "DB", "--master", "http://a:1,http://b:2"]).expect("parses");
        assert_eq!(
            n.global.master,
            Some(vec!["http://a:1".to_owned(), "http://b:2".to_owned()])
        );
        assert!(matches!(
            n.command,
            NamedCommand::Tag {
                command: TagCommand::Add { .. }
            }
        ));
    }
}
