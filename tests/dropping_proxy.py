"""A TCP proxy between a test's pool and the PostgreSQL server that cuts a connection the moment the server
answers a statement: the answer is lost, whether or not the statement committed (decision 0065)."""

from __future__ import annotations

import contextlib
import socket
import threading


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

    def url(self, url: str) -> str:
        """``url`` (a database on the proxied server) through this proxy."""
        from engines import pg_url_parts

        port = pg_url_parts(url)["port"]
        proxied = url.replace(f":{port}/", f":{self.port}/", 1)
        assert proxied != url
        return proxied
