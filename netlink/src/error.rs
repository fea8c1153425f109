//! The netlink layer's errors.

use std::io;

/// What can go wrong talking to the kernel over netlink.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink: {0}")]
    Io(#[from] io::Error),
    #[error("the kernel refused {what}: {}", io::Error::from_raw_os_error(*errno))]
    Refused { what: String, errno: i32 },
    #[error("the kernel did not answer {missing} request(s) of a batch within {timeout_ms} ms")]
    NoAnswer { missing: usize, timeout_ms: u64 },
    #[error("cannot enter network namespace {path}: {source}")]
    Netns { path: String, source: io::Error },
}

impl From<rustix::io::Errno> for Error {
    fn from(errno: rustix::io::Errno) -> Self {
        Error::Io(errno.into())
    }
}
