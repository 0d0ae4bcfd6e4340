"""The HTTP API under /api/v1: builds the app, installs the routes by resource, answers errors.

The routes live with their resource (sessions, tickets, bundles, audit, uploads); this
module creates the FastAPI app, installs them in that order, and runs the background
sweeper for the app's lifetime. Every route answers with JSON `{"error": "..."}` on
failure (HEAD: headers only). Something a caller may not see answers 404, exactly like
something that does not exist.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, AsyncIterator, Dict, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from bundle.version import __version__
from server.api import audit as audit_api
from server.api import bundles as bundles_api
from server.api import messages as messages_api
from server.api import promises as promises_api
from server.api import queue as queue_api
from server.api import sessions as sessions_api
from server.api import tickets as tickets_api
from server.api import uploads as uploads_api
from server.api import work as work_api
from server.api.access import who_for
from server.api.errors import ApiError
from server.api.httpedge import StrictJSONRoute
from server.api.routing import API
from server.api.uploads import TUS_VERSION
from server.intake import bundles, reports
from server.intake import tus as uploads
from server.intake.tus import TusError
from server.storage.blobs import StoreUnavailable
from server.storage.state import State
from server.support import breaches, capacity, policies, queue
from server.support.tickets import Invalid
from server.web import bundle_pages
from server.web.routes import router as web_router

SWEEP_SECONDS = 10.0

log = logging.getLogger("mydiag.server")


def create_app(state: State, sweep: bool = True) -> FastAPI:
    policies.configure(state.config.support)  # a bad `support` section stops the start, in one line
    capacity.configure(state.config.support.get("capacity"))  # likewise its `capacity` part

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        if sweep:
            state.reports_due = threading.Event()
        workers = [threading.Thread(target=_sweeper, args=(state, stop), daemon=True, name="sweeper"),
                   threading.Thread(target=_reporter, args=(state, stop), daemon=True, name="reports"),
                   threading.Thread(target=breaches.run, args=(state.db, stop, state.owner), daemon=True,
                                    name="breaches"),
                   threading.Thread(target=queue.run, args=(state.db, stop), daemon=True, name="queue")]
        for worker in workers if sweep else ():
            worker.start()
        yield
        stop.set()
        state.wake()
        if state.reports_due is not None:
            state.reports_due.set()
        for worker in workers if sweep else ():
            worker.join(timeout=5)

    app = FastAPI(
        title="mydiag-server", version=__version__, lifespan=lifespan,
        description="Tickets, resumable tus 1.0 uploads of sealed bundles, and verified storage.",
        openapi_url=f"{API}/openapi.json", docs_url=f"{API}/docs", redoc_url=None,
    )
    # Before any route is added: every JSON body of every route goes through one strict decoder.
    app.router.route_class = StrictJSONRoute

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, *_validation_message(exc), {})

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return _error(request, exc.status, exc.message, exc.headers, exc.extra)

    @app.exception_handler(TusError)
    async def _tus_error(request: Request, exc: TusError) -> Response:
        return _error(request, exc.status, exc.message, {"Tus-Resumable": TUS_VERSION, **exc.headers})

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(request: Request, exc: StoreUnavailable) -> Response:
        # The blob store is down or failing (docs/storage.md): nothing counted; try again later.
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        headers = {"Retry-After": str(exc.retry_after)}
        if "/uploads" in request.url.path:
            headers["Tus-Resumable"] = TUS_VERSION
        return _error(request, 503, "the blob store is not available right now; retry shortly", headers)

    @app.exception_handler(Invalid)
    async def _invalid(request: Request, exc: Invalid) -> Response:
        return _error(request, 400, str(exc), {})

    who = who_for(state)
    sessions_api.install(app, state, who)

    @app.get(f"{API}/health", tags=["server"])
    async def health() -> Dict[str, str]:
        return {"status": "ok", "version": __version__}

    # The order of installation is the order of the OpenAPI document's paths.
    for resource in (tickets_api, messages_api, promises_api, work_api, queue_api, bundles_api, audit_api,
                     uploads_api):
        resource.install(app, state, who)
    # The engineers' web pages (server/web/): outside /api/v1 and outside the OpenAPI document.
    app.include_router(bundle_pages.router(state))  # first: its /static/report.css before /static/{name}
    app.include_router(web_router(state))
    return app


def _validation_message(exc: RequestValidationError) -> tuple:
    """(status, one line) for a request that failed validation: 400 when the body is not
    JSON at all (bad syntax, lone surrogates, invalid UTF-8), else 422 naming the field."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        detail = str((first.get("ctx") or {}).get("error", "invalid JSON")).splitlines()[0]
        return 400, f"the request body is not valid JSON: {detail}"
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "the request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return 422, f"{where}: {str(first.get('msg', 'invalid')).splitlines()[0]}{more}"


def _error(request: Request, status: int, message: str, headers: Dict[str, str],
           extra: Optional[Dict[str, Any]] = None) -> Response:
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    return JSONResponse({"error": message, **(extra or {})}, status_code=status, headers=headers)


def _reporter(state: State, stop: threading.Event) -> None:
    """The report worker: renders the reports of newly accepted bundles (woken by each
    verdict), each once across processes (server/storage/jobs.py), apart from verification."""
    due = state.reports_due
    while due is not None and not stop.is_set():
        due.wait(SWEEP_SECONDS)
        due.clear()
        try:
            reports.sweep(state, limit=200)
        except Exception as exc:  # noqa: BLE001 - keep rendering; the next round retries
            log.warning("rendering reports failed: %s: %s", type(exc).__name__, exc)


def _sweeper(state: State, stop: threading.Event) -> None:
    """The background worker: verifies received bundles (woken by each finished upload,
    and when a retry falls due), finishes what dead processes left, expires uploads."""
    while not stop.is_set():
        try:
            uploads.sweep(state)
            reports.sweep(state)  # reports a dead process owed (once: server/storage/jobs.py)
            due = bundles.next_retry_in(state)
        except Exception as exc:  # noqa: BLE001 - keep sweeping; the next round retries
            log.warning("sweep failed: %s: %s", type(exc).__name__, exc)
            due = None
        state.wakeup.wait(SWEEP_SECONDS if due is None else min(SWEEP_SECONDS, due + 0.05))
        state.wakeup.clear()
