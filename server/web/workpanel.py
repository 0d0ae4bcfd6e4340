"""(issue 15: being written) The work items and calls of a ticket's page."""

from __future__ import annotations

from typing import Any, Dict

from fastapi import APIRouter

from server.storage.db import Tx
from server.storage.state import State
from server.web.settings import WebSettings


def context(tx: Tx, ticket_id: str, engineer: bool, zone: str) -> Dict[str, Any]:
    """What _work.html shows (nothing yet)."""
    return {"work_panel": None}


def install(router: APIRouter, state: State, settings: WebSettings) -> None:
    """No routes yet."""
