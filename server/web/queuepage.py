"""(issue 15: being written) The engineer's queue page."""

from __future__ import annotations

from fastapi import APIRouter

from server.storage.state import State
from server.web.settings import WebSettings


def install(router: APIRouter, state: State, settings: WebSettings) -> None:
    """No routes yet."""
