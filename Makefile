# The README's two commands are `make serve` and `make test`; both bootstrap what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck pytest system-deps bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "dbhandles needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## serve: start the service on the embedded default SQLite database (dashboard at http://127.0.0.1:7878/)
serve: $(STAMP)
	$(BIN)/jtag serve

## test: lint, type-check and run the whole test suite (installs PostgreSQL and Chromium when missing)
test: $(STAMP) system-deps lint typecheck pytest

system-deps:
	@bash scripts/bootstrap-system.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/server_read.py
	$(BIN)/python benchmarks/inprocess.py
	$(BIN)/python benchmarks/cli_start.py
	$(BIN)/python benchmarks/import_jsonl.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
