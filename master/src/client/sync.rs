//! The client side of the node sync stream: `GET /v1/sync?node=NAME[&revision=R]`.
//!
//! Role: open the stream on the first master that answers (in the order given, as every call does;
//! the request is a `GET`, so a master that failed mid-request is skipped too) with the bearer token,
//! then read it line by line. Inputs: the node name and the revision it last applied (to resume).
//! Outputs: [`SyncMessage`]s ([`SyncStream::next`]); `None` when the master ended the stream (it shut
//! down); [`ClientError::Unreachable`] when the connection broke, after which the caller reconnects
//! with the revision it reached.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{connect, content_type, decode, Attempt, Client, ClientError, Master, Method};
use crate::{api::NDJSON, store::Revision, sync::SyncMessage};

/// The longest line accepted (a snapshot of a very large node); longer is a decode error.
pub const MAX_LINE_BYTES: usize = 1 << 30;

/// An open sync stream.
#[derive(Debug)]
pub struct SyncStream {
    url: String,
    body: Incoming,
    buf: BytesMut,
    ended: bool,
    driver: tokio::task::JoinHandle<()>,
    /// Kept while the stream is read: hyper closes the connection once its sender is gone.
    _sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
}

impl Drop for SyncStream {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Percent-encode what is not unreserved in a URL (host names never need it; the master then
/// rejects a bad name with a 400 naming `node`).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

enum Opened {
    Stream(SyncStream),
    Answer(u16, String, Bytes),
}

impl Client {
    /// Subscribe `node` to the sync stream: from a snapshot, or (with `since`, the revision the node
    /// last applied) from the deltas after it when the master still has them (else a snapshot).
    pub async fn sync(
        &self,
        node: &str,
        since: Option<Revision>,
    ) -> Result<SyncStream, ClientError> {
        let mut path = format!("/v1/sync?node={}", escape(node));
        if let Some(r) = since {
            path.push_str(&format!("&revision={r}"));
        }
        let mut tried = Vec::new();
        for m in &self.masters {
            let why = match tokio::time::timeout(self.timeout, self.open(m, &path)).await {
                Ok(Ok(Opened::Stream(s))) => return Ok(s),
                Ok(Ok(Opened::Answer(status, ctype, bytes))) => {
                    decode(m, status, &ctype, &bytes)?;
                    return Err(ClientError::Decode {
                        url: m.url.clone(),
                        reason: format!("expected a {NDJSON} stream, got {status} {ctype}"),
                    });
                }
                Ok(Err(Attempt::NotSent(why) | Attempt::MaybeSent(why))) => why,
                Err(_) => format!("no answer within {:?}", self.timeout),
            };
            tried.push(format!("{}: {why}", m.url));
        }
        Err(ClientError::Unreachable { tried })
    }

    async fn open(&self, m: &Master, path: &str) -> Result<Opened, Attempt> {
        let (mut sender, driver) = connect(m).await?;
        let req = match self.build(m, &Method::GET, path, Bytes::new(), NDJSON) {
            Ok(r) => r,
            Err(e) => {
                driver.abort();
                return Err(e);
            }
        };
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                driver.abort();
                return Err(Attempt::MaybeSent(e.to_string()));
            }
        };
        let status = resp.status().as_u16();
        let ctype = content_type(&resp);
        if status == 200 && ctype.starts_with(NDJSON) {
            return Ok(Opened::Stream(SyncStream {
                url: m.url.clone(),
                body: resp.into_body(),
                buf: BytesMut::new(),
                ended: false,
                driver,
                _sender: sender,
            }));
        }
        let bytes = resp.into_body().collect().await.map(|b| b.to_bytes());
        driver.abort();
        let bytes = bytes.map_err(|e| Attempt::MaybeSent(e.to_string()))?;
        Ok(Opened::Answer(status, ctype, bytes))
    }
}

impl SyncStream {
    /// The master serving the stream.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next message; `Ok(None)` once the master ended the stream.
    pub async fn next(&mut self) -> Result<Option<SyncMessage>, ClientError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(pos + 1);
                let text = &line[..pos];
                if text.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(text)
                    .map(Some)
                    .map_err(|e| ClientError::Decode {
                        url: self.url.clone(),
                        reason: format!("a sync message: {e}"),
                    });
            }
            if self.ended {
                if self.buf.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                self.buf.clear();
                return Err(ClientError::Decode {
                    url: self.url.clone(),
                    reason: "the sync stream ended in the middle of a message".into(),
                });
            }
            if self.buf.len() > MAX_LINE_BYTES {
                return Err(ClientError::Decode {
                    url: self.url.clone(),
                    reason: format!("a sync message is longer than {MAX_LINE_BYTES} bytes"),
                });
            }
            match self.body.frame().await {
                None => self.ended = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    self.ended = true;
                    return Err(ClientError::Unreachable {
                        tried: vec![format!("{}: the sync stream broke: {e}", self.url)],
                    });
                }
            }
        }
    }
}
