# Dockmaster: `make run` (the app on devstack) and `make test` set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INFRA_VENV := .venv-infra

.PHONY: run test lint format bench system deps devstack-up devstack-down clean

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
	$(VENV)/bin/mypy devstack shared tests benchmarks

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: deps lint
	$(PY) -m pytest

bench: deps
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) $(INFRA_VENV) node_modules .devstack .pytest_cache .mypy_cache .ruff_cache
