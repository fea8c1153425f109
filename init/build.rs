//! Links `calico-init` statically (a static PIE) without changing how the rest of the workspace links.
//!
//! Containers may have no libc at all, so the wrapper must not need one. Rust's glibc target links the C
//! runtime dynamically unless `-C target-feature=+crt-static` is given, and a build script cannot set
//! that for one crate. Instead this script asks the C driver for a static PIE and puts linker scripts
//! named `libc.so`, `libm.so` and `libgcc_s.so` first on the library path; each points at the static
//! archive, so every library the standard library asks for resolves to its `.a`. Output: link arguments
//! for this crate's binary only (`cargo build --release --workspace` gives a static `calico-init`).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os != "linux" || env != "gnu" {
        // musl targets link statically already; other systems are not supported by the proxy.
        return;
    }
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let shims = [
        ("libc.so", "GROUP(-l:libc.a -lgcc -lgcc_eh)\n"),
        ("libm.so", "INPUT(-l:libm.a)\n"),
        ("libgcc_s.so", "INPUT(-lgcc_eh)\n"),
    ];
    for (name, script) in shims {
        if let Err(e) = std::fs::write(out.join(name), script) {
            println!(
                "cargo:warning=calico-init stays dynamically linked: cannot write {name}: {e}"
            );
            return;
        }
    }
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-arg-bins=-static-pie");
}
