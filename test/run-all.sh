#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, then runs unit tests, integration tests
# (real sshd + sshfs), csi-sanity, the seeded fuzz test (test/fuzz: 10,500 hostile calls over every
# CSI method), the partition torture test (test/partition: node plugins in
# network namespaces of their own, links cut while they write), the real-Kubernetes e2e (test/e2e/run.sh:
# the image built from the Dockerfile, `helm install` on a one-node cluster built from Go modules), and the NFS tests with csi-sanity on NFS (test/nfs/run.sh: a real
# nfs-ganesha and a real kernel NFS client in a user-mode Linux guest), and a smoke run of every
# benchmark (bench/: tiny sizes, so that none rots; `npm run bench` is the real run), and the tests with real Docker engines
# (test/docker/run.sh: dockerd built from its Go module, tether's Docker plugin). Prints a closing line "tests: N passed, M failed, K skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
export NODE_OPTIONS=--experimental-vm-modules FORCE_COLOR=0

bash test/tools/install.sh || { echo "tests: 0 passed, 1 failed (tool install failed)"; exit 1; }
npm run -s build || { echo "tests: 0 passed, 1 failed (build failed)"; exit 1; }

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
source "$(dirname "$0")/tools/stage.sh"
stage unit npx jest --selectProjects unit --json --outputFile="$results/unit.json"
stage integration npx jest --selectProjects integration --runInBand --json --outputFile="$results/integration.json"
stage csi-sanity bash -c "node dist/test/sanity/sanity.js | tee '$results/sanity.txt'; exit \${PIPESTATUS[0]}"
stage fuzz bash -c "node dist/test/fuzz/fuzz.js | tee '$results/fuzz.txt'; exit \${PIPESTATUS[0]}"
stage partition-sshfs bash -c "node dist/test/partition/partition.js --rounds 20 | tee '$results/partition.txt'; a=\${PIPESTATUS[0]}; node dist/test/partition/partition.js --rounds 2 --control | tee -a '$results/partition.txt'; exit \$((a | PIPESTATUS[0]))"
stage bench-smoke bash -c "node dist/bench/run.js --smoke | tee '$results/bench.txt'; exit \${PIPESTATUS[0]}"
stage e2e bash -c "bash test/e2e/run.sh '$results'; rc=\$?; [ \$rc = 77 ] || exit \$rc"
stage docker bash -c "bash test/docker/run.sh '$results'; rc=\$?; [ \$rc = 77 ] || exit \$rc"
stage nfs bash -c "bash test/nfs/run.sh '$results'; rc=\$?; [ \$rc = 77 ] || exit \$rc"

node - "$results" <<'JS'
const fs = require('fs'); const dir = process.argv[2];
let p = 0, f = 0, s = 0;
const nfsSkipped = fs.existsSync(`${dir}/skipped`);
if (nfsSkipped) { s += 1; console.log(`(${fs.readFileSync(`${dir}/skipped`, 'utf8').trim()}: the NFS tests and csi-sanity on NFS did not run)`); }
const e2eSkipped = fs.existsSync(`${dir}/e2e-skipped`);
const dockerSkipped = fs.existsSync(`${dir}/docker-skipped`);
if (dockerSkipped) { s += 1; console.log(`(SKIPPED ${fs.readFileSync(`${dir}/docker-skipped`, 'utf8').trim()}: the tests with real Docker engines did not run)`); }
if (e2eSkipped) { s += 1; console.log(`(SKIPPED ${fs.readFileSync(`${dir}/e2e-skipped`, 'utf8').trim()}: the real-Kubernetes e2e did not run)`); }
for (const name of ['unit', 'integration', ...(e2eSkipped ? [] : ['e2e']), ...(dockerSkipped ? [] : ['docker']), ...(nfsSkipped ? [] : ['nfs'])]) {
  try { const r = JSON.parse(fs.readFileSync(`${dir}/${name}.json`, 'utf8'));
        p += r.numPassedTests; f += r.numFailedTests + r.numRuntimeErrorTestSuites; s += r.numPendingTests + r.numTodoTests;
  } catch { f += 1; console.log(`(no results from ${name} tests)`); }
}
for (const [file, label] of [['sanity.txt', 'sanity'], ['fuzz.txt', 'fuzz'], ['bench.txt', 'bench-smoke'], ['partition.txt', 'partition-sshfs'], ['partition.txt', 'partition-sshfs-control'], ...(nfsSkipped ? [] : [['sanity-nfs.txt', 'sanity-nfs'], ['partition-nfs.txt', 'partition-nfs']])]) {
  const text = fs.existsSync(`${dir}/${file}`) ? fs.readFileSync(`${dir}/${file}`, 'utf8') : '';
  const m = new RegExp(`^${label}: (\\d+) passed, (\\d+) failed, (\\d+) skipped`, 'm').exec(text);
  if (m) { p += +m[1]; f += +m[2]; s += +m[3]; } else { f += 1; console.log(`(no results from ${label})`); }
}
console.log(`tests: ${p} passed, ${f} failed, ${s} skipped`);
JS
exit $status
