# Two commands for a newcomer: `make demo` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: demo test lint fuzz services unit bench-edge bench-ingest bench-payments bench-api bench-documents bench-logistics bench-forecast-libraries bench-routes fault-ingest chaos-edge chaos national attack deploy-check clean

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

## lint: ruff, mypy --strict and the layer rules (import-linter contracts in pyproject.toml)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

## test: lint, then the whole suite against real Mosquitto, PostgreSQL, VictoriaMetrics, Chromium
test: $(STAMP) services lint
	$(PY) -m pytest $(PYTEST_ARGS)

## fuzz: the property and fuzz tests with fresh random examples (make test repeats fixed ones)
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=explore $(PY) -m pytest -q -p no:cacheprovider tests/edge tests/server/money/test_allocation.py $(PYTEST_ARGS)

## bench-edge: the real agent with a 10 frames/s scale and a 1 Hz fill sensor (BENCH_ARGS="--seconds 60")
bench-edge: $(STAMP) services
	$(PY) -m tests.bench.bench_edge $(BENCH_ARGS)

## chaos-edge: the agent SIGKILLed EDGE_CHAOS_KILLS times (default 100) against Mosquitto and the ingest
chaos-edge: $(STAMP) services
	EDGE_CHAOS_KILLS=$${EDGE_CHAOS_KILLS:-100} $(PY) -m pytest tests/e2e/test_edge_kill.py -q -s --timeout=3600

## chaos: the whole chain broken at once — 20 agents, 5,000 weighings, 30 faults (broker,
## ingest worker, agent SIGKILLs, PostgreSQL restart, network cut, replays, skewed clocks)
## through Mosquitto, ingest workers and PostgreSQL (CHAOS_ARGS="--devices 40");
## last line: chaos weighings/faults/lost/duplicates/mismatches
chaos: $(STAMP) services
	$(PY) -m tests.chaos.whole_chain $(CHAOS_ARGS)

## national: one simulated month of the whole country's national scenario
## (firmware_sim/data/national: 147 reception points, 1 % of the containers) on real
## agents (three processes, per-site clocks) through Mosquitto, the ingest and PostgreSQL,
## ~5 min here; NATIONAL_ARGS="--scale 0.1" for a sample; last line: throughput
national: $(STAMP) services
	$(PY) -m tests.bench.bench_national $${NATIONAL_ARGS:---scale 1 --container-scale 0.01}

## bench-ingest: 100k weighings + 500k fill readings through Mosquitto into ingest on
## PostgreSQL and VictoriaMetrics, against a bare paho subscriber (last line: figures)
bench-ingest: $(STAMP) services
	$(PY) tests/bench/bench_ingest.py $(BENCH_ARGS)

## fault-ingest: the fault tests full size (30 s outages, 100 weighings per device) and
## 100,000 generated bad payloads on SQLite and PostgreSQL
fault-ingest: $(STAMP) services
	EPR_FAULT_OUTAGE_S=30 EPR_FAULT_RECORDS=100 EPR_FAULT_BAD_PAYLOADS=100000 \
	  $(PY) -m pytest tests/chaos -v -s --timeout=3600 $(PYTEST_ARGS)

## bench-payments: full recompute of a national year (1.2M tickets) on SQLite and PostgreSQL
bench-payments: $(STAMP) services
	$(PY) -m tests.bench.bench_payments $(BENCH_ARGS)

## bench-api: the pages and API people wait on over 1.2M tickets on PostgreSQL (BENCH_ARGS="--tickets 200000")
bench-api: $(STAMP) services
	$(PY) -m tests.bench.bench_api $(BENCH_ARGS)

## bench-documents: a 500-line statement as PDF and XLSX (targets 3 s and 1 s; BENCH_ARGS="--lines 500")
bench-documents: $(STAMP)
	$(PY) -m tests.bench.bench_documents $(BENCH_ARGS)

## bench-logistics: the national container fleet from the simulator: forecast error
## against the naive baseline, forecast time, due list, the largest region's routes
bench-logistics: $(STAMP)
	$(PY) -m tests.bench.bench_logistics $(BENCH_ARGS)

## bench-forecast-libraries: our forecast against statsmodels Holt-Winters and statsforecast
## MSTL on the simulated truth (optional: pip install statsmodels statsforecast; BENCH_ARGS="--containers 500")
bench-forecast-libraries: $(STAMP)
	$(PY) -m tests.bench.bench_forecast_libraries $(BENCH_ARGS)

## bench-routes: 400 due containers in Karaganda region planned by OR-Tools and by the
## nearest-neighbour baseline (BENCH_ARGS="--stops 600 --time-limit 60"); last line: figures
bench-routes: $(STAMP)
	$(PY) -m tests.bench.bench_routes $(BENCH_ARGS)

## attack: hostile cases (wire, frames, web) against real agents, ingest and server on an
## open broker (ATTACK_ARGS="--limit 60"); last line: tried/lost/altered/leaked/crashed
attack: $(STAMP) services
	$(PY) -m tests.attack $(ATTACK_ARGS)

## deploy-check: docs/deploy.md and docs/edge.md run as written (server and Pi installers in
## throwaway roots, PostgreSQL, Mosquitto with TLS, VictoriaMetrics, a real agent); root only
deploy-check: $(STAMP) services
	$(PY) -m tests.deploy.check $(DEPLOY_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
