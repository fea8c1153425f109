//! Felix's errors.

use std::io;

/// What can go wrong while programming the kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Netlink(#[from] calico_netlink::Error),
    #[error(transparent)]
    Nft(#[from] NftError),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the kernel refused {what}: {}", io::Error::from_raw_os_error(*errno))]
    Refused { what: String, errno: i32 },
}

/// `nft -f` refused a script: its own words say why.
#[derive(Debug, thiserror::Error)]
#[error("nft refused the {phase} script: {stderr}")]
pub struct NftError {
    pub phase: &'static str,
    pub stderr: String,
}
