"""The sessions part of the HTTP API: grant (customer), list, show, revoke.

Only the customer grants (the ticket's upload token): an engineer can never open a
session on a customer's host by themselves. Both sides may end one. The grant's answer
tells the customer's side where the SSH gateway is and which host key it must present.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from fastapi import FastAPI, Header, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from server.api.access import Who
from server.api.errors import ApiError
from server.api.routing import API, ERRORS, read, write
from server.gateway import records as sessions
from server.storage.db import Tx
from server.storage.state import State
from server.support.tickets import clean_text


class GrantIn(BaseModel):
    engineer: str = Field(description="who may join (an engineer name on this server)")
    seconds: float = Field(description="how long the grant lasts, 1 to 86400")
    purpose: str = Field(description="the session's agenda, shown to both sides and kept with it")
    mode: str = Field("diag", description="`diag` (read-only actions) or `shell`")
    tunnel_key: str = Field(description="the OpenSSH public key the customer's host dials the gateway with")
    host: str = Field(description="the customer's host name, for the record")


class GatewayOut(BaseModel):
    host: Optional[str] = None
    port: int
    host_key: str


class SessionOut(BaseModel):
    id: str
    ticket: str
    engineer: str
    mode: str
    purpose: str
    host: str
    granted_by: str
    created: str
    expires: str
    expires_in: float
    state: str
    ended: Optional[str] = None
    end_reason: Optional[str] = None
    parts: int


class GrantOut(SessionOut):
    gateway: GatewayOut


class RevokeIn(BaseModel):
    reason: Optional[str] = Field(None, description="a line for the record")


def install(app: FastAPI, state: State, who: Who) -> None:
    def gateway_of(request: Request) -> Any:
        return getattr(request.app.state, "gateway", None)

    async def session_of(ticket_id: str, session_id: str) -> Dict[str, Any]:
        found = await read(state, sessions.get, session_id)
        if found is None or found["ticket"] != ticket_id:
            raise ApiError(404, "no such session")
        return found

    @app.post(f"{API}/tickets/{{ticket_id}}/sessions", response_model=GrantOut, status_code=201,
              responses={**ERRORS, 503: ERRORS[404]}, tags=["sessions"],
              description="The customer grants a remote session (upload token of the ticket only).")
    async def grant(ticket_id: str, body: GrantIn, request: Request,
                    authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        if principal.kind != "upload":
            raise ApiError(403, "only the customer grants a session (with the ticket's upload token)")
        gateway = gateway_of(request)
        if gateway is None:
            raise ApiError(503, "this server runs no SSH gateway (start it with --ssh-listen HOST:PORT)")
        found = await write(state, sessions.grant, ticket_id, principal.actor, body.engineer, body.seconds,
                            body.purpose, body.mode, body.tunnel_key, body.host)
        advertised = None if gateway.host in ("", "0.0.0.0", "::") else gateway.host
        found["gateway"] = {"host": advertised, "port": gateway.port, "host_key": gateway.host_key}
        return found

    @app.get(f"{API}/tickets/{{ticket_id}}/sessions", response_model=List[SessionOut], responses=ERRORS,
             tags=["sessions"])
    async def list_sessions(ticket_id: str, authorization: Optional[str] = Header(None)) -> Any:
        await who(authorization, ticket_id)
        return await read(state, sessions.list_for_ticket, ticket_id)

    @app.get(f"{API}/tickets/{{ticket_id}}/sessions/{{session_id}}", response_model=SessionOut,
             responses=ERRORS, tags=["sessions"])
    async def get_session(ticket_id: str, session_id: str,
                          authorization: Optional[str] = Header(None)) -> Any:
        await who(authorization, ticket_id)
        return await session_of(ticket_id, session_id)

    @app.post(f"{API}/tickets/{{ticket_id}}/sessions/{{session_id}}/revoke", response_model=SessionOut,
              responses=ERRORS, tags=["sessions"],
              description="End a session now: its engineer channels close and its tunnel is told.")
    async def revoke(ticket_id: str, session_id: str, request: Request, body: Optional[RevokeIn] = None,
                     authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        await session_of(ticket_id, session_id)
        by = "the customer" if principal.kind == "upload" else f"engineer {principal.name}"
        why = clean_text(body.reason, "a reason", 200) if body and body.reason else ""
        reason = f"revoked by {by}" + (f": {why}" if why else "")

        def end(tx: Tx) -> Any:
            sessions.end(tx, session_id, "revoked", reason, principal.actor)
            return sessions.get(tx, session_id)

        found = await write(state, end)
        gateway = gateway_of(request)
        if gateway is not None:
            await run_in_threadpool(gateway.cut, session_id, f"session {session_id} {reason}")
        return found
