"""In-process mode: SOLID_QUEUE_IN_PUMA=1 bin/web runs the jobs itself, with no bin/jobs anywhere."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import httpx2
import pytest
from magic_link_helpers import copy_example, free_port, on_engine, process_env, start, use_app, wait_for

import solidstack
from solidstack.queue import queue_storage
from solidstack.tasks import migrate_all


@pytest.mark.parametrize("switch", ["SOLID_QUEUE_IN_PUMA", "SOLIDSTACK_JOBS_IN_PROCESS"])
def test_the_web_server_processes_the_email_job_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       switch: str, engine: str) -> None:
    root = copy_example(tmp_path / "magic_link")
    with on_engine(root, engine, "development"):
        in_process(root, monkeypatch, switch)


def in_process(root: Path, monkeypatch: pytest.MonkeyPatch, switch: str) -> None:
    migrate_all(solidstack.configure(root, "development"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = process_env(**{switch: "1", "APP_URL": url})
    web = start(root, [sys.executable, "bin/web", "--port", str(port)], url, env, lambda out: "Worker worker-" in out)
    try:
        output = web.output()
        assert "jobs run in this web server process (in-process mode)" in output
        assert "Supervisor supervisor-" in output and "in async mode" in output
        use_app(root, "development", monkeypatch)
        supervisors = [row for row in queue_storage().processes() if row["kind"] == "Supervisor"]
        assert [row["pid"] for row in supervisors] == [web.process.pid]  # the web server's own process

        with httpx2.Client(base_url=url, follow_redirects=False, timeout=10) as client:
            token = re.search(r'name="authenticity_token" value="([^"]+)"', client.get("/").text)
            assert token
            response = client.post("/magic_links", data={"email": "solo@example.com",
                                                         "authenticity_token": token.group(1)})
            assert response.status_code == 303
            assert wait_for(lambda: 'data-state="sent"' in client.get("/magic_links/sent").text, 10)
            assert "solo@example.com" in client.get("/mailbox").text
        assert wait_for(lambda: "Sent magic link to" in web.output())
    finally:
        code = web.stop()
    # Stopping the server stopped the supervisor: gracefully, deregistered, nothing left claimed.
    assert code in (0, -signal.SIGTERM), web.output()
    assert "Supervisor supervisor-" in web.output() and "stopped" in web.output()
    assert queue_storage().processes() == []
    assert queue_storage().counts()["claimed"] == 0
