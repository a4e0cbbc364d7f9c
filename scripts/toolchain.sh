#!/usr/bin/env bash
# Provisions the project's toolchain from the npm registry only: Node 24 (the `node` package ships the
# real binary), pnpm, then the workspace's dependencies. Idempotent and quick once provisioned.
# Source it (it exports PATH) or run it.
set -euo pipefail
SWITCHYARD_ROOT="${SWITCHYARD_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
TOOLS="$SWITCHYARD_ROOT/.tools"
NODE_SPEC="node@24"
PNPM_SPEC="pnpm@10.34.8"

quiet_npm() { npm "$@" --no-audit --no-fund --loglevel=error 2>&1 | grep -v 'nodedir' || true; }

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ ! -x "$TOOLS/node/node_modules/.bin/node" ] || [ "$(node_major "$TOOLS/node/node_modules/.bin/node")" != "24" ]; then
  echo "[setup] installing $NODE_SPEC into .tools/node (npm registry)" >&2
  mkdir -p "$TOOLS/node"
  quiet_npm install --prefix "$TOOLS/node" --no-save "$NODE_SPEC" >&2
fi
if [ ! -x "$TOOLS/pnpm/node_modules/.bin/pnpm" ]; then
  echo "[setup] installing $PNPM_SPEC into .tools/pnpm (npm registry)" >&2
  mkdir -p "$TOOLS/pnpm"
  quiet_npm install --prefix "$TOOLS/pnpm" --no-save "$PNPM_SPEC" >&2
fi
export PATH="$TOOLS/node/node_modules/.bin:$TOOLS/pnpm/node_modules/.bin:$PATH"
[ "$(node_major node)" = "24" ] || { echo "[setup] Node 24 is not first on PATH" >&2; exit 1; }

# Install workspace dependencies when the lockfile changed since the last install.
stamp="$SWITCHYARD_ROOT/node_modules/.switchyard-install-stamp"
lock_sum=$( (cat "$SWITCHYARD_ROOT/pnpm-lock.yaml" "$SWITCHYARD_ROOT"/package.json "$SWITCHYARD_ROOT"/*/package.json "$SWITCHYARD_ROOT"/packages/*/package.json "$SWITCHYARD_ROOT"/scripts/*/package.json 2>/dev/null || true) | cksum)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_sum" ]; then
  echo "[setup] pnpm install" >&2
  if [ -f "$SWITCHYARD_ROOT/pnpm-lock.yaml" ] && [ "${CI:-}" = "true" ]; then
    (cd "$SWITCHYARD_ROOT" && pnpm install --frozen-lockfile --reporter=append-only >&2)
  else
    (cd "$SWITCHYARD_ROOT" && pnpm install --reporter=append-only >&2)
  fi
  lock_sum=$( (cat "$SWITCHYARD_ROOT/pnpm-lock.yaml" "$SWITCHYARD_ROOT"/package.json "$SWITCHYARD_ROOT"/*/package.json "$SWITCHYARD_ROOT"/packages/*/package.json "$SWITCHYARD_ROOT"/scripts/*/package.json 2>/dev/null || true) | cksum)
  echo "$lock_sum" > "$stamp"
fi
