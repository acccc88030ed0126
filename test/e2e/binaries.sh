#!/usr/bin/env bash
# Prints the directory holding the e2e stage's binaries (Kubernetes, etcd, CSI sidecars), building
# them first if they are not there. They are cached outside the clone, keyed by the contents of
# test/e2e/build (go.mod, go.sum, tools.go, build.sh) and the Go version, so a new pin builds anew.
# Cold, the build takes minutes (see the README, "Tested on a real Kubernetes"); with
# TETHER_E2E_NO_BUILD=1 a missing cache is not built: the script says so and exits 77 (the stage skips).
set -euo pipefail
build=$(cd "$(dirname "$0")/build" && pwd)
key=$( (cat "$build/go.mod" "$build/go.sum" "$build/tools.go" "$build/build.sh"; go env GOVERSION) | sha256sum | cut -c1-16)
dir=${TETHER_CACHE:-/var/cache/tether}/e2e-bin-$key
if [ ! -f "$dir/.complete" ]; then
  if [ "${TETHER_E2E_NO_BUILD:-}" = 1 ]; then
    echo "e2e: SKIPPED — the Kubernetes binaries for key $key are not in $dir and TETHER_E2E_NO_BUILD=1 says not to build them" >&2
    exit 77
  fi
  echo "e2e: building the Kubernetes, etcd and CSI sidecar binaries into $dir (cold: several minutes)" >&2
  start=$SECONDS
  bash "$build/build.sh" "$dir" >&2
  touch "$dir/.complete"
  echo "e2e: binaries built in $((SECONDS - start)) s" >&2
fi
echo "$dir"
