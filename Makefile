# Two commands for a newcomer: `make demo` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: demo test lint services unit bench-edge bench-ingest bench-payments clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[edge,server,dev]'
	@rm -f $(VENV)/.installed-*; touch $@

## demo: the whole system on embedded defaults (amqtt broker, SQLite, simulated fleet)
demo: $(STAMP)
	$(PY) -m firmware_sim.demo $(DEMO_ARGS)

## services: the real servers the tests start (Debian packages; installed when root)
services:
	@.ci/services

## lint: ruff and mypy --strict
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## test: lint, then the whole suite against real Mosquitto, PostgreSQL, VictoriaMetrics, Chromium
test: $(STAMP) services lint
	$(PY) -m pytest $(PYTEST_ARGS)

## bench-payments: full recompute of a national year (1.2M tickets) on SQLite and PostgreSQL
bench-payments: $(STAMP) services
	$(PY) -m tests.bench.bench_payments $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
