# Everything a developer or CI runs. Each target installs what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The Lambda runtime is python3.12, so is the dev environment (pyenv's 3.12 when it is there).
PYTHON312 ?= $(shell ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -n 1 || true)
ifeq ($(PYTHON312),)
PYTHON312 := $(shell command -v python3.12 2>/dev/null)
endif
VENV := .venv
BIN := $(VENV)/bin
# sam build needs a python3.12 binary on PATH; the venv provides one.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
export LOCAL_AWS_PORT ?= 4566

.PHONY: help venv lint checkov build test unit e2e demo local-up local-down bench lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements/dev.txt
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found: install it (pyenv install 3.12) or pass PYTHON312=/path/to/python3.12"; exit 1; }
	$(PYTHON312) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	touch $@

.venv-checkov/.installed: requirements/checkov.txt
	$(PYTHON312) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet -r requirements/checkov.txt
	touch $@

venv: $(BIN)/.installed ## Create .venv (Python 3.12) with the pinned dependencies

lint: $(BIN)/.installed .venv-checkov/.installed ## Static gates: ruff, cfn-lint, sam validate --lint, ASL checks, checkov
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --template template.yaml
	$(BIN)/python tests/static/validate_asl.py
	.venv-checkov/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml

build: $(BIN)/.installed ## sam build (no container)
	$(BIN)/sam build --template template.yaml

# Two workers for the two cores; loadfile keeps each file's module-scoped fixtures (deployed stacks) in one worker.
PYTEST_WORKERS ?= 2
test: lint build ## All gates, then the whole test suite
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

unit: $(BIN)/.installed ## Unit and integration tests only (no build needed)
	$(BIN)/python -m pytest tests/unit tests/integration tests/static

e2e: build ## End-to-end tests against the embedded AWS
	$(BIN)/python -m pytest tests/e2e

demo: build ## Run the whole system offline: deploy, upload a dataset, follow the run
	$(BIN)/python -m offline demo

local-up: build ## Start the embedded AWS on 127.0.0.1:$$LOCAL_AWS_PORT and deploy the stack
	$(BIN)/python -m offline up

local-down: ## Stop the embedded AWS started by local-up
	$(BIN)/python -m offline down

bench: $(BIN)/.installed ## Benchmarks (figures printed, not asserted)
	$(BIN)/python bench/cost_guard_sweep.py

lock: ## Re-pin requirements/dev.txt from requirements/dev.in
	$(BIN)/python -m pip install --quiet -r requirements/dev.in
	{ echo "# Generated from requirements/dev.in with pip freeze (Python 3.12). Regenerate: make lock"; $(BIN)/python -m pip freeze; } > requirements/dev.txt

clean: ## Remove build output and caches (keeps the virtualenvs)
	rm -rf .aws-sam .pytest_cache .ruff_cache .mypy_cache .offline
