# The two commands: `make demo` runs the whole pipeline through Airflow; `make test` runs the tests.
# Both create the environments they need on first use (infra/bootstrap.sh) and reuse them after.
SHELL := /bin/bash
VENV ?= .venv
PIPELINE := $(VENV)/pipeline/bin
AIRFLOW := $(VENV)/airflow/bin
PYTEST_ARGS ?=
# Test files run on this many pytest workers (pytest-xdist; 0: in this process). A Spark test on tiny
# data keeps about one core busy, so two workers on 2 cores finish sooner (BENCHMARKS.md, issue 19).
TEST_WORKERS ?= 2
LINTED := lakecart jobs features training serving dags tests benchmarks setup.py
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-all test-cluster test-s3 envs lint bench-demo clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

envs:  ## create the pipeline and airflow environments (no-op when up to date)
	@infra/bootstrap.sh all

demo: envs  ## generate demo data and run both DAGs (pipeline, then training) through Airflow
	@LAKECART_AIRFLOW_BIN=$(abspath $(AIRFLOW)) $(PIPELINE)/lakecart demo $(DEMO_ARGS)

# pytest exits 5 when a selection holds no test; that is not a failure of the suite.
test: envs  ## ruff, then the default test suite (slow end-to-end tests excluded)
	@$(PIPELINE)/ruff check $(LINTED) && $(PIPELINE)/ruff format --check -q $(LINTED)
	@set -o pipefail; rc=0; \
	$(PIPELINE)/python -m pytest tests --ignore=tests/dags -m "not slow and not cluster and not s3" -n $(TEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS) || { s=$$?; [ $$s -eq 5 ] || rc=$$s; }; \
	$(AIRFLOW)/python -m pytest tests/dags $(PYTEST_ARGS) || { s=$$?; [ $$s -eq 5 ] || rc=$$s; }; \
	exit $$rc

test-all: envs  ## the whole suite, slow end-to-end tests included
	@$(MAKE) --no-print-directory test PYTEST_ARGS="-m 'slow or not slow' $(PYTEST_ARGS)"

test-cluster: envs  ## the cluster tier: the pipeline on a local Spark standalone cluster equals local mode
	@$(PIPELINE)/python -m pytest tests/cluster -m cluster --durations=5 $(PYTEST_ARGS)

test-s3: envs  ## the s3 tier: the pipeline on a local S3 server (infra/s3/s3.sh) equals local disk
	@$(PIPELINE)/python -m pytest tests/s3 -m s3 --durations=5 $(PYTEST_ARGS)

lint: envs  ## ruff over the code
	@$(PIPELINE)/ruff check $(LINTED) && $(PIPELINE)/ruff format --check $(LINTED)

bench-demo:  ## time `make demo`, warm (BENCH_ARGS=--cold: fresh clone, empty pip cache)
	@$(PIPELINE)/python benchmarks/demo_run.py $(BENCH_ARGS)

clean:  ## remove generated data (keeps the environments)
	rm -rf data
