"""The dashboard's pages (GET only; they change nothing). Database reads run in the thread pool."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from solidstack.queue.admin.actions import ACTIONS
from solidstack.queue.admin.inspect import STATES, JobFilter

from .access import CSRF_COOKIE, CSRF_FIELD, csrf_token
from .sources import QueueDatabase, cable_stats, cache_stats

FLASH_COOKIE = "solidstack_dashboard_flash"
STATE_TITLES = {"ready": "Ready", "scheduled": "Scheduled", "claimed": "In progress", "blocked": "Blocked",
                "failed": "Failed", "finished": "Finished"}
#: A failed attempt's outcome, as the job's page names it.
OUTCOME_TITLES = {"retried": "Retried", "failed": "Failed", "died": "Process died"}
RANGES = {"": None, "1h": 3600, "24h": 86400, "7d": 7 * 86400}


def dashboard_of(request: Request) -> Any:
    return request.app.state.dashboard


def database_of(request: Request) -> QueueDatabase:
    databases = dashboard_of(request).databases
    name = request.path_params.get("db")
    if name not in databases:
        raise HTTPException(404, f"no queue database called {name!r} in this dashboard")
    return databases[name]


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    dashboard = dashboard_of(request)
    token, new = csrf_token(request)
    db = context.get("db")
    context.update(dashboard=dashboard, databases=list(dashboard.databases), csrf=token, csrf_field=CSRF_FIELD,
                   flash=request.cookies.get(FLASH_COOKIE), titles=STATE_TITLES, states=STATES, now=time.time(),
                   db_name=db.name if db else None)
    response = dashboard.templates.TemplateResponse(request, template, context, status_code=status)
    base = request.scope.get("root_path", "") or "/"
    if new:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path=base)
    if context["flash"]:
        response.delete_cookie(FLASH_COOKIE, path=base)
    # The pages show job data: never cached, never framed by another site.
    response.headers.update({"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                             "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"})
    return response


async def root(request: Request) -> Response:
    first = next(iter(dashboard_of(request).databases))
    return RedirectResponse(request.url_for("queues", db=first), status_code=303)


async def queues_page(request: Request) -> Response:
    db = database_of(request)
    # The chart's hour of data comes after the page, from live.json: the page itself stays fast.
    snapshot = await run_in_threadpool(lambda: dashboard_of(request).live.snapshot(db, chart=False))
    return render(request, "queues.html", db=db, snapshot=snapshot, counts=snapshot["counts_text"],
                  page="queues")


def job_filter(request: Request) -> tuple[JobFilter, dict[str, str]]:
    """The list's filter from the query string, and the query values to carry into links and forms."""
    q = request.query_params
    values = {name: q.get(name, "").strip()[:200] for name in ("class_name", "queue", "search", "range")}
    seconds = RANGES.get(values["range"])
    since = time.time() - seconds if seconds else None
    return JobFilter(class_name=values["class_name"] or None, queue=values["queue"] or None,
                     search=values["search"] or None, since=since), {k: v for k, v in values.items() if v}


async def jobs_page(request: Request) -> Response:
    db = database_of(request)
    state = request.path_params["state"]
    if state not in STATES:
        raise HTTPException(404, f"no job state called {state!r}")
    filter, carried = job_filter(request)
    after = request.query_params.get("after") or None
    page_size = dashboard_of(request).page_size

    def read() -> dict[str, Any]:
        inspector = db.inspector
        try:
            page = inspector.jobs(state, filter, after=after, limit=page_size)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"page": page,
                "counts": {s: str(c) for s, c in inspector.counts().items()},
                "matching": inspector.count(state, filter), "class_names": inspector.class_names(),
                "queue_names": inspector.queue_names()}

    data = await run_in_threadpool(read)
    next_url = None
    if data["page"].next_after is not None:
        next_url = f"{request.url_for('jobs', db=db.name, state=state)}?" + urlencode(
            {**carried, "after": data["page"].next_after})
    return render(request, "jobs.html", db=db, state=state, filter=carried, actions=ACTIONS.get(state, ()),
                  next_url=next_url, first_page=after is None, ranges=list(RANGES)[1:], page="jobs",
                  jobs_page=data.pop("page"), **data)


async def job_page(request: Request) -> Response:
    db = database_of(request)
    job_id = request.path_params["job_id"]

    def read() -> tuple[Any, dict[str, str]]:
        inspector = db.inspector
        return inspector.job(job_id), {s: str(c) for s, c in inspector.counts().items()}

    job, counts = await run_in_threadpool(read)
    if job is None:
        return render(request, "missing.html", 404, db=db, job_id=job_id, counts=counts, page="jobs")
    return render(request, "job.html", db=db, job=job, counts=counts, actions=ACTIONS.get(job.state, ()),
                  page="jobs", attempts_kept=db.storage.attempts_kept, outcome_titles=OUTCOME_TITLES)


async def processes_page(request: Request) -> Response:
    db = database_of(request)
    threshold = dashboard_of(request).process_alive_threshold

    def read() -> tuple[Any, dict[str, str]]:
        inspector = db.inspector
        inspector.process_alive_threshold = threshold
        return inspector.processes(), {s: str(c) for s, c in inspector.counts().items()}

    processes, counts = await run_in_threadpool(read)
    return render(request, "processes.html", db=db, processes=processes, counts=counts, threshold=threshold,
                  page="processes")


async def recurring_page(request: Request) -> Response:
    db = database_of(request)

    def read() -> tuple[Any, dict[str, str]]:
        inspector = db.inspector
        return inspector.recurring_tasks(), {s: str(c) for s, c in inspector.counts().items()}

    tasks, counts = await run_in_threadpool(read)
    return render(request, "recurring.html", db=db, tasks=tasks, counts=counts, page="recurring")


async def stats_page(request: Request) -> Response:
    db = database_of(request)
    dashboard = dashboard_of(request)

    def read() -> tuple[Any, Any, dict[str, str]]:
        counts = {s: str(c) for s, c in db.inspector.counts().items()}
        return cache_stats(dashboard.cache), cable_stats(dashboard.cable), counts

    cache, cable, counts = await run_in_threadpool(read)
    return render(request, "stats.html", db=db, parts=[cache, cable], counts=counts, page="stats")


async def clear_confirm_page(request: Request) -> Response:
    db = database_of(request)
    name = request.query_params.get("queue", "")
    size = await run_in_threadpool(lambda: next((str(q.size) for q in db.inspector.queues() if q.name == name), "0"))
    counts = await run_in_threadpool(lambda: {s: str(c) for s, c in db.inspector.counts().items()})
    return render(request, "clear.html", db=db, queue=name, size=size, counts=counts, page="queues")


async def live_json(request: Request) -> Response:
    """The live snapshot the page's script starts from (the cable then sends the next ones)."""
    db = database_of(request)
    snapshot = await run_in_threadpool(dashboard_of(request).live.snapshot, db)
    return JSONResponse(snapshot, headers={"Cache-Control": "no-store"})
