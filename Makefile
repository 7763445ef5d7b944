# Two commands matter: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export ML_ASSETS_HOME ?= $(CURDIR)/.ml_assets
export DAGSTER_HOME := $(ML_ASSETS_HOME)/dagster
DAYS ?= 30
ROWS_PER_DAY ?= 400
SEED ?= 7
DEFECT_RATE ?= 0.01
UI_PORT ?= 3000
MLFLOW_PORT ?= 5000

.PHONY: install demo test lint format dev mlflow serve-up down counts clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the declared dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/ml-assets init
	$(BIN)/ml-assets generate --days $(DAYS) --rows-per-day $(ROWS_PER_DAY) --seed $(SEED) --defect-rate $(DEFECT_RATE)
	$(BIN)/ml-assets materialize
	$(BIN)/ml-assets counts
	$(BIN)/ml-assets train
	$(BIN)/ml-assets ray-up
	$(BIN)/ml-assets deploy
	$(BIN)/ml-assets predict --json '{"complaint_id": "demo-1", "product": "Mortgage", "issue": "Loan servicing, payments, escrow account", "state": "CA", "zip_code": "94110", "company_response": "Closed with explanation", "timely_response": "Yes", "submitted_via": "Web", "consumer_complaint_narrative": "I called five times and it still has not been resolved."}'
	@echo
	@echo "Tables: $(ML_ASSETS_HOME)/warehouse.duckdb (schema 'complaints'); models: MLflow in $(ML_ASSETS_HOME)/mlflow."
	@echo "Dagster UI:  make dev      (then http://127.0.0.1:$(UI_PORT))"
	@echo "MLflow UI:   make mlflow   (then http://127.0.0.1:$(MLFLOW_PORT))"
	@echo "Endpoint:    http://127.0.0.1:8000/predict (OpenAPI at /docs); stop Ray with: make down"

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

dev: install
	$(BIN)/ml-assets init
	$(BIN)/dagster dev -h 127.0.0.1 -p $(UI_PORT) -w workspace.yaml

mlflow: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(ML_ASSETS_HOME)/mlflow/mlflow.db \
		--default-artifact-root $(ML_ASSETS_HOME)/mlflow/artifacts -h 127.0.0.1 -p $(MLFLOW_PORT)

serve-up: install
	$(BIN)/ml-assets ray-up

down: install
	$(BIN)/ml-assets ray-down

counts: install
	$(BIN)/ml-assets counts --by-day

clean:
	rm -rf $(ML_ASSETS_HOME)
