# Two commands set everything up on a fresh machine:
#   make demo   creates .venv, installs solidstack, migrates and starts the example web app with its jobs
#               (make demo PORT=8001 to serve on another port)
#   make test   creates .venv, installs solidstack, checks the built wheel, runs the whole test suite (types and
#               the docs site included)
#   make docs   serves the documentation site
#   make bench  also installs the bench extra (huey, RQ, Dramatiq, Celery, matplotlib), runs benchmarks/queue
#   make bench-pg  the PostgreSQL suite (pgqueuer, procrastinate; cable and cache) against BENCH_PG_URL
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
# A backstop: the suite takes under 2 minutes; a run that hangs (say, at exit, on a process a failed test left
# behind) fails after this many seconds instead of using CI's whole 90 minutes (where coreutils' timeout exists).
TEST_TIMEOUT ?= 1200
TEST_LIMIT := $(if $(shell command -v timeout 2>/dev/null),timeout --kill-after=30 $(TEST_TIMEOUT))
REDIS_START := redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no

.PHONY: demo test lint clean bench bench-pg wheel-check docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,web,postgres]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/magic_link/bin/setup $(if $(PORT),--port $(PORT))

test: $(STAMP) wheel-check
	$(BIN)/ruff check .
	$(TEST_LIMIT) $(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The built sdist and wheel: twine check, every package file in both, the wheel installed (not editable) into a
# fresh venv running an app's install, migrate, bin/jobs, cache and cable (tests/wheel/wheel_check.py).
wheel-check: $(STAMP)
	$(BIN)/python tests/wheel/wheel_check.py

# The documentation site (mkdocs-material) on http://127.0.0.1:8000, rebuilt on each change; the test suite builds
# it with --strict (tests/test_docs.py).
docs: $(STAMP)
	$(BIN)/mkdocs serve $(if $(PORT),--dev-addr 127.0.0.1:$(PORT))

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,web,postgres,bench]'
	touch $(BENCH_STAMP)

# The peers on Redis need a server on 127.0.0.1:6379: started here when none answers.
bench: $(BENCH_STAMP)
	redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || $(REDIS_START)
	$(BIN)/python benchmarks/queue/run.py $(BENCH_ARGS)

# Needs a PostgreSQL server whose role may create databases (BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432);
# Redis is optional here (huey on Redis as the latency reference).
bench-pg: $(BENCH_STAMP)
	$(BIN)/python benchmarks/queue/run_pg.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) examples/magic_link/storage
