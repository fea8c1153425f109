//! `calicoctl pool add|remove <CIDR> [--ipip] [--nat-outgoing]` and `calicoctl pool show [--ipv4|--ipv6]`.
//!
//! Inputs: the arguments and the master's `/v1/pools` routes. Outputs: the master's message for
//! changes; for `show`, a table (CIDR, IPIP, NAT_OUTGOING, DISABLED) or the same fields as JSON.
//! A CIDR that does not parse is refused here, before the master is asked (exit 1). So is `add --ipip` on
//! a host whose kernel has no IPIP (Felix's probe: an ipip link in a throwaway namespace), unless
//! `--force`, which adds the pool with a warning (the pool may be meant for other hosts).

use clap::{Args, Subcommand};
use ipnet::IpNet;
use serde_json::json;

use super::{client, items, object, print_message};
use crate::cli::GlobalOpts;
use crate::output::print_rows;
use calico_felix::ipip::{self, IpipSupport};

/// Manage the IP pools that workload addresses come from.
#[derive(Debug, Args)]
pub struct PoolArgs {
    #[command(subcommand)]
    pub command: PoolCommand,
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Add a pool (or change the options of an existing one).
    Add(PoolChange),
    /// Remove a pool.
    Remove(PoolChange),
    /// List the pools.
    Show(PoolShow),
}

#[derive(Debug, Args)]
pub struct PoolChange {
    /// The pool, e.g. 192.168.0.0/16 or fd80:24e2:f998:72d6::/64.
    pub cidr: String,
    /// Send traffic between hosts through IP-in-IP (IPv4 only).
    #[arg(long)]
    pub ipip: bool,
    /// Masquerade traffic from the pool to destinations outside all pools.
    #[arg(long)]
    pub nat_outgoing: bool,
    /// With --ipip: add the pool even though this host's kernel has no IPIP (warns instead of refusing).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PoolShow {
    /// Only IPv4 pools.
    #[arg(long, conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Only IPv6 pools.
    #[arg(long)]
    pub ipv6: bool,
}

/// The columns of `pool show`.
pub const COLUMNS: &[&str] = &["cidr", "ipip", "nat_outgoing", "disabled"];

fn parse_cidr(s: &str) -> anyhow::Result<IpNet> {
    s.parse().map_err(|_| {
        anyhow::anyhow!("Invalid CIDR specified: `{s}`; give a network such as 192.168.0.0/16")
    })
}

/// The decision for `pool add --ipip` on this host, given what the kernel probe found: an error (exit 1,
/// nothing added) when the kernel has no IPIP or could not be checked, a warning instead with `force`,
/// and nothing when the kernel has IPIP.
fn ipip_check(cidr: &IpNet, support: &IpipSupport, force: bool) -> anyhow::Result<Option<String>> {
    match ipip::refusal(cidr, support) {
        None => Ok(None),
        Some(message) if force => Ok(Some(format!(
            "Warning: {message}. Adding it anyway (--force)."
        ))),
        Some(message) => Err(anyhow::anyhow!(
            "{message}. Add --force to add the pool anyway (e.g. for other hosts)."
        )),
    }
}

pub fn run(global: &GlobalOpts, args: &PoolArgs) -> anyhow::Result<()> {
    match &args.command {
        PoolCommand::Add(a) => {
            let cidr = parse_cidr(&a.cidr)?;
            if a.ipip && cidr.addr().is_ipv4() {
                if let Some(warning) = ipip_check(&cidr, &ipip::probe(), a.force)? {
                    eprintln!("{warning}");
                }
            }
            let body =
                json!({"cidr": cidr.to_string(), "ipip": a.ipip, "nat_outgoing": a.nat_outgoing});
            let answer = client(global)?.post("/v1/pools", &body)?;
            print_message(global.output, &answer)
        }
        PoolCommand::Remove(a) => {
            // --ipip and --nat-outgoing are accepted for the original grammar's sake and ignored.
            let cidr = parse_cidr(&a.cidr)?;
            let dashed = cidr.to_string().replace('/', "-");
            let answer = client(global)?.delete(&format!("/v1/pools/{dashed}"))?;
            print_message(global.output, &answer)
        }
        PoolCommand::Show(s) => {
            let path = match (s.ipv4, s.ipv6) {
                (true, _) => "/v1/pools?version=4",
                (_, true) => "/v1/pools?version=6",
                _ => "/v1/pools",
            };
            let pools = client(global)?.get(path)?;
            let rows: Vec<_> = items(&pools).iter().cloned().map(object).collect();
            print_rows(global.output, COLUMNS, &rows)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipip_on_a_kernel_without_it_is_refused_unless_forced() {
        let cidr: IpNet = "10.65.0.0/16".parse().unwrap();
        let missing = IpipSupport::Missing {
            reason: "Operation not supported (os error 95)".into(),
        };
        let err = ipip_check(&cidr, &missing, false).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "pool 10.65.0.0/16 asks for IPIP, but this kernel has no IPIP support (creating an \
                 ipip link failed: Operation not supported (os error 95)); use BGP peering with the \
                 ToR for hosts in different subnets, or remove --ipip"
            ),
            "{err}"
        );
        assert!(err.contains("--force"), "{err}");
        let warning = ipip_check(&cidr, &missing, true).unwrap().unwrap();
        assert!(
            warning.starts_with("Warning: pool 10.65.0.0/16 asks for IPIP"),
            "{warning}"
        );
        assert_eq!(
            ipip_check(&cidr, &IpipSupport::Available, false).unwrap(),
            None
        );
        let unknown = IpipSupport::Unknown {
            reason: "cannot create a network namespace to test in: EPERM".into(),
        };
        assert!(ipip_check(&cidr, &unknown, false).is_err());
    }
}
