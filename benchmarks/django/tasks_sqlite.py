"""Django's task API on solidstack (SQLite): enqueue rate through ``task.enqueue()`` and the drain rate of
``manage.py solidstack jobs`` (one worker process, 2 threads, as its settings set), on the test project of
tests/django.

    .venv-django/bin/python benchmarks/django/tasks_sqlite.py [--jobs 5000]

A first figure, not the issue's comparison with django-tasks-db and dj_queue (not done).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2] / "tests" / "django"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="dj-bench-")
    os.environ.update(SOLIDSTACK_TEST_ROOT=root, DJANGO_SETTINGS_MODULE="djproject.settings")
    sys.path.insert(0, str(TESTS))
    import django

    django.setup()
    from djproject.tasks import noop

    from solidstack.django.conf import migrate_parts
    from solidstack.queue import queue_storage

    migrate_parts()
    started = time.perf_counter()
    for n in range(args.jobs):
        noop.enqueue(n)
    enqueue_s = time.perf_counter() - started
    storage = queue_storage()
    worker = subprocess.Popen([sys.executable, str(TESTS / "djproject" / "manage.py"), "solidstack", "jobs"],
                              env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while storage.counts()["ready"] == args.jobs:
            time.sleep(0.001)
        started = time.perf_counter()
        while storage.counts()["ready"] or storage.counts()["claimed"]:
            time.sleep(0.01)
        drain_s = time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(30)
    print(f"{args.jobs} tasks: enqueue {args.jobs / enqueue_s:,.0f}/s (one at a time, task.enqueue()), "
          f"drain {args.jobs / drain_s:,.0f}/s (manage.py solidstack jobs, 1 process x 2 threads)")


if __name__ == "__main__":
    main()
