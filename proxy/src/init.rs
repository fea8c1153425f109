//! The init wrapper, embedded: `build.rs` compiles `init/src/main.rs` statically and the proxy carries
//! the bytes, so a node needs no separate file to ship. [`install`] writes it into the node's state dir
//! (atomically, only when it changed: running containers keep the inode they bind-mounted).
//!
//! Input: a directory. Output: the path of the executable wrapper to bind-mount into containers.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// The wrapper binary (empty when the build could not make it).
pub static WRAPPER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/calico-init"));

/// Writes the embedded wrapper to `dir/calico-init` (mode 0755) and returns its path.
pub fn install(dir: &Path) -> Result<PathBuf, Error> {
    let io = |what: String| move |source| Error::Io { what, source };
    if WRAPPER.is_empty() {
        return Err(Error::Config(
            "this build has no embedded calico-init (see the build warnings); pass --init-binary"
                .into(),
        ));
    }
    let path = dir.join("calico-init");
    if std::fs::read(&path).is_ok_and(|b| b == WRAPPER) {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let tmp = dir.join(format!(".calico-init.{}", std::process::id()));
    std::fs::write(&tmp, WRAPPER).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .map_err(io(format!("making {} executable", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(io(format!("installing {}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_wrapper_is_a_static_executable() {
        assert!(
            WRAPPER.starts_with(b"\x7fELF"),
            "build.rs built the wrapper"
        );
        let dir = std::env::temp_dir().join(format!("calico-proxy-init-{}", std::process::id()));
        let path = install(&dir).unwrap();
        let out = std::process::Command::new(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "no arguments: usage");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
        assert_eq!(install(&dir).unwrap(), path, "installing again is a no-op");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
