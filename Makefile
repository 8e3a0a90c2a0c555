# One entry point for people and CI alike: `make demo`, `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: help demo test test-fast test-unit lint docs docs-serve docs-cli config-reference bench bench-table clean

# The virtual environment is rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

## demo: set up, then run the real loop (schedule → process) on the default queue file in ./demo
demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py

## test: set up, then lint, type-check and run the whole test suite (what CI runs)
test: $(VENV)/.installed lint
	$(BIN)/python -m pytest

## test-fast: the inner loop (under a minute): unit tests, and integration tests that need no server
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest tests/unit tests/integration -m "not slow and not postgres and not redis" -q

## test-unit: the unit tier alone (seconds): no process, file lock, network or sleep
test-unit: $(VENV)/.installed
	$(BIN)/python -m pytest tests/unit -q

## docs: build the documentation site into site/ (strict: a broken link or a page outside the navigation fails)
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## docs-serve: serve the documentation on http://127.0.0.1:8000/, rebuilt as pages change
docs-serve: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

## docs-cli: rewrite docs/cli.md from the commands' own --help
docs-cli: $(VENV)/.installed
	$(BIN)/python docs/gen_cli.py

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

## config-reference: rewrite docs/configuration.md from the settings' declaration (a test checks it is current)
config-reference: $(VENV)/.installed
	$(BIN)/python -m retryq.settings.reference > docs/configuration.md

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: run every benchmark (prints its tables, saves benchmarks/results/*.json), then rewrite the docs' table
## (not part of the tests; tenacity, huey, procrastinate, rq and bullmq are installed into the venv only as peers to
## compare with; bench_postgres uses RETRYQ_TEST_POSTGRES, else starts a throwaway cluster with fsync on and stops it;
## bench_redis uses RETRYQ_TEST_REDIS, else a throwaway redis-server with appendfsync always)
BENCH_RESULTS := benchmarks/results
bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check tenacity huey procrastinate rq bullmq
	@for name in startup schedule concurrent process read postgres redis retry; do \
		$(BIN)/python benchmarks/bench_$$name.py --json $(BENCH_RESULTS)/$$name.json || exit 1; \
	done
	@$(MAKE) --no-print-directory bench-table

## bench-table: rewrite the benchmark table of docs/performance.md from the saved results, measuring nothing
bench-table:
	$(PYTHON) benchmarks/readme_table.py

clean:
	rm -rf $(VENV) demo site .pytest_cache .mypy_cache .ruff_cache
