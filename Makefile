# Developer entry points. `make demo` and `make test` work on a fresh machine: they install what is missing.
SHELL := /bin/bash
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: help tools install services kafka postgres down status demo test test-unit lint bench bench-skab bench-quality bench-swap bench-memory docs chaos fuzz

help:
	@echo "make demo       train, stream a synthetic fleet through Kafka and 'monitor run', print the alerts"
	@echo "make test       start Kafka + PostgreSQL and run the whole test suite"
	@echo "make test-unit  fast unit tests only (no services)"
	@echo "make bench      end-to-end throughput/latency benchmark through the real broker (prints figures)"
	@echo "make bench-quality  detection quality, one configuration: SKAB, TEP, fault taxonomy (QUALITY_ARGS=--quick)"
	@echo "make bench-memory memory per sensor state held by a consumer (what run.max_sensors_in_memory bounds)"
	@echo "make bench-swap  false alarms across a model hot swap: thresholds carried vs re-warmed (SKAB, TEP)"
	@echo "make chaos      fault suite of the streaming engine on a PRIVATE Kafka + PostgreSQL (CHAOS_ARGS=--quick)"
	@echo "make fuzz       live consumer fed poison + mutated records on the local Kafka, SQLite and PostgreSQL (FUZZ_ARGS)"
	@echo "make services   start the local Kafka broker and PostgreSQL; 'make down' stops them"

# Installs the dependencies unless they are importable already (torch is large: pip caches it), then
# (re)installs this checkout in editable mode so `monitor` runs the code of this very clone.
install:
	@$(PYTHON) -c "import torch, numpy, pandas, mypy, ruff, importlinter, kafka, crc32c, river, sqlalchemy, psycopg, pydantic, pydantic_settings, typer, orjson, pybase64, simdjson, alembic, yaml, fastapi, uvicorn, httpx2, websocket, croniter, prometheus_client, pythonjsonlogger, tqdm, pytest, pytest_timeout, testcontainers, hypothesis" 2>/dev/null \
	  && echo "[install] dependencies present" \
	  || $(PYTHON) -m pip install --progress-bar off -e '.[dev]'
	@$(PYTHON) -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || $(PYTHON) -m pip install -q --no-deps -e .

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

# System tools some tests drive: Debian's chromium (browser test) and docker-compose (compose file check).
tools:
	deploy/local/browser.sh install
	@command -v docker-compose >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; }

test: install services tools
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy monitor pipelines tests
	$(PYTHON) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-unit: install
	$(PYTHON) -m pytest tests/unit $(PYTEST_ARGS)

bench: install services
	$(PYTHON) -m pipelines.bench.throughput $(BENCH_ARGS)

# Regenerate the configuration reference after changing settings (a test checks it is current).
docs:
	$(PYTHON) -m monitor config reference --out docs/configuration.md
	$(PYTHON) -m monitor config reference -f env --out deploy/monitor.env.example

bench-skab: install
	$(PYTHON) -m pipelines.bench.skab $(BENCH_ARGS)

# SKAB + TEP (../shared/data) + the generated fault taxonomy with the default settings; last line `quality: ...`.
QUALITY_ARGS ?=
bench-quality: install
	$(PYTHON) -m pipelines.bench.quality $(QUALITY_ARGS)

# False alarms across a model hot swap (thresholds carried vs re-warmed), SKAB + TEP; last line `swap: ...`.
bench-swap: install
	$(PYTHON) -m pipelines.bench.swap $(BENCH_ARGS)

bench-memory: install
	$(PYTHON) -m pipelines.bench.memory $(BENCH_ARGS)

# Poison corpus + random mutations mixed with good windows through `monitor run` on the local services, SQLite
# then PostgreSQL; last line `fuzz: records=... crashes=0 stalls=0 nonfinite=0`. FUZZ_ARGS="--duration-s 600 --seed 3"
FUZZ_ARGS ?=
fuzz: install services
	$(PYTHON) -m pipelines.faults.fuzz $(FUZZ_ARGS)

# Fault suite: starts its own broker and PostgreSQL cluster (other ports/state), kills them, removes them.
CHAOS_ARGS ?=
chaos: install
	deploy/local/postgres.sh install
	deploy/local/kafka.sh fetch
	$(PYTHON) -m pipelines.faults.chaos $(CHAOS_ARGS)

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy monitor pipelines tests
