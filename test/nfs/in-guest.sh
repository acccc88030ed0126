#!/usr/bin/env bash
# Runs INSIDE the guest (test/nfs/run.sh starts it through uml-run.sh): the NFS integration tests
# (jest project "nfs"), csi-sanity against the NFS backend and the NFS partition torture test
# (test/partition --nfs), in one boot. Results go to $TETHER_NFS_RESULTS (a directory the host
# shares): nfs.json (jest), sanity-nfs.txt and partition-nfs.txt.
set -uo pipefail
[ "${IN_UML:-}" = 1 ] || { echo "in-guest.sh: runs inside the guest: test/nfs/run.sh" >&2; exit 2; }
results=${TETHER_NFS_RESULTS:?TETHER_NFS_RESULTS must name the results directory}
source "$(dirname "$0")/../tools/stage.sh"
# jest through node directly: npx costs ~5 s under UML.
stage "nfs-integration (in the guest)" node node_modules/jest/bin/jest.js --selectProjects nfs --runInBand --json --outputFile="$results/nfs.json"
stage "csi-sanity-nfs (in the guest)" bash -c "node dist/test/sanity/sanity.js --nfs | tee '$results/sanity-nfs.txt'; exit \${PIPESTATUS[0]}"
stage "partition-nfs (in the guest)" bash -c "node dist/test/partition/partition.js --nfs --rounds 10 | tee '$results/partition-nfs.txt'; exit \${PIPESTATUS[0]}"
exit $status
