//! The client of the master's API, for calicoctl (and later the nodes and the Docker proxy).
//!
//! Role: send JSON requests to the first master that answers. Inputs: master URLs (`http://host:port`,
//! optionally with a path prefix; tried in the order given), an optional bearer token (see
//! [`read_token_file`]), method, path (`/v1/pools`, see [`crate::api`] for the routes) and JSON body.
//! Outputs: the answer's JSON, or a [`ClientError`] that tells "no master could be reached" (listing
//! every URL tried and why) apart from an answer with an error status (status, message, field).
//!
//! Failover: a master that cannot be connected to (refused, unreachable, timed out) is skipped and the
//! next URL tried. A connection that fails after the request was sent is also skipped for requests that
//! are safe to repeat (`GET`, `PUT`, `DELETE`); a `POST` is not sent twice, since the first master may
//! have applied it. An answer with an error status (including 503) is returned as it is.
//!
//! [`Client`] is async (hyper's HTTP/1.1 client over tokio TCP, one connection per request);
//! [`BlockingClient`] wraps it with its own single-threaded runtime for synchronous callers.
//! [`Client::sync`] opens the node sync stream ([`SyncStream`], in `sync.rs`).

use std::{path::Path, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Uri};

pub use hyper::Method;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// How long connecting to one master may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one whole request may take by default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No master answered.
    #[error("cannot reach any master (tried {}); start one with `calicoctl master run` or point --master / CALICO_MASTER at a running one", .tried.join("; "))]
    Unreachable {
        /// Each URL tried, with why it failed.
        tried: Vec<String>,
    },
    /// A master answered with an error status.
    #[error("{error}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The `error` of the body.
        error: String,
        /// The `field` of the body, if one input was to blame.
        field: Option<String>,
        /// The whole body (e.g. `endpoints` of a 409 on profile removal).
        body: Value,
    },
    /// A master URL is not usable.
    #[error("bad master URL `{url}`: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The token file could not be used.
    #[error("token file {path}: {reason}")]
    Token {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A master answered with something that is not the expected JSON.
    #[error("the master at {url} answered with invalid JSON: {reason}")]
    Decode {
        /// The master.
        url: String,
        /// Why.
        reason: String,
    },
    /// The client's runtime could not be created.
    #[error("cannot start the HTTP client: {0}")]
    Runtime(#[source] std::io::Error),
}

impl ClientError {
    /// The HTTP status, for an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Read a bearer token: the file's content without surrounding whitespace; an empty file is an error.
pub fn read_token_file(path: &Path) -> Result<String, ClientError> {
    let err = |reason: String| ClientError::Token {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(err("the file is empty; put the token in it".into()));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err(
            "the token contains whitespace; a token is one word".into()
        ));
    }
    Ok(token.to_owned())
}

#[derive(Debug, Clone)]
struct Master {
    /// As given (without a trailing `/`), for messages.
    url: String,
    /// `host:port` to connect to and send as `Host`.
    authority: String,
    /// Path prefix, without a trailing `/` (usually empty).
    base: String,
}

impl Master {
    fn parse(url: &str) -> Result<Self, ClientError> {
        let url = url.trim().trim_end_matches('/');
        let bad = |reason: &str| ClientError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| bad("expected http://HOST:PORT, e.g. http://127.0.0.1:9900"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(bad(&format!(
                    "scheme {other} is not supported; use http://"
                )))
            }
            None => return Err(bad("no scheme; write it as http://HOST:PORT")),
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        if uri.query().is_some() {
            return Err(bad("a master URL has no query string"));
        }
        Ok(Master {
            url: url.to_owned(),
            authority: format!("{host}:{port}"),
            base: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// The async client.
#[derive(Debug, Clone)]
pub struct Client {
    masters: Vec<Master>,
    token: Option<String>,
    timeout: Duration,
}

/// Why one attempt failed, and whether the request may have reached the master.
enum Attempt {
    NotSent(String),
    MaybeSent(String),
}

impl Client {
    /// A client for `urls` (tried in order), with an optional bearer token.
    pub fn new<S: AsRef<str>>(urls: &[S], token: Option<String>) -> Result<Self, ClientError> {
        let masters = urls
            .iter()
            .map(|u| u.as_ref())
            .filter(|u| !u.trim().is_empty())
            .map(Master::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if masters.is_empty() {
            return Err(ClientError::BadUrl {
                url: String::new(),
                reason: "no master URL given; pass --master http://HOST:PORT".into(),
            });
        }
        Ok(Client {
            masters,
            token,
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// Change the per-request timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The master URLs, in the order they are tried.
    pub fn urls(&self) -> Vec<&str> {
        self.masters.iter().map(|m| m.url.as_str()).collect()
    }

    /// Send one request; `path` starts with `/` and may carry a query. Returns the answer's JSON
    /// (`Value::String` for a non-JSON answer such as `/metrics`; `Null` for an empty body).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let body = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v).map_err(|e| ClientError::Decode {
                url: "(request)".into(),
                reason: e.to_string(),
            })?),
            None => Bytes::new(),
        };
        let repeatable = method != Method::POST;
        let mut tried = Vec::new();
        for m in &self.masters {
            let attempt =
                tokio::time::timeout(self.timeout, self.attempt(m, &method, path, body.clone()));
            let failure = match attempt.await {
                Ok(Ok((status, ctype, bytes))) => return decode(m, status, &ctype, &bytes),
                Ok(Err(a)) => a,
                Err(_) => Attempt::MaybeSent(format!("no answer within {:?}", self.timeout)),
            };
            match failure {
                Attempt::NotSent(why) => tried.push(format!("{}: {why}", m.url)),
                Attempt::MaybeSent(why) => {
                    tried.push(format!("{}: {why}", m.url));
                    if !repeatable {
                        break;
                    }
                }
            }
        }
        Err(ClientError::Unreachable { tried })
    }

    async fn attempt(
        &self,
        m: &Master,
        method: &Method,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, String, Bytes), Attempt> {
        let (mut sender, driver) = connect(m).await?;
        let req = self.build(m, method, path, body, "application/json")?;
        let result = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| Attempt::MaybeSent(e.to_string()))?;
            let status = resp.status().as_u16();
            let ctype = content_type(&resp);
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| Attempt::MaybeSent(e.to_string()))?
                .to_bytes();
            Ok((status, ctype, bytes))
        }
        .await;
        driver.abort();
        result
    }

    /// A request to `m` with the host, accept, content-type and token headers.
    fn build(
        &self,
        m: &Master,
        method: &Method,
        path: &str,
        body: Bytes,
        accept: &str,
    ) -> Result<Request<Full<Bytes>>, Attempt> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{}", m.base, path))
            .header(hyper::header::HOST, &m.authority)
            .header(hyper::header::ACCEPT, accept);
        if !body.is_empty() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        if let Some(t) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        req.body(Full::new(body))
            .map_err(|e| Attempt::NotSent(format!("cannot build the request: {e}")))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.request(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.request(Method::POST, path, Some(body)).await
    }

    /// `PUT path` with an optional JSON body.
    pub async fn put(&self, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        self.request(Method::PUT, path, body).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.request(Method::DELETE, path, None).await
    }
}

/// Connect to `m` and start the HTTP/1.1 connection (its driver task is returned; abort it when done).
async fn connect(
    m: &Master,
) -> Result<
    (
        hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        tokio::task::JoinHandle<()>,
    ),
    Attempt,
> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&m.authority)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(Attempt::NotSent(e.to_string())),
        Err(_) => {
            return Err(Attempt::NotSent(format!(
                "connect timed out after {CONNECT_TIMEOUT:?}"
            )))
        }
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Attempt::NotSent(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((sender, driver))
}

fn content_type<B>(resp: &hyper::Response<B>) -> String {
    resp.headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn decode(m: &Master, status: u16, ctype: &str, bytes: &[u8]) -> Result<Value, ClientError> {
    let is_json = ctype.starts_with("application/json");
    let parsed: Option<Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
        Some(Value::Null)
    } else if is_json {
        serde_json::from_slice(bytes).ok()
    } else {
        None
    };
    if (200..300).contains(&status) {
        return match parsed {
            Some(v) => Ok(v),
            None if !is_json => Ok(Value::String(String::from_utf8_lossy(bytes).into_owned())),
            None => Err(ClientError::Decode {
                url: m.url.clone(),
                reason: String::from_utf8_lossy(bytes).chars().take(200).collect(),
            }),
        };
    }
    let body = parsed.unwrap_or(Value::Null);
    let error = body
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(bytes);
            format!("the master at {} answered {status}: {}", m.url, text.trim())
        });
    let field = body.get("field").and_then(Value::as_str).map(str::to_owned);
    Err(ClientError::Api {
        status,
        error,
        field,
        body,
    })
}

/// A synchronous client: [`Client`] on its own single-threaded runtime.
#[derive(Debug)]
pub struct BlockingClient {
    inner: Client,
    rt: tokio::runtime::Runtime,
}

impl BlockingClient {
    /// Wrap `inner`.
    pub fn new(inner: Client) -> Result<Self, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClientError::Runtime)?;
        Ok(BlockingClient { inner, rt })
    }

    /// The async client inside.
    pub fn inner(&self) -> &Client {
        &self.inner
    }

    /// See [`Client::request`].
    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        self.rt.block_on(self.inner.request(method, path, body))
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.request(Method::GET, path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.request(Method::POST, path, Some(body))
    }

    /// `PUT path` with an optional JSON body.
    pub fn put(&self, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        self.request(Method::PUT, path, body)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.request(Method::DELETE, path, None)
    }
}

mod sync;

pub use sync::SyncStream;

#[cfg(test)]
mod tests;
