//! The command groups, one module each, and the dispatcher that runs the parsed command.

pub mod version;

use crate::cli::{Cli, Command};

/// Runs the parsed command.
pub fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Version(args) => version::run(&cli.global, args),
    }
}

/// The process exit code for a failed command: 1 for user errors (the default).
pub fn exit_code(_err: &anyhow::Error) -> u8 {
    1
}
