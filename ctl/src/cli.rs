//! The command-line grammar: global options and the top-level commands.
//!
//! Global options are declared `global`, so they are accepted before or after the subcommand
//! (`calicoctl -o json version` and `calicoctl version -o json` mean the same). Each command group adds its
//! variant to [`Command`] and keeps its own arguments in its module under `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::output::Format;

/// Manage a Calico-on-Docker cluster: IP pools, profiles and their rules, BGP peers, nodes and status.
#[derive(Debug, Parser)]
#[command(name = "calicoctl", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// The master's API URL; several, comma-separated, are tried in turn.
    #[arg(
        long,
        global = true,
        env = "CALICO_MASTER",
        value_name = "URL[,URL…]",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:9900"
    )]
    pub master: Vec<String>,

    /// A file holding the bearer token for the master's API.
    #[arg(long, global = true, env = "CALICO_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Output format: human-readable tables, or JSON for scripts.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the versions of calicoctl and of the components built with it.
    Version(commands::version::VersionArgs),
    /// Run the Calico master (the cluster's API and datastore).
    Master(commands::master::MasterArgs),
    /// Manage the IP pools that workload addresses come from.
    Pool(commands::pool::PoolArgs),
    /// Manage security profiles, their tags and their rules.
    Profile(commands::profile::ProfileArgs),
    /// Inspect workload endpoints and change their profiles.
    Endpoint(commands::endpoint::EndpointArgs),
    /// Wire a container (or a bare network namespace) into Calico by hand, and change its addresses.
    Container(commands::container::ContainerArgs),
    /// Inspect and release assigned addresses.
    Ipam(commands::ipam::IpamArgs),
    /// Manage BGP: global peers, the node-to-node mesh, the default AS and timers.
    Bgp(commands::bgp::BgpArgs),
    /// Manage Felix's settings, cluster-wide or for one host.
    Config(commands::config::ConfigArgs),
    /// Inspect and remove Calico nodes and manage their own BGP peers.
    Node(commands::node::NodeArgs),
    /// List the nodes (the same as `node show`).
    Shownodes(commands::node::ShowArgs),
    /// Show what the nodes last reported: Felix's counts and the BGP sessions.
    Status(commands::status::StatusArgs),
    /// Write a tarball of the master's state, versions and logs, for bug reports.
    Diags(commands::diags::DiagsArgs),
    /// Check this machine for what calico-node needs (IP forwarding, nf_tables, conntrack, Docker).
    Checksystem(commands::node_run::CheckArgs),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("calicoctl").chain(args.iter().copied()))
            .expect("parses")
    }

    #[test]
    fn global_options_before_or_after_the_subcommand() {
        for args in [
            &["-o", "json", "--master", "http://a:1,http://b:2", "version"][..],
            &["version", "-o", "json", "--master", "http://a:1,http://b:2"][..],
        ] {
            let cli = parse(args);
            assert_eq!(cli.global.output, Format::Json);
            assert_eq!(cli.global.master, ["http://a:1", "http://b:2"]);
        }
    }

    #[test]
    fn defaults() {
        let cli = parse(&["version"]);
        assert_eq!(cli.global.output, Format::Table);
        assert_eq!(cli.global.master, ["http://127.0.0.1:9900"]);
        assert!(cli.global.token_file.is_none());
    }

    #[test]
    fn bad_output_format_is_rejected() {
        let err = Cli::try_parse_from(["calicoctl", "-o", "yaml", "version"]).unwrap_err();
        assert!(err.to_string().contains("yaml"), "{err}");
    }

    #[test]
    fn profile_name_before_the_subcommand_word() {
        use commands::profile::ProfileCommand;
        let cli = parse(&["profile", "add", "web"]);
        assert!(matches!(
            cli.command,
            Command::Profile(commands::profile::ProfileArgs { command: ProfileCommand::Add(ref a) }) if a.name == "web"
        ));
        // After the name, every word (global options too) goes to the per-profile parser.
        for (args, words, output) in [
            (
                &["profile", "web", "rule", "show", "-o", "json"][..],
                &["web", "rule", "show", "-o", "json"][..],
                Format::Table,
            ),
            (
                &["-o", "json", "profile", "web", "rule", "show"][..],
                &["web", "rule", "show"][..],
                Format::Json,
            ),
        ] {
            let cli = parse(args);
            assert_eq!(cli.global.output, output);
            match cli.command {
                Command::Profile(commands::profile::ProfileArgs {
                    command: ProfileCommand::Named(got),
                }) => assert_eq!(got, words),
                other => panic!("{other:?}"),
            }
        }
        let cli = parse(&["profile", "show", "--detailed", "--master", "http://m:1"]);
        assert_eq!(cli.global.master, ["http://m:1"]);
        assert!(matches!(
            cli.command,
            Command::Profile(commands::profile::ProfileArgs { command: ProfileCommand::Show(ref s) }) if s.detailed
        ));
    }

    #[test]
    fn pool_and_master_grammar() {
        use commands::pool::PoolCommand;
        let cli = parse(&["pool", "add", "10.65.0.0/16", "--ipip", "--nat-outgoing"]);
        match cli.command {
            Command::Pool(p) => match p.command {
                PoolCommand::Add(a) => {
                    assert!(a.ipip && a.nat_outgoing && a.cidr == "10.65.0.0/16")
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["calicoctl", "pool", "show", "--ipv4", "--ipv6"]).is_err());
        let cli = parse(&[
            "master",
            "run",
            "--listen",
            "127.0.0.1:1",
            "--listen",
            "[::1]:2",
        ]);
        match cli.command {
            Command::Master(m) => {
                let Some(commands::master::MasterCommand::Run(r)) = m.command else {
                    panic!("master run")
                };
                assert_eq!(r.listen.len(), 2);
                assert_eq!(r.datastore.to_str(), Some("/var/lib/calico/master.db"));
            }
            other => panic!("{other:?}"),
        }
        let cli = parse(&["master", "run"]);
        match cli.command {
            Command::Master(m) => {
                let Some(commands::master::MasterCommand::Run(r)) = m.command else {
                    panic!("master run")
                };
                assert_eq!(
                    r.listen,
                    ["127.0.0.1:9900"
                        .parse::<std::net::SocketAddr>()
                        .expect("addr")]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_grammar_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
