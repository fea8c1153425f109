//! `calicoctl`: the administrator's command line for a Calico-on-Docker cluster.
//!
//! Role: admin commands against the master's HTTP API (pools, profiles, endpoints, BGP, IPAM, status) and
//! the commands that run the daemons (`calicoctl master run`, `calicoctl node run`). The node glue, the only
//! place where Felix, the BGP speaker and the Docker proxy meet, lives here too.
//!
//! Layout: [`cli`] holds the global options and the top-level command enum; each command group has its own
//! module under [`commands`]; [`output`] renders results as tables or JSON. Exit codes: 0 success, 1 a user
//! error (bad arguments or input, with a message saying what to do), 2 the master cannot be reached.

mod cli;
mod commands;
mod node;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with success; usage errors are user errors (exit 1), so that
            // exit 2 keeps its one meaning: the master could not be reached.
            let code = if err.use_stderr() { 1 } else { 0 };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    match commands::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A `Reported` error was printed where it happened (clap's usage text).
            if err.downcast_ref::<commands::Reported>().is_none() {
                eprintln!("calicoctl: {err:#}");
            }
            ExitCode::from(commands::exit_code(&err))
        }
    }
}
