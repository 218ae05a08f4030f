"""huey tasks on SQLite or Redis (``BENCH_HUEY`` = ``sqlite:<path>`` or ``redis``)."""

from __future__ import annotations

import os

from record import record

spec = os.environ.get("BENCH_HUEY", "redis")
if spec.startswith("sqlite:"):
    from huey import SqliteHuey

    huey = SqliteHuey(filename=spec[len("sqlite:"):])
else:
    from huey import RedisHuey

    huey = RedisHuey("bench", host="127.0.0.1", port=6379)


@huey.task()
def noop(sent_ns: int) -> None:
    record(sent_ns)
