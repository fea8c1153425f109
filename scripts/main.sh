#!/usr/bin/env bash
# The main job: install what is needed, build in release mode, and start the system on its embedded
# default, leaving it running. Run again, it starts afresh. `scripts/main.sh down` takes it all down.
#
# What runs today: the demo lab (two hosts on a fabric in slot 0: 10.250.0.11 and .12, fd00:250::11 and
# ::12, management address 10.250.0.1 / fd00:250::1) and the master on its embedded store, listening on
# loopback and on the management address (so the hosts reach it), with the demo's pool and the Getting
# Started's profiles. calico-node on each host and the demo containers start here as they are built.
source "$(dirname "$0")/common.sh"
require_root

DEMO_DIR=/run/calico-demo
DATASTORE=/var/lib/calico/demo/master.db
MASTER_LOG=/var/log/calico/demo-master.log

stop_master() {
  [ -f "$DEMO_DIR/master.pid" ] || return 0
  local pid; pid="$(cat "$DEMO_DIR/master.pid")"
  # Only the master this script started: check the PID still runs calicoctl.
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "calicoctl master run"; then
    kill "$pid"
    for _ in $(seq 50); do [ -d "/proc/$pid" ] && grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break; [ -d "/proc/$pid" ] || break; sleep 0.1; done
  fi
  rm -f "$DEMO_DIR/master.pid"
}

case "${1:-up}" in
  up)
    ensure_packages "${BUILD_PACKAGES[@]}" "${LAB_PACKAGES[@]}"
    ensure_rust
    build_release
    stop_master
    say "starting the demo lab"
    "$RELEASE/calico-lab" up demo --hosts 2
    say "starting the master (embedded store: $DATASTORE, starting afresh)"
    mkdir -p "$DEMO_DIR" "$(dirname "$DATASTORE")" "$(dirname "$MASTER_LOG")"
    rm -f "$DATASTORE"
    setsid "$RELEASE/calicoctl" master run --listen 127.0.0.1:9900 --listen 10.250.0.1:9900 \
      --datastore "$DATASTORE" > "$MASTER_LOG" 2>&1 < /dev/null &
    echo $! > "$DEMO_DIR/master.pid"
    for _ in $(seq 100); do "$RELEASE/calicoctl" pool show >/dev/null 2>&1 && break; sleep 0.1; done
    "$RELEASE/calicoctl" pool show >/dev/null || die "the master did not start; see $MASTER_LOG"
    "$RELEASE/calicoctl" pool add 10.65.0.0/16 --nat-outgoing
    for p in A_C_E B D; do "$RELEASE/calicoctl" profile add "$p"; done
    echo
    "$RELEASE/calicoctl" pool show
    "$RELEASE/calicoctl" profile show
    echo
    echo "Explore:  $RELEASE/calicoctl profile A_C_E rule show"
    echo "          $RELEASE/calicoctl bgp default-node-as"
    echo "          ip netns exec lab-demo-h1 ping -c1 10.250.0.12"
    echo "Master:   log in $MASTER_LOG, data in $DATASTORE"
    echo "Stop:     $0 down"
    ;;
  down)
    stop_master
    [ -x "$RELEASE/calico-lab" ] || die "nothing to take down: $RELEASE/calico-lab is not built"
    "$RELEASE/calico-lab" down demo
    "$RELEASE/calico-lab" stop-dockerd
    ;;
  *)
    die "usage: $0 [up|down]"
    ;;
esac
