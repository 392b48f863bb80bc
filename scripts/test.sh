#!/usr/bin/env bash
# The project's test command (`npm test`): the Python toolkit's pytest suite, the TypeScript type check, then the
# TypeScript suite (vitest).
# Ends with one summary line "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p .cache
status=0

bash scripts/toolkit.sh -m pytest -q -p no:cacheprovider models/toolkit/tests 2>&1 | tee .cache/pytest.log
py_rc=${PIPESTATUS[0]}
[ "$py_rc" -eq 0 ] || status=1

# vitest runs TypeScript through esbuild, which strips types without checking them.
if npx tsc --noEmit; then echo "typecheck: ok"; else echo "typecheck: failed"; status=1; fi

npx vitest run --reporter=default --reporter=json --outputFile.json=.cache/vitest.json
[ $? -eq 0 ] || status=1

node - <<'JS'
const fs = require('node:fs');
const log = fs.existsSync('.cache/pytest.log') ? fs.readFileSync('.cache/pytest.log', 'utf8') : '';
const count = (word) => Number((log.match(new RegExp(`(\\d+) ${word}`)) || [0, 0])[1]);
let passed = count('passed');
let failed = count('failed') + count('error');
try {
  const v = JSON.parse(fs.readFileSync('.cache/vitest.json', 'utf8'));
  passed += v.numPassedTests;
  failed += v.numFailedTests;
} catch {
  failed += 1; // vitest did not report: count it as a failure
}
console.log(`tests: ${passed} passed, ${failed} failed`);
JS
exit $status
