//! `calico-bgp`: the BGP speaker as a standalone daemon, with its status and route commands.

use clap::{Parser, Subcommand};

/// The Calico BGP speaker (replaces BIRD on calico-node).
#[derive(Debug, Parser)]
#[command(name = "calico-bgp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the speaker's version.
    Version,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => println!("calico-bgp {}", env!("CARGO_PKG_VERSION")),
    }
    Ok(())
}
