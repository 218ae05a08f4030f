"""The demo: the magic-link app's jobs run by the solidstack supervisor on the embedded SQLite default.

It migrates every database, starts `bin/jobs` (the supervisor with the workers and dispatcher of
config/queue.yml), then plays a user: it asks for sign-in links (each emailed by SendMagicLinkEmailJob), leaves some
to expire, and enqueues MagicLinkCleanupJob, which deletes the expired ones. Watch the supervisor's log lines.

    python examples/magic_link/demo.py              # until Ctrl-C
    python examples/magic_link/demo.py --seconds 10
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import solidstack  # noqa: E402
from solidstack.queue import queue_storage  # noqa: E402
from solidstack.tasks import migrate_all  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (default: until Ctrl-C)")
    options = parser.parse_args()

    app = solidstack.configure(ROOT, os.environ.get("SOLIDSTACK_ENV", "development"))
    print(f"solidstack demo: app {app.root} in the {app.env} environment")
    for result in migrate_all(app):
        print(f"  migrated {result.entry:8} {result.location}: {', '.join(result.applied) or 'up to date'}")

    from app.jobs import MagicLinkCleanupJob, SendMagicLinkEmailJob
    from app.models import MagicLink

    supervisor = subprocess.Popen([sys.executable, str(ROOT / "bin" / "jobs")], cwd=ROOT)
    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    started = time.monotonic()
    n = 0
    try:
        while not stop["now"] and (not options.seconds or time.monotonic() - started < options.seconds):
            n += 1
            email = f"user{n}@example.com"
            link = MagicLink.create(email)
            SendMagicLinkEmailJob.perform_later(email, link.token)
            print(f"demo: {email} asked for a sign-in link -> SendMagicLinkEmailJob enqueued", flush=True)
            if n % 3 == 0:
                MagicLink.create(f"late{n}@example.com", lifetime=-1)  # a link nobody used in time
            if n % 5 == 0:
                MagicLinkCleanupJob.perform_later()
                print("demo: MagicLinkCleanupJob enqueued (the scheduler runs it every hour in production)",
                      flush=True)
            time.sleep(1.0)
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(timeout=30)
    counts = queue_storage().counts()
    print(f"demo: supervisor exited with {code}; jobs finished: {counts['finished']}, failed: {counts['failed']}, "
          f"waiting: {counts['ready'] + counts['scheduled']}; magic links in the database: {MagicLink.count()}")
    return code


if __name__ == "__main__":
    sys.exit(main())
