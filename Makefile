# Headshots — `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

.DEFAULT_GOAL := help
.PHONY: help run cluster test test-unit test-integration test-system test-e2e lint format bench migrate up down clean venv browser servers vendor

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements.txt requirements-torch.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, from its exact pin: anything looser would pull a multi-GB CUDA build.
	$(PIP) install -q -r requirements-torch.txt
	$(PIP) install -q -r requirements.txt -c requirements-torch.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install the pinned packages (quick when already done)

# The Socket.IO browser client for the waiting page, from the npm registry (never committed; the
# page falls back to polling without it). deploy/socketio-client.sh pins the version; the image build
# runs the same script.
SOCKETIO_JS := services/intake/static/vendor/socket.io.min.js

vendor: $(SOCKETIO_JS) ## Fetch the Socket.IO browser client into intake's static/vendor (gitignored)

$(SOCKETIO_JS): deploy/socketio-client.sh
	@sh deploy/socketio-client.sh $@ \
	  || echo "warning: could not fetch the Socket.IO client; the waiting page will poll instead"

browser: ## Install Debian's Chromium for the browser tests if it is missing
	@test -x $(CHROMIUM) || { echo "installing chromium (Debian package)"; apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

servers: ## Make sure PostgreSQL and RabbitMQ are running (starts them if they are not)
	@bash tests/servers.sh

migrate: venv ## Apply database migrations (DATABASE_URL, default the embedded SQLite file)
	$(PY) -m libs.db.migrate

run: venv vendor ## Set up and start the whole product in its embedded mode (one process)
	$(PY) -m libs.db.migrate
	$(PY) -m services

cluster: venv vendor servers ## Every service as its own process on the local RabbitMQ + PostgreSQL (distributed mode, no Docker)
	$(PY) -m services.cluster $(CLUSTER_ARGS)

test: venv vendor browser servers ## Set up and run every test (unit, integration on real servers, system with faults, e2e in Chromium)
	$(PY) -m pytest -n 2 --timeout 300 -q $(PYTEST_ARGS)

test-unit: venv ## Only the unit tests (no servers)
	$(PY) -m pytest -n 2 -q tests/unit $(PYTEST_ARGS)

test-integration: venv servers ## Only the integration tests (real RabbitMQ + PostgreSQL)
	$(PY) -m pytest -n 2 -q tests/integration $(PYTEST_ARGS)

test-system: venv vendor browser servers ## Only the system tests: 20 sessions through every service as processes, then under faults
	$(PY) -m pytest -n 2 --timeout 900 -q tests/system $(PYTEST_ARGS)

test-e2e: venv vendor browser ## Only the browser tests
	$(PY) -m pytest -q tests/e2e $(PYTEST_ARGS)

lint: venv ## ruff check, ruff format --check, mypy on libs/, services/ and bench/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: venv servers ## Run the benchmarks in bench/ (figures printed and written to bench/results/)
	@set -e; for b in bench/*.py; do echo "== $$b"; $(PY) $$b; done

up: ## Start the distributed mode with docker compose (needs a Docker engine)
	docker compose up --build -d

down: ## Stop the docker compose stack
	docker compose down

clean: ## Remove the embedded mode's data (var/) and caches; keeps .venv
	rm -rf var .pytest_cache .mypy_cache .ruff_cache bench/results/*.json
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
