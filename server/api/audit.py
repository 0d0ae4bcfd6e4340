"""The audit part of the HTTP API: the append-only log, all of it or one ticket's, for engineers."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import FastAPI, Header

from server.api.access import Who, engineer_only
from server.api.routing import API, ERRORS, read
from server.storage import audit
from server.storage.state import State


def install(app: FastAPI, state: State, who: Who) -> None:
    @app.get(f"{API}/audit", responses=ERRORS, tags=["server"])
    async def audit_log(ticket: Optional[str] = None, authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization)
        engineer_only(principal)
        return await read(state, audit.entries, ticket)
