#!/usr/bin/env bash
# Every test: formatting, lints, unit tests, golden tests and the lab's end-to-end tests (network
# namespaces, a real dockerd and etcd), then a check that no lab left anything behind. Installs and
# starts what the tests need first; leaves the machine as it found it apart from packages and build
# outputs (a running demo from scripts/main.sh is left alone). Ends with one summary line.
source "$(dirname "$0")/common.sh"
require_root
cd "$ROOT"

ensure_packages "${BUILD_PACKAGES[@]}" "${LAB_PACKAGES[@]}" etcd-server etcd-client openssl ruby
ensure_rust

failed=0
step() { say "$1"; shift; if ! "$@"; then echo "FAILED: $*" >&2; failed=1; fi; }

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets --quiet -- -D warnings

# One release build serves the unit tests, the lab binaries and the end-to-end tests.
step "building tests (release)" cargo build --release --workspace --all-targets --quiet
"$RELEASE/calico-lab" clean --except demo

log="$(mktemp)"
say "cargo test (release)"
set +e
cargo test --release --workspace --no-fail-fast 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
# The master's API suite again, against a real etcd (one per test) instead of the embedded store.
say "the master's API tests on etcd"
CALICO_API_TEST_STORE=etcd cargo test --release -p calico-master --lib -- api:: 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
set -e

# Every decoder that reads the network is fuzzed for a minute on each run.
fuzz() { # fuzz CRATE_DIR TARGET SECONDS: prints the run's figures, or the crash's last lines
  local out; out="$(mktemp)"
  if (cd "$ROOT/$1" && cargo +nightly fuzz run "$2" -- -max_total_time="$3" -print_final_stats=1) >"$out" 2>&1; then
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$out"; rm -f "$out"
  else
    tail -n 40 "$out"; rm -f "$out"; return 1
  fi
}
ensure_cargo_fuzz
step "fuzzing the BGP decoder for 60 s" fuzz bgp decode_message 60

step "checking that no lab left anything behind" "$RELEASE/calico-lab" check-clean --except demo
"$RELEASE/calico-lab" stop-dockerd || failed=1
if [ ! -d /run/calico-lab/labs ] || [ -z "$(ls -A /run/calico-lab/labs 2>/dev/null)" ]; then
  [ -e /run/calico-lab/dockerd.started ] || rm -rf /run/calico-lab
fi

# cargo prints one "test result:" line per test binary; add them up into one summary line.
read -r passed failed_tests ignored < <(awk '
  /^test result:/ { for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
  END { print p+0, f+0, s+0 }' "$log")
rm -f "$log"
[ "$passed" -gt 0 ] || { echo "no test ran" >&2; failed=1; }
[ "$failed_tests" -eq 0 ] || failed=1
echo
echo "tests: $passed passed, $failed_tests failed, $ignored skipped"
exit "$failed"
