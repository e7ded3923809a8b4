#!/usr/bin/env bash
# The TypeScript SDK (@roomcast/client) and the demo page: npm ci (only when
# the lockfile changed), type check, unit tests, the committed demo bundle is
# current, the SDK builds, its size, integration tests against the built
# `roomcast` binary, and the headless Chromium browser test (screenshot to
# docs/demo.png). Run by scripts/test.sh after `cargo build --workspace --bins`.
set -euo pipefail
cd "$(dirname "$0")/../sdk/typescript"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/roomcast-target}"
export ROOMCAST_BIN="${ROOMCAST_BIN:-$CARGO_TARGET_DIR/debug/roomcast}"

# npm ci wipes node_modules: skip it when the same lockfile was installed.
stamp=node_modules/.roomcast-installed-lock
if ! cmp -s package-lock.json "$stamp" 2>/dev/null; then
  echo "==> npm ci (sdk/typescript)"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
echo "==> TypeScript: type check"
npx tsc -p tsconfig.json --noEmit
echo "==> TypeScript: unit tests"
npx vitest run test/unit
echo "==> demo page: committed bundle is current"
node demo/build.mjs --check
echo "==> TypeScript: build and size"
npx tsc -p tsconfig.build.json
node scripts/size.mjs
echo "==> TypeScript: integration tests (real roomcast standalone)"
npx vitest run test/integration
echo "==> demo page: browser test (headless Chromium)"
node test/browser/run.mjs
