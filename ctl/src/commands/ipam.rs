//! `calicoctl ipam info <IP>` and `calicoctl ipam release <IP> [--force]`.
//!
//! Inputs: the arguments and the master's `/v1/ipam/ips/<ip>` routes. Outputs: for `info`, a table
//! (IP, HANDLE, HOST, BLOCK, BLOCK_AFFINITY, HOST_ROUTE, POOL) or the same fields as JSON; for
//! `release`, the master's message. An address that does not parse is refused here (exit 1); a free
//! address is a user error too (exit 1, "not assigned").

use std::net::IpAddr;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{client, object, print_message};
use crate::cli::GlobalOpts;
use crate::output::print_rows;

/// Inspect and release assigned addresses.
#[derive(Debug, Args)]
pub struct IpamArgs {
    #[command(subcommand)]
    pub command: IpamCommand,
}

#[derive(Debug, Subcommand)]
pub enum IpamCommand {
    /// Show who holds an address.
    Info {
        /// The address, e.g. 192.168.0.2.
        ip: String,
    },
    /// Release an address (refused while an endpoint uses it, unless --force).
    Release {
        /// The address, e.g. 192.168.0.2.
        ip: String,
        /// Release it even if an endpoint uses it.
        #[arg(long)]
        force: bool,
    },
}

/// The columns of `ipam info`.
pub const COLUMNS: &[&str] = &[
    "ip",
    "handle_id",
    "host",
    "block",
    "block_affinity",
    "host_route",
    "pool",
];

/// Parse an address given on the command line.
pub fn parse_ip(s: &str) -> anyhow::Result<IpAddr> {
    s.parse().map_err(|_| {
        anyhow::anyhow!("Invalid IP address specified: `{s}`; give one like 192.168.0.2 or fd80::2")
    })
}

pub fn run(global: &GlobalOpts, args: &IpamArgs) -> anyhow::Result<()> {
    match &args.command {
        IpamCommand::Info { ip } => {
            let ip = parse_ip(ip)?;
            let v = client(global)?.get(&format!("/v1/ipam/ips/{ip}"))?;
            let row = object(json!({
                "ip": v["ip"], "handle_id": v["handle_id"], "host": v["host"], "block": v["block"],
                "block_affinity": v["block_affinity"], "host_route": v["host_route"], "pool": v["pool"],
            }));
            print_rows(global.output, COLUMNS, &[row])?;
            Ok(())
        }
        IpamCommand::Release { ip, force } => {
            let ip = parse_ip(ip)?;
            let q = if *force { "?force=true" } else { "" };
            let answer = client(global)?.delete(&format!("/v1/ipam/ips/{ip}{q}"))?;
            print_message(global.output, &answer)
        }
    }
}
