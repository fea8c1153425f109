//! IPAM over the store: the pure IPAM core's [`BlockChange`]s applied as per-block compare-and-swap
//! transactions, from many threads at once, never hand out one address twice.
//!
//! This is how the master's IPAM service is meant to use the store (on etcd too): read the blocks
//! with their mod revisions, decide with [`IpamState`], write the changed block only if its mod
//! revision is unchanged (0: the block must still be absent), and on conflict re-read and retry.
//! Run on the embedded store, on one etcd client, and as two masters (two [`Api`]s, each with its own
//! etcd client) sharing one real etcd.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::Arc,
    thread,
};

use ipnet::IpNet;

use super::{
    etcd_server::EtcdServer, keys, Compare, EmbeddedOptions, EmbeddedStore, Op, Store, Txn,
};
use crate::{
    api::Api,
    ipam::{Block, BlockChange, IpamState, Owner, PoolSelector},
    model::{IpPool, IpVersion},
};

/// The IPAM state as stored, with each block's mod revision.
fn load(store: &dyn Store) -> (IpamState, BTreeMap<IpNet, u64>) {
    let mut state = IpamState::default();
    let mut revs = BTreeMap::new();
    for kv in store.list(&keys::block_prefix(IpVersion::V4)).unwrap().kvs {
        let b: Block = serde_json::from_slice(&kv.value).unwrap();
        assert_eq!(kv.key, b.etcd_key());
        revs.insert(b.cidr, kv.mod_revision);
        state.blocks.insert(b.cidr, b);
    }
    (state, revs)
}

/// The transaction that writes `change` if the block is still at `rev` (0: absent).
fn cas(change: &BlockChange, rev: u64) -> Txn {
    let key = Block::etcd_key_for(&change.cidr);
    let op = match &change.after {
        Some(b) => Op::put(key.clone(), serde_json::to_vec(b).unwrap()),
        None => Op::delete(key.clone()),
    };
    Txn::new()
        .when(Compare::mod_revision(key, rev))
        .and_then(op)
}

fn assign(store: &dyn Store, pools: &[IpPool], handle: &str, host: &str) -> (IpAddr, u32) {
    let mut conflicts = 0;
    loop {
        let (state, revs) = load(store);
        let a = state
            .auto_assign(
                pools,
                &PoolSelector::Family(IpVersion::V4),
                Owner::new(handle, host),
            )
            .unwrap();
        let rev = revs.get(&a.change.cidr).copied().unwrap_or(0);
        if store.txn(cas(&a.change, rev)).unwrap().succeeded {
            return (a.ip, conflicts);
        }
        conflicts += 1;
    }
}

/// `THREADS` × `EACH` concurrent assignments, thread `t` using `stores[t % stores.len()]` and host
/// `host-{t % 2}`; checks that no IP is handed out twice and that every one is stored once.
fn assign_concurrently(stores: &[Arc<dyn Store>], threads: usize, each: usize) {
    let pools = vec![IpPool::new("10.65.0.0/24".parse().unwrap())];
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = stores[t % stores.len()].clone();
            let pools = pools.clone();
            thread::spawn(move || {
                let host = format!("host-{}", t % 2);
                (0..each)
                    .map(|i| assign(store.as_ref(), &pools, &format!("w{t}-{i}"), &host))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ips = BTreeSet::new();
    let mut conflicts = 0;
    for h in handles {
        for (ip, c) in h.join().unwrap() {
            assert!(ips.insert(ip), "{ip} was handed out twice");
            conflicts += c;
        }
    }
    assert_eq!(ips.len(), threads * each);
    for store in stores {
        let (state, _) = load(store.as_ref());
        let stored: usize = state.blocks.values().map(Block::used).sum();
        assert_eq!(stored, threads * each, "every assignment is stored once");
        for ip in &ips {
            assert!(state.holder(*ip).is_some(), "{ip} is not recorded as held");
        }
        // Blocks are /26s claimed by the two hosts.
        assert!(state.blocks.keys().all(|c| c.prefix_len() == 26));
    }
    eprintln!(
        "{} assignments through {} store client(s) in {:?}, {conflicts} compare-and-swap conflicts retried",
        ips.len(),
        stores.len(),
        started.elapsed()
    );
}

#[test]
fn concurrent_assignments_through_the_store_never_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(dir.path().join("ipam.db"), EmbeddedOptions::default()).unwrap(),
    );
    assign_concurrently(&[store], 8, 25);
}

#[test]
fn concurrent_assignments_on_etcd_never_duplicate() {
    let server = EtcdServer::start();
    let store: Arc<dyn Store> = Arc::new(server.store());
    assign_concurrently(&[store], 8, 25);
}

#[test]
fn two_masters_on_one_etcd_never_hand_out_one_ip_twice() {
    let server = EtcdServer::start();
    let masters = [
        Api::new(Arc::new(server.store()), None),
        Api::new(Arc::new(server.store()), None),
    ];
    let stores: Vec<Arc<dyn Store>> = masters.iter().map(|m| m.store().clone()).collect();
    // 100 concurrent allocations, 10 threads, alternating between the two masters' clients.
    assign_concurrently(&stores, 10, 10);
}
