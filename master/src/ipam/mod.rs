//! IPAM: a pure address-assignment core with per-host blocks.
//!
//! Role: decide which address a workload gets, remember who holds it, and tell the caller exactly which
//! stored block changed, so that a datastore can apply each operation as one compare-and-swap (write
//! `after` only if the stored block still equals `before`) and retry on conflict. No I/O here.
//!
//! Inputs: the pools ([`crate::model::IpPool`]), the current [`IpamState`] (all blocks), and requests:
//! explicit addresses, automatic assignment for a host ([`PoolSelector`]: `auto`/`ipv4`, `ipv6` or a pool
//! CIDR), releases, lookups. Outputs: [`Assignment`]s and [`Release`]s carrying a [`BlockChange`], errors
//! ([`IpamError`]) that say what to do, and per-host route announcements ([`HostRoutes`]).
//!
//! Design:
//! - Blocks are /26 (IPv4) or /122 (IPv6), aligned inside their pool; a pool smaller than a block gets one
//!   block clipped to the pool (a /30 pool is one /30 block).
//! - Automatic assignment for host H: first a free address in H's own blocks, then a newly claimed free
//!   block, then (when every block of the pools is claimed) a free address borrowed from another host's
//!   block; only when no address is left is the pool full.
//! - Explicit assignment: the address must be in an enabled pool and free. If its block belongs to another
//!   host (or to none) the address is borrowed; if no block exists yet the block is claimed for the
//!   requesting host, as libcalico did. A borrowed address is announced by its holder's host as a /32 or
//!   /128 ([`IpamState::routes_for_host`]); the block's owner announces the aggregate.
//! - Every address of a block is handed out (as the original did: routes are /32s, so there is no
//!   broadcast address), except the pool's own network address (`.0` of the pool), which is never
//!   assigned, explicitly or automatically, because many tools treat it as "the network".

mod block;
mod state;

use std::{fmt, net::IpAddr, str::FromStr};

use ipnet::IpNet;

pub use block::{Block, Owner, MAX_BLOCK_BITS};
pub use state::{Assignment, BlockChange, Holder, HostRoutes, IpamState, PoolUsage, Release};

use crate::model::IpVersion;

/// Prefix length of IPv4 blocks.
pub const BLOCK_PREFIX_V4: u8 = 26;
/// Prefix length of IPv6 blocks.
pub const BLOCK_PREFIX_V6: u8 = 122;

/// Where an automatic address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolSelector {
    /// Any enabled pool of this family (`auto` and `ipv4` mean IPv4, as in the original).
    Family(IpVersion),
    /// This pool (which must exist and be enabled).
    Pool(IpNet),
}

impl FromStr for PoolSelector {
    type Err = IpamError;
    fn from_str(s: &str) -> Result<Self, IpamError> {
        match s.to_ascii_lowercase().as_str() {
            "auto" | "ipv4" => Ok(PoolSelector::Family(IpVersion::V4)),
            "ipv6" => Ok(PoolSelector::Family(IpVersion::V6)),
            _ => s
                .parse::<IpNet>()
                .map(PoolSelector::Pool)
                .map_err(|_| IpamError::BadRequest(s.to_owned())),
        }
    }
}

/// What a workload asked for (`CALICO_IP`): an address, or automatic assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpRequest {
    /// This exact address.
    Explicit(IpAddr),
    /// An automatic one.
    Auto(PoolSelector),
}

impl FromStr for IpRequest {
    type Err = IpamError;
    /// `192.168.1.2`, `fd00::5`, `auto`, `ipv4`, `ipv6` or a pool CIDR.
    fn from_str(s: &str) -> Result<Self, IpamError> {
        match s.parse::<IpAddr>() {
            Ok(ip) => Ok(IpRequest::Explicit(ip)),
            Err(_) => s.parse().map(IpRequest::Auto),
        }
    }
}

/// Why an IPAM operation was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// The request is neither an address, `auto`, `ipv4`, `ipv6` nor a CIDR.
    #[error(
        "`{0}` is not an IP request; use an address (192.168.1.2), auto, ipv4, ipv6 or a pool CIDR"
    )]
    BadRequest(String),
    /// The address is in no pool.
    #[error("{0} is not in any IP pool; add a pool that contains it (calicoctl pool add <CIDR>) or choose an address from a pool")]
    NotInPool(IpAddr),
    /// The pool is disabled.
    #[error(
        "pool {0} is disabled, so no new addresses come from it; enable it or use another pool"
    )]
    PoolDisabled(IpNet),
    /// The pool's network address was requested.
    #[error(
        "{ip} is the network address of pool {pool} and is never assigned; choose another address"
    )]
    NetworkAddress {
        /// The address.
        ip: IpAddr,
        /// Its pool.
        pool: IpNet,
    },
    /// The address is taken.
    #[error("{ip} is already in use by {handle_id} on host {host}; choose another address or release it first")]
    InUse {
        /// The address.
        ip: IpAddr,
        /// Its holder.
        handle_id: String,
        /// The holder's host.
        host: String,
    },
    /// No enabled pool of the family exists.
    #[error("there is no enabled {0} pool; add one with calicoctl pool add <CIDR>")]
    NoPool(IpVersion),
    /// The selected pool does not exist.
    #[error("there is no pool {0}; see calicoctl pool show")]
    UnknownPool(IpNet),
    /// Every address of the candidate pools is assigned.
    #[error("no free address: {} {} full ({used} of {capacity} addresses assigned); add a pool or release addresses", PoolList(.pools), if .pools.len() == 1 { "is" } else { "are" })]
    PoolsFull {
        /// The pools searched.
        pools: Vec<IpNet>,
        /// Addresses assigned in them.
        used: u128,
        /// Assignable addresses in them.
        capacity: u128,
    },
    /// Release of a free address.
    #[error("{0} is not assigned")]
    NotAssigned(IpAddr),
    /// The stored blocks do not fit the pools (a pool was replaced while addresses were in use).
    #[error("block {existing} overlaps the block {wanted} that pool {pool} needs; release the addresses in {existing} first")]
    BlockConflict {
        /// The stored block in the way.
        existing: IpNet,
        /// The block IPAM wanted to create.
        wanted: IpNet,
        /// The pool.
        pool: IpNet,
    },
}

struct PoolList<'a>(&'a [IpNet]);

impl fmt::Display for PoolList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(
            f,
            "pool{} {}",
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        )
    }
}

#[cfg(test)]
mod tests;
