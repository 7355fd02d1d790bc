# Developer entry points. `make demo` and `make test` work on a fresh machine: they install what is missing.
SHELL := /bin/bash
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: help install services kafka postgres down status demo test test-unit lint chaos

help:
	@echo "make demo       train, stream a synthetic fleet through Kafka and 'monitor run', print the alerts"
	@echo "make test       start Kafka + PostgreSQL and run the whole test suite"
	@echo "make test-unit  fast unit tests only (no services)"
	@echo "make chaos      fault suite of the streaming engine on a PRIVATE Kafka + PostgreSQL (CHAOS_ARGS=--quick)"
	@echo "make services   start the local Kafka broker and PostgreSQL; 'make down' stops them"

# Installs the package and its dependencies unless they are importable already (torch is large: pip caches it).
install:
	@$(PYTHON) -c "import monitor, torch, kafka, river, sqlalchemy, psycopg, typer, pytest, crc32c" 2>/dev/null \
	  && $(PYTHON) -c "import importlib.metadata as m; m.version('sensor-monitor')" >/dev/null 2>&1 \
	  && echo "[install] package and dependencies present" \
	  || $(PYTHON) -m pip install --progress-bar off -e '.[dev]'

services:
	deploy/local/services.sh up

kafka:
	deploy/local/kafka.sh start

postgres:
	deploy/local/postgres.sh start

down:
	deploy/local/services.sh down

status:
	deploy/local/services.sh status

demo: install kafka
	$(PYTHON) -m pipelines.demo

test: install services
	$(PYTHON) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-unit: install
	$(PYTHON) -m pytest tests/unit $(PYTEST_ARGS)

# Fault suite: starts its own broker and PostgreSQL cluster (other ports/state), kills them, removes them.
CHAOS_ARGS ?=
chaos: install
	deploy/local/postgres.sh install
	deploy/local/kafka.sh fetch
	$(PYTHON) -m pipelines.chaos $(CHAOS_ARGS)

lint:
	$(PYTHON) -m mypy monitor
