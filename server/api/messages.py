"""The conversation part of the HTTP API: a ticket's messages, its timeline, "no reply needed".

The ticket's customer token posts customer kinds (`needs_reply`, `no_reply_needed`) and
engineers post engineer kinds (`reply`, `acknowledgement`, `internal`); the other way
round answers 403. A customer never sees internal notes, nor the clock's warnings. A
customer message's answer carries its `due_at` (null when it needs no reply, or while
the ticket waits on the customer). An engineer's public message is `delivered` at once
(the customer reads it here and on the web) unless the customer has people with e-mail
and the server mails (a smart host is set): then it is `pending` until the outbox sent it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional

from fastapi import FastAPI, Header
from pydantic import BaseModel, Field

from server import auth
from server.api.access import Who, engineer_only
from server.api.bundles import HeadlineOut
from server.api.errors import ApiError
from server.api.routing import API, ERRORS, read, write
from server.storage.db import Tx
from server.storage.state import State
from server.support import messages, people
from server.support.tickets import get_ticket
from server.support.timeline import ticket_timeline

Kind = Literal["needs_reply", "no_reply_needed", "reply", "acknowledgement", "internal"]


class MessageIn(BaseModel):
    body: str = Field(description="plain text, at most 256 KiB; tab and newline are the only controls")
    kind: Kind
    waiting_on_customer: bool = Field(
        False, description="a reply that asks the customer something: the clock pauses until they answer")


class MessageOut(BaseModel):
    id: str
    ticket_id: str
    at: str
    author: str
    author_kind: str
    kind: str
    body: str
    source: str
    attachments: List[Any] = []
    delivery: Optional[str] = None
    delivery_detail: Optional[str] = None
    no_reply_reason: Optional[str] = None
    no_reply_by: Optional[str] = None
    waiting_on_customer: bool = False
    due_at: Optional[str] = Field(None, description="a customer message's reply deadline (UTC)")


class NoReplyIn(BaseModel):
    reason: str


class TimelineBundle(BaseModel):
    id: str
    filename: str
    status: str
    host: Optional[str] = None
    report: Optional[str] = None
    headline: Optional[List[HeadlineOut]] = None


class TimelineSession(BaseModel):
    id: str
    engineer: str
    purpose: str
    state: str
    expires: str
    ended: Optional[str] = None


class ClockEvent(BaseModel):
    obligation: str
    kind: str = Field(description="due (a reply is owed), met, warning_50/80/95, breach")
    due_at: Optional[str] = None


class TimelineEntry(BaseModel):
    at: str
    type: Literal["message", "bundle", "session", "clock", "promise", "work_item", "call"]
    message: Optional[MessageOut] = None
    bundle: Optional[TimelineBundle] = None
    session: Optional[TimelineSession] = None
    clock: Optional[ClockEvent] = None
    promise: Optional[Dict[str, Any]] = Field(None, description="a promise version (see the promises routes)")
    work_item: Optional[Dict[str, Any]] = Field(None, description="a work item of a fan-out")
    call: Optional[Dict[str, Any]] = Field(None, description="a call: its agenda, time, state and minutes")


def install(app: FastAPI, state: State, who: Who) -> None:
    @app.post(f"{API}/tickets/{{ticket_id}}/messages", response_model=MessageOut, status_code=201,
              responses=ERRORS, tags=["messages"])
    async def post_message(ticket_id: str, body: MessageIn,
                           authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        customer_kind = body.kind in messages.CUSTOMER_KINDS
        if principal.is_engineer == customer_kind:
            allowed = messages.ENGINEER_KINDS if principal.is_engineer else messages.CUSTOMER_KINDS
            who_posts = "engineers" if principal.is_engineer else "customers"
            raise ApiError(403, f"{body.kind} is not a kind you may post: "
                                f"{who_posts} post {', '.join(allowed)}")
        return await write(state, _post, principal, ticket_id, body, bool(state.config.mail.smarthost))

    @app.get(f"{API}/tickets/{{ticket_id}}/messages", response_model=List[MessageOut], responses=ERRORS,
             tags=["messages"])
    async def list_messages(ticket_id: str, authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        return await read(state, messages.messages_of, ticket_id, principal.is_engineer)

    @app.get(f"{API}/tickets/{{ticket_id}}/timeline", response_model=List[TimelineEntry], responses=ERRORS,
             tags=["messages"],
             description="Messages, bundles with their headline findings, sessions and the reply clock's "
                         "events, oldest first.")
    async def timeline(ticket_id: str, authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        return await read(state, ticket_timeline, ticket_id, principal.is_engineer)

    @app.post(f"{API}/tickets/{{ticket_id}}/messages/{{message_id}}/no-reply", response_model=MessageOut,
              responses=ERRORS, tags=["messages"],
              description="An engineer marks a customer's message as needing no reply (audited).")
    async def no_reply(ticket_id: str, message_id: str, body: NoReplyIn,
                       authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        engineer_only(principal)
        return await write(state, _no_reply, principal, ticket_id, message_id, body.reason)


def _post(tx: Tx, principal: auth.Principal, ticket_id: str, body: MessageIn, mails: bool) -> Dict[str, Any]:
    if principal.is_engineer:
        delivery = None
        if body.kind != "internal":
            ticket = get_ticket(tx, ticket_id)
            has_people = bool(ticket and people.people_of(tx, ticket["customer"]))
            delivery = "pending" if mails and has_people else "delivered"
        return messages.add_message(tx, ticket_id, author=principal.name, author_kind="engineer",
                                    kind=body.kind, body=body.body, source="api", delivery=delivery,
                                    waiting_on_customer=body.waiting_on_customer)
    return messages.add_message(tx, ticket_id, author=f"token:{principal.name}", author_kind="customer",
                                kind=body.kind, body=body.body, source="api",
                                waiting_on_customer=body.waiting_on_customer)


def _no_reply(tx: Tx, principal: auth.Principal, ticket_id: str, message_id: str,
              reason: str) -> Dict[str, Any]:
    found = messages.message(tx, message_id) if message_id.startswith("msg-") else None
    if found is None or found["ticket_id"] != ticket_id:
        raise ApiError(404, "no such message")
    return messages.mark_no_reply(tx, message_id, principal.actor, reason)
