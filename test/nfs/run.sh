#!/usr/bin/env bash
# test/nfs/run.sh RESULTS_DIR — the NFS tests, from the host: boots the user-mode Linux guest once
# (uml-run.sh, NFS_VERS=3 so ganesha serves NFSv3 and NFSv4.x) and runs in-guest.sh there: the jest
# project "nfs" (real kernel NFS mounts of a real nfs-ganesha), csi-sanity against the NFS backend
# and the NFS partition torture test.
# Leaves nfs.json and sanity-nfs.txt in RESULTS_DIR, or a file "skipped" with the reason when UML
# cannot run here (uml-run.sh exit 77: it prints NFS TESTS SKIPPED loudly). Exit: the guest's.
set -uo pipefail
cd "$(dirname "$0")/../.."
results=${1:?usage: test/nfs/run.sh RESULTS_DIR}
shared=$PWD/.scratch/nfs-results   # inside the repository: the guest sees it at the same path
rm -rf "$shared" && mkdir -p "$shared"
TETHER_NFS_RESULTS=$shared NFS_VERS=3 UML_MEM=${UML_MEM:-768M} UML_TIMEOUT=${UML_TIMEOUT:-1800} \
  bash test/nfs/uml-run.sh test/nfs/in-guest.sh 2> >(tee "$shared/stderr" >&2)
rc=$?
wait
cp -f "$shared"/nfs.json "$shared"/sanity-nfs.txt "$shared"/partition-nfs.txt "$results"/ 2>/dev/null
if [ "$rc" = 77 ]; then
  grep -m1 'NFS TESTS SKIPPED' "$shared/stderr" > "$results/skipped" || echo "NFS TESTS SKIPPED" > "$results/skipped"
fi
rm -rf "$shared"
exit "$rc"
