# One entry point for people and CI alike: `make demo`, `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean

# The virtual environment is rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

## demo: set up, then run the real loop (schedule → process) on the default queue file in ./demo
demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py

## test: set up, then lint, type-check and run the whole test suite
test: $(VENV)/.installed lint
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: run the benchmarks (prints tables; not part of the tests); tenacity only for the comparison
bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check tenacity
	@for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
