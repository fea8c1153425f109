//! The IPAM state (all blocks) and its pure operations.
//!
//! Role: [`IpamState`] answers requests by returning what would change — never mutating itself — so a
//! datastore can write the change with compare-and-swap and then [`IpamState::apply`] it (or retry on a
//! conflict). Inputs: pools, requests, owners. Outputs: [`Assignment`], [`Release`], [`BlockChange`],
//! lookups and per-host routes. The policy is described in the module above ([`crate::ipam`]).

use std::{collections::BTreeMap, net::IpAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{
    block::{ip_to_u128, u128_to_ip},
    Block, IpRequest, IpamError, Owner, PoolSelector, BLOCK_PREFIX_V4, BLOCK_PREFIX_V6,
};
use crate::model::{Endpoint, IpPool, ValidationError};

/// A change to one stored block: write `after` (delete when `None`) if the store still holds `before`
/// (absent when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockChange {
    /// The block's CIDR (its key).
    pub cidr: IpNet,
    /// The block as the operation saw it.
    pub before: Option<Block>,
    /// The block as it must become.
    pub after: Option<Block>,
}

/// An address handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The address.
    pub ip: IpAddr,
    /// The block it is in.
    pub block: IpNet,
    /// The address is in a block its host does not own, so its host must announce it as a /32 or /128.
    pub host_route: bool,
    /// What to store.
    pub change: BlockChange,
}

/// An address given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The address.
    pub ip: IpAddr,
    /// Who held it.
    pub owner: Owner,
    /// What to store.
    pub change: BlockChange,
}

/// Who holds an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder<'a> {
    /// The holder.
    pub owner: &'a Owner,
    /// The block the address is in.
    pub block: IpNet,
    /// The host the block belongs to.
    pub block_affinity: Option<&'a str>,
}

/// What a host announces over BGP for its workloads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostRoutes {
    /// Blocks the host owns (announced as aggregates).
    pub blocks: Vec<IpNet>,
    /// Addresses the host's workloads hold in blocks it does not own (announced as /32 or /128).
    pub host_routes: Vec<IpAddr>,
}

/// Occupancy of a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// Assignable addresses (all but the pool's network address).
    pub capacity: u128,
    /// Assigned addresses.
    pub used: u128,
    /// Blocks created in the pool.
    pub blocks: usize,
}

/// Every IPAM block, keyed by CIDR. Serializes as a JSON object keyed by CIDR string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamState {
    /// The blocks.
    pub blocks: BTreeMap<IpNet, Block>,
}

/// The block prefix length used inside `pool` (clipped to the pool when the pool is smaller).
pub fn block_prefix(pool: &IpPool) -> u8 {
    let base = match pool.cidr {
        IpNet::V4(_) => BLOCK_PREFIX_V4,
        IpNet::V6(_) => BLOCK_PREFIX_V6,
    };
    base.max(pool.cidr.prefix_len())
}

fn lowest_key(ip: IpAddr) -> IpNet {
    IpNet::new_assert(ip, 0)
}

fn pool_of(pools: &[IpPool], ip: IpAddr) -> Option<&IpPool> {
    pools.iter().find(|p| p.cidr.contains(&ip))
}

fn capacity(pool: &IpPool) -> u128 {
    let bits = pool.cidr.max_prefix_len() - pool.cidr.prefix_len();
    1u128.checked_shl(bits.into()).map_or(u128::MAX, |n| n - 1)
}

impl IpamState {
    /// The block containing `ip`, if any.
    pub fn block_containing(&self, ip: IpAddr) -> Option<&Block> {
        self.blocks
            .range(..=IpNet::from(ip))
            .next_back()
            .map(|(_, b)| b)
            .filter(|b| b.cidr.contains(&ip))
    }

    /// Blocks inside `net`, in address order.
    pub fn blocks_in(&self, net: IpNet) -> impl Iterator<Item = &Block> + '_ {
        self.blocks
            .range(lowest_key(net.network())..=IpNet::from(net.broadcast()))
            .map(|(_, b)| b)
            .filter(move |b| net.contains(&b.cidr))
    }

    /// The first stored block that overlaps `net`.
    fn overlapping(&self, net: IpNet) -> Option<&Block> {
        self.block_containing(net.network()).or_else(|| {
            self.blocks
                .range(lowest_key(net.network())..=IpNet::from(net.broadcast()))
                .map(|(_, b)| b)
                .next()
        })
    }

    /// Who holds `ip`.
    pub fn holder(&self, ip: IpAddr) -> Option<Holder<'_>> {
        let b = self.block_containing(ip)?;
        Some(Holder {
            owner: b.owner_of(ip)?,
            block: b.cidr,
            block_affinity: b.affinity.as_deref(),
        })
    }

    /// Every address held under `handle_id`.
    pub fn ips_of_handle(&self, handle_id: &str) -> Vec<IpAddr> {
        self.blocks
            .values()
            .flat_map(Block::allocated)
            .filter(|(_, o)| o.handle_id == handle_id)
            .map(|(ip, _)| ip)
            .collect()
    }

    /// Occupancy of `pool`.
    pub fn usage(&self, pool: &IpPool) -> PoolUsage {
        let mut u = PoolUsage {
            capacity: capacity(pool),
            ..PoolUsage::default()
        };
        for b in self.blocks_in(pool.cidr) {
            u.blocks += 1;
            u.used += b.used() as u128;
        }
        u
    }

    /// Write a change into this state (after the store accepted it).
    pub fn apply(&mut self, change: &BlockChange) {
        match &change.after {
            Some(b) => {
                self.blocks.insert(change.cidr, b.clone());
            }
            None => {
                self.blocks.remove(&change.cidr);
            }
        }
    }

    /// Serve a `CALICO_IP`-style request for `owner` (whose `host` is where the workload runs).
    pub fn assign(
        &self,
        pools: &[IpPool],
        req: &IpRequest,
        owner: Owner,
    ) -> Result<Assignment, IpamError> {
        match req {
            IpRequest::Explicit(ip) => self.assign_ip(pools, *ip, owner),
            IpRequest::Auto(sel) => self.auto_assign(pools, sel, owner),
        }
    }

    /// Assign exactly `ip`: it must be in an enabled pool, not the pool's network address, and free.
    pub fn assign_ip(
        &self,
        pools: &[IpPool],
        ip: IpAddr,
        owner: Owner,
    ) -> Result<Assignment, IpamError> {
        let pool = pool_of(pools, ip).ok_or(IpamError::NotInPool(ip))?;
        if pool.disabled {
            return Err(IpamError::PoolDisabled(pool.cidr));
        }
        if ip == pool.cidr.network() {
            return Err(IpamError::NetworkAddress {
                ip,
                pool: pool.cidr,
            });
        }
        match self.block_containing(ip) {
            Some(b) => {
                if let Some(o) = b.owner_of(ip) {
                    return Err(IpamError::InUse {
                        ip,
                        handle_id: o.handle_id.clone(),
                        host: o.host.clone(),
                    });
                }
                let slot = b.ordinal(ip).ok_or(IpamError::NotInPool(ip))?;
                Ok(allocate(b, slot, owner))
            }
            None => {
                let wanted = IpNet::new_assert(ip, block_prefix(pool)).trunc();
                if let Some(existing) = self.overlapping(wanted) {
                    return Err(IpamError::BlockConflict {
                        existing: existing.cidr,
                        wanted,
                        pool: pool.cidr,
                    });
                }
                let b = Block::new(wanted, Some(owner.host.clone()));
                let slot = b.ordinal(ip).ok_or(IpamError::NotInPool(ip))?;
                Ok(allocate_new(b, slot, owner))
            }
        }
    }

    /// Assign a free address for `owner.host`: from its own blocks, else a newly claimed block, else
    /// borrowed from another host's block.
    pub fn auto_assign(
        &self,
        pools: &[IpPool],
        sel: &PoolSelector,
        owner: Owner,
    ) -> Result<Assignment, IpamError> {
        let candidates = candidate_pools(pools, sel)?;
        let host = owner.host.as_str();
        for pool in &candidates {
            let reserved = Some(pool.cidr.network());
            for b in self
                .blocks_in(pool.cidr)
                .filter(|b| b.affinity.as_deref() == Some(host))
            {
                if let Some(slot) = b.first_free(reserved) {
                    return Ok(allocate(b, slot, owner));
                }
            }
        }
        for pool in &candidates {
            if let Some(cidr) = self.free_block(pool) {
                let b = Block::new(cidr, Some(host.to_owned()));
                if let Some(slot) = b.first_free(Some(pool.cidr.network())) {
                    return Ok(allocate_new(b, slot, owner));
                }
            }
        }
        for pool in &candidates {
            for b in self.blocks_in(pool.cidr) {
                if let Some(slot) = b.first_free(Some(pool.cidr.network())) {
                    return Ok(allocate(b, slot, owner));
                }
            }
        }
        let (used, capacity) = candidates.iter().fold((0u128, 0u128), |(u, c), p| {
            let us = self.usage(p);
            (u + us.used, c.saturating_add(us.capacity))
        });
        Err(IpamError::PoolsFull {
            pools: candidates.iter().map(|p| p.cidr).collect(),
            used,
            capacity,
        })
    }

    /// The first block-aligned CIDR of `pool` that no stored block overlaps.
    fn free_block(&self, pool: &IpPool) -> Option<IpNet> {
        let prefix = block_prefix(pool);
        let size_bits = pool.cidr.max_prefix_len() - prefix;
        let count_bits = prefix - pool.cidr.prefix_len();
        let base = ip_to_u128(pool.cidr.network());
        // A candidate is free unless a stored block overlaps it; each stored block rules out at most a
        // few candidates, so this ends after about as many steps as there are blocks in the pool.
        let count = 1u128.checked_shl(count_bits.into()).unwrap_or(u128::MAX);
        let mut i: u128 = 0;
        while i < count {
            let net = IpNet::new_assert(
                u128_to_ip(pool.cidr.network(), base + (i << size_bits)),
                prefix,
            );
            match self.overlapping(net) {
                None => return Some(net),
                Some(b) => {
                    // Skip past the block in the way.
                    let end = ip_to_u128(b.cidr.broadcast());
                    let next = ((end.saturating_sub(base)) >> size_bits).saturating_add(1);
                    i = next.max(i + 1);
                }
            }
        }
        None
    }

    /// Free `ip`. An emptied block without a host is deleted; an owned one is kept for its host.
    pub fn release(&self, ip: IpAddr) -> Result<Release, IpamError> {
        let b = self
            .block_containing(ip)
            .ok_or(IpamError::NotAssigned(ip))?;
        let owner = b.owner_of(ip).ok_or(IpamError::NotAssigned(ip))?.clone();
        let slot = b.ordinal(ip).ok_or(IpamError::NotAssigned(ip))?;
        let after = b.with_released(slot);
        let after = (after.used() > 0 || after.affinity.is_some()).then_some(after);
        Ok(Release {
            ip,
            owner,
            change: BlockChange {
                cidr: b.cidr,
                before: Some(b.clone()),
                after,
            },
        })
    }

    /// Free every address of `handle_id` (e.g. a removed container): the released addresses and one
    /// change per touched block.
    pub fn release_handle(&self, handle_id: &str) -> (Vec<IpAddr>, Vec<BlockChange>) {
        let mut ips = Vec::new();
        let mut changes = Vec::new();
        for b in self.blocks.values() {
            let slots: Vec<usize> = b
                .allocations
                .iter()
                .enumerate()
                .filter(|(_, a)| {
                    a.and_then(|i| b.attributes.get(i as usize))
                        .is_some_and(|o| o.handle_id == handle_id)
                })
                .map(|(i, _)| i)
                .collect();
            if slots.is_empty() {
                continue;
            }
            let mut after = b.clone();
            for s in slots {
                ips.push(b.ip_at(s));
                after = after.with_released(s);
            }
            changes.push(BlockChange {
                cidr: b.cidr,
                before: Some(b.clone()),
                after: (after.used() > 0 || after.affinity.is_some()).then_some(after),
            });
        }
        (ips, changes)
    }

    /// Give up `host`'s blocks (the node is removed): empty ones are deleted, the others lose their
    /// affinity (their addresses stay assigned until released).
    pub fn release_host_affinity(&self, host: &str) -> Vec<BlockChange> {
        self.blocks
            .values()
            .filter(|b| b.affinity.as_deref() == Some(host))
            .map(|b| {
                let mut after = b.clone();
                after.affinity = None;
                BlockChange {
                    cidr: b.cidr,
                    before: Some(b.clone()),
                    after: (after.used() > 0).then_some(after),
                }
            })
            .collect()
    }

    /// Check that every address of `ep` is assigned to its workload (handle = workload id) on its host,
    /// as an endpoint write must be: the error names the field (`ipv4_nets` / `ipv6_nets`) and says who
    /// holds the address, or that it is free and must be assigned first.
    pub fn check_endpoint_addresses(&self, ep: &Endpoint) -> Result<(), ValidationError> {
        let v4 = ep
            .ipv4_nets
            .iter()
            .map(|n| ("ipv4_nets", IpAddr::V4(n.addr())));
        let v6 = ep
            .ipv6_nets
            .iter()
            .map(|n| ("ipv6_nets", IpAddr::V6(n.addr())));
        for (field, ip) in v4.chain(v6) {
            match self.holder(ip) {
                None => {
                    return Err(ValidationError::new(
                        field,
                        format!("{ip} is not assigned; assign it through IPAM first (it must be in an enabled pool)"),
                    ))
                }
                Some(h) if h.owner.handle_id != ep.workload_id || h.owner.host != ep.hostname => {
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "{ip} is in use by {} on host {}; choose another address",
                            h.owner.handle_id, h.owner.host
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// What `host` announces: its blocks, and the addresses its workloads hold in others' blocks.
    pub fn routes_for_host(&self, host: &str) -> HostRoutes {
        let mut r = HostRoutes::default();
        for b in self.blocks.values() {
            let owned = b.affinity.as_deref() == Some(host);
            if owned {
                r.blocks.push(b.cidr);
            } else {
                r.host_routes.extend(
                    b.allocated()
                        .filter(|(_, o)| o.host == host)
                        .map(|(ip, _)| ip),
                );
            }
        }
        r
    }
}

fn candidate_pools<'p>(
    pools: &'p [IpPool],
    sel: &PoolSelector,
) -> Result<Vec<&'p IpPool>, IpamError> {
    match sel {
        PoolSelector::Family(v) => {
            let c: Vec<&IpPool> = pools
                .iter()
                .filter(|p| p.version() == *v && !p.disabled)
                .collect();
            if c.is_empty() {
                Err(IpamError::NoPool(*v))
            } else {
                Ok(c)
            }
        }
        PoolSelector::Pool(cidr) => {
            let p = pools
                .iter()
                .find(|p| p.cidr == *cidr)
                .ok_or(IpamError::UnknownPool(*cidr))?;
            if p.disabled {
                Err(IpamError::PoolDisabled(p.cidr))
            } else {
                Ok(vec![p])
            }
        }
    }
}

fn allocate(b: &Block, slot: usize, owner: Owner) -> Assignment {
    let host_route = b.affinity.as_deref() != Some(owner.host.as_str());
    let after = b.with_allocated(slot, owner);
    Assignment {
        ip: b.ip_at(slot),
        block: b.cidr,
        host_route,
        change: BlockChange {
            cidr: b.cidr,
            before: Some(b.clone()),
            after: Some(after),
        },
    }
}

fn allocate_new(b: Block, slot: usize, owner: Owner) -> Assignment {
    let mut a = allocate(&b, slot, owner);
    a.change.before = None;
    a
}
