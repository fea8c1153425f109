#!/usr/bin/env bash
# The main job: install what is needed, build in release mode, and start the system on its embedded
# default, leaving it running. Run again, it starts afresh. `scripts/main.sh down` takes it all down.
#
# What it starts: the demo lab (two hosts on a fabric in slot 0: h1 = 10.250.0.11 / fd00:250::11 and
# h2 = 10.250.0.12 / fd00:250::12, management address 10.250.0.1 / fd00:250::1), the master on its
# embedded store (listening on loopback and on the management address, so the hosts reach it), calico-node
# on each host (Felix, the BGP speaker and the Docker proxy on the host's 127.0.0.1:2375), and the Getting
# Started's five containers started with the ordinary docker CLI through each host's proxy: A, B, C on h1
# and D, E on h2, profiles {A, C, E}, {B}, {D}. It then prints who can reach whom.
source "$(dirname "$0")/common.sh"
require_root

DEMO_DIR=/run/calico-demo
DATA_DIR=/var/lib/calico/demo
DATASTORE=$DATA_DIR/master.db
LOG_DIR=/var/log/calico
MASTER_URL=http://10.250.0.1:9900
HOSTS=(h1 h2)
declare -A HOST_IP=([h1]=10.250.0.11 [h2]=10.250.0.12)
declare -A HOST_IP6=([h1]=fd00:250::11 [h2]=fd00:250::12)
# name host IPv4 IPv6 profile
CONTAINERS=(
  "A h1 10.65.0.2 fd00:65::2 A_C_E"
  "B h1 10.65.0.3 fd00:65::3 B"
  "C h1 10.65.0.4 fd00:65::4 A_C_E"
  "D h2 10.65.1.2 fd00:65::12 D"
  "E h2 10.65.1.3 fd00:65::13 A_C_E"
)

# stop_recorded NAME PATTERN: stops the process recorded in $DEMO_DIR/NAME.pid, only if it still runs
# PATTERN (so a recycled PID is never signalled), and waits for it to end.
stop_recorded() {
  local file="$DEMO_DIR/$1.pid"
  [ -f "$file" ] || return 0
  local pid; pid="$(cat "$file")"
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "$2"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      [ -d "/proc/$pid" ] || break
      grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break
      sleep 0.1
    done
  fi
  rm -f "$file"
}

stop_all() {
  for h in "${HOSTS[@]}"; do stop_recorded "node-$h" "calicoctl.*node run"; done
  stop_recorded master "calicoctl master run"
}

ctl() { "$RELEASE/calicoctl" --master "$MASTER_URL" "$@"; }
on_host() { local h=$1; shift; ip netns exec "lab-demo-$h" "$@"; }
dock() { local h=$1; shift; on_host "$h" docker -H tcp://127.0.0.1:2375 "$@"; }

declare -A HOST_OF IP_OF
for c in "${CONTAINERS[@]}"; do
  read -r name host ip _ _ <<< "$c"
  HOST_OF[$name]=$host
  IP_OF[$name]=$ip
done

# ping_from NAME IP: one ping from inside the container, through its host's proxy.
ping_from() { dock "${HOST_OF[$1]}" exec "calico-demo-$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1; }

case "${1:-up}" in
  up)
    started=$(date +%s)
    ensure_packages "${BUILD_PACKAGES[@]}" "${LAB_PACKAGES[@]}"
    ensure_rust
    build_release
    stop_all
    say "starting the demo lab (afresh)"
    "$RELEASE/calico-lab" down demo >/dev/null 2>&1 || true
    "$RELEASE/calico-lab" up demo --hosts 2
    "$RELEASE/calico-lab" image >/dev/null
    mkdir -p "$DEMO_DIR" "$DATA_DIR" "$LOG_DIR"
    rm -rf "$DATASTORE" "$DATA_DIR"/node-*
    say "starting the master (embedded store: $DATASTORE)"
    setsid "$RELEASE/calicoctl" master run --listen 127.0.0.1:9900 --listen 10.250.0.1:9900 \
      --datastore "$DATASTORE" > "$LOG_DIR/demo-master.log" 2>&1 < /dev/null &
    echo $! > "$DEMO_DIR/master.pid"
    for _ in $(seq 100); do ctl pool show >/dev/null 2>&1 && break; sleep 0.1; done
    ctl pool show >/dev/null || die "the master did not start; see $LOG_DIR/demo-master.log"
    ctl pool add 10.65.0.0/16 --nat-outgoing >/dev/null
    ctl pool add fd00:65::/64 >/dev/null
    for p in A_C_E B D; do ctl profile add "$p" >/dev/null; done
    for h in "${HOSTS[@]}"; do
      say "starting calico-node on $h (${HOST_IP[$h]}, ${HOST_IP6[$h]})"
      on_host "$h" setsid "$RELEASE/calicoctl" --master "$MASTER_URL" node run --name "$h" \
        --ip "${HOST_IP[$h]}" --ip6 "${HOST_IP6[$h]}" --state-dir "$DATA_DIR/node-$h" \
        --no-default-pools > "$LOG_DIR/demo-node-$h.log" 2>&1 < /dev/null &
      echo $! > "$DEMO_DIR/node-$h.pid"
    done
    for h in "${HOSTS[@]}"; do
      for _ in $(seq 300); do
        ctl -o json status --node "$h" 2>/dev/null | grep -q '"state": *"ready"' && break
        sleep 0.1
      done
      ctl -o json status --node "$h" 2>/dev/null | grep -q '"state": *"ready"' \
        || die "calico-node on $h is not ready after 30 s; see $LOG_DIR/demo-node-$h.log"
    done
    say "starting the five containers through each host's Docker proxy"
    for c in "${CONTAINERS[@]}"; do
      set -- $c
      dock "$2" run -d --name "calico-demo-$1" --label calico-lab=demo \
        -e "CALICO_IP=$3,$4" -e "CALICO_PROFILE=$5" calico-lab/busybox:latest sleep 1d >/dev/null
      printf '    %s on %s: %s, %s, profile %s\n' "$1" "$2" "$3" "$4" "$5"
    done
    echo
    say "who can reach whom (A's profile A_C_E admits C and E; B and D are in other profiles)"
    for pair in "A C yes" "A E yes" "A B no" "A D no"; do
      read -r from to expected <<< "$pair"
      target=${IP_OF[$to]}
      ok=no
      for _ in 1 2 3 4 5; do
        if ping_from "$from" "$target"; then ok=yes; break; fi
        [ "$expected" = no ] && break
        sleep 1
      done
      verdict="is denied"; [ "$ok" = yes ] && verdict="reaches"
      mark="UNEXPECTED"; [ "$ok" = "$expected" ] && mark="as expected"
      printf '    %s -> %s (%s): %s, %s\n' "$from" "$to" "$target" "$verdict" "$mark"
    done
    echo
    ctl status
    echo
    echo "Ready in $(( $(date +%s) - started )) s. Try:"
    echo "  ip netns exec lab-demo-h1 docker -H tcp://127.0.0.1:2375 ps"
    echo "  ip netns exec lab-demo-h1 docker -H tcp://127.0.0.1:2375 exec calico-demo-A ping -c1 10.65.1.3"
    echo "  ip netns exec lab-demo-h1 docker -H tcp://127.0.0.1:2375 run --rm -e CALICO_IP=auto -e CALICO_PROFILE=B calico-lab/busybox:latest ip addr"
    echo "  $RELEASE/calicoctl status            # nodes, Felix, BGP sessions"
    echo "  $RELEASE/calicoctl endpoint show"
    echo "  $RELEASE/calicoctl profile A_C_E rule add inbound allow from tag B   # then B reaches A"
    echo "Logs: $LOG_DIR/demo-*.log   Stop: $0 down"
    ;;
  down)
    stop_all
    [ -x "$RELEASE/calico-lab" ] || die "nothing to take down: $RELEASE/calico-lab is not built"
    "$RELEASE/calico-lab" down demo
    "$RELEASE/calico-lab" stop-dockerd
    rm -rf "$DATA_DIR"
    ;;
  *)
    die "usage: $0 [up|down]"
    ;;
esac
