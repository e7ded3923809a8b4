# syntax=docker/dockerfile:1
# One runtime image with the four service binaries (roomcast-router,
# roomcast-conn, roomcast-push, roomcast-biz) and the roomcast CLI.
#
#   docker build -t roomcast:0.1.0 --build-arg ROOMCAST_GIT_SHA=$(git rev-parse --short HEAD) .
#
# The chart (helm/roomcast) and deploy/compose/docker-compose.yml run it with
# the binary as the command, e.g. `roomcast-conn --config /etc/roomcast/conn.toml`.

# --- build -----------------------------------------------------------------
# Same toolchain as rust-toolchain.toml.
FROM rust:1.95-bookworm AS build
# etcd-client's build script runs protoc (our own protos use protox).
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Shown in roomcast_build_info{git_sha} on every service.
ARG ROOMCAST_GIT_SHA=unknown
ENV ROOMCAST_GIT_SHA=${ROOMCAST_GIT_SHA}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        -p router -p conn-layer -p push-layer -p room-biz -p roomcast \
 && mkdir -p /out \
 && cp target/release/roomcast-router target/release/roomcast-conn \
       target/release/roomcast-push target/release/roomcast-biz \
       target/release/roomcast /out/

# --- runtime ---------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# ca-certificates: TLS to etcd, Redis and PostgreSQL with public roots.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 roomcast \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin roomcast
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
# router HTTP, conn WebSocket, biz HTTP, router admin, conn QUIC (UDP),
# push gRPC, push ops, conn ops, biz gRPC.
EXPOSE 8600 8601 8602 8603 8604/udp 8610 8611 8612 8613
# No default service: name the binary, e.g. `roomcast-push --help`. The CLI's
# `roomcast standalone --bind 0.0.0.0` runs everything in one process.
CMD ["roomcast", "--help"]
