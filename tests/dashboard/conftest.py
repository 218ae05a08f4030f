"""Fixtures of the dashboard tests: a dashboard over a fresh queue database of each engine, and a client."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from solidstack.dashboard import dashboard_app
from solidstack.queue.storage import QueueStorage

AUTH = {"Authorization": "Basic " + base64.b64encode(b"ops:s3cret").decode()}


@pytest.fixture
def storage(engine_storage: QueueStorage) -> QueueStorage:
    return engine_storage


@pytest.fixture
def client(storage: QueueStorage) -> Iterator[TestClient]:
    """A client signed in (HTTP basic) to a dashboard of ``storage``."""
    app = dashboard_app(storage, username="ops", password="s3cret")
    with TestClient(app, headers=AUTH, follow_redirects=False) as c:
        yield c


def token(client: TestClient, path: str = "/default/") -> str:
    """The CSRF token of a page's forms (the page also sets its cookie in the client)."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = re.search(r'name="authenticity_token" value="([^"]+)"', page.text) or \
        re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match, "no authenticity token on the page"
    return match.group(1)


def post(client: TestClient, path: str, data: dict[str, Any], **kw: Any) -> Any:
    return client.post(path, data={"authenticity_token": token(client), **data}, **kw)


def flash(client: TestClient, response: Any) -> str:
    """The notice the action left for the page it redirected to."""
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"])
    match = re.search(r'<p class="flash" role="status">([^<]*)</p>', page.text)
    assert match, "no notice on the page"
    return match.group(1)
