#!/usr/bin/env bash
# The main job: install what is needed, build in release mode, and start the system on its embedded
# default, leaving it running. Run again, it starts afresh. `scripts/main.sh down` takes it all down.
#
# What runs today: the demo lab (two hosts on a fabric with a management link, in slot 0:
# 10.250.0.0/24 and fd00:250::/64). The master, calico-node on each host and the demo containers
# start here as they are built.
source "$(dirname "$0")/common.sh"
require_root

case "${1:-up}" in
  up)
    ensure_packages "${BUILD_PACKAGES[@]}" "${LAB_PACKAGES[@]}"
    ensure_rust
    build_release
    say "starting the demo lab"
    "$RELEASE/calico-lab" up demo --hosts 2
    echo
    "$RELEASE/calicoctl" version
    echo
    echo "Explore:  ip netns exec lab-demo-h1 ping -c1 10.250.0.12"
    echo "          $RELEASE/calicoctl --help"
    echo "Stop:     $0 down"
    ;;
  down)
    [ -x "$RELEASE/calico-lab" ] || die "nothing to take down: $RELEASE/calico-lab is not built"
    "$RELEASE/calico-lab" down demo
    "$RELEASE/calico-lab" stop-dockerd
    ;;
  *)
    die "usage: $0 [up|down]"
    ;;
esac
