#!/usr/bin/env bash
# The e2e stage of the test suite: tether on a real Kubernetes.
#   1. the binaries (Kubernetes v1.36.1, etcd, CSI sidecars) from the cache, built if missing (binaries.sh)
#   2. the images: tether's from the Dockerfile by a real dockerd, the sidecars', pause, busybox (images/build-images.sh)
#   3. the cluster, on loopback inside /tmp/tether-e2e (cluster/cluster.sh)
#   4. the story (kubernetes.test.ts): helm install, claims, pods, snapshot, expansion, rolling update, uninstall
#   5. the cluster down, whatever happened
# Prints each phase's time. Writes RESULTS_DIR/e2e.json (jest); exit 77 = skipped (no binaries and TETHER_E2E_NO_BUILD=1).
#   bash test/e2e/run.sh RESULTS_DIR
set -uo pipefail
cd "$(dirname "$0")/../.."
results=$1
run=/tmp/tether-e2e
export E2E_T0=${E2E_T0:-$(date +%s)} NODE_OPTIONS=--experimental-vm-modules
phase() { printf '[e2e %4d s] %s\n' "$(($(date +%s) - E2E_T0))" "$*"; }

exec 9> /run/tether-e2e.lock
flock -n 9 || { echo "e2e: another e2e run holds /run/tether-e2e.lock"; exit 1; }

bin=$(bash test/e2e/binaries.sh)
rc=$?
if [ $rc = 77 ]; then echo "e2e (Kubernetes binaries not built: TETHER_E2E_NO_BUILD=1)" > "$results/e2e-skipped"; exit 77; fi
[ $rc = 0 ] || { echo "e2e: the binaries could not be built"; exit 1; }
phase "binaries ready in $bin"

bash test/e2e/cluster/cluster.sh down "$run" > /dev/null 2>&1   # what a killed earlier run left
rm -rf "$run" && mkdir -p "$run"
E2E_CACHE=${TETHER_CACHE:-/var/cache/tether}/e2e E2E_BIN=$bin bash test/e2e/images/build-images.sh "$run/images" || { echo "e2e: the images could not be built"; exit 1; }
phase "images built"

trap 'bash test/e2e/cluster/cluster.sh down "$run"' EXIT
bash test/e2e/cluster/cluster.sh up "$run" "$bin" "$run/images" || exit 1

TETHER_E2E_RUN=$run TETHER_E2E_BIN=$bin npx jest --selectProjects e2e --runInBand --json --outputFile="$results/e2e.json"
rc=$?
phase "story done (jest exit code $rc)"
if [ $rc != 0 ]; then
  for f in "$run"/log/kubelet.log "$run"/pod-logs/tether_*/*/*.log; do [ -f "$f" ] && { echo "--- ${f#"$run"/} (last lines)"; tail -8 "$f" | cut -c1-400; }; done
fi
exit $rc
