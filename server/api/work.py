"""(issue 15: being written) The work part of the HTTP API."""

from __future__ import annotations

from fastapi import FastAPI

from server.api.access import Who
from server.storage.state import State


def install(app: FastAPI, state: State, who: Who) -> None:
    """No routes yet."""
