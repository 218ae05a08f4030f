# Two commands set everything up on a fresh machine:
#   make demo   creates .venv, installs solidstack, migrates and starts the example web app with its jobs
#               (make demo PORT=8001 to serve on another port)
#   make test   creates .venv, installs solidstack, checks the built wheel, runs the whole test suite (types
#               and the docs site included); then tests/django (Django >= 6.0
#               needs Python >= 3.12) in .venv-django, built from the first python3.12/3.13 found (decision 0700)
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
# Django's tests: a second venv on Python >= 3.12 (the core suite stays on $(PYTHON), 3.11). Without one they are
# skipped loudly on a laptop and fail under CI (CI set).
DJANGO_VENV := .venv-django
DJANGO_STAMP := $(DJANGO_VENV)/.installed
DJANGO_PYTHON ?= $(shell for p in python3.12 python3.13 $$HOME/.pyenv/versions/3.12*/bin/python3 \
	$$HOME/.pyenv/versions/3.13*/bin/python3; do $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' \
	2>/dev/null && { echo $$p; break; }; done)
REDIS_START := redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no

.PHONY: demo demo-django test test-django lint clean bench bench-pg bench-django wheel-check docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,web,postgres]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/magic_link/bin/setup $(if $(PORT),--port $(PORT))

# The Django example (Python >= 3.12): migrate, web server and worker (examples/django_app/README.md).
demo-django: $(DJANGO_STAMP)
	$(DJANGO_VENV)/bin/python examples/django_app/bin/dev $(if $(PORT),--port $(PORT))

test: $(STAMP) wheel-check
	$(BIN)/ruff check .
	$(TEST_LIMIT) $(BIN)/python -m pytest -q $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-django

$(DJANGO_STAMP): pyproject.toml
	test -x $(DJANGO_VENV)/bin/python || $(DJANGO_PYTHON) -m venv $(DJANGO_VENV)
	$(DJANGO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DJANGO_VENV)/bin/python -m pip install --quiet -e '.[dev,web,postgres,django]'
	touch $(DJANGO_STAMP)

ifeq ($(strip $(DJANGO_PYTHON)),)
test-django:
	@echo "****************************************************************************************"
	@echo "*** tests/django SKIPPED: no Python >= 3.12 found (python3.12, python3.13, ~/.pyenv)  ***"
	@echo "*** Django >= 6.0 needs it; set DJANGO_PYTHON=/path/to/python3.12 to run them.        ***"
	@echo "****************************************************************************************"
	@if [ -n "$$CI" ]; then echo "CI is set: a skipped Django suite fails the run"; exit 1; fi
else
test-django: $(DJANGO_STAMP)
	$(TEST_LIMIT) $(DJANGO_VENV)/bin/python -m pytest -q tests/django $(DJANGO_PYTEST_ARGS)
endif

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

# Django's task API: solidstack beside django-tasks-db and dj_queue (installed into .venv-django only).
bench-django: $(DJANGO_STAMP)
	$(DJANGO_VENV)/bin/python -m pip install --quiet -e '.[dev,web,postgres,django,bench-django]'
	$(DJANGO_VENV)/bin/python benchmarks/django/compare.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(DJANGO_VENV) examples/magic_link/storage examples/django_app/storage
