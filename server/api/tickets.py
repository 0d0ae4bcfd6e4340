"""The tickets part of the HTTP API: list, open (engineers), show, and enroll a host's key.

Only the ticket's upload token enrolls a host key: that is `mydiag enroll` on the
customer's host, never an engineer.
"""

from __future__ import annotations

from typing import Any, List, Optional

from fastapi import FastAPI, Header
from pydantic import BaseModel

from server.api.access import Who, engineer_only
from server.api.errors import ApiError
from server.api.routing import API, ERRORS, read, write
from server.storage.state import State
from server.support import tickets


class TicketIn(BaseModel):
    customer: str
    title: str


class Ticket(BaseModel):
    id: str
    customer: str
    title: str
    recipients: List[str]
    created: str


class NewTicket(Ticket):
    upload_token: str
    token_expires: str


class HostIn(BaseModel):
    public_key: str
    hostname: str


class Host(BaseModel):
    fingerprint: str
    hostname: str
    already_enrolled: bool


def install(app: FastAPI, state: State, who: Who) -> None:
    @app.get(f"{API}/tickets", response_model=List[Ticket], responses=ERRORS, tags=["tickets"])
    async def list_tickets(authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization)
        return await read(state, tickets.list_tickets, principal)

    @app.post(f"{API}/tickets", response_model=NewTicket, status_code=201, responses=ERRORS,
              tags=["tickets"])
    async def create_ticket(body: TicketIn, authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization)
        engineer_only(principal)
        return await write(state, tickets.create_ticket, body.customer, body.title, state.config.recipients,
                           principal.actor, state.config.limits.token_days)

    @app.get(f"{API}/tickets/{{ticket_id}}", response_model=Ticket, responses=ERRORS, tags=["tickets"])
    async def get_ticket(ticket_id: str, authorization: Optional[str] = Header(None)) -> Any:
        await who(authorization, ticket_id)
        return await read(state, tickets.get_ticket, ticket_id)

    @app.post(f"{API}/tickets/{{ticket_id}}/hosts", response_model=Host, status_code=201,
              responses=ERRORS, tags=["tickets"])
    async def enroll_host(ticket_id: str, body: HostIn,
                          authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        if not principal.may_enroll(ticket_id):
            raise ApiError(403, "only the ticket's upload token enrolls host keys (`mydiag enroll` "
                                "on the customer's host), not an engineer's or admin's token")
        return await write(state, tickets.enroll_host, ticket_id, body.public_key, body.hostname,
                           principal.actor)
