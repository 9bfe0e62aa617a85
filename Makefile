# rnnbench — `make help` lists the targets. `make benchmark` and `make test` set everything up.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
TORCH ?= torch==2.13.0
PROFILE ?= auto
ARGS ?=
JOBS ?= auto
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install lint test test-all benchmark report tune horizon speed reproduce scale gpu-wheels gpu-check ui server dashboard clean

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned (a CPU build here; TORCH=... picks another), so the package's torch>=2.3 keeps it
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install rnnbench with its dependencies

lint: $(STAMP) ## ruff: pyflakes, pycodestyle, import order and bugbear over the code and tests
	$(BIN)/ruff check suite tasks tests

test: $(STAMP) ## run the tests but the slow end-to-end ones (minutes on a laptop; `make test-all` runs every test)
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

test-all: $(STAMP) ## run every test, the slow end-to-end ones too (what CI runs)
	$(BIN)/python -m pytest -q --durations=25 $(ARGS)

benchmark: $(STAMP) ## train every model on every task of PROFILE (auto|smoke|cpu|full), JOBS at once (auto), then the report
	@# failed cells (exit 1) still get a report that lists them; the benchmark's exit status is make's
	$(BIN)/rnnbench benchmark --profile $(PROFILE) --jobs $(JOBS) $(ARGS); code=$$?; \
	if [ $$code -le 1 ]; then $(BIN)/rnnbench report --profile $(PROFILE) || code=$$((code ? code : 2)); fi; exit $$code

report: $(STAMP) ## static HTML report of PROFILE's results from the MLflow store, into reports/rnnbench-<profile>/
	$(BIN)/rnnbench report --profile $(PROFILE) $(ARGS)

tune: $(STAMP) ## Optuna-tune every model x task of PROFILE with the same budget (then: make benchmark ARGS=--tuned)
	$(BIN)/rnnbench tune --profile $(PROFILE) $(ARGS)

horizon: $(STAMP) ## length sweeps on each task PROFILE has a horizon ladder for: each model's dependency horizon
	$(BIN)/rnnbench horizon --profile $(PROFILE) --jobs $(JOBS) $(ARGS)

speed: $(STAMP) ## time the suite against hand-written PyTorch per model x task (ARGS="--compile" etc.)
	$(BIN)/rnnbench speed $(ARGS)

reproduce: $(STAMP) ## Keras' own run of the tutorial model beside ours, 3 seeds (installs the repro extra: Keras 3)
	$(BIN)/python -c "import keras" 2>/dev/null || $(BIN)/python -m pip install -q -e ".[repro]"
	KERAS_BACKEND=torch $(BIN)/rnnbench reproduce keras-seed $(ARGS)

AGAINST ?=
scale: $(STAMP) ## report, dry run, benchmark and start on stores of 50, 5,000 and 50,000 runs (and PostgreSQL), beside AGAINST's code
	$(BIN)/python -m suite.studies.scale $(if $(AGAINST),--against $(AGAINST)) $(ARGS)

GPU_WHEELS := pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 mlxtend==0.25.0
gpu-wheels: ## the wheels the GPU check needs on a bare GPU machine (CPython 3.12, x86-64), into .whl/
	python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d .whl $(GPU_WHEELS)

GPU_PYTHON ?= $(BIN)/python
gpu-check: ## cuDNN, precision as it runs, speed, the ways to fill a GPU and the full profile's estimate, into gpu-check/ (README › GPU check)
	$(GPU_PYTHON) -m suite.studies.gpu_check --device cuda --out gpu-check $(ARGS)

ui: $(STAMP) ## open the MLflow UI on the local store at http://127.0.0.1:5000
	$(BIN)/rnnbench ui

server: $(STAMP) ## MLflow tracking server on 127.0.0.1:5000 for jobs to share (BACKEND=postgresql://... ; default the local store)
	$(BIN)/rnnbench server $(if $(BACKEND),--backend $(BACKEND)) $(ARGS)

dashboard: $(STAMP) ## optuna-dashboard on the local tuning journal at http://127.0.0.1:8080
	$(BIN)/optuna-dashboard --host 127.0.0.1 --port 8080 optuna-journal.log

clean: ## remove the venv, caches and generated reports (keeps the MLflow store)
	rm -rf $(VENV) .pytest_cache lightning_logs *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find reports -mindepth 1 ! -name README.md -exec rm -rf {} + 2>/dev/null || true
