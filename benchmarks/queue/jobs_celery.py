"""The Celery benchmark task on Redis (no result backend: nobody waits for results)."""

from __future__ import annotations

from celery import Celery
from record import record

app = Celery("bench", broker="redis://127.0.0.1:6379/0")
app.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)


@app.task(ignore_result=True)
def noop(sent_ns: int) -> None:
    record(sent_ns)
