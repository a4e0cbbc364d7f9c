#!/usr/bin/env bash
# Installs Node <major> from the npm registry's `node` package into .tools/node<major> (idempotent, cached)
# and prints the path of its binary. The packaging test runs the packed packages on every supported major.
#   bash scripts/provision-node.sh 22
set -euo pipefail
major="${1:?usage: provision-node.sh <major>}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Node 24 is the toolchain's own Node (scripts/toolchain.sh installs it into .tools/node).
if [ "$major" = "24" ]; then dir="$root/.tools/node"; else dir="$root/.tools/node$major"; fi
bin="$dir/node_modules/.bin/node"
current() { "$bin" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ ! -x "$bin" ] || [ "$(current)" != "$major" ]; then
  echo "[setup] installing node@$major into .tools/node$major (npm registry)" >&2
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "node@$major" >&2
fi
[ "$(current)" = "$major" ] || { echo "[setup] $bin is not Node $major" >&2; exit 1; }
echo "$bin"
