//! The node-facing configuration of the proxy: what calico-node (or `calico-proxy` on its own) builds
//! once and every hook, the event follower and the reconciler share.
//!
//! Inputs: the node's name, the master's client, the node's addresses (the containers' gateways), its
//! state dir (the retry queue), the init wrapper's path on the host, and optionally the host's network
//! namespace (for a process that does not run inside it, such as a test). Outputs: a [`Calico`] value;
//! it also holds the per-workload locks that keep a start hook and a start event from wiring the same
//! container at once.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use calico_master::client::Client;

use crate::retry::Queue;

/// What the hooks need (see the module docs). Build it with [`Calico::new`] and the `with_*` methods.
#[derive(Debug)]
pub struct Calico {
    /// This node's name (containers are labelled with it at create).
    pub node: String,
    pub master: Client,
    /// The node's IPv4 address (`--ip`): the containers' IPv4 gateway.
    pub gateway_v4: Option<Ipv4Addr>,
    /// The node's IPv6 address (`--ip6`): the containers' IPv6 gateway.
    pub gateway_v6: Option<Ipv6Addr>,
    /// The node's state dir (the retry queue lives there).
    pub state_dir: Option<PathBuf>,
    /// The init wrapper on the host; `None`: containers start without it (and race their wiring).
    pub init_binary: Option<PathBuf>,
    /// Where host-side interfaces go; `None`: the namespace this process runs in.
    pub host_netns: Option<PathBuf>,
    /// Master requests waiting for the master to come back.
    pub retry: Queue,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Calico {
    /// A context for node `node` with the master client `master`; nothing else configured.
    pub fn new(node: impl Into<String>, master: Client) -> Calico {
        Calico {
            node: node.into(),
            master,
            gateway_v4: None,
            gateway_v6: None,
            state_dir: None,
            init_binary: None,
            host_netns: None,
            retry: Queue::open(None),
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The node's addresses, the containers' gateways.
    #[must_use]
    pub fn with_gateways(mut self, v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) -> Calico {
        self.gateway_v4 = v4;
        self.gateway_v6 = v6;
        self
    }

    /// The node's state dir; the retry queue is loaded from it.
    #[must_use]
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Calico {
        let dir = dir.into();
        self.retry = Queue::open(Some(&dir));
        self.state_dir = Some(dir);
        self
    }

    /// The init wrapper's path on the host (see [`crate::init::install`]).
    #[must_use]
    pub fn with_init_binary(mut self, path: Option<PathBuf>) -> Calico {
        self.init_binary = path;
        self
    }

    /// The host's network namespace, when this process does not run inside it.
    #[must_use]
    pub fn with_host_netns(mut self, path: Option<PathBuf>) -> Calico {
        self.host_netns = path;
        self
    }

    /// Holds the lock of workload `id` until the guard is dropped.
    pub async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(id.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }
}
