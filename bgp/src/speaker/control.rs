//! The daemon's control socket: one JSON request and one JSON response per line over a unix socket.
//!
//! Role: let `calico-bgp status` and `calico-bgp routes` (and scripts) query a running speaker.
//! Inputs: lines such as `{"request":"status"}` or `{"request":"routes"}`.
//! Outputs: one line per request: `{"peers":[…PeerStatus…]}`, `{"routes":[…RouteEntry…]}` or
//! `{"error":"…"}`. [`query`] is the blocking client side.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

use super::{Error, PeerStatus, RouteEntry, Speaker};

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum ControlRequest {
    /// Every peer's session.
    Status,
    /// The Loc-RIB.
    Routes,
}

/// A response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlResponse {
    /// Answer to [`ControlRequest::Status`].
    Peers(Vec<PeerStatus>),
    /// Answer to [`ControlRequest::Routes`].
    Routes(Vec<RouteEntry>),
    /// The request could not be understood.
    Error(String),
}

/// Listens on `path` (replacing a stale socket file) and answers requests until the task is aborted.
pub async fn serve(speaker: Speaker, path: PathBuf) -> Result<JoinHandle<()>, Error> {
    let err = |source| Error::Control {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(&path).map_err(err)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let speaker = speaker.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = tokio::io::BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let response = match serde_json::from_str::<ControlRequest>(&line) {
                        Ok(ControlRequest::Status) => {
                            ControlResponse::Peers(speaker.status().await)
                        }
                        Ok(ControlRequest::Routes) => {
                            ControlResponse::Routes(speaker.routes().await)
                        }
                        Err(e) => ControlResponse::Error(format!("bad request: {e}")),
                    };
                    let mut text = serde_json::to_string(&response).unwrap_or_default();
                    text.push('\n');
                    if write.write_all(text.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    }))
}

/// Sends one request to the socket at `path` and returns the response (blocking).
pub fn query(path: &Path, request: &ControlRequest) -> Result<ControlResponse, Error> {
    let err = |source| Error::Control {
        path: path.display().to_string(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(err)?;
    let mut line = serde_json::to_string(request).map_err(|e| err(std::io::Error::other(e)))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(err)?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(err)?;
    serde_json::from_str(&answer).map_err(|e| err(std::io::Error::other(e)))
}
