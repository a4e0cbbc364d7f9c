#!/usr/bin/env bash
# The whole test suite against the real brokers, then one plain summary line for CI:
#   N passed, N failed, N skipped
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .test-results
bash scripts/preflight-brokers.sh
preflight=$?
if [ $preflight -ne 0 ] && [ "${CI:-}" = "true" ]; then
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
vitest run --reporter=default --reporter=json --outputFile.json=.test-results/vitest.json "$@"
rc=$?
node -e '
  const fs = require("node:fs")
  let r
  try { r = JSON.parse(fs.readFileSync(".test-results/vitest.json", "utf8")) } catch { r = undefined }
  if (r === undefined) { console.log("0 passed, 1 failed, 0 skipped"); process.exit(0) }
  const failedSuites = (r.testResults ?? []).filter((s) => s.status === "failed" && (s.assertionResults ?? []).length === 0).length
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests + failedSuites} failed, ${r.numPendingTests + r.numTodoTests} skipped`)
'
if [ $rc -eq 0 ] && [ $preflight -ne 0 ]; then rc=1; fi
exit $rc
