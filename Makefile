# Two commands set everything up on a fresh machine:
#   make demo   creates .venv, installs solidstack, migrates and starts the example web app with its jobs
#               (make demo PORT=8001 to serve on another port)
#   make test   creates .venv, installs solidstack, runs the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,web,postgres]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/magic_link/bin/setup $(if $(PORT),--port $(PORT))

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) examples/magic_link/storage
