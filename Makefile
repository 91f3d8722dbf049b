# The two commands of the README: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= examples/quickstart.yaml

.PHONY: run test test-fast lint schema bench

run:  ## serve /v1/responses on 127.0.0.1:4000 from the bundled quickstart config
	scripts/bootstrap.sh python
	$(VENV)/bin/modelgate-gateway --config $(CONFIG)

test:  ## install everything (venv, Prometheus, Redis, helm) and run every test layer
	scripts/bootstrap.sh all
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(PY) -m pytest -q -p no:cacheprovider

test-fast:  ## unit and contract tests only
	$(PY) -m pytest -q tests/unit tests/contract

lint:
	$(VENV)/bin/ruff check gateway/src operator/src tests bench
	$(VENV)/bin/mypy gateway/src/modelgate_gateway operator/src/modelgate_operator

schema:  ## regenerate the checked-in JSON Schema of the config document
	$(PY) -m modelgate_gateway.config.schema > gateway/src/modelgate_gateway/config/schemas/v1alpha1.json
	$(PY) -m modelgate_gateway.config.reference > docs/config.md

bench:
	scripts/bootstrap.sh python
	$(PY) bench/run.py
