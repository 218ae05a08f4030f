"""Helpers of the cable tests: app folders, child processes, a real uvicorn server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

import solidstack
from solidstack.tasks import migrate_all

HERE = Path(__file__).parent
JS = HERE / "js"
SECRET = "test-secret-key-base"

CABLE_YML = """\
development:
  adapter: solid_cable
  connects_to:
    database:
      writing: cable
    polling_interval: {interval}
    message_retention: 1.day
"""


DATABASE_YML = """\
development:
  cable:
    adapter: postgresql
    url: {url}
    listen: {listen}
    prepared_statements: {prepared}
"""


def make_app(root: Path, interval: str = "0.1.seconds", *, postgres_url: str | None = None,
             listen: bool = True, prepared_statements: bool = True) -> solidstack.App:
    """An app folder whose cable database is a SQLite file, or the PostgreSQL database at ``postgres_url``."""
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "cable.yml").write_text(CABLE_YML.format(interval=interval))
    if postgres_url:
        (root / "config" / "database.yml").write_text(DATABASE_YML.format(
            url=postgres_url, listen=str(listen).lower(), prepared=str(prepared_statements).lower()))
    app = solidstack.configure(root, "development")
    migrate_all(app)
    return app


def child_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(SOLIDSTACK_ROOT=str(root), SOLIDSTACK_ENV="development", SECRET_KEY_BASE=SECRET,
               PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]))
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``solidstack cable serve cable_test_app:cable`` in a subprocess on 127.0.0.1."""

    def __init__(self, root: Path, port: int, log: Path, command: list[str] | None = None) -> None:
        self.root, self.port, self.log = root, port, log
        self.command = command or [
            sys.executable, "-c", "from solidstack.cli import main; main()", "cable", "serve",
            "cable_test_app:cable", "--port", str(port), "--log-level", "warning",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def start(self) -> None:
        out = self.log.open("ab")
        self.process = subprocess.Popen(self.command, env=child_env(self.root), stdout=out,
                                        stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the cable server exited:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"the cable server did not listen:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")



def broadcast_from_child(root: Path, stream: str, message: object) -> None:
    """Broadcast from another process, as a job or a web request would."""
    code = "import json, sys; from solidstack.cable import broadcast; broadcast(sys.argv[1], json.loads(sys.argv[2]))"

    subprocess.run([sys.executable, "-c", code, stream, json.dumps(message)], env=child_env(root), check=True,
                   timeout=30)


def ensure_js(*packages: str) -> None:
    """Install ``tests/cable/js`` with ``npm ci`` (locked versions) when one of ``packages`` is missing.

    Fails without npm: CI has it, and a skipped browser-protocol test hides breakage."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to install the published JavaScript clients of tests/cable/js (install Node.js)")
    if all((JS / "node_modules" / package).is_dir() for package in packages):
        return
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, capture_output=True, text=True,
                            timeout=300)
    if result.returncode != 0:
        pytest.fail(f"npm ci failed in {JS}:\n{result.stdout}\n{result.stderr}")


PROTOCOL = "actioncable-v1-json"


class Client:
    """A thin Action Cable client: JSON frames, pings skipped unless asked for."""

    def __init__(self, url: str, **options: Any) -> None:
        # Entered as a context manager: websockets 17 warns about a bare connect().
        self._connect = connect(url, subprotocols=[PROTOCOL, "actioncable-unsupported"], open_timeout=10, **options)
        self.ws: ClientConnection = self._connect.__enter__()

    def recv(self, timeout: float = 10.0, *, pings: bool = False) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            frame = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if pings or frame.get("type") != "ping":
                return frame

    def send(self, frame: Any) -> None:
        self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    def subscribe(self, **params: Any) -> tuple[str, dict[str, Any]]:
        identifier = json.dumps(params)
        self.send({"command": "subscribe", "identifier": identifier})
        return identifier, self.recv()

    def perform(self, identifier: str, action: str, **data: Any) -> None:
        self.send({"command": "message", "identifier": identifier, "data": json.dumps({"action": action, **data})})

    def close(self) -> None:
        self._connect.__exit__(None, None, None)


def welcome(server: Server, query: str = "?user=alice", **options: Any) -> Client:
    client = Client(server.url + query, **options)
    assert client.ws.subprotocol == PROTOCOL
    assert client.recv() == {"type": "welcome"}
    return client
