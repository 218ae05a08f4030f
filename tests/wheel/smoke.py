"""The installed-package smoke test: run by tests/wheel/wheel_check.py with the Python of a fresh venv into which
the built wheel (not the checkout) was installed.

In a new app folder: `solidstack install`, `solidstack db migrate`, `solidstack jobs check`, `bin/jobs` running
a job enqueued here, a cache write read back from another process, and a broadcast from another process reaching
a subscriber here. Exits non-zero with the reason on the first failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

JOBS_PY = """
from pathlib import Path

from solidstack.queue import Job


class SmokeJob(Job):
    def perform(self, path: str, text: str) -> None:
        Path(path).write_text(text)
"""


def wait_for(predicate, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"smoke: timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def run(*args: str, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"smoke: {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout


def main() -> None:
    import solidstack

    package = Path(solidstack.__file__).resolve()
    if not package.is_relative_to(Path(sys.prefix).resolve()):
        raise SystemExit(f"smoke: solidstack imported from {package}, not from the venv {sys.prefix}")
    solidstack_cli = str(Path(sys.executable).parent / "solidstack")
    with tempfile.TemporaryDirectory(prefix="solidstack-smoke-") as folder:
        root = Path(folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SOLIDSTACK_", "SOLID_QUEUE_"))}
        env.update(SOLIDSTACK_ENV="development", PYTHONPATH=str(root), PYTHONUNBUFFERED="1")
        run(solidstack_cli, "install", cwd=root, env=env)
        (root / "app").mkdir()
        (root / "app" / "__init__.py").write_text("")
        (root / "app" / "jobs.py").write_text(JOBS_PY)
        (root / "config" / "environment.py").write_text("from app.jobs import SmokeJob  # noqa: F401\n")
        run(solidstack_cli, "db", "migrate", cwd=root, env=env)
        run(solidstack_cli, "jobs", "check", cwd=root, env=env)

        # A job: enqueued here, run by the app's bin/jobs.
        sys.path.insert(0, str(root))
        solidstack.configure(root, "development")
        from app.jobs import SmokeJob

        done = root / "done.txt"
        SmokeJob.perform_later(str(done), "ran")
        with open(root / "jobs.log", "w") as log:
            jobs = subprocess.Popen([sys.executable, str(root / "bin" / "jobs")], cwd=root, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: done.exists() or jobs.poll() is not None, "bin/jobs to run SmokeJob")
            if not done.exists():
                raise SystemExit(f"smoke: bin/jobs exited {jobs.returncode}:\n{(root / 'jobs.log').read_text()}")
        finally:
            jobs.send_signal(signal.SIGTERM)
            code = jobs.wait(30)
        if code != 0:
            raise SystemExit(f"smoke: bin/jobs exited {code} on SIGTERM:\n{(root / 'jobs.log').read_text()}")

        # The cache: written here, read by another process.
        from solidstack.cache import cache

        cache.write("smoke", {"answer": 42})
        read = run(sys.executable, "-c", "import solidstack; from solidstack.cache import cache; "
                   f"solidstack.configure({str(root)!r}, 'development'); print(cache.read('smoke'))",
                   cwd=root, env=env)
        if read.strip() != "{'answer': 42}":
            raise SystemExit(f"smoke: the cache read back {read!r}")

        # Cable: a broadcast from another process reaches a subscriber here.
        from solidstack.cable import subscribe

        received: list[object] = []
        arrived = threading.Event()
        subscribe("smoke", lambda message: (received.append(message), arrived.set()))
        run(sys.executable, "-c", "import solidstack; from solidstack.cable import broadcast; "
            f"solidstack.configure({str(root)!r}, 'development'); broadcast('smoke', {{'hello': 'world'}})",
            cwd=root, env=env)
        if not arrived.wait(15) or received != [{"hello": "world"}]:
            raise SystemExit(f"smoke: the subscriber received {received!r}")
        solidstack.configure(root, "development")  # closes the pub/sub's listener and the stores
    print(f"smoke: ok (solidstack {solidstack.__version__} from {package.parent})")


if __name__ == "__main__":
    main()
