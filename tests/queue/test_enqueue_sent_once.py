"""A PostgreSQL enqueue is sent once: when the connection is lost after the server committed it (the reply never
arrives), ``perform_later`` raises instead of sending the statement again on another connection, which would
enqueue the job twice (decision 0065). The loss is real: a TCP proxy between the pool and the server drops the
connection the moment the server answers the enqueue."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest

from engines import database_config, pg_url_parts, postgres_database, require_postgres
from solidstack.db import DatabaseUnavailable, connect, migrate, package_migrations
from solidstack.queue import QueueStorage
from solidstack.queue.rows import NewJob


class DroppingProxy:
    """Forwards TCP connections to the server; once armed, the next connection to send something is cut the
    moment the server answers it, the answer thrown away."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.dropped = threading.Event()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self.threads.append(accept)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, server]
            victim = {"marked": False}
            for args in ((client, server, victim, True), (server, client, victim, False)):
                thread = threading.Thread(target=self._pump, args=args, daemon=True)
                thread.start()
                self.threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket, victim: dict[str, bool], upstream: bool) -> None:
        try:
            while data := source.recv(65536):
                with self.lock:
                    if upstream and self.armed.is_set():
                        self.armed.clear()
                        victim["marked"] = True
                    cut = not upstream and victim["marked"]
                if cut:
                    self.dropped.set()
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):  # one side ended: end both (the other pump then stops too)
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(5)
        for s in self.sockets:
            s.close()


def _count(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM solidstack_jobs").fetchone()
        assert row is not None
        return int(row[0])


@pytest.mark.parametrize("jobs", [1, 3], ids=["one", "bulk"])
def test_an_enqueue_whose_answer_is_lost_raises_and_is_not_sent_again(tmp_path: Path, jobs: int) -> None:
    require_postgres()
    with postgres_database() as url:
        parts = pg_url_parts(url)
        proxy = DroppingProxy(parts.get("host", "127.0.0.1"), int(parts.get("port", 5432)))
        proxied = url.replace(f":{parts.get('port', 5432)}/", f":{proxy.port}/", 1)
        assert proxied != url
        db = connect(database_config("postgresql", tmp_path, proxied, pool=2))
        migrate(db, package_migrations("solidstack.queue", "postgresql"))
        storage = QueueStorage(db)
        new = [NewJob("default", "EmailJob", "[]", 0, f"key-{i}") for i in range(jobs)]
        assert len(storage.enqueue(new, time.time())) == jobs  # the pool has a live connection
        proxy.armed.set()
        with pytest.raises(DatabaseUnavailable):
            storage.enqueue(new, time.time())
        assert proxy.dropped.is_set()
        # The lost statement had committed: it is there once, not twice.
        assert _count(url) == 2 * jobs
        # And the next enqueue works, on a fresh connection.
        storage.enqueue(new, time.time())
        assert _count(url) == 3 * jobs
        db.close()
        proxy.close()


