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

.PHONY: help venv aws-cli container-venv test-container lint checkov build test unit e2e sdk-check demo local-up local-down deploy smoke bench lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# uv installs the pinned requirements in seconds where pip takes minutes (CI builds every virtualenv from
# scratch). Each virtualenv still gets pip from `python -m venv`: the editable install, `make lock` and the
# offline container's toolkits use it.
UV := .venv-uv/bin/uv
# Bytecode compiled at install, as pip does: every offline job, endpoint and Lambda invocation starts a fresh
# interpreter, and where PYTHONDONTWRITEBYTECODE is set (CI images) each one would recompile scikit-learn,
# pandas and SciPy from source (a 10-row training job: 6.6 s instead of about 2 s).
export UV_COMPILE_BYTECODE := 1
$(UV): requirements/uv.txt
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found: install it (pyenv install 3.12) or pass PYTHON312=/path/to/python3.12"; exit 1; }
	$(PYTHON312) -m venv .venv-uv
	.venv-uv/bin/python -m pip install --quiet -r requirements/uv.txt
	touch $@

$(BIN)/.installed: requirements/dev.txt pyproject.toml $(UV)
	$(PYTHON312) -m venv $(VENV)
	$(UV) pip install --quiet --python $(BIN)/python -r requirements/dev.txt
	# The `mlops` command (cli/), editable: its dependencies are pinned above.
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# awscli pins its own botocore, which conflicts with the one aws-sam-cli and moto need: its own virtualenv,
# and a wrapper in .venv/bin so `aws` works wherever .venv/bin is on PATH (make targets, an activated .venv).
.venv-awscli/.installed: requirements/awscli.txt $(BIN)/.installed
	$(PYTHON312) -m venv .venv-awscli
	$(UV) pip install --quiet --python .venv-awscli/bin/python -r requirements/awscli.txt
	printf '#!/bin/sh\nexec "%s/.venv-awscli/bin/aws" "$$@"\n' "$(CURDIR)" > $(BIN)/aws
	chmod +x $(BIN)/aws
	touch $@

.venv-checkov/.installed: requirements/checkov.txt $(UV)
	$(PYTHON312) -m venv .venv-checkov
	$(UV) pip install --quiet --python .venv-checkov/bin/python -r requirements/checkov.txt
	touch $@

# zizmor and check-jsonschema (click>=8.5, which aws-sam-cli's pin refuses) for .github/workflows.
WORKFLOW_LINT := .venv-workflow-lint/bin
$(WORKFLOW_LINT)/.installed: requirements/workflow-lint.txt $(UV)
	$(PYTHON312) -m venv .venv-workflow-lint
	$(UV) pip install --quiet --python $(WORKFLOW_LINT)/python -r requirements/workflow-lint.txt
	touch $@

venv: $(BIN)/.installed ## Create .venv (Python 3.12) with the pinned dependencies and the mlops command

aws-cli: .venv-awscli/.installed ## The aws CLI (pinned, own virtualenv) as .venv/bin/aws, for the docs' examples

# SageMaker's scikit-learn container 1.4-2-py312 without Docker: its Python (3.12), pins and toolkits, for jobs
# and endpoints offline (offline/seams/container_runtime.py). .venv-container-test adds pytest and the recipe's
# requirements.txt (what the container's toolkits install before training and serving) for the recipe tests.
CONTAINER_VENV := .venv-container
CONTAINER_PINS := requirements/container-sklearn-1.4-2.txt
RECIPE_REQUIREMENTS := layers/mlops_common/mlops_common/recipe/requirements.txt
$(CONTAINER_VENV)/.installed: $(CONTAINER_PINS) $(UV)
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found: install it (pyenv install 3.12) or pass PYTHON312=/path/to/python3.12"; exit 1; }
	rm -rf $(CONTAINER_VENV) .venv-container-test
	$(PYTHON312) -m venv $(CONTAINER_VENV)
	$(UV) pip install --quiet --python $(CONTAINER_VENV)/bin/python --no-deps -r $(CONTAINER_PINS)
	$(CONTAINER_VENV)/bin/python -m pip check
	# The image patches sagemaker-containers for Python 3.12 the same way (docker/1.4-2-py312/final/Dockerfile.cpu).
	sed -i 's/collections\.Mapping/collections.abc.Mapping/g' $(CONTAINER_VENV)/lib/python3.12/site-packages/sagemaker_containers/_mapping.py
	$(CONTAINER_VENV)/bin/python -W ignore -c "import sagemaker_containers.beta.framework, sagemaker_training.entry_point, sklearn"
	echo 1.4-2-py312 > $(CONTAINER_VENV)/sagemaker-scikit-learn-version
	touch $@

.venv-container-test/.installed: $(CONTAINER_VENV)/.installed $(RECIPE_REQUIREMENTS) requirements/dev.txt
	rm -rf .venv-container-test
	$(BIN)/python -c "from pathlib import Path; from offline.seams import container_runtime as c; c.overlay(c.load(Path('$(CONTAINER_VENV)')), Path('.venv-container-test'))"
	.venv-container-test/bin/python -m pip install --quiet -r $(RECIPE_REQUIREMENTS) $$(grep -E '^(pytest|iniconfig|pluggy|packaging|pygments)==' requirements/dev.txt)
	touch $@

container-venv: $(BIN)/.installed .venv-container-test/.installed ## Build .venv-container: the scikit-learn container's Python, pins and toolkits (no Docker)

lint: $(BIN)/.installed .venv-checkov/.installed $(WORKFLOW_LINT)/.installed ## Static gates: ruff, mypy, cfn-lint, sam validate --lint, ASL checks, checkov, workflow linters
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml cicd/bootstrap.yaml
	$(BIN)/sam validate --lint --template template.yaml
	$(BIN)/python tests/static/validate_asl.py
	.venv-checkov/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml -f cicd/bootstrap.yaml
	$(WORKFLOW_LINT)/zizmor --offline --persona pedantic --no-progress .github/workflows
	$(WORKFLOW_LINT)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

build: $(BIN)/.installed ## sam build (no container)
	$(BIN)/sam build --template template.yaml

# Two workers for the two cores; the tests against deployed offline stacks get a third, as they spend much of
# their time waiting (quiet times, endpoint polls, jobs). loadfile keeps each file's module-scoped fixtures
# (deployed stacks) in one worker.
PYTEST_WORKERS ?= 2
STACK_TEST_WORKERS ?= 3
STACK_TESTS := tests/integration tests/e2e tests/cli
# Two sessions: the tests against the deployed offline stacks (which install seams into moto) never share a
# worker process with the unit tests, which expect plain moto.
# The container contract runs too: the recipe's serving tests and one end-to-end run (jobs and endpoint) under
# the scikit-learn container's Python, pins and toolkits; `make test-container` runs every recipe test there.
CONTAINER_RECIPE_TESTS ?= tests/unit/recipe/test_recipe_inference.py tests/unit/recipe/test_batch_inference.py
test: lint build container-venv ## All gates, then the whole test suite (with the container contract)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(addprefix --ignore=,$(STACK_TESTS))
	CONTAINER_VENV_REQUIRED=1 CONTAINER_RECIPE_TESTS="$(CONTAINER_RECIPE_TESTS)" $(BIN)/python -m pytest -n $(STACK_TEST_WORKERS) --dist loadfile $(STACK_TESTS)

# CONTAINER_VENV_REQUIRED: the container-contract tests fail (instead of skipping) without the container venv.
test-container: build container-venv ## The recipe tests and one e2e run under the scikit-learn container's toolkits
	CONTAINER_VENV_REQUIRED=1 CONTAINER_RECIPE_TESTS=tests/unit/recipe $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile tests/integration/test_recipe_in_container.py tests/e2e/test_container_contract.py

unit: $(BIN)/.installed $(WORKFLOW_LINT)/.installed .venv-checkov/.installed ## Unit and integration tests only (no build needed)
	$(BIN)/python -m pytest tests/unit tests/integration tests/static

e2e: build ## End-to-end tests against the embedded AWS
	$(BIN)/python -m pytest tests/e2e

# The oldest AWS SDK the layer's code may meet in the Lambda runtime (layers/mlops_common/runtime-sdk.txt), put
# ahead of the venv's: botocore validates every call against its own service models, so an operation or parameter
# newer than that SDK fails here.
SDK_MIN := .venv-sdk-min
$(SDK_MIN)/.installed: layers/mlops_common/runtime-sdk.txt $(BIN)/.installed
	rm -rf $(SDK_MIN)
	$(BIN)/python -m pip install --quiet --target $(SDK_MIN) $$(sed -n 's/^\([a-z0-9]*\)>=/\1==/p' $<)
	touch $@

sdk-check: $(SDK_MIN)/.installed ## Layer and handler tests against the oldest SDK the code supports
	PYTHONPATH=$(CURDIR)/$(SDK_MIN) $(BIN)/python -c 'import boto3, botocore; print("boto3", boto3.__version__, "botocore", botocore.__version__)'
	PYTHONPATH=$(CURDIR)/$(SDK_MIN) $(BIN)/python -m pytest tests/unit/pipeline tests/unit/cost_guard

demo: build ## Run the whole system offline: deploy, upload a dataset, follow the run
	$(BIN)/python -m offline demo

local-up: build ## Start the embedded AWS on 127.0.0.1:$$LOCAL_AWS_PORT and deploy the stack
	$(BIN)/python -m offline up

local-down: ## Stop the embedded AWS started by local-up
	$(BIN)/python -m offline down

# Deploy the sam build output and check it, as .github/workflows/deploy.yml does (docs/cicd.md). Settings come from
# the environment or the command line (make passes both to the recipe's environment, so no value is re-parsed by
# make): STACK, ARTIFACTS_BUCKET, optional CFN_EXECUTION_ROLE_ARN and STACK_PARAMETERS ("Key=Value Key=Value").
deploy: $(BIN)/.installed ## Deploy .aws-sam/build: make deploy STACK=<name> ARTIFACTS_BUCKET=<bucket>
	@test -n "$$STACK" || { echo "STACK is not set: make deploy STACK=<stack name> ARTIFACTS_BUCKET=<bucket>"; exit 2; }
	@test -n "$$ARTIFACTS_BUCKET" || { echo "ARTIFACTS_BUCKET is not set: the bootstrap stack's ArtifactsBucketName (docs/cicd.md)"; exit 2; }
	@test -f .aws-sam/build/template.yaml || { echo "no .aws-sam/build/template.yaml: run make build first"; exit 2; }
	set -f; $(BIN)/sam deploy --config-file "$(CURDIR)/cicd/samconfig.toml" \
	    --template-file .aws-sam/build/template.yaml --stack-name "$$STACK" \
	    --s3-bucket "$$ARTIFACTS_BUCKET" --s3-prefix "$$STACK" \
	    $${CFN_EXECUTION_ROLE_ARN:+--role-arn "$$CFN_EXECUTION_ROLE_ARN"} \
	    --parameter-overrides "StackName=$$STACK" $$STACK_PARAMETERS

smoke: $(BIN)/.installed ## Post-deploy check of a deployed stack: make smoke STACK=<name>
	@test -n "$$STACK" || { echo "STACK is not set: make smoke STACK=<stack name>"; exit 2; }
	$(BIN)/python -m cicd.post_deploy_check --stack "$$STACK"

bench: build ## Benchmarks (figures printed, not asserted): cost guard sweep, handler cold start, batch predictions, a 1,000-file sync, each data kind
	$(BIN)/python bench/cost_guard_sweep.py
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/batch_predictions.py
	$(BIN)/python bench/trigger_events.py
	$(BIN)/python bench/model_kinds.py

lock: ## Re-pin requirements/dev.txt from requirements/dev.in
	$(BIN)/python -m pip install --quiet -r requirements/dev.in
	{ echo "# Generated from requirements/dev.in with pip freeze (Python 3.12). Regenerate: make lock"; $(BIN)/python -m pip freeze; } > requirements/dev.txt

clean: ## Remove build output and caches (keeps the virtualenvs)
	rm -rf .aws-sam .pytest_cache .ruff_cache .mypy_cache .offline $(SDK_MIN)
