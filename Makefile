# Two commands set everything up on a fresh machine with only Python and make:
#   make demo   - virtual environment, install, simulate + ingest + detect + serve on the embedded default
#   make test   - install the test extras and run the whole suite (PostgreSQL, Redis, NATS when present)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: demo test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $(STAMP)

$(TSTAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(TSTAMP) $(STAMP)

demo: $(STAMP)
	$(BIN)/forewarn demo $(DEMO_ARGS)

test: $(TSTAMP)
	$(BIN)/ruff check forewarn tests benchmarks
	$(BIN)/mypy forewarn
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(TSTAMP)
	$(BIN)/ruff check forewarn tests benchmarks

bench: $(TSTAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) forewarn-data .pytest_cache .mypy_cache .ruff_cache
