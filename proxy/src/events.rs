//! Following Docker's event stream, and reconciling at start: what makes the node right even when a
//! container was started, stopped or removed straight at dockerd (`--restart=always`, a dockerd
//! restart, `docker -H unix://…`), or while the proxy was not running.
//!
//! Inputs: `GET /events` (container `start`, `die`, `destroy` of containers labelled for this node),
//! the daemon's container list and the master's endpoints of this host. Outputs: the same actions as
//! the hooks ([`crate::container`]): wire and register on start, unwire and mark inactive on die, delete
//! the endpoint and release the addresses on destroy. The stream is reopened after any failure (from
//! the last event seen, after a reconcile, with backoff); each action is idempotent, so events seen
//! twice do no harm.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::Value;

use crate::container::{self, labelled_for, short};
use crate::create::{classify_handle, HandleKind};
use crate::docker;
use crate::error::Error;
use crate::hooks::workload::{DOCKER, NODE_LABEL};
use crate::passthrough::{Calico, Upstream};

/// One container event of interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `start`, `die` or `destroy`.
    pub action: String,
    pub id: String,
    /// The container's labels (the event actor's attributes).
    pub attributes: Value,
    /// The event's time, in seconds, to resume from.
    pub time: Option<u64>,
}

/// Parses one line of the event stream; `None` for other events and for garbage.
pub fn parse_event(line: &[u8]) -> Option<Event> {
    let v: Value = serde_json::from_slice(line).ok()?;
    if v.get("Type").and_then(Value::as_str) != Some("container") {
        return None;
    }
    let action = v.get("Action").and_then(Value::as_str)?;
    if !matches!(action, "start" | "die" | "destroy") {
        return None;
    }
    let actor = v.get("Actor")?;
    Some(Event {
        action: action.to_string(),
        id: actor.get("ID")?.as_str()?.to_string(),
        attributes: actor.get("Attributes").cloned().unwrap_or(Value::Null),
        time: v.get("time").and_then(Value::as_u64),
    })
}

/// The events path for node `node`, from `since` (seconds) when resuming.
pub fn events_path(node: &str, since: Option<u64>) -> String {
    let filters = serde_json::json!({
        "type": ["container"],
        "event": ["start", "die", "destroy"],
        "label": [format!("{NODE_LABEL}={node}")],
    })
    .to_string();
    let mut path = format!("/events?filters={}", docker::encode(&filters));
    if let Some(s) = since {
        path.push_str(&format!("&since={s}"));
    }
    path
}

/// Acts on one event.
pub async fn handle(calico: &Calico, up: &Upstream, ev: &Event) -> Result<(), Error> {
    if !labelled_for(calico, &ev.attributes) {
        return Ok(());
    }
    match ev.action.as_str() {
        "start" => match docker::inspect(&up.socket, &ev.id).await? {
            Some(info) => container::wire_and_register(calico, &info)
                .await
                .map(|_| ()),
            None => container::forget(calico, &ev.id).await,
        },
        "die" => container::stopped(calico, &up.socket, &ev.id).await,
        "destroy" => container::forget(calico, &ev.id).await,
        _ => Ok(()),
    }
}

/// Follows the event stream for ever (see the module docs). Needs a Calico upstream; without one it
/// returns at once.
pub async fn run_events(up: Arc<Upstream>) {
    let Some(calico) = up.calico.clone() else {
        return;
    };
    let mut since = None;
    let mut backoff = Duration::from_millis(200);
    loop {
        match follow(&calico, &up, &mut since).await {
            Ok(()) => tracing::info!("the Docker event stream ended; reopening it"),
            Err(e) => tracing::warn!("the Docker event stream failed: {e}; reopening it"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
        // Whatever happened while the stream was down is found by a reconcile.
        match reconcile(&up).await {
            Ok(r) => {
                tracing::info!(?r, "reconciled after reopening the event stream");
                backoff = Duration::from_millis(200);
            }
            Err(e) => tracing::warn!("reconcile failed: {e}"),
        }
    }
}

async fn follow(calico: &Calico, up: &Upstream, since: &mut Option<u64>) -> Result<(), Error> {
    let path = events_path(&calico.node, *since);
    let resp = docker::get(&up.socket, &path).await?;
    if !resp.status().is_success() {
        return Err(Error::Docker(format!("GET /events: {}", resp.status())));
    }
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    if since.is_none() {
        // From now on: everything older is the reconcile's business.
        *since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs());
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Docker(format!("the event stream broke: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let Some(ev) = parse_event(&line) else {
                continue;
            };
            if let Some(t) = ev.time {
                *since = Some(t);
            }
            if let Err(e) = handle(calico, up, &ev).await {
                tracing::warn!(container = %short(&ev.id), action = %ev.action, "{e}");
            }
        }
    }
    Ok(())
}

/// What a reconcile did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Running containers checked (wired if they were not).
    pub running: usize,
    /// Stopped containers whose endpoints were marked inactive.
    pub stopped: usize,
    /// Endpoints removed because their container is gone.
    pub removed: usize,
    /// Address reservations freed that no container of this node holds any more.
    pub released: usize,
    /// Per-container failures (the rest went on).
    pub errors: Vec<String>,
}

/// Makes the node right once: endpoints of this host whose containers are gone are deleted (and their
/// addresses released), and so are addresses nothing holds any more ([`release_orphans`]); running
/// Calico containers of this node are wired where they are not, and registered; stopped ones are marked
/// inactive. Fails only if the daemon cannot be asked.
pub async fn reconcile(up: &Upstream) -> Result<Reconciled, Error> {
    let Some(calico) = up.calico.clone() else {
        return Ok(Reconciled::default());
    };
    let mut done = Reconciled::default();
    let ids = docker::containers_of(&up.socket, &calico.node, true).await?;
    // Endpoints first: the master may be down, which must not stop the wiring below.
    let path = format!("/v1/endpoints?host={}", docker::encode(&calico.node));
    let mut states: BTreeMap<String, String> = BTreeMap::new();
    match calico.master.get(&path).await {
        Ok(Value::Array(endpoints)) => {
            for ep in endpoints {
                let field = |k: &str| ep.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                if field("orchestrator") != DOCKER {
                    continue;
                }
                let (workload, epid) = (field("workload_id"), field("endpoint_id"));
                states.insert(epid.clone(), field("state"));
                let gone = match docker::inspect(&up.socket, &workload).await {
                    Ok(None) => true,
                    Ok(Some(_)) => false,
                    Err(e) => {
                        done.errors.push(format!("{}: {e}", short(&workload)));
                        false
                    }
                };
                if gone {
                    let iface = field("name");
                    let netns = calico.host_netns.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        crate::wire::unwire(&iface, netns.as_deref())
                    })
                    .await;
                    match container::release(&calico, &epid, &workload).await {
                        Ok(()) => done.removed += 1,
                        Err(e) => done.errors.push(format!("{}: {e}", short(&workload))),
                    }
                }
            }
        }
        Ok(other) => done
            .errors
            .push(format!("the master's endpoint list: {other}")),
        Err(e) => done
            .errors
            .push(format!("listing this host's endpoints: {e}")),
    }
    release_orphans(up, &calico, &ids, &mut done).await;
    for id in ids {
        let info = match docker::inspect(&up.socket, &id).await {
            Ok(Some(info)) => info,
            Ok(None) => continue,
            Err(e) => {
                done.errors.push(format!("{}: {e}", short(&id)));
                continue;
            }
        };
        let Some(spec) = container::spec_of(&calico, &info) else {
            continue;
        };
        let result = if info.running {
            done.running += 1;
            container::wire_and_register(&calico, &info)
                .await
                .map(|_| ())
        } else if states
            .get(&spec.endpoint_id())
            .is_some_and(|s| s == "active")
        {
            done.stopped += 1;
            container::stopped(&calico, &up.socket, &id).await
        } else {
            Ok(())
        };
        if let Err(e) = result {
            done.errors.push(format!("{}: {e}", short(&id)));
        }
    }
    Ok(done)
}

/// How old a reservation of this node's proxy must be before reconcile frees it: a create in flight
/// holds one for a moment, until Docker has answered.
const RESERVATION_GRACE: Duration = Duration::from_secs(600);

/// Frees the addresses this node holds that nothing holds any more (after the endpoints, which free their
/// own): a container's whose container is gone (created, then removed while no proxy ran, never
/// started so never registered) and reservations of this node's proxy never re-keyed to a container (a
/// create cut short by a crash). `ours` are the containers of this node Docker has (asked no further).
async fn release_orphans(up: &Upstream, calico: &Calico, ours: &[String], done: &mut Reconciled) {
    let path = format!("/v1/ipam/hosts/{}/handles", docker::encode(&calico.node));
    let listed = match calico.master.get(&path).await {
        Ok(v) => v,
        Err(e) => {
            done.errors
                .push(format!("listing this host's addresses: {e}"));
            return;
        }
    };
    let handles = listed["handles"].as_array().cloned().unwrap_or_default();
    for h in handles {
        let Some(handle) = h["handle_id"].as_str() else {
            continue;
        };
        let orphan = match classify_handle(handle, &calico.node, std::time::SystemTime::now()) {
            HandleKind::Container if ours.iter().any(|id| id == handle) => false,
            HandleKind::Container => matches!(docker::inspect(&up.socket, handle).await, Ok(None)),
            HandleKind::Reservation { age } => age > RESERVATION_GRACE,
            HandleKind::Other => false,
        };
        if !orphan {
            continue;
        }
        tracing::info!(%handle, ips = %h["ips"], "freeing addresses nothing holds any more");
        match calico
            .master
            .delete(&format!("/v1/ipam/handles/{handle}"))
            .await
        {
            Ok(_) => done.released += 1,
            Err(e) => done.errors.push(format!("{}: {e}", short(handle))),
        }
    }
}

/// Everything calico-node runs beside the listener: a reconcile (retried until the daemon answers),
/// then the event follower and the retry queue, for ever.
pub async fn run_background(up: Arc<Upstream>) {
    let Some(calico) = up.calico.clone() else {
        return;
    };
    let retries = {
        let calico = calico.clone();
        async move { calico.retry.run(&calico.master).await }
    };
    let start = async {
        let mut backoff = Duration::from_millis(200);
        loop {
            match reconcile(&up).await {
                Ok(r) => {
                    tracing::info!(?r, "reconciled");
                    break;
                }
                Err(e) => {
                    tracing::warn!("reconcile failed: {e}; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        run_events(up.clone()).await;
    };
    tokio::join!(retries, start);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_of_interest_are_parsed() {
        let line = br#"{"status":"start","id":"abc","Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"org.projectcalico.node":"h1","image":"x"}},"scope":"local","time":1700000000,"timeNano":1700000000000000000}"#;
        let ev = parse_event(line).unwrap();
        assert_eq!(ev.action, "start");
        assert_eq!(ev.id, "abc");
        assert_eq!(ev.attributes[NODE_LABEL], "h1");
        assert_eq!(ev.time, Some(1_700_000_000));
        let exec = br#"{"Type":"container","Action":"exec_start: sh","Actor":{"ID":"abc"}}"#;
        assert_eq!(parse_event(exec), None);
        let net = br#"{"Type":"network","Action":"destroy","Actor":{"ID":"n"}}"#;
        assert_eq!(parse_event(net), None);
        assert_eq!(parse_event(b"{garbage"), None);
    }

    #[test]
    fn the_events_path_filters_on_this_node() {
        let p = events_path("h1", Some(5));
        assert!(p.starts_with("/events?filters=%7B"), "{p}");
        assert!(p.contains("org.projectcalico.node%3Dh1"), "{p}");
        assert!(p.ends_with("&since=5"));
    }
}
