//! The retry queue: master requests that must happen eventually (register, deactivate or delete an
//! endpoint, release a container's addresses) but could not be made because the master was down.
//!
//! Inputs: requests that failed with an unreachable master or a 5xx. Outputs: the same requests, made
//! again in order with exponential backoff (1 s doubling to 30 s) until the master answers; a 4xx answer
//! ends a request too (it can never succeed; 404 on a delete means it is done). The queue is kept in
//! `<state dir>/proxy-retry.json` (written atomically on each change), so a restarted node carries on
//! where it stopped; without a state dir it lives in memory only. Every queued request is idempotent.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use calico_master::client::{Client, ClientError, Method};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::error::{is_transient, Error};

/// The file in the state dir.
pub const FILE: &str = "proxy-retry.json";

/// One request to the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// `POST` or `DELETE`.
    pub method: String,
    pub path: String,
    pub body: Option<Value>,
}

impl Op {
    pub fn post(path: impl Into<String>, body: Value) -> Op {
        Op {
            method: "POST".into(),
            path: path.into(),
            body: Some(body),
        }
    }

    pub fn delete(path: impl Into<String>) -> Op {
        Op {
            method: "DELETE".into(),
            path: path.into(),
            body: None,
        }
    }

    fn to_json(&self) -> Value {
        json!({"method": self.method, "path": self.path, "body": self.body})
    }

    fn from_json(v: &Value) -> Option<Op> {
        Some(Op {
            method: v.get("method")?.as_str()?.to_string(),
            path: v.get("path")?.as_str()?.to_string(),
            body: v.get("body").filter(|b| !b.is_null()).cloned(),
        })
    }

    async fn send(&self, master: &Client) -> Result<Value, ClientError> {
        let method = if self.method == "DELETE" {
            Method::DELETE
        } else {
            Method::POST
        };
        master.request(method, &self.path, self.body.as_ref()).await
    }
}

/// The queue (see the module docs).
#[derive(Debug)]
pub struct Queue {
    file: Option<PathBuf>,
    ops: Mutex<Vec<Op>>,
    wake: Notify,
}

impl Queue {
    /// A queue kept in `state_dir` (loading what an earlier run left), or in memory.
    pub fn open(state_dir: Option<&Path>) -> Queue {
        let file = state_dir.map(|d| d.join(FILE));
        let ops = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(Op::from_json)
            .collect();
        Queue {
            file,
            ops: Mutex::new(ops),
            wake: Notify::new(),
        }
    }

    /// The requests waiting.
    pub fn pending(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn save(&self, ops: &[Op]) {
        let Some(file) = &self.file else { return };
        let text = Value::from(ops.iter().map(Op::to_json).collect::<Vec<_>>()).to_string();
        let tmp = file.with_extension("json.tmp");
        let written = std::fs::create_dir_all(file.parent().unwrap_or(Path::new(".")))
            .and_then(|()| std::fs::write(&tmp, text))
            .and_then(|()| std::fs::rename(&tmp, file));
        if let Err(e) = written {
            tracing::warn!(file = %file.display(), "cannot save the retry queue: {e}");
        }
    }

    /// Makes the first queued request and takes it off the queue once the master has answered it (a
    /// refusal too: it can never succeed); false when the master is still down. Two callers may send
    /// the same request at once: every queued request is idempotent, and it leaves the queue once.
    async fn try_first(&self, master: &Client) -> bool {
        let Some(op) = self.pending().into_iter().next() else {
            return true;
        };
        match op.send(master).await {
            Ok(_) => {}
            Err(e) if is_transient(&e) => return false,
            Err(e) => {
                tracing::warn!(method = %op.method, path = %op.path, "the master refused a queued request, dropping it: {e}");
            }
        }
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        if ops.first() == Some(&op) {
            ops.remove(0);
        }
        self.save(&ops);
        true
    }

    /// Queues `op` for later.
    pub fn push(&self, op: Op) {
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        if !ops.contains(&op) {
            ops.push(op);
        }
        self.save(&ops);
        drop(ops);
        self.wake.notify_one();
    }

    /// Makes `op` now; if the master is down (or failed on its side), queues it and returns `Ok(None)`.
    /// A refusal (4xx) is returned as an error; on a delete, 404 counts as done. Requests queued
    /// earlier go first (the order matters for one endpoint): if the master answers them now, `op`
    /// is made now too, so a `docker rm` just after an outage still frees its address before it returns.
    pub async fn now_or_later(
        &self,
        master: &Client,
        op: Op,
        what: &str,
    ) -> Result<Option<Value>, Error> {
        while !self.pending().is_empty() {
            if !self.try_first(master).await {
                self.push(op);
                return Ok(None);
            }
        }
        match op.send(master).await {
            Ok(v) => Ok(Some(v)),
            Err(ClientError::Api { status: 404, .. }) if op.method == "DELETE" => {
                Ok(Some(Value::Null))
            }
            Err(e) if is_transient(&e) => {
                tracing::warn!("{what}: the master is not answering ({e}); will retry");
                self.push(op);
                Ok(None)
            }
            Err(source) => Err(Error::Master {
                what: what.to_string(),
                source,
            }),
        }
    }

    /// Makes the queued requests, in order, for ever: after a failure it waits (1 s doubling to 30 s,
    /// or until something new is queued) and starts again from the first.
    pub async fn run(&self, master: &Client) {
        let mut backoff = Duration::from_secs(1);
        loop {
            if self.pending().is_empty() {
                backoff = Duration::from_secs(1);
                self.wake.notified().await;
                continue;
            }
            if self.try_first(master).await {
                backoff = Duration::from_secs(1);
            } else {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {},
                    () = self.wake.notified() => {},
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("calico-proxy-retry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let q = Queue::open(Some(&dir));
        q.push(Op::delete("/v1/endpoints/abc"));
        q.push(Op::post("/v1/endpoints", json!({"state": "inactive"})));
        q.push(Op::delete("/v1/endpoints/abc"));
        assert_eq!(q.pending().len(), 2, "duplicates are not queued twice");
        let again = Queue::open(Some(&dir));
        assert_eq!(again.pending(), q.pending());
        assert_eq!(again.pending()[1].body, Some(json!({"state": "inactive"})));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(Queue::open(None).pending().is_empty());
    }
}
