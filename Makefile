# The two commands of the README: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= examples/quickstart.yaml

.PHONY: help run test test-cluster test-fast lint format schema bench

run:  ## serve /v1/responses on 127.0.0.1:4000 from the bundled quickstart config
	scripts/bootstrap.sh python
	$(VENV)/bin/modelgate-gateway --config $(CONFIG)

# The cluster layer (tests/cluster) runs against the envtest assets bootstrap installs here, unless
# KUBEBUILDER_ASSETS already points elsewhere; without either it skips.
ENVTEST := $(CURDIR)/.tools/envtest

test:  ## install everything (venv, Prometheus, Redis, helm, Codex CLI, TypeScript SDK, envtest) and run every test layer
	scripts/bootstrap.sh all
	if [ -z "$${KUBEBUILDER_ASSETS:-}" ] && [ -x $(ENVTEST)/kube-apiserver ]; then \
	  export KUBEBUILDER_ASSETS=$(ENVTEST); fi; \
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(PY) -m pytest -q -p no:cacheprovider --durations=15

test-cluster:  ## the cluster layer only (real kube-apiserver from the envtest assets)
	scripts/bootstrap.sh envtest
	KUBEBUILDER_ASSETS="$${KUBEBUILDER_ASSETS:-$(ENVTEST)}" PATH="$(CURDIR)/.tools/bin:$$PATH" \
	  $(PY) -m pytest -q -p no:cacheprovider tests/cluster

test-fast:  ## unit and contract tests only
	$(PY) -m pytest -q tests/unit tests/contract

# `make lint` is what .ci/run runs before the tests.
LINT_PATHS := gateway/src operator/src tests bench

lint:  ## ruff check and format --check, mypy --strict, the import contracts (.importlinter) and the dead-code check
	scripts/bootstrap.sh python
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy gateway/src/modelgate_gateway operator/src/modelgate_operator
	$(VENV)/bin/lint-imports --no-logo
	$(VENV)/bin/vulture gateway/src operator/src --min-confidence 80

format:  ## apply ruff's formatter and import sorting
	$(VENV)/bin/ruff check --select I --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

schema:  ## regenerate the checked-in JSON Schema of the config document
	$(PY) -m modelgate_gateway.config.schema > gateway/src/modelgate_gateway/config/schemas/v1alpha1.json
	$(PY) -m modelgate_gateway.config.reference > docs/config.md

bench:  ## the benchmark matrix (bench/README.md); results in bench/results and docs/performance.md
	scripts/bootstrap.sh python
	$(PY) bench/run.py

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16
