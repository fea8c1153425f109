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
    fn the_grammar_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
