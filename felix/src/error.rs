//! Felix's errors.

use std::io;

/// What can go wrong while programming the kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink: {0}")]
    Io(#[from] io::Error),
    #[error("the kernel refused {what}: {}", io::Error::from_raw_os_error(*errno))]
    Refused { what: String, errno: i32 },
    #[error("the kernel did not answer {missing} request(s) of a batch within {timeout_ms} ms")]
    NoAnswer { missing: usize, timeout_ms: u64 },
    #[error(transparent)]
    Nft(#[from] NftError),
    #[error("cannot enter network namespace {path}: {source}")]
    Netns { path: String, source: io::Error },
}

impl From<rustix::io::Errno> for Error {
    fn from(errno: rustix::io::Errno) -> Self {
        Error::Io(errno.into())
    }
}

/// `nft -f` refused a script: its own words say why.
#[derive(Debug, thiserror::Error)]
#[error("nft refused the {phase} script: {stderr}")]
pub struct NftError {
    pub phase: &'static str,
    pub stderr: String,
}
