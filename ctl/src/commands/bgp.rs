//! `calicoctl bgp …`: global BGP peers, the node-to-node mesh, the default node AS and BGP timers.
//!
//! Grammar (the original v0.5's, plus timers):
//! ```text
//! bgp peer add <IP> as <ASN> [--hold-time S] [--keepalive S] [--graceful-restart-time S]
//! bgp peer remove <IP> | bgp peer show [--ipv4|--ipv6]
//! bgp node-mesh [on|off]              (show when no argument)
//! bgp default-node-as [<ASN>]         (show when no argument; 64511 unless set)
//! bgp timers [--hold-time S] [--keepalive S] [--graceful-restart-time S] [--clear]   (show when none)
//! ```
//! The peer argument words are shared with `node bgp peer` ([`PeerCommand`], [`peer_body`],
//! [`show_peers`]). Inputs: the arguments and the master's `/v1/bgp` routes. Outputs: messages for
//! changes; tables or JSON for shows. Bad addresses and AS numbers are refused here (exit 1).

use calico_master::{client::BlockingClient, model::AsNumber};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::{client, items, object, print_message};
use crate::cli::GlobalOpts;
use crate::output::{print_rows, Format};

/// Manage BGP: global peers, the node-to-node mesh, the default AS and timers.
#[derive(Debug, Args)]
pub struct BgpArgs {
    #[command(subcommand)]
    pub command: BgpCommand,
}

#[derive(Debug, Subcommand)]
pub enum BgpCommand {
    /// Global BGP peers (every node peers with them).
    Peer {
        #[command(subcommand)]
        command: PeerCommand,
    },
    /// Show, or turn on or off, the full mesh of BGP sessions between nodes.
    NodeMesh {
        /// on or off; without it, show the setting.
        #[arg(value_enum)]
        state: Option<OnOff>,
    },
    /// Show or set the AS number of nodes that have none of their own.
    DefaultNodeAs {
        /// The AS number (1–4294967295 or asdot like 1.10); without it, show the current one.
        as_num: Option<String>,
    },
    /// Show or set the global BGP timers (seconds).
    Timers(TimerArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// Timer options, shared by `bgp timers` and `peer add`.
#[derive(Debug, Args, Default)]
pub struct Timers {
    /// Hold time: 0 or 3–65535 seconds.
    #[arg(long, value_name = "S")]
    pub hold_time: Option<u16>,
    /// Keepalive interval (below the hold time).
    #[arg(long, value_name = "S")]
    pub keepalive: Option<u16>,
    /// Graceful-restart time, 0–4095 seconds.
    #[arg(long, value_name = "S")]
    pub graceful_restart_time: Option<u16>,
}

impl Timers {
    fn is_empty(&self) -> bool {
        self.hold_time.is_none() && self.keepalive.is_none() && self.graceful_restart_time.is_none()
    }

    fn json(&self) -> Value {
        json!({"hold_time": self.hold_time, "keepalive": self.keepalive, "graceful_restart_time": self.graceful_restart_time})
    }
}

#[derive(Debug, Args)]
pub struct TimerArgs {
    #[command(flatten)]
    pub timers: Timers,
    /// Go back to the defaults (hold 90 s, keepalive 30 s, graceful restart 120 s).
    #[arg(long, conflicts_with_all = ["hold_time", "keepalive", "graceful_restart_time"])]
    pub clear: bool,
}

/// `peer add|remove|show`, for global and per-node peers.
#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// Add a peer: `add <IP> as <ASN>`.
    Add {
        /// The peer's address.
        ip: String,
        /// The word `as`.
        #[arg(value_parser = ["as"], hide_possible_values = true)]
        as_word: String,
        /// The peer's AS number.
        as_num: String,
        #[command(flatten)]
        timers: Timers,
        /// Sign the session with TCP MD5 (RFC 2385) using the key in FILE (its first line); the
        /// peer must use the same key. A file keeps the key out of the process list.
        #[arg(long, value_name = "FILE")]
        password_file: Option<std::path::PathBuf>,
    },
    /// Remove a peer.
    Remove {
        /// The peer's address.
        ip: String,
    },
    /// List the peers.
    Show {
        /// Only IPv4 peers.
        #[arg(long, conflicts_with = "ipv6")]
        ipv4: bool,
        /// Only IPv6 peers.
        #[arg(long)]
        ipv6: bool,
    },
}

/// The columns of the peer listings.
pub const PEER_COLUMNS: &[&str] = &[
    "ip",
    "as_num",
    "hold_time",
    "keepalive",
    "graceful_restart_time",
    "md5",
];

/// The MD5 key in the first line of `path`.
pub fn read_password(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the password file {}: {e}; give a file holding the MD5 key",
            path.display()
        )
    })?;
    let key = text.lines().next().unwrap_or("").to_owned();
    if key.is_empty() {
        anyhow::bail!(
            "the password file {} is empty; put the MD5 key on its first line",
            path.display()
        );
    }
    Ok(key)
}

/// The request body of `peer add`, checked here first.
pub fn peer_body(
    ip: &str,
    as_num: &str,
    timers: &Timers,
    password: Option<&str>,
) -> anyhow::Result<Value> {
    let ip = super::ipam::parse_ip(ip)?;
    let asn = AsNumber::parse("as_num", as_num)
        .map_err(|e| anyhow::anyhow!("Invalid AS number: {}", e.reason))?;
    let mut body = json!({"ip": ip.to_string(), "as_num": asn.get()});
    if let (Some(obj), Some(p)) = (body.as_object_mut(), password) {
        obj.insert("password".into(), json!(p));
    }
    if let (Some(obj), Value::Object(t)) = (body.as_object_mut(), timers.json()) {
        obj.extend(t.into_iter().filter(|(_, v)| !v.is_null()));
    }
    Ok(body)
}

/// The path of a peer for removal, the address checked here first.
pub fn peer_path(base: &str, ip: &str) -> anyhow::Result<String> {
    Ok(format!("{base}/{}", super::ipam::parse_ip(ip)?))
}

/// List peers from `base` (`/v1/bgp/peers` or `/v1/nodes/<h>/peers`).
pub fn show_peers(
    c: &BlockingClient,
    format: Format,
    base: &str,
    ipv4: bool,
    ipv6: bool,
) -> anyhow::Result<()> {
    let path = match (ipv4, ipv6) {
        (true, _) => format!("{base}?version=4"),
        (_, true) => format!("{base}?version=6"),
        _ => base.to_owned(),
    };
    let peers = c.get(&path)?;
    let rows: Vec<_> = items(&peers)
        .iter()
        .map(|p| object(json!({"ip": p["ip"], "as_num": p["as_num"], "hold_time": p["hold_time"], "keepalive": p["keepalive"], "graceful_restart_time": p["graceful_restart_time"], "md5": p["md5"].as_bool().unwrap_or(false)})))
        .collect();
    print_rows(format, PEER_COLUMNS, &rows)?;
    Ok(())
}

/// Run a peer command against `base`.
pub fn run_peer(global: &GlobalOpts, base: &str, command: &PeerCommand) -> anyhow::Result<()> {
    match command {
        PeerCommand::Add {
            ip,
            as_num,
            timers,
            password_file,
            ..
        } => {
            let password = password_file.as_deref().map(read_password).transpose()?;
            let body = peer_body(ip, as_num, timers, password.as_deref())?;
            let answer = client(global)?.post(base, &body)?;
            print_message(global.output, &answer)
        }
        PeerCommand::Remove { ip } => {
            let path = peer_path(base, ip)?;
            let answer = client(global)?.delete(&path)?;
            print_message(global.output, &answer)
        }
        PeerCommand::Show { ipv4, ipv6 } => {
            show_peers(&client(global)?, global.output, base, *ipv4, *ipv6)
        }
    }
}

fn show_setting(format: Format, name: &str, value: &Value) -> anyhow::Result<()> {
    match format {
        Format::Table => println!(
            "{}",
            value.as_str().map_or(value.to_string(), str::to_owned)
        ),
        Format::Json => print_rows(format, &[name], &[object(json!({ name: value }))])?,
    }
    Ok(())
}

pub fn run(global: &GlobalOpts, args: &BgpArgs) -> anyhow::Result<()> {
    match &args.command {
        BgpCommand::Peer { command } => run_peer(global, "/v1/bgp/peers", command),
        BgpCommand::NodeMesh { state } => match state {
            None => {
                let cfg = client(global)?.get("/v1/bgp/config")?;
                let on = cfg["node_mesh"].as_bool().unwrap_or(true);
                show_setting(
                    global.output,
                    "node_mesh",
                    &json!(if on { "on" } else { "off" }),
                )
            }
            Some(s) => {
                let answer = client(global)?.put(
                    "/v1/bgp/node_mesh",
                    Some(&json!({"enabled": *s == OnOff::On})),
                )?;
                print_message(global.output, &answer)
            }
        },
        BgpCommand::DefaultNodeAs { as_num } => match as_num {
            None => {
                let cfg = client(global)?.get("/v1/bgp/config")?;
                show_setting(global.output, "as_num", &cfg["as_num"])
            }
            Some(a) => {
                let asn = AsNumber::parse("as_num", a)
                    .map_err(|e| anyhow::anyhow!("Invalid AS number: {}", e.reason))?;
                let answer =
                    client(global)?.put("/v1/bgp/as_num", Some(&json!({"as_num": asn.get()})))?;
                print_message(global.output, &answer)
            }
        },
        BgpCommand::Timers(t) => {
            if t.timers.is_empty() && !t.clear {
                let cfg = client(global)?.get("/v1/bgp/config")?;
                let tm = &cfg["timers"];
                let row = object(
                    json!({"hold_time": tm["hold_time"], "keepalive": tm["keepalive"], "graceful_restart_time": tm["graceful_restart_time"]}),
                );
                print_rows(
                    global.output,
                    &["hold_time", "keepalive", "graceful_restart_time"],
                    &[row],
                )?;
                return Ok(());
            }
            let c = client(global)?;
            // Only the timers given change; the others keep their current values.
            let mut body = if t.clear {
                json!({})
            } else {
                c.get("/v1/bgp/config")?["timers"].clone()
            };
            if let (Some(obj), Value::Object(given)) = (body.as_object_mut(), t.timers.json()) {
                obj.extend(given.into_iter().filter(|(_, v)| !v.is_null()));
            }
            let answer = c.put("/v1/bgp/timers", Some(&body))?;
            print_message(global.output, &answer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("calicoctl").chain(args.iter().copied()))
    }

    #[test]
    fn peer_grammar() {
        let cli = parse(&[
            "bgp",
            "peer",
            "add",
            "10.0.0.1",
            "as",
            "65000",
            "--hold-time",
            "9",
            "-o",
            "json",
        ])
        .expect("parses");
        assert_eq!(cli.global.output, Format::Json);
        match cli.command {
            Command::Bgp(BgpArgs {
                command:
                    BgpCommand::Peer {
                        command:
                            PeerCommand::Add {
                                ip, as_num, timers, ..
                            },
                    },
            }) => {
                assert_eq!(
                    (ip.as_str(), as_num.as_str(), timers.hold_time),
                    ("10.0.0.1", "65000", Some(9))
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["bgp", "peer", "add", "10.0.0.1", "65000"]).is_err());
        assert!(parse(&["bgp", "peer", "add", "10.0.0.1", "is", "65000"]).is_err());
        for args in [
            &[
                "node",
                "bgp",
                "peer",
                "add",
                "10.0.0.1",
                "as",
                "1",
                "--hostname",
                "h1",
            ][..],
            &[
                "node",
                "bgp",
                "peer",
                "--hostname",
                "h1",
                "add",
                "10.0.0.1",
                "as",
                "1",
            ][..],
        ] {
            let cli = parse(args).expect("parses");
            assert!(matches!(
                cli.command,
                Command::Node(crate::commands::node::NodeArgs {
                    command: Some(crate::commands::node::NodeCommand::Bgp {
                        command: crate::commands::node::NodeBgpCommand::Peer { hostname: Some(ref h), .. }
                    }),
                    ..
                }) if h == "h1"
            ));
        }
        assert!(matches!(
            parse(&["bgp", "node-mesh"]).expect("parses").command,
            Command::Bgp(BgpArgs {
                command: BgpCommand::NodeMesh { state: None }
            })
        ));
        assert!(parse(&["bgp", "node-mesh", "yes"]).is_err());
    }

    #[test]
    fn peer_body_checks_before_sending() {
        let t = Timers {
            hold_time: Some(9),
            ..Timers::default()
        };
        assert_eq!(
            peer_body("fd00::1", "1.10", &t, None).expect("valid"),
            json!({"ip": "fd00::1", "as_num": 65546, "hold_time": 9})
        );
        assert_eq!(
            peer_body("10.0.0.1", "65000", &Timers::default(), Some("s3cret")).expect("valid"),
            json!({"ip": "10.0.0.1", "as_num": 65000, "password": "s3cret"})
        );
        assert!(peer_body("fd00::g", "1", &t, None).is_err());
        assert!(peer_body("10.0.0.1", "0", &t, None).is_err());
        assert_eq!(
            peer_path("/v1/bgp/peers", "10.0.0.1").expect("ok"),
            "/v1/bgp/peers/10.0.0.1"
        );
    }
}
