#!/usr/bin/env bash
# The one test command (README "Test it"; CI runs exactly this).
#
# 1. Installs what the tests need and is missing (redis-server, etcd, node,
#    chromium), via apt on Debian/Ubuntu; elsewhere it names what to install.
# 2. cargo fmt --check, a build of the .proto build scripts that proves no
#    system protoc is needed, cargo clippy -D warnings, the deployment files
#    (scripts/check-deploy.sh: helm chart, compose file, dashboard, alert
#    rules; it installs helm, kubernetes-validate and docker-compose once
#    under /var/tmp/roomcast-tools), the whole test suite.
# 3. The TypeScript SDK and the demo page (scripts/test-web.sh): unit,
#    integration and headless-Chromium browser tests.
#
# Tests start their own redis-server and etcd on free loopback ports; nothing
# here touches a server already running on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds are slow on small machines: keep artifacts outside the clone so a
# reused machine starts warm. Override with CARGO_TARGET_DIR.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/roomcast-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

scripts/install-deps.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> the .proto build scripts without protoc"
# The README promises a build with only the Rust toolchain. The crates whose
# build scripts compile .proto files are built in a target dir of their own,
# their build scripts forced to run again, with PROTOC pointing nowhere: one
# that needed protoc would fail here. (Its own dir, so the main build stays warm.)
noprotoc="${CARGO_TARGET_DIR}-noprotoc"
rm -rf "$noprotoc"/debug/build/proto-* "$noprotoc"/debug/build/etcd-client-* \
  "$noprotoc"/debug/.fingerprint/proto-* "$noprotoc"/debug/.fingerprint/etcd-client-*
# (One crate per build: cargo does not match the patched etcd-client in a
# list with a workspace member.)
etcd_client_version=$(sed -n 's/^version = "\(.*\)"/\1/p' vendor/etcd-client/Cargo.toml | head -1)
for crate in proto "etcd-client@$etcd_client_version"; do
  PROTOC=/nonexistent/protoc cargo build -p "$crate" --locked --target-dir "$noprotoc"
done
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo build (service binaries used by the process tests)"
cargo build --workspace --bins --locked
echo "==> deployment files (helm chart, compose file, dashboard, alert rules)"
scripts/check-deploy.sh
echo "==> cargo test"
cargo test --workspace --locked -- --test-threads="${ROOMCAST_TEST_THREADS:-4}"
scripts/test-web.sh
echo "==> all green"
