# Two commands matter: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export ML_ASSETS_HOME ?= $(CURDIR)/.ml_assets
export DAGSTER_HOME := $(ML_ASSETS_HOME)/dagster
DAYS ?= 60
UI_PORT ?= 3000
MLFLOW_PORT ?= 5000

.PHONY: wheel-smoke install demo demo-drift demo-challenger backfill up pg-deps test test-slow test-other-date ui-deps ui-check lint format dev mlflow serve-up down counts clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the declared dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The platform runs itself: Ray, dagster dev (daemon: sensors + automation) and the MLflow UI
# stay up afterwards; `make down` stops them (by PID).
demo: install
	$(BIN)/ml-assets demo --days $(DAYS) --ui-port $(UI_PORT)

# The production loop in one story (serve, drift, input_drift errors, retrain, blessing, the new
# champion serves, recovery), in its own project home; stop the platform of `make demo` first.
DRIFT_HOME := $(CURDIR)/.ml_assets-drift
demo-drift: install
	ML_ASSETS_HOME=$(DRIFT_HOME) DAGSTER_HOME=$(DRIFT_HOME)/dagster $(BIN)/ml-assets demo --scenario drift --ui-port $(UI_PORT)

# A challenger trained on drifted days serves in shadow and is promoted on live evidence (or
# retired, saying why) while a client keeps sending; in its own project home too.
CHALLENGER_HOME := $(CURDIR)/.ml_assets-challenger
demo-challenger: install
	ML_ASSETS_HOME=$(CHALLENGER_HOME) DAGSTER_HOME=$(CHALLENGER_HOME)/dagster $(BIN)/ml-assets demo --scenario challenger --ui-port $(UI_PORT)

# The data layer's asset backfill over landed days (all of them, or START..END): the same command
# as `ml-assets materialize`, through the running Dagster or one it starts for the backfill.
backfill: install
	$(BIN)/ml-assets materialize $(if $(START),--start $(START)) $(if $(END),--end $(END))

# STORAGE=postgres: the Dagster instance on a PostgreSQL server in the project home (`make pg-deps`
# installs the server); the home remembers it. Unset: the home's storage (SQLite for a new one).
up: install
	$(BIN)/ml-assets up --ui-port $(UI_PORT) $(if $(STORAGE),--storage $(STORAGE))

# PostgreSQL's server binaries and its connection pooler, PgBouncer, from Debian (`ml-assets up
# --storage postgres` and its tests run their own server in a project home). No default cluster:
# Debian's package would otherwise create one, and start it on 5432 where a service manager runs.
pg-deps:
	{ ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; } && \
	{ command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer; } || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO mkdir -p /etc/postgresql-common/createcluster.d && \
		echo 'create_main_cluster = false' | $$SUDO tee /etc/postgresql-common/createcluster.d/ml-assets.conf >/dev/null && \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends postgresql pgbouncer; }

# One worker per core, a test module per worker at a time (module fixtures start services once):
# the end-to-end modules mostly wait on daemons and sensor ticks, so two cores run two of them.
# pg-deps: the tests run both storages of the instance, PostgreSQL's on the system's binaries.
test: install pg-deps
	$(BIN)/python -m pytest -n auto --dist loadfile -m 'not slow'

# The long end-to-end scenarios (the daemon driving ingestion, training and a code bump end to
# end, ~10 minutes); CI runs them after `make test`.
test-slow: install pg-deps
	$(BIN)/python -m pytest -m slow

# The suite with the clock 400 days on (Debian's faketime): no test may depend on the calendar.
# Tests marked `services` are left out: their gRPC waits hang under faketime's shifted clock.
test-other-date: install pg-deps
	command -v faketime >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends faketime; }
	faketime -f '+400d' $(BIN)/python -m pytest -m 'not services'

# The browser check's tools: Debian's Chromium and playwright-core (no browser download).
ui-deps:
	command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }
	cd ml_assets_tests/ui && npm ci --no-audit --no-fund

# Only the browser check (also part of `make test`); screenshots in $(ML_ASSETS_HOME)/screenshots.
ui-check: install ui-deps
	REQUIRE_UI=1 ML_ASSETS_UI_SHOTS=$(ML_ASSETS_HOME)/screenshots $(BIN)/python -m pytest ml_assets_tests/e2e/test_ui.py

# ruff for style; import-linter for the architecture (the contracts in pyproject.toml; .ci/ on the
# path for the project's own contract type, private imports fenced in resources/compat/); the type
# checker; deptry twice: the installed packages import only runtime dependencies, and everything
# (tests, docs, and bench/ as a root of its own: its scripts import their siblings) imports only
# declared ones; the docs site (--strict: warnings are errors) into site/ (git-ignored).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=$(CURDIR)/.ci$${PYTHONPATH:+:$$PYTHONPATH} $(BIN)/lint-imports --no-cache
	$(BIN)/basedpyright
	$(BIN)/deptry ml_assets resources sensors --optional-dependencies-dev-groups dev
	$(BIN)/deptry . bench
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The package as a user gets it: the wheel built and installed in a fresh venv outside the
# checkout, then a short run (generate 3 days, materialize, train, predict in process).
wheel-smoke:
	bash .ci/wheel-smoke

# The docs site (docs/, mkdocs.yml) with live reload.
docs: install
	$(BIN)/mkdocs serve -a 127.0.0.1:8001

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

dev: install
	$(BIN)/ml-assets init
	$(BIN)/dagster dev -h 127.0.0.1 -p $(UI_PORT) -w workspace.yaml

mlflow: install
	$(BIN)/ml-assets mlflow

serve-up: install
	$(BIN)/ml-assets ray-up

# Stops the platform of either demo (each stops only what its project home started, by PID).
down: install
	$(BIN)/ml-assets down
	@if [ -d $(DRIFT_HOME) ]; then ML_ASSETS_HOME=$(DRIFT_HOME) DAGSTER_HOME=$(DRIFT_HOME)/dagster $(BIN)/ml-assets down; fi
	@if [ -d $(CHALLENGER_HOME) ]; then ML_ASSETS_HOME=$(CHALLENGER_HOME) DAGSTER_HOME=$(CHALLENGER_HOME)/dagster $(BIN)/ml-assets down; fi

counts: install
	$(BIN)/ml-assets counts --by-day

clean:
	rm -rf $(ML_ASSETS_HOME) $(DRIFT_HOME) $(CHALLENGER_HOME)
