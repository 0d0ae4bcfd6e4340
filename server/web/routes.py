"""The web pages' router: every page, the static files, none of them in the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response
from fastapi.routing import APIRoute

from server.storage.state import State
from server.web import (
    conversation,
    customers,
    promisepanel,
    queuepage,
    render,
    signin,
    ticketpages,
    workpanel,
)
from server.web.settings import WebSettings

STATIC = Path(__file__).resolve().parent / "static"
_TYPES = {".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


def router(state: State) -> APIRouter:
    """The pages' routes for server/api/app.py to include."""
    settings = WebSettings.from_environment()
    # The plain route class: form posts here, not the API's strict JSON bodies.
    pages = APIRouter(include_in_schema=False, route_class=APIRoute)
    signin.install(pages, state, settings)
    ticketpages.install(pages, state, settings)
    conversation.install(pages, state, settings)
    customers.install(pages, state, settings)
    promisepanel.install(pages, state, settings)
    workpanel.install(pages, state, settings)
    queuepage.install(pages, state, settings)
    files = {p.name: (p.read_bytes(), _TYPES[p.suffix]) for p in sorted(STATIC.iterdir())
             if p.suffix in _TYPES}

    @pages.get("/static/{name}")
    async def static(name: str) -> Response:
        found = files.get(name)
        if found is None:
            return render.secure(Response("not found\n", status_code=404, media_type="text/plain"))
        response = Response(found[0], media_type=found[1], headers={"Cache-Control": "public, max-age=3600"})
        return render.secure(response, private=False)

    return pages
