//! Builds the init wrapper (`../init/src/main.rs`) as a static binary and leaves it in `OUT_DIR` for
//! the proxy to embed (`include_bytes!`), so calico-node is one binary that installs its own wrapper
//! into its state dir and a container needs no libc for it.
//!
//! The wrapper has no dependencies, so `rustc` compiles it directly, with `-C target-feature=+crt-static`
//! (which a build script cannot set for a crate cargo builds). If that fails (no static C library), the
//! embedded wrapper is empty and the proxy asks for `--init-binary` instead; a warning says so.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = PathBuf::from("../init/src/main.rs");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bin = out.join("calico-init");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").unwrap_or_default();
    let mut cmd = Command::new(rustc);
    cmd.args([
        "--edition=2021",
        "--crate-type=bin",
        "--crate-name=calico_init",
        "-Copt-level=s",
        "-Cpanic=abort",
        "-Cstrip=symbols",
        "-Ctarget-feature=+crt-static",
        "-Dunsafe_code",
    ]);
    if !target.is_empty() {
        cmd.args(["--target", &target]);
    }
    cmd.arg("-o").arg(&bin).arg(&src);
    let built = match cmd.output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            println!(
                "cargo:warning=the embedded calico-init could not be built (the proxy will need --init-binary): {}",
                String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("")
            );
            false
        }
        Err(e) => {
            println!("cargo:warning=cannot run rustc to build the embedded calico-init: {e}");
            false
        }
    };
    if !built {
        std::fs::write(&bin, b"").expect("OUT_DIR is writable");
    }
}
