#!/usr/bin/env bash
# The docker stage of the test suite: tether with real Docker engines.
#   1. the binaries (dockerd and the docker CLI from their Go modules, runc) from the cache, built if missing (binaries.sh)
#   2. tether's image, from the Dockerfile as the e2e stage builds it (test/e2e/images/build-images.sh,
#      its base and layer cache kept in the cache): the Swarm plugin's rootfs, and node for the writers
#   3. the stories (test/docker/*.test.ts, jest project "docker"): each starts and stops its own
#      engines, plugins and sshd inside network namespaces of its own
# Writes RESULTS_DIR/docker.json (jest); exit 77 = skipped (no binaries and TETHER_DOCKER_NO_BUILD=1).
#   bash test/docker/run.sh RESULTS_DIR
set -uo pipefail
cd "$(dirname "$0")/../.."
results=$1
export NODE_OPTIONS=--experimental-vm-modules

exec 9> /run/tether-docker.lock
flock -n 9 || { echo "docker: another docker run holds /run/tether-docker.lock"; exit 1; }

bin=$(bash test/docker/binaries.sh)
rc=$?
if [ $rc = 77 ]; then echo "docker (engine binaries not built: TETHER_DOCKER_NO_BUILD=1)" > "$results/docker-skipped"; exit 77; fi
[ $rc = 0 ] || { echo "docker: the binaries could not be built"; exit 1; }
echo "docker: binaries ready in $bin"
images=/tmp/tether-docker-images
rm -rf "$images"
E2E_CACHE=${TETHER_CACHE:-/var/cache/tether}/e2e IMAGES="base_image tether_image" bash test/e2e/images/build-images.sh "$images" || { echo "docker: tether's image could not be built"; exit 1; }
TETHER_IMAGE_TAR=$images/tether.tar TETHER_DOCKER_BIN=$bin npx jest --selectProjects docker --runInBand --json --outputFile="$results/docker.json"
