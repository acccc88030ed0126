#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, then runs unit tests, integration tests
# (real sshd + sshfs) and csi-sanity. Prints a closing line "tests: N passed, M failed, K skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
export NODE_OPTIONS=--experimental-vm-modules FORCE_COLOR=0

bash test/tools/install.sh || { echo "tests: 0 passed, 1 failed (tool install failed)"; exit 1; }
npm run -s build || { echo "tests: 0 passed, 1 failed (build failed)"; exit 1; }

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0
stage() { # name, command...
  local name=$1 start=$SECONDS; shift
  echo "=== $name"
  "$@" || status=1
  echo "=== $name took $((SECONDS - start)) s"
}
stage unit npx jest --selectProjects unit --json --outputFile="$results/unit.json"
stage integration npx jest --selectProjects integration --runInBand --json --outputFile="$results/integration.json"
stage csi-sanity bash -c "node dist/test/sanity/sanity.js | tee '$results/sanity.txt'; exit \${PIPESTATUS[0]}"

node - "$results" <<'JS'
const fs = require('fs'); const dir = process.argv[2];
let p = 0, f = 0, s = 0;
for (const name of ['unit', 'integration']) {
  try { const r = JSON.parse(fs.readFileSync(`${dir}/${name}.json`, 'utf8'));
        p += r.numPassedTests; f += r.numFailedTests + r.numRuntimeErrorTestSuites; s += r.numPendingTests + r.numTodoTests;
  } catch { f += 1; console.log(`(no results from ${name} tests)`); }
}
const m = /sanity: (\d+) passed, (\d+) failed, (\d+) skipped/.exec(fs.existsSync(`${dir}/sanity.txt`) ? fs.readFileSync(`${dir}/sanity.txt`, 'utf8') : '');
if (m) { p += +m[1]; f += +m[2]; s += +m[3]; } else { f += 1; console.log('(no results from csi-sanity)'); }
console.log(`tests: ${p} passed, ${f} failed, ${s} skipped`);
JS
exit $status
