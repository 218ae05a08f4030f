"""Helpers of the reference app's tests: copies of examples/magic_link, its real processes, chromium."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import solidstack
from solidstack.queue import job as job_module

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "magic_link"
#: Variables of the developer's shell that would change what the app does under test.
APP_VARIABLES = ("SMTP_", "APP_URL", "RATE_LIMIT_", "SECRET_KEY_BASE", "PORT", "SOLIDSTACK_", "SOLID_QUEUE_")


def copy_example(target: Path) -> Path:
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("storage", "__pycache__", "node_modules"))
    return target


def use_app(root: Path, env: str, monkeypatch: pytest.MonkeyPatch) -> solidstack.App:
    """Configure ``root`` in this process and import its own ``app`` package (not another copy's)."""
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m == "app" or m.startswith("app.")]:
        monkeypatch.delitem(sys.modules, name)
    # Other test modules define job classes with the seed's names; the app's own take their place here.
    monkeypatch.setattr(job_module, "_registry", dict(job_module._registry))
    for name in ("MagicLinkCleanupJob", "SendMagicLinkEmailJob"):
        job_module._registry.pop(name, None)
    configured = solidstack.configure(root, env)
    importlib.import_module("app.jobs")
    return configured


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(APP_VARIABLES)}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **extra}


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class Running:
    """An app process tree started by a test: bin/dev (honcho: web, jobs, mail) or bin/web alone."""

    root: Path
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the group this test started, nothing else
            return self.process.wait(5)


def start(root: Path, command: list[str], url: str, env: dict[str, str], ready: Callable[[str], bool]) -> Running:
    log = root / "storage" / f"{Path(command[1]).name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    running = Running(root, url, process, log)
    if not wait_for(lambda: process.poll() is not None or (http_ok(f"{url}/up") and ready(running.output())), 30):
        running.stop()
        raise AssertionError(f"{command} did not start:\n{running.output()}")
    if process.poll() is not None:
        raise AssertionError(f"{command} exited with {process.returncode}:\n{running.output()}")
    return running


def start_dev(root: Path, **env: str) -> Running:
    """``bin/dev`` as a developer runs it (after ``bin/setup --skip-server``), on free ports."""
    port, smtp_port = free_port(), free_port()
    subprocess.run([sys.executable, "bin/setup", "--skip-server"], cwd=root, env=process_env(), check=True,
                   capture_output=True, timeout=60)
    return start(root, [sys.executable, "bin/dev", "--port", str(port), "--smtp-port", str(smtp_port)],
                 f"http://127.0.0.1:{port}", process_env(**env),
                 lambda out: "mailbox SMTP server on" in out and "Worker worker-" in out)


def close_databases(under: Path) -> None:
    """Close this thread's connections to the databases the test opened (``under`` is kept for callers)."""
    from solidstack.db import close_all

    close_all()


#: The example runs on both engines: SQLite (its own config/database.yml) and PostgreSQL (its
#: config/database.postgresql.yml copied over it, as its README tells a user to do; nothing else changes).
ENGINES = ["sqlite", "postgresql"]


@contextlib.contextmanager
def on_engine(root: Path, engine: str, env: str) -> Iterator[dict[str, str]]:
    """Point the copy at ``root`` to ``engine``; yields the variables its processes need (``DB_NAME``: fresh
    databases of their own on the test server), and drops those databases afterwards."""
    if engine == "sqlite":
        yield {}
        return
    from engines import drop_database, random_database_name, require_postgres

    require_postgres()
    prefix = random_database_name("sslink")
    shutil.copy(root / "config" / "database.postgresql.yml", root / "config" / "database.yml")
    previous = os.environ.get("DB_NAME")
    os.environ["DB_NAME"] = prefix
    try:
        yield {"DB_NAME": prefix}
    finally:
        from solidstack.db import close_all

        close_all()
        solidstack._reset_parts()
        if previous is None:
            os.environ.pop("DB_NAME", None)
        else:
            os.environ["DB_NAME"] = previous
        for suffix in ("", "_queue", "_cache", "_cable"):
            drop_database(f"{prefix}_{env}{suffix}")
