#!/usr/bin/env bash
# The one test command (README "Test it"; CI runs exactly this).
#
# 1. Installs what the tests need and is missing (redis-server, etcd), via
#    apt on Debian/Ubuntu; elsewhere it names what to install.
# 2. cargo fmt --check, a build that proves no system protoc is needed,
#    cargo clippy -D warnings, the whole test suite.
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
echo "==> cargo build without protoc (service binaries used by the process tests)"
# The README promises a build with only the Rust toolchain. The build scripts
# that compile .proto files are made to run again, with PROTOC pointing
# nowhere: one that needed protoc would fail here.
touch proto/build.rs vendor/etcd-client/build.rs
PROTOC=/nonexistent/protoc cargo build --workspace --bins --locked
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked -- --test-threads="${ROOMCAST_TEST_THREADS:-4}"
echo "==> all green"
