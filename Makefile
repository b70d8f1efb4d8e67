# Quick start: `make up` (Docker) or `make install run` (local PostgreSQL + Redis); `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

# uv installs the venv from the committed uv.lock (the single source of pins, the image's too).
# uv itself comes from PyPI, pinned, installed by the system pip into a git-ignored directory:
# no venv module, pipx or curl installer needed (Debian's python3 lacks ensurepip without
# python3-venv; uv makes the venv itself). No pip fallback: uv ships wheels for every platform
# this template targets (Linux/macOS/Windows, x86_64 and arm64).
UV_VERSION := 0.13.9
UV_HOME ?= .tools/uv-$(UV_VERSION)
UV ?= $(UV_HOME)/bin/uv
# Use the interpreter we were given (never download one) and the OS trust store, which is where
# a TLS-intercepting proxy's CA lives; the venv is $(VENV), as the targets below expect.
export UV_PYTHON ?= $(PYTHON)
export UV_PYTHON_DOWNLOADS ?= never
export UV_SYSTEM_CERTS ?= 1
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
# The extras `make install` puts in the venv.
EXTRAS ?= dev

# Local development defaults for `make run` / `make migrate` (override on the command line or
# in the environment); tests pick their own services (TEST_DATABASE_URL, TEST_REDIS_URL).
run migrate: export DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/app
run migrate: export REDIS_URL ?= redis://127.0.0.1:6379/0

# Tools installed into the venv (kubectl wheel fallback, hadolint, actionlint) are found first.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help install uv-path lock lock-upgrade run migrate test test-fast lint format up down \
	bench clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(UV):
	$(PYTHON) -m pip install --disable-pip-version-check -q --no-warn-script-location \
		--target $(UV_HOME) uv==$(UV_VERSION)

install: $(UV) ## .venv with the app (editable) and dev tools, exactly as pinned by uv.lock
	$(UV) sync --locked $(addprefix --extra ,$(EXTRAS))

uv-path: $(UV)
	@echo $(abspath $(UV))

lock: $(UV) ## update uv.lock after editing pyproject.toml (keeps every other pin)
	$(UV) lock

lock-upgrade: $(UV) ## re-resolve uv.lock to the newest versions pyproject.toml allows
	$(UV) lock --upgrade

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

lint: ## ruff (lint and format check), mypy --strict on app/, import contracts (.importlinter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app
	$(BIN)/lint-imports

format: ## apply what `make lint`'s ruff checks ask for (changes nothing on a clean tree)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

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

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache
