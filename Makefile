# Two commands on a fresh machine:
#   make demo   install into ./.venv and validate the bundled sample list (embedded default)
#   make test   install, make check (lint, format, types), start the services the tests
#               need, run the whole test suite
#   make serve  the SaaS on the embedded default at http://127.0.0.1:8000 (mail to the log;
#               the first start creates an admin account and prints its password once)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo serve test check bench clean

$(BIN)/mailvet: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(BIN)/mailvet

install: $(BIN)/mailvet

demo: install
	$(BIN)/python scripts/demo.py

serve: install
	$(BIN)/python scripts/serve.py

test: check
	./scripts/ensure-services.sh
	MAILVET_TEST_SERVICES=required $(BIN)/python -m pytest -n 2

# the linters and type checker ([tool.ruff] and [tool.mypy] in pyproject.toml say what they check)
$(BIN)/ruff: $(BIN)/mailvet
	$(BIN)/python -m pip install -q -e '.[test,dev]'
	touch $(BIN)/ruff

check: install $(BIN)/ruff
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/syntax_bench.py
	$(BIN)/python bench/smtp_bench.py
	./scripts/ensure-services.sh
	$(BIN)/python bench/distributed_bench.py
	$(BIN)/python bench/dashboard_bench.py
	$(BIN)/python bench/progress_bench.py
	$(BIN)/python bench/api_bench.py

clean:
	rm -rf $(VENV) .mailvet examples/out bench/out
