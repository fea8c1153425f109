//! `calicoctl container …`: wiring a running container (or a bare network namespace) by hand, with the
//! same code as the proxy: reserve with the master, wire, register the endpoint.
//!
//! Inputs: the [`Calico`] context (node, master, gateways), the Docker socket, a [`Target`] (a container
//! name or id, or a netns path whose file name becomes the workload id), addresses and profiles.
//! Outputs: what was done (endpoint id, host interface, addresses), or an error naming what failed; a
//! failed add leaves no reservation, interface or endpoint behind.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use calico_master::client::{ClientError, Method};
use serde_json::{json, Value};

use crate::container::{netns_of, register};
use crate::context::Calico;
use crate::docker;
use crate::error::{master, Error};
use crate::hooks::workload::{WorkloadSpec, DOCKER, NETNS};
use crate::wire::{self, Wiring};

/// What to wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Docker container, by name or id.
    Container(String),
    /// A network namespace file (e.g. `/var/run/netns/NAME`).
    Netns(PathBuf),
}

/// A target made concrete.
#[derive(Debug, Clone)]
struct Resolved {
    orchestrator: &'static str,
    workload_id: String,
    netns: PathBuf,
}

async fn resolve(socket: &Path, target: &Target, need_running: bool) -> Result<Resolved, Error> {
    match target {
        Target::Netns(path) => {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| Error::Config(format!("{} names no namespace", path.display())))?;
            if need_running && !path.exists() {
                return Err(Error::Config(format!(
                    "no network namespace at {}",
                    path.display()
                )));
            }
            Ok(Resolved {
                orchestrator: NETNS,
                workload_id: name.to_string(),
                netns: path.clone(),
            })
        }
        Target::Container(name) => {
            let info = docker::inspect(socket, name)
                .await?
                .ok_or_else(|| Error::Config(format!("no such container: {name}")))?;
            if need_running && (!info.running || info.pid == 0) {
                return Err(Error::Config(format!(
                    "container {name} is not running; start it first"
                )));
            }
            Ok(Resolved {
                orchestrator: DOCKER,
                workload_id: info.id.clone(),
                netns: netns_of(info.pid),
            })
        }
    }
}

/// What `add` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub workload_id: String,
    pub endpoint_id: String,
    pub host_iface: String,
    pub ips: Vec<IpAddr>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Config(format!("the wiring task failed: {e}"))))
}

async fn release_ips(calico: &Calico, ips: &[IpAddr]) {
    for ip in ips {
        let path = format!("/v1/ipam/ips/{ip}?force=true");
        if let Err(e) = calico.master.delete(&path).await {
            tracing::warn!(%ip, "could not release: {e}");
        }
    }
}

/// `calicoctl container add <TARGET> <IP|auto|ipv4|ipv6|CIDR>[,…] [--interface IF] [--profile P]…`.
pub async fn add(
    calico: &Calico,
    socket: &Path,
    target: &Target,
    requests: &[String],
    if_name: &str,
    profiles: &[String],
) -> Result<Added, Error> {
    let r = resolve(socket, target, true).await?;
    let mut spec = WorkloadSpec {
        node: calico.node.clone(),
        orchestrator: r.orchestrator.into(),
        workload_id: r.workload_id.clone(),
        if_name: if_name.to_string(),
        ips: Vec::new(),
        profiles: profiles.to_vec(),
        gateway_v4: calico.gateway_v4,
        gateway_v6: calico.gateway_v6,
    };
    let epid = spec.endpoint_id();
    match calico.master.get(&format!("/v1/endpoints/{epid}")).await {
        Ok(_) => {
            return Err(Error::Config(format!(
                "{} already has a Calico interface {if_name} (endpoint {epid}); use `calicoctl container <CONTAINER> ip add <IP>`",
                r.workload_id
            )))
        }
        Err(ClientError::Api { status: 404, .. }) => {}
        Err(e) => return Err(master("looking for an existing endpoint")(e)),
    }
    let assign = json!({"host": calico.node, "handle_id": r.workload_id, "requests": requests, "endpoint_id": epid});
    let answer = calico
        .master
        .post("/v1/ipam/assign", &assign)
        .await
        .map_err(master(format!("reserving {}", requests.join(","))))?;
    spec.ips = answer["assignments"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a["ip"].as_str()?.parse().ok())
        .collect();
    let result = async {
        for p in profiles {
            match calico
                .master
                .post("/v1/profiles", &json!({"name": p}))
                .await
            {
                Ok(_) | Err(ClientError::Api { status: 409, .. }) => {}
                Err(e) => return Err(master(format!("creating profile {p}"))(e)),
            }
        }
        let wiring = Wiring::for_spec(&spec, r.netns.clone(), calico.host_netns.clone())?;
        let w2 = wiring.clone();
        blocking(move || wire::wire(&w2)).await?;
        let registered = calico
            .master
            .post("/v1/endpoints", &spec.endpoint_json(true))
            .await
            .map_err(master(format!("registering endpoint {epid}")));
        if let Err(e) = registered {
            let _ =
                blocking(move || wire::unwire(&wiring.host_iface, wiring.host_netns.as_deref()))
                    .await;
            return Err(e);
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        release_ips(calico, &spec.ips).await;
        return Err(e);
    }
    Ok(Added {
        workload_id: r.workload_id,
        endpoint_id: epid,
        host_iface: spec.host_iface(),
        ips: spec.ips,
    })
}

/// The endpoints of workload `workload_id` on this node, as specs.
async fn endpoints_of(calico: &Calico, workload_id: &str) -> Result<Vec<WorkloadSpec>, Error> {
    let path = format!("/v1/endpoints?host={}", docker::encode(&calico.node));
    let list = calico
        .master
        .get(&path)
        .await
        .map_err(master("listing this node's endpoints"))?;
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    Ok(list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|ep| ep["workload_id"].as_str() == Some(workload_id))
        .map(|ep| WorkloadSpec {
            node: calico.node.clone(),
            orchestrator: ep["orchestrator"].as_str().unwrap_or(DOCKER).to_string(),
            workload_id: workload_id.to_string(),
            if_name: ep["container:if_name"]
                .as_str()
                .unwrap_or("eth0")
                .to_string(),
            ips: strs(&ep["ipv4_nets"])
                .iter()
                .chain(strs(&ep["ipv6_nets"]).iter())
                .filter_map(|n| n.split('/').next()?.parse().ok())
                .collect(),
            profiles: strs(&ep["profile_ids"]),
            gateway_v4: calico.gateway_v4,
            gateway_v6: calico.gateway_v6,
        })
        .collect())
}

/// `calicoctl container remove <TARGET>`: every Calico interface of the workload on this node is
/// removed, its endpoint deleted and its addresses released. Returns the endpoint ids removed.
pub async fn remove(calico: &Calico, socket: &Path, target: &Target) -> Result<Vec<String>, Error> {
    let r = resolve(socket, target, false).await?;
    let specs = endpoints_of(calico, &r.workload_id).await?;
    if specs.is_empty() {
        return Err(Error::Config(format!(
            "{} has no Calico endpoint on node {}",
            r.workload_id, calico.node
        )));
    }
    let mut removed = Vec::new();
    for spec in specs {
        let (iface, netns) = (spec.host_iface(), calico.host_netns.clone());
        blocking(move || wire::unwire(&iface, netns.as_deref())).await?;
        let epid = spec.endpoint_id();
        calico
            .master
            .delete(&format!("/v1/endpoints/{epid}"))
            .await
            .map_err(master(format!("deleting endpoint {epid}")))?;
        removed.push(epid);
    }
    Ok(removed)
}

/// `calicoctl container <TARGET> ip (add|remove) <IP> [--interface IF]`: changes the addresses of one
/// of the workload's Calico interfaces (the only one, or `if_name`). Returns the endpoint id.
pub async fn change_ip(
    calico: &Calico,
    socket: &Path,
    target: &Target,
    add: bool,
    ip: IpAddr,
    if_name: Option<&str>,
) -> Result<String, Error> {
    let r = resolve(socket, target, true).await?;
    let mut specs = endpoints_of(calico, &r.workload_id).await?;
    specs.retain(|s| if_name.is_none_or(|n| s.if_name == n));
    let mut spec = match specs.len() {
        1 => specs.remove(0),
        0 => {
            return Err(Error::Config(format!(
                "{} has no Calico interface{} on node {}; add one with `calicoctl container add`",
                r.workload_id,
                if_name.map(|n| format!(" {n}")).unwrap_or_default(),
                calico.node
            )))
        }
        _ => {
            return Err(Error::Config(format!(
                "{} has several Calico interfaces; choose one with --interface",
                r.workload_id
            )))
        }
    };
    let epid = spec.endpoint_id();
    if add {
        if spec.ips.contains(&ip) {
            return Err(Error::Config(format!(
                "{ip} is already on {}",
                spec.if_name
            )));
        }
        let assign = json!({"host": calico.node, "handle_id": r.workload_id, "request": ip.to_string(), "endpoint_id": epid});
        calico
            .master
            .post("/v1/ipam/assign", &assign)
            .await
            .map_err(master(format!("reserving {ip}")))?;
        spec.ips.push(ip);
        let done = async {
            let w = Wiring::for_spec(&spec, r.netns.clone(), calico.host_netns.clone())?;
            blocking(move || wire::change_addresses(&w, &[ip], &[])).await?;
            register(calico, &spec, true).await
        }
        .await;
        if let Err(e) = done {
            release_ips(calico, &[ip]).await;
            return Err(e);
        }
    } else {
        if !spec.ips.contains(&ip) {
            return Err(Error::Config(format!(
                "{ip} is not an address of {} ({})",
                spec.if_name, r.workload_id
            )));
        }
        spec.ips.retain(|x| *x != ip);
        let w = Wiring::for_spec(&spec, r.netns.clone(), calico.host_netns.clone())?;
        blocking(move || wire::change_addresses(&w, &[], &[ip])).await?;
        register(calico, &spec, true).await?;
        calico
            .master
            .request(Method::DELETE, &format!("/v1/ipam/ips/{ip}"), None)
            .await
            .map_err(master(format!("releasing {ip}")))?;
    }
    Ok(epid)
}
