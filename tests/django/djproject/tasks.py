"""Tasks of the test project; each records what it did in a file under the app folder, visible across processes."""

import json
import os
from pathlib import Path

from django.conf import settings
from django.tasks import task

from solidstack.django.tasks import options


def record(*values):
    with open(Path(settings.BASE_DIR) / "performed.jsonl", "a") as f:
        f.write(json.dumps(values) + "\n")


def performed():
    path = Path(settings.BASE_DIR) / "performed.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@task
def add(a, b):
    record("add", a, b)
    return a + b


@task(priority=50)
def urgent(tag):
    record("urgent", tag)


@task(priority=-50)
def later(tag):
    record("later", tag)


@task(queue_name="mail")
def mailer(tag):
    record("mailer", tag)


@task
def boom():
    raise ValueError("boom!")


@task(takes_context=True)
def with_context(context, tag):
    record("context", tag, context.attempt, context.task_result.id)
    return context.attempt


@task
async def async_add(a, b):
    record("async_add", a, b)
    return a + b


class Flaky(Exception):
    pass


@task(retry_on=(Flaky,), retry_attempts=3, retry_wait=0)
def flaky(tag):
    attempt = sum(1 for row in performed() if row[:2] == ["flaky", tag]) + 1
    record("flaky", tag, attempt)
    if attempt < 3:
        raise Flaky(f"attempt {attempt}")
    return attempt


@task
@options(discard_on=(LookupError,))
def discards():
    record("discards")
    raise LookupError("gone")


@task
def slow(tag):
    """Runs for a while, recording its start (for the kill -9 test)."""
    import time

    record("slow-start", tag, os.getpid())
    time.sleep(float(os.environ.get("SLOW_SECONDS", "3")))
    record("slow-done", tag)


@task
def noop(n):
    """Does nothing (benchmarks/django)."""
    return n
