# Quick start: `make up` (Docker) or `make install run` (local PostgreSQL + Redis); `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check -q

# Local development defaults for `make run` / `make migrate` (override on the command line or
# in .env); tests pick their own services (TEST_DATABASE_URL, TEST_REDIS_URL).
run migrate: export DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/app
run migrate: export REDIS_URL ?= redis://127.0.0.1:6379/0

# Tools installed into the venv (kubectl wheel fallback, hadolint, actionlint) are found first.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help install lock run migrate test test-fast lint format up down bench client clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -U pip

install: $(PY) ## create .venv and install the app with dev tools (pinned by constraints.txt)
	$(PIP_INSTALL) -c constraints.txt -e '.[dev]'

lock: $(PY) ## refresh constraints.txt from a fresh resolve of '.[dev]'
	$(PIP_INSTALL) -U -e '.[dev]'
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

run: ## serve on 127.0.0.1:8000 against local PostgreSQL/Redis (creates the DB, migrates)
	@createdb -h 127.0.0.1 -U postgres app 2>/dev/null || true
	$(PY) -m app migrate
	$(PY) -m app serve

migrate: ## alembic upgrade head with the resolved config
	$(PY) -m app migrate

test: lint ## lint, then the whole test suite against real PostgreSQL and Redis
	$(PY) -m pytest -q

test-fast: ## tests only
	$(PY) -m pytest -q -x

lint: ## ruff + mypy --strict on app/
	$(BIN)/ruff check .
	$(BIN)/mypy app

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format app tests

up: ## create missing dev secrets in ./secrets, then docker compose up --build
	$(PYTHON) app/secrets/devfiles.py --dir secrets
	APP_UID=$$(id -u) APP_GID=$$(id -g) docker compose up --build

down:
	docker compose down

bench: ## benchmarks (ratios; see bench/README.md), not part of make test; installs wrk if missing
	@command -v wrk >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk; }
	$(PY) -m bench

client: ## typed Python client in clients/python/ from the OpenAPI document (offline; docs/clients.md)
	$(PY) -m app openapi --output clients/openapi.json
	$(BIN)/openapi-python-client generate --path clients/openapi.json \
		--output-path clients/python --overwrite

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache
