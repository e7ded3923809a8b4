#!/usr/bin/env bash
# A one-machine distributed Roomcast for roomcast-bench: etcd, Redis, one push
# node, one room-biz node, one conn node and a router, each its own process on
# free loopback ports, so the bench can read the conn and push processes' CPU
# and RSS apart from room-biz and Redis.
#
#   scripts/bench-distributed.sh            # starts everything, prints the bench flags
#   D=/tmp/roomcast-dist
#   roomcast-bench $(cat $D/bench-flags) --server-pid $(cat $D/conn.pid),$(cat $D/push.pid) small-rooms
#   roomcast-bench $(cat $D/bench-flags) --server-pid $(cat $D/conn.pid) idle
#   kill "$(cat /tmp/roomcast-dist/supervisor.pid)"   # or Ctrl-C: stops everything
#
# Builds nothing: run `cargo build --release --workspace --bins` first (the services,
# and `roomcast-bench` from the `bench/` crate: target/release/roomcast-bench).
# Environment: CARGO_TARGET_DIR (binaries), ROOMCAST_DIST_DIR (default
# /tmp/roomcast-dist), ROOMCAST_SECRET (token secret, default a random one),
# ROOMCAST_WORKER_THREADS (per service, default 1),
# and any ROOMCAST_<SVC>_* setting the services read.
set -euo pipefail

bin="${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/release"
dir="${ROOMCAST_DIST_DIR:-/tmp/roomcast-dist}"
# Distributed services refuse the development secret: make one per run.
secret="${ROOMCAST_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
admin_token="${ROOMCAST_ADMIN_TOKEN:-bench-admin-token-0123456789}"
# Six processes share this machine's CPUs, as pods with a 1-CPU request share
# a node: each service runs one worker thread unless told otherwise (without
# it every service starts a worker per CPU, and each event pays a
# cross-thread wakeup; docs/benchmarks.md "Sixth sitting").
export ROOMCAST_WORKER_THREADS="${ROOMCAST_WORKER_THREADS:-1}"
export ROOMCAST_INTERNAL_TOKEN="${ROOMCAST_INTERNAL_TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
for b in roomcast-push roomcast-biz roomcast-conn roomcast-router roomcast; do
    [[ -x "$bin/$b" ]] || { echo "$bin/$b not found: cargo build --release --workspace --bins" >&2; exit 69; }
done
for b in etcd redis-server; do
    command -v "$b" >/dev/null || { echo "$b not found: run scripts/install-deps.sh" >&2; exit 69; }
done

rm -rf "$dir" && mkdir -p "$dir"
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pids=()
stop() {
    trap - EXIT INT TERM
    # The services first, while etcd and Redis still answer: a node leaves
    # discovery on its way out, and with etcd gone it spends its shutdown
    # timeout retrying. Then etcd and Redis (started first: pids 0 and 1).
    local services=("${pids[@]:2}")
    if ((${#services[@]})); then
        kill "${services[@]}" 2>/dev/null || true
        wait "${services[@]}" 2>/dev/null || true
    fi
    kill "${pids[@]:0:2}" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap stop EXIT INT TERM
start() { # name, command…
    local name=$1
    shift
    "$@" >"$dir/$name.log" 2>&1 &
    pids+=($!)
    echo $! >"$dir/$name.pid"
}
wait_ready() { # name, url
    for _ in $(seq 1 300); do
        curl -sf "$2" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$1 did not become ready ($2: $(curl -s "$2" 2>&1)); see $dir/$1.log" >&2
    exit 69
}

etcd_port=$(free_port) etcd_peer=$(free_port) redis_port=$(free_port)
start etcd etcd --data-dir "$dir/etcd" --name bench \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "bench=http://127.0.0.1:$etcd_peer"
start redis redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no
wait_ready etcd "http://127.0.0.1:$etcd_port/health"
for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

common=(--etcd "127.0.0.1:$etcd_port")
redis="redis://127.0.0.1:$redis_port"
# Every service serves /metrics and /readyz on its --ops-listen.
push_ops=$(free_port) biz_port=$(free_port) conn_port=$(free_port)
conn_ops=$(free_port) router_port=$(free_port) biz_ops=$(free_port)
backend_port=$(free_port) admin_port=$(free_port) router_ops=$(free_port)
start push "$bin/roomcast-push" "${common[@]}" --node-id push-1 --redis "$redis" \
    --listen "127.0.0.1:$(free_port)" --ops-listen "127.0.0.1:$push_ops"
# The bench publishes for every room with one API key: lift the per-key
# write quota (200/s by default).
ROOMCAST_BIZ_NODE__BACKEND_WRITE_RATE_PER_SEC=1000000 ROOMCAST_BIZ_NODE__BACKEND_WRITE_BURST=1000000 \
start biz "$bin/roomcast-biz" "${common[@]}" --node-id biz-1 --redis "$redis" --token-secret "$secret" \
    --listen "127.0.0.1:$biz_port" --grpc-listen "127.0.0.1:$(free_port)" \
    --backend-listen "127.0.0.1:$backend_port" --ops-listen "127.0.0.1:$biz_ops"
start conn "$bin/roomcast-conn" "${common[@]}" --node-id conn-1 --token-secret "$secret" \
    --listen "127.0.0.1:$conn_port" --quic-listen "" --ops-listen "127.0.0.1:$conn_ops"
ROOMCAST_ROUTER_NODE__ADMIN_TOKEN="$admin_token" \
start router "$bin/roomcast-router" "${common[@]}" --node-id router-1 \
    --listen "127.0.0.1:$router_port" --admin-listen "127.0.0.1:$admin_port" --ops-listen "127.0.0.1:$router_ops"
for svc in push:$push_ops biz:$biz_ops conn:$conn_ops router:$router_ops; do
    wait_ready "${svc%%:*}" "http://127.0.0.1:${svc#*:}/readyz"
done
# An API key for the bench's backend calls, made the way an operator would.
api_key=$("$bin/roomcast" ctl --admin-url "http://127.0.0.1:$admin_port" --admin-token "$admin_token" \
    api-key create --name bench | head -1)

conn_pid=$(cat "$dir/conn.pid") push_pid=$(cat "$dir/push.pid")
echo "--ws-url ws://127.0.0.1:$conn_port/v1/ws --biz-url http://127.0.0.1:$biz_port --backend-url http://127.0.0.1:$backend_port --api-key $api_key --secret $secret --metrics-url http://127.0.0.1:$conn_ops/metrics" >"$dir/bench-flags"
echo $$ >"$dir/supervisor.pid"
cat <<EOF
Roomcast distributed on loopback (logs and pids in $dir):
  conn   pid $conn_pid  ws://127.0.0.1:$conn_port/v1/ws   metrics http://127.0.0.1:$conn_ops/metrics
  push   pid $push_pid  metrics http://127.0.0.1:$push_ops/metrics
  biz    pid $(cat "$dir/biz.pid")  http://127.0.0.1:$biz_port  backend http://127.0.0.1:$backend_port
  router pid $(cat "$dir/router.pid")  http://127.0.0.1:$router_port
  redis  pid $(cat "$dir/redis.pid")  $redis    etcd 127.0.0.1:$etcd_port
Bench flags: \$(cat $dir/bench-flags) --server-pid $conn_pid,$push_pid   (the conn pid alone for idle RSS)
EOF
wait
