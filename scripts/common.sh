# Shared by the README's commands: Debian packages, the Rust toolchain, and the release build.
# Sourced, not run. Everything here is idempotent: a second run finds what the first one did.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
RELEASE="$ROOT/target/release"

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_root() {
  [ "$(id -u)" -eq 0 ] || die "run this as root: it creates network namespaces and starts dockerd and etcd"
}

# ensure_packages PKG… : installs the Debian packages that are missing (with their recommends:
# protobuf-compiler needs libprotobuf-dev's .proto files for etcd-client's build).
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_rust() {
  command -v cargo >/dev/null 2>&1 && return 0
  die "cargo not found: install Rust 1.85 or newer with rustup (Debian 12's rustc is too old), then run this again"
}

# The fuzz targets need the nightly toolchain (present on these machines; it cannot be fetched here)
# and cargo-fuzz (from crates.io).
ensure_cargo_fuzz() {
  rustup toolchain list 2>/dev/null | grep -q '^nightly' \
    || die "the nightly Rust toolchain is missing (rustup toolchain install nightly): the fuzz targets need it"
  cargo fuzz --version >/dev/null 2>&1 && return 0
  say "installing cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz
}

build_release() {
  say "building (release)"
  (cd "$ROOT" && cargo build --release --workspace --bins --quiet)
}

# Packages the build needs: protoc and libprotobuf-dev's .proto files (a recommend of protobuf-compiler,
# which apt installs by default) for etcd-client.
BUILD_PACKAGES=(protobuf-compiler libprotobuf-dev)

# Packages the lab needs at run time.
LAB_PACKAGES=(iproute2 iputils-ping procps util-linux busybox-static docker.io nftables iptables bird2)
