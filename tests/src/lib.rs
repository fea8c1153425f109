//! The multi-host lab: a fake data centre on one machine for the end-to-end tests.
//!
//! Hosts are network namespaces joined by a switch namespace (bridges), optionally split into two subnets
//! behind a ToR namespace; a management link gives the root namespace (where a master and etcd listen) an
//! address on the fabric. Containers are real Docker containers created `--net=none` and wired into a
//! host; bare workload namespaces stand in for containers in scale tests. Every daemon the lab starts is
//! logged, and everything is removed when the lab is dropped, also when a test panics, and at the start
//! of a run whose previous run crashed.
//!
//! Modules: [`plan`] (addresses), [`lab`] (topology), [`place`] (where commands run), [`cmd`] (running
//! tools), [`procs`] (daemons), [`docker`], [`etcd`], [`reach`] (assertions on traffic), [`wait`],
//! [`cleanup`] (teardown and the leftover check). The `calico-lab` binary wraps the same pieces for the
//! README's main job (`up`/`down`), for the suite's final check (`check-clean`), and for the TCP probe and
//! echo server the checks run inside namespaces.
//!
//! Lab rules: every address is in 10.250.0.0/16, fd00:250::/64-style fabric subnets or the pools
//! 10.65.0.0/16 and fd00:65::/64; nothing routes off the machine; only processes the lab started are
//! signalled.

pub mod cleanup;
pub mod cluster;
pub mod cmd;
pub mod docker;
pub mod etcd;
pub mod lab;
pub mod place;
pub mod plan;
pub mod procs;
pub mod reach;
pub mod wait;

pub use lab::{Host, Lab, Workload};
pub use place::Place;
pub use plan::Subnet;

use std::path::PathBuf;

/// A workspace binary (`calicoctl`, `calico-bgp`, `calico-lab`): `CALICO_BIN_DIR/<name>` if that is set,
/// else beside the running executable or one directory up (cargo puts test executables in
/// `target/<profile>/deps/` and binaries in `target/<profile>/`); the bare name (found on `PATH`) if none.
pub fn workspace_bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("CALICO_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    [dir.join(name), dir.join("..").join(name)]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The `calico-lab` binary (the TCP probe and echo server run inside namespaces): `CALICO_LAB_BIN`, else
/// [`workspace_bin`].
pub fn lab_bin() -> PathBuf {
    std::env::var_os("CALICO_LAB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_bin("calico-lab"))
}
