#!/usr/bin/env bash
# Install the programs Roomcast's build and tests need, if missing. Idempotent.
#   (no protoc: every .proto is compiled by protox, pure Rust; see
#   vendor/etcd-client/ROOMCAST.md)
#   redis-server  message log and room store tests (also redis-cli for Cluster)
#   etcd          discovery tests
#   postgresql    archive tests (initdb, pg_ctl, postgres; Debian keeps them in
#                 /usr/lib/postgresql/<major>/bin, off PATH)
#   node, npm     the TypeScript SDK and the demo page (scripts/test-web.sh)
#   chromium      the demo page's browser test (headless, driven by playwright-core),
#                 with an emoji font
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 \
  || need+=(postgresql)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
# Emoji in the demo page's screenshot (docs/demo.png); cosmetic.
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need+=(fonts-noto-color-emoji)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "==> installing: ${need[*]}"
if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
else
  echo "error: please install these packages with your system's package manager: ${need[*]}" >&2
  exit 1
fi
