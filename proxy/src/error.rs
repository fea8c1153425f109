//! The proxy's errors: what failed while talking to the Docker daemon, the master or the kernel, each
//! naming what was being done, so the client (or the log) can tell what to fix.

use calico_master::client::ClientError;

/// What can go wrong wiring, registering or cleaning up a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Docker daemon could not be reached or answered something unusable.
    #[error("Docker: {0}")]
    Docker(String),
    /// The master refused a request or could not be reached.
    #[error("{what}: {source}")]
    Master {
        what: String,
        #[source]
        source: ClientError,
    },
    /// A kernel operation failed while wiring or unwiring an interface.
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: calico_netlink::Error,
    },
    /// The node's configuration does not allow this (e.g. no IPv4 gateway for an IPv4 address).
    #[error("{0}")]
    Config(String),
    /// A file in the node's state dir could not be read or written.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True when the master could not be reached (or failed on its side): worth retrying later.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Master { source, .. } => is_transient(source),
            _ => false,
        }
    }
}

/// True for a master error worth retrying: unreachable, or a 5xx.
pub fn is_transient(e: &ClientError) -> bool {
    match e {
        ClientError::Api { status, .. } => *status >= 500,
        ClientError::Unreachable { .. } => true,
        _ => false,
    }
}

/// Attaches what was being done to a netlink error.
pub fn netlink(what: impl Into<String>) -> impl FnOnce(calico_netlink::Error) -> Error {
    let what = what.into();
    move |source| Error::Netlink { what, source }
}

/// Attaches what was being done to a master error.
pub fn master(what: impl Into<String>) -> impl FnOnce(ClientError) -> Error {
    let what = what.into();
    move |source| Error::Master { what, source }
}
