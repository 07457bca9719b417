# Dockmaster: `make run` (the app on devstack) and `make test` set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INFRA_VENV := .venv-infra

.PHONY: run test check stress test-infra lint format audit bench soak system deps devstack-up devstack-down clean

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

# Checkov lives alone in its own venv: its pins (packaging<24, ...) clash with the app's tools.
# --clear drops whatever an older requirements-infra.txt installed there.
$(INFRA_VENV)/.installed: requirements-infra.txt
	$(PYTHON) -m venv --clear $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install -q -r requirements-infra.txt
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
	$(VENV)/bin/mypy function_app.py triggers devstack shared tests benchmarks scripts
	$(VENV)/bin/bandit -q -r shared triggers function_app.py

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Known vulnerabilities in the app's pinned requirements (PyPI's advisory data by default; OSV with
# AUDIT_SERVICE=osv). Not part of `make test`: it needs the advisory service, not just a package index.
AUDIT_SERVICE ?= pypi
audit: $(VENV)/.installed
	$(VENV)/bin/pip-audit --strict --vulnerability-service $(AUDIT_SERVICE) -r requirements.txt

# Checkov on the Bicep templates, offline (no Bicep compiler needed). The structural
# tests (tests/infra) run with the other tests in $(VENV), from pyproject's testpaths.
test-infra: $(INFRA_VENV)/.installed
	$(INFRA_VENV)/bin/checkov -d infra --framework bicep --quiet --compact --skip-download

test: deps lint test-infra
	$(PY) -m pytest

# The fast loop while changing code: lint, types and every test that needs no service (the `devstack`
# marker is set on the others by tests/conftest.py); about a minute, no system packages.
check: lint
	$(PY) -m pytest -q -m "not devstack"

# Flaky-test hunting, not part of `make test`: the concurrency-heavy tests (marker `concurrency`) in 20
# fresh sessions while busy loops occupy every core; results and a summary under .stress/. Other tests
# or counts: STRESS_ARGS="--rounds 5 -- tests/e2e".
STRESS_ARGS ?=
stress: deps
	$(PY) scripts/stress.py $(STRESS_ARGS)

# Figures, ratios against their peers and plots → benchmarks/REPORT.md; never pass/fail.
bench: deps
	$(PY) -m benchmarks.report

# Sustained load through the whole chain: 20 pushes/s for 5 minutes by default (SOAK_ARGS="--rate 30"
# for more); exits 1 when a verdict is missing or memory, queue depth or latency break their bound.
SOAK_ARGS ?=
soak: deps
	$(PY) -m benchmarks.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(INFRA_VENV) node_modules .devstack .stress .pytest_cache .mypy_cache .ruff_cache
