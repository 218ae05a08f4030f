"""A page with Turbo's ``<turbo-cable-stream-source>``, served with the published turbo-rails bundle and the
cable endpoint at ``/cable``; run by test_cable_turbo_browser.py as ``python cable_turbo_page.py PORT``.

``/`` subscribes to ``board:42`` with a name signed by the server's secret. ``/forged`` subscribes to
``board:42`` with a name signed by another key, and to ``board:7`` with a good one (the control: what the page
does receive).
"""

from __future__ import annotations

import contextlib
import html
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.responses import FileResponse, HTMLResponse
from starlette.routing import Route, WebSocketRoute

from solidstack.cable import CableApp, StreamsChannel, reset
from solidstack.cable.turbo import derive_key, sign_stream_name

#: turbo-rails' browser bundle: Turbo plus Action Cable, an ES module that defines turbo-cable-stream-source.
TURBO_JS = Path(__file__).parent / "js" / "node_modules" / "@hotwired" / "turbo-rails" / "app" / "assets" \
    / "javascripts" / "turbo.js"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<meta name="action-cable-url" content="/cable">
<link rel="icon" href="data:,">
<script type="module" src="/turbo.js"></script>
<style>
  body {{ font: 16px system-ui, sans-serif; margin: 2em; }}
  turbo-cable-stream-source {{ display: block; color: #a00; }}
  turbo-cable-stream-source::before {{ content: attr(id) ": not connected"; }}
  turbo-cable-stream-source[connected] {{ color: #070; }}
  turbo-cable-stream-source[connected]::before {{ content: attr(id) ": connected"; }}
  #messages {{ border: 1px solid #888; min-height: 3em; margin-top: 1em; padding: 0 1em; }}
</style></head>
<body><h1>{title}</h1>
{sources}
<div id="messages"></div>
</body></html>
"""


def source(element_id: str, signed: str) -> str:
    return (f'<turbo-cable-stream-source id="{element_id}" channel="Turbo::StreamsChannel" '
            f'signed-stream-name="{html.escape(signed)}"></turbo-cable-stream-source>')


async def board(request: Any) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title="Board 42", sources=source("board-42", sign_stream_name("board", 42))))


async def forged(request: Any) -> HTMLResponse:
    wrong = sign_stream_name("board", 42, key=derive_key("not the server's secret"))
    sources = source("forged-board-42", wrong) + "\n" + source("board-7", sign_stream_name("board", 7))
    return HTMLResponse(PAGE.format(title="Forged name for board 42", sources=sources))


async def turbo_js(request: Any) -> FileResponse:
    return FileResponse(TURBO_JS, media_type="text/javascript")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    reset()  # stop the pub/sub listener and remove its wake-up socket


app = Starlette(routes=[Route("/", board), Route("/forged", forged), Route("/turbo.js", turbo_js),
                        WebSocketRoute("/cable", CableApp([StreamsChannel]))], lifespan=lifespan)

if __name__ == "__main__":
    import uvicorn

    # solidstack.cable logs rejections at INFO; the test reads them from this process's output.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", ws="websockets-sansio")
