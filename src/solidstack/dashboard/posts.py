"""The dashboard's actions: POST only, each with the CSRF token, each reporting how many jobs it touched.

After an action the browser is sent back (303) to the page it came from, with a one-time notice in a cookie.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from solidstack.queue.admin.actions import ACTIONS
from solidstack.queue.admin.inspect import STATES, JobFilter
from solidstack.queue.admin.queues import Queue

from .access import csrf_ok
from .views import FLASH_COOKIE, RANGES, database_of

VERBS = {"retry": "Retried", "discard": "Discarded", "run_now": "Moved to ready"}
MAX_IDS = 10_000


async def _form(request: Request) -> FormData:
    form = await request.form()
    if not csrf_ok(request, form):
        raise HTTPException(403, "This form's security token is missing or does not match: reload the page and "
                                 "try again.")
    return form


def _back(request: Request, url: str, notice: str) -> Response:
    response = RedirectResponse(url, status_code=303)
    base = request.scope.get("root_path", "") or "/"
    response.set_cookie(FLASH_COOKIE, notice.replace("\n", " ")[:300], httponly=True, samesite="strict", path=base,
                        max_age=60)
    return response


def _jobs(count: int) -> str:
    return f"{count:,} job" + ("" if count == 1 else "s")


async def queue_action(request: Request) -> Response:
    """Pause, resume or clear (after the confirmation page) a queue."""
    db = database_of(request)
    form = await _form(request)
    action = request.path_params["action"]
    name = str(form.get("queue") or "")
    if action not in ("pause", "resume", "clear") or not name or "*" in name:
        raise HTTPException(400, "expected pause, resume or clear of a queue by name")
    if action == "clear" and form.get("confirm") != name:
        return PlainTextResponse(f"Type the queue's name ({name}) to confirm clearing it.\n", 400)

    def run() -> str:
        queue = Queue(name, db.storage)
        if action == "pause":
            queue.pause()
            return f"Paused queue {name}: workers take none of its jobs until it is resumed."
        if action == "resume":
            queue.resume()
            return f"Resumed queue {name}."
        return f"Cleared queue {name}: deleted {_jobs(queue.clear())} that were ready."

    notice = await run_in_threadpool(run)
    await db_changed(request, db)
    return _back(request, str(request.url_for("queues", db=db.name)), notice)


async def job_action(request: Request) -> Response:
    """Retry, discard or run now: the selected jobs (``ids``), or every job matching the list's filter
    (``scope=all``)."""
    db = database_of(request)
    form = await _form(request)
    state, action = request.path_params["state"], request.path_params["action"]
    if state not in STATES or action not in ACTIONS.get(state, ()):
        raise HTTPException(400, f"{action} is not an action on {state} jobs")
    carried = {name: str(form.get(name) or "")[:200] for name in ("class_name", "queue", "search", "range")}
    carried = {k: v for k, v in carried.items() if v}
    ids: list[int] | None
    if form.get("scope") == "all":
        ids = None
    else:
        try:
            ids = [int(value) for value in form.getlist("ids")][:MAX_IDS]
        except ValueError:
            raise HTTPException(400, "ids must be job ids") from None
    seconds = RANGES.get(carried.get("range", ""))
    filter = JobFilter(class_name=carried.get("class_name"), queue=carried.get("queue"),
                       search=carried.get("search"), since=time.time() - seconds if seconds else None)
    if ids == []:
        notice = "Select jobs first (or use the button for all matching jobs)."
    else:
        count = await run_in_threadpool(db.actions.perform, action, state, ids, filter)
        notice = f"{VERBS[action]} {_jobs(count)}."
        if ids is not None and count < len(ids):
            notice += f" {_jobs(len(ids) - count)} had left the {state} state and were not touched."
        await db_changed(request, db)
    back = str(form.get("back") or "")
    if not back.startswith(str(request.url_for("queues", db=db.name))):  # only to this dashboard's own pages
        back = f"{request.url_for('jobs', db=db.name, state=state)}?{urlencode(carried)}"
    return _back(request, back, notice)


async def run_recurring(request: Request) -> Response:
    """Enqueue a run of a recurring task now (its next scheduled run is unaffected)."""
    db = database_of(request)
    form = await _form(request)
    key = str(form.get("key") or "")

    def run() -> str:
        job_id = db.actions.run_recurring(key)
        return f"Enqueued a run of {key} now (job {job_id})." if job_id else f"{key} was already enqueued for now."

    try:
        notice = await run_in_threadpool(run)
    except LookupError:
        notice = f"No recurring task called {key}."
    except Exception as exc:  # an unknown class here, a bad schedule: say what, keep the page
        notice = f"Could not run {key}: {exc}"
    await db_changed(request, db)
    return _back(request, str(request.url_for("recurring", db=db.name)), notice)


async def db_changed(request: Request, db: Any) -> None:
    """Tell the live pages at once, rather than at the next tick."""
    request.app.state.dashboard.live.poke()
