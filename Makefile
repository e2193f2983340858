# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/outbound demo

# The suite runs twice: on SQLite, then on a throwaway PostgreSQL server (initdb/pg_ctl).
test: $(STAMP)
	$(BIN)/pytest
	OUTBOUND_TEST_BACKEND=postgres $(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench

# Re-pin every dependency after changing pyproject.toml.
lock:
	rm -rf /tmp/outbound-lock && $(PYTHON) -m venv /tmp/outbound-lock
	/tmp/outbound-lock/bin/pip install -q '.[dev]'
	/tmp/outbound-lock/bin/pip freeze --exclude outbound > constraints.txt

clean:
	rm -rf $(VENV) *.egg-info

# House rules: ruff (rules and format), mypy, and the import contracts of pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check outbound tests bench alembic
	$(BIN)/ruff format --check outbound tests bench alembic
	$(BIN)/mypy
	$(BIN)/lint-imports
