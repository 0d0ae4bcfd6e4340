"""(issue 15: being written) The promise panel of a ticket's pages."""

from __future__ import annotations

from typing import Any, Dict

from fastapi import APIRouter

from server.storage.db import Tx
from server.storage.state import State
from server.web.settings import WebSettings


def context(tx: Tx, ticket_id: str, engineer: bool, zone: str) -> Dict[str, Any]:
    """What _promise.html shows (nothing yet)."""
    return {"promise_panel": None}


def install(router: APIRouter, state: State, settings: WebSettings) -> None:
    """No routes yet."""
