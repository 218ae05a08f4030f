"""``solidstack dashboard`` as a user runs it: a real process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from solidstack.config import App


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(args: list[str]) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "solidstack", "dashboard", "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    return proc, port


def get(port: int, path: str) -> tuple[int, str]:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_no_auth_on_loopback_serves_and_warns(app: App) -> None:
    proc, port = serve(["--no-auth"])
    try:
        status, html = get(port, "/default/")
        assert status == 200 and "Queues" in html
    finally:
        out = stop(proc)
    assert "warning: the dashboard is open without authentication" in out


def test_closed_without_configuration(app: App) -> None:
    proc, port = serve([])
    try:
        status, text = get(port, "/default/")
        assert status == 403 and "SOLIDSTACK_DASHBOARD_USERNAME" in text
    finally:
        out = stop(proc)
    assert "every page will answer 403" in out


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1"])
def test_no_auth_is_refused_off_loopback(app: App, host: str) -> None:
    result = subprocess.run([sys.executable, "-m", "solidstack", "dashboard", "--no-auth", "--host", host],
                            capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert result.returncode == 2 and "loopback address only" in result.stderr


def test_the_solidstack_command_does_not_load_the_web_stack() -> None:
    """``bin/jobs`` starts through the same command: registering ``dashboard`` must not import Starlette,
    Jinja2 or prometheus_client (eagerly imported, they added 0.8 s to every start on a loaded machine)."""
    code = ("import sys, solidstack.cli; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'jinja2', 'prometheus_client'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
