//! What happens to a Calico container of this node at start, die and destroy, whoever noticed it (the
//! start hook, the event follower or the reconciler): the same code, under the container's lock.
//!
//! Inputs: the [`Calico`] context, the daemon's socket, a container's facts ([`ContainerInfo`]) or id.
//! Outputs: the container's interface wired (or removed), and its endpoint registered, marked inactive
//! or deleted with the master (through the retry queue when the master is down); the container's
//! address reservation released on destroy.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::context::Calico;
use crate::docker::{self, ContainerInfo};
use crate::error::Error;
use crate::hooks::workload::{recorded, WorkloadSpec, DOCKER, NODE_LABEL};
use crate::retry::Op;
use crate::wire::{self, Wiring};

/// The interface name the proxy gives a container.
pub const IF_NAME: &str = "eth0";

/// The workload a Calico container of this node is; `None` for other containers.
pub fn spec_of(calico: &Calico, info: &ContainerInfo) -> Option<WorkloadSpec> {
    let rec = recorded(Some(&info.labels))?;
    (rec.node == calico.node).then(|| WorkloadSpec {
        node: calico.node.clone(),
        orchestrator: DOCKER.into(),
        workload_id: info.id.clone(),
        if_name: IF_NAME.into(),
        ips: rec.ips,
        profiles: rec.profiles,
        gateway_v4: calico.gateway_v4,
        gateway_v6: calico.gateway_v6,
    })
}

/// The workload of container `id` as far as its id alone tells (enough for names and deletion).
pub fn bare_spec(calico: &Calico, id: &str) -> WorkloadSpec {
    WorkloadSpec {
        node: calico.node.clone(),
        orchestrator: DOCKER.into(),
        workload_id: id.to_string(),
        if_name: IF_NAME.into(),
        ips: Vec::new(),
        profiles: Vec::new(),
        gateway_v4: calico.gateway_v4,
        gateway_v6: calico.gateway_v6,
    }
}

/// The network namespace file of process `pid`.
pub fn netns_of(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Config(format!("the wiring task failed: {e}"))))
}

/// Registers (or re-registers) `spec`'s endpoint, active or not; queued if the master is down.
pub async fn register(calico: &Calico, spec: &WorkloadSpec, active: bool) -> Result<(), Error> {
    let what = format!(
        "registering endpoint {} of {}",
        spec.endpoint_id(),
        spec.workload_id
    );
    calico
        .retry
        .now_or_later(
            &calico.master,
            Op::post("/v1/endpoints", spec.endpoint_json(active)),
            &what,
        )
        .await
        .map(|_| ())
}

/// Wires a running Calico container of this node unless it is wired already, then registers its
/// endpoint. Returns `Ok(false)` for containers that are not ours, not running, or that ended
/// before we got to them.
pub async fn wire_and_register(calico: &Calico, info: &ContainerInfo) -> Result<bool, Error> {
    let Some(spec) = spec_of(calico, info) else {
        return Ok(false);
    };
    if !info.running || info.pid == 0 {
        return Ok(false);
    }
    let _guard = calico.lock(&info.id).await;
    let netns = netns_of(info.pid);
    let wiring = Wiring::for_spec(&spec, netns.clone(), calico.host_netns.clone())?;
    let wired = match blocking(move || wire::ensure(&wiring)).await {
        Ok(wired) => wired,
        // The process is gone: someone else (the event follower, the start hook) wired it while we
        // waited for the lock, so its command ran and ended already. Its die event unwires it.
        Err(e) if !netns.exists() => {
            tracing::debug!(container = %short(&info.id), "exited before we could wire it: {e}");
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    if wired {
        tracing::info!(container = %short(&info.id), iface = %spec.host_iface(), ips = ?spec.ips, "wired");
    }
    register(calico, &spec, true).await?;
    Ok(true)
}

/// After a container stopped: remove its host interface (usually gone with its namespace already)
/// and mark its endpoint inactive. A container that no longer exists is forgotten instead.
pub async fn stopped(calico: &Calico, socket: &Path, id: &str) -> Result<(), Error> {
    let Some(info) = docker::inspect(socket, id).await? else {
        return forget(calico, id).await;
    };
    let Some(spec) = spec_of(calico, &info) else {
        return Ok(());
    };
    if info.running {
        // Started again before we got here: the start handling owns it now.
        return Ok(());
    }
    let _guard = calico.lock(&info.id).await;
    let (iface, netns) = (spec.host_iface(), calico.host_netns.clone());
    if blocking(move || wire::unwire(&iface, netns.as_deref())).await? {
        tracing::info!(container = %short(id), iface = %spec.host_iface(), "unwired");
    }
    register(calico, &spec, false).await
}

/// After a container was removed: its host interface removed, its endpoint deleted and its addresses
/// released (queued if the master is down).
pub async fn forget(calico: &Calico, id: &str) -> Result<(), Error> {
    let spec = bare_spec(calico, id);
    let _guard = calico.lock(id).await;
    let (iface, netns) = (spec.host_iface(), calico.host_netns.clone());
    blocking(move || wire::unwire(&iface, netns.as_deref())).await?;
    release(calico, &spec.endpoint_id(), id).await
}

/// Deletes endpoint `endpoint_id` and releases every address of `workload_id`, now or later.
pub async fn release(calico: &Calico, endpoint_id: &str, workload_id: &str) -> Result<(), Error> {
    calico
        .retry
        .now_or_later(
            &calico.master,
            Op::delete(format!("/v1/endpoints/{endpoint_id}")),
            &format!("deleting endpoint {endpoint_id}"),
        )
        .await?;
    calico
        .retry
        .now_or_later(
            &calico.master,
            Op::delete(format!("/v1/ipam/handles/{workload_id}")),
            &format!("releasing the addresses of {}", short(workload_id)),
        )
        .await?;
    tracing::info!(workload = %short(workload_id), "endpoint deleted, addresses released");
    Ok(())
}

/// True when a container's labels (an event's actor attributes or `Config.Labels`) name this node.
pub fn labelled_for(calico: &Calico, labels: &Value) -> bool {
    labels.get(NODE_LABEL).and_then(Value::as_str) == Some(calico.node.as_str())
}

/// The first 12 characters of a container id, as Docker shows them.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_master::client::Client;
    use serde_json::json;

    /// A start hook that got the lock after the event follower wired the container finds its
    /// command ended already: nothing to wire, and not an error (that failed a `docker run`).
    #[tokio::test]
    async fn a_container_that_ended_before_we_wired_it_is_not_an_error() {
        let master = Client::new(&["http://127.0.0.1:9"], None).unwrap();
        let calico = Calico::new("n1", master).with_gateways(Some([10, 0, 0, 1].into()), None);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let info = ContainerInfo {
            id: "0123456789abcdef".into(),
            pid,
            running: true,
            labels: json!({ NODE_LABEL: "n1", "org.projectcalico.ips": "10.65.0.2" }),
        };
        assert!(!wire_and_register(&calico, &info).await.unwrap());
    }
}
