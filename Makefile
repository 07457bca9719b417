# Dockmaster: `make run` (the app on devstack) and `make test` set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INFRA_VENV := .venv-infra

.PHONY: run test test-infra lint format bench system deps devstack-up devstack-down clean

system:
	@scripts/install-system.sh

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# Checkov and pycep-parser live in their own venv: their pins must not mix with the app's.
$(INFRA_VENV)/.installed: requirements-infra.txt
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install -q -r requirements-infra.txt pytest==9.2.0
	touch $@

deps: system $(VENV)/.installed node_modules/.installed

run: deps
	$(PY) -m devstack run

devstack-up: deps
	$(PY) -m devstack up

devstack-down:
	$(PY) -m devstack down

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy function_app.py triggers devstack shared tests benchmarks

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The Bicep checks that need no Bicep compiler: parse, Checkov, structural tests.
test-infra: $(INFRA_VENV)/.installed
	$(INFRA_VENV)/bin/checkov -d infra --framework bicep --quiet --compact --skip-download
	$(INFRA_VENV)/bin/python -m pytest -p no:cacheprovider -W error tests/infra

test: deps lint test-infra
	$(PY) -m pytest

bench: deps
	$(PY) -m benchmarks.report

clean:
	rm -rf $(VENV) $(INFRA_VENV) node_modules .devstack .pytest_cache .mypy_cache .ruff_cache
