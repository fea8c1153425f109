//! The command groups, one module each, the dispatcher that runs the parsed command, and what they
//! share: the API client built from the global options, message output, and the exit-code mapping.

pub mod bgp;
pub mod config;
pub mod container;
pub mod containers;
pub mod diags;
pub mod endpoint;
pub mod ipam;
pub mod master;
pub mod node;
pub mod node_run;
pub mod pool;
pub mod profile;
pub mod status;
pub mod version;

use calico_master::client::{read_token_file, BlockingClient, Client, ClientError};
use serde_json::{json, Map, Value};

use crate::cli::{Cli, Command, GlobalOpts};
use crate::output::{print_rows, Format};

/// Runs the parsed command.
pub fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Version(args) => version::run(&cli.global, args),
        Command::Master(args) => master::run(&cli.global, args),
        Command::Pool(args) => pool::run(&cli.global, args),
        Command::Profile(args) => profile::run(&cli.global, args),
        Command::Endpoint(args) => endpoint::run(&cli.global, args),
        Command::Container(args) => container::run(&cli.global, args),
        Command::Ipam(args) => ipam::run(&cli.global, args),
        Command::Bgp(args) => bgp::run(&cli.global, args),
        Command::Config(args) => config::run(&cli.global, args),
        Command::Node(args) => node::run(&cli.global, args),
        Command::Shownodes(args) => node::show(&cli.global, args.detailed),
        Command::Status(args) => status::run(&cli.global, args),
        Command::Diags(args) => diags::run(&cli.global, args),
        Command::Checksystem(args) => node_run::checksystem(&cli.global, args),
    }
}

/// An error that has already been printed (e.g. clap's usage text); only its exit code is left.
#[derive(Debug, thiserror::Error)]
#[error("exit {0}")]
pub struct Reported(pub u8);

/// The process exit code for a failed command: 2 when no master could be reached, else 1 (a user
/// error: bad arguments or input, or the master refused the request).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(Reported(code)) = cause.downcast_ref::<Reported>() {
            return *code;
        }
        if let Some(ClientError::Unreachable { .. }) = cause.downcast_ref::<ClientError>() {
            return 2;
        }
    }
    1
}

/// The API client for the global options (`--master`, `--token-file`).
pub fn client(global: &GlobalOpts) -> anyhow::Result<BlockingClient> {
    Ok(BlockingClient::new(async_client(global)?)?)
}

/// The master's async client, for commands that run their own runtime (a [`BlockingClient`] must
/// not be made or dropped inside one).
pub fn async_client(global: &GlobalOpts) -> anyhow::Result<Client> {
    let token = match &global.token_file {
        Some(path) => Some(read_token_file(path)?),
        None => None,
    };
    Ok(Client::new(&global.master, token)?)
}

/// Print the outcome of a change: its message (table) or `[{"message", "changed"}]` (JSON).
pub fn print_message(format: Format, answer: &Value) -> anyhow::Result<()> {
    let message = answer["message"].as_str().unwrap_or("Done");
    match format {
        Format::Table => println!("{message}"),
        Format::Json => {
            let row = json!({"message": message, "changed": answer["changed"]});
            print_rows(format, &["message", "changed"], &[object(row)])?;
        }
    }
    Ok(())
}

/// A JSON object as a row (anything else becomes an empty row).
pub fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The elements of a JSON list (anything else: none).
pub fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let unreachable = anyhow::Error::new(ClientError::Unreachable {
            tried: vec!["http://127.0.0.1:1 (refused)".into()],
        });
        assert_eq!(exit_code(&unreachable), 2);
        assert_eq!(exit_code(&unreachable.context("listing pools")), 2);
        let api = anyhow::Error::new(ClientError::Api {
            status: 400,
            error: "bad".into(),
            field: None,
            body: Value::Null,
        });
        assert_eq!(exit_code(&api), 1);
        assert_eq!(exit_code(&anyhow::anyhow!("anything else")), 1);
        assert_eq!(exit_code(&anyhow::Error::new(Reported(0))), 0);
    }
}
