# Layanan 112 Kabupaten Blitar: the two commands a newcomer needs are `make run`
# and `make test`; `make help` lists the rest (built from the ## comments).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the locked dependencies

run: $(STAMP) ## start PostgreSQL, the broker and the five services (Ctrl-C stops all)
	$(PY) -m devstack run

test: $(STAMP) system-deps lint ## lint, then unit, integration and end-to-end tests (they start what they need)
	$(PY) -m pytest -q $(PYTEST_ARGS)

unit: $(STAMP) ## the unit tests alone: pure logic, no PostgreSQL or broker (seconds)
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

system-deps: ## install the system packages the tests need (Prometheus, Chromium, curl) if missing
	@bash tools/system-deps.sh

lint: $(STAMP) ## ruff: lint rules and formatting (fails on either)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP) ## surge benchmark of the pipeline against a bare baseline (BENCH_ARGS=--quick|--profile)
	$(PY) -m bench $(BENCH_ARGS)

chaos: $(STAMP) ## chaos run: SIGKILLs, broker/PostgreSQL restarts, agency down/slow under load (CHAOS_ARGS=--short)
	$(PY) -m chaos $(CHAOS_ARGS)

schemas: $(STAMP) ## regenerate the JSON Schema and AsyncAPI documents in schemas/
	$(PY) -m schemas.generate

monitoring: $(STAMP) ## regenerate deploy/monitoring/prometheusrule.yaml from rules.yaml
	$(PY) deploy/monitoring/generate.py

lock: ## re-resolve requirements.lock from pyproject.toml (needs network)
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

clean: ## remove the virtual environment and local data
	rm -rf $(VENV) .data

.PHONY: help install run test unit system-deps lint bench chaos schemas monitoring lock clean
