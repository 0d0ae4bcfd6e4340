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

import calendar
import time
from typing import Any, Dict, List, Literal, Optional, Tuple

from fastapi import FastAPI, Header
from pydantic import BaseModel, Field

from server import auth
from server.api.access import Who, engineer_only
from server.api.bundles import HeadlineOut
from server.api.errors import ApiError
from server.api.routing import API, ERRORS, read, write
from server.gateway import records as session_records
from server.intake import bundles, reports
from server.storage.db import Tx
from server.storage.state import State
from server.support import breaches, messages, obligations, people
from server.support.tickets import get_ticket, iso

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
    type: Literal["message", "bundle", "session", "clock"]
    message: Optional[MessageOut] = None
    bundle: Optional[TimelineBundle] = None
    session: Optional[TimelineSession] = None
    clock: Optional[ClockEvent] = None


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


def ticket_timeline(tx: Tx, ticket_id: str, engineer: bool) -> List[Dict[str, Any]]:
    """Everything that happened on the ticket, oldest first (a customer's view without internal
    notes and clock warnings); ties keep messages before the clock events they caused."""
    entries: List[Tuple[float, int, Dict[str, Any]]] = []
    rows = tx.all("SELECT id, at FROM messages WHERE ticket_id = ?", (ticket_id,))
    times = {r["id"]: r["at"] for r in rows}
    for m in messages.messages_of(tx, ticket_id, include_internal=engineer):
        entries.append((times[m["id"]], 0, {"at": m["at"], "type": "message", "message": m}))
    found = bundles.list_bundles(tx, ticket_id)
    known = reports.summaries(tx, [b["id"] for b in found])
    for b in found:
        summary = known.get(b["id"], {"report": None, "headline": None})
        entries.append((_epoch(b["received"]), 1, {"at": b["received"], "type": "bundle", "bundle": {
            "id": b["id"], "filename": b["filename"], "status": b["status"], "host": b["host"], **summary}}))
    for s in session_records.list_for_ticket(tx, ticket_id):
        entries.append((_epoch(s["created"]), 2, {"at": s["created"], "type": "session", "session": {
            k: s[k] for k in ("id", "engineer", "purpose", "state", "expires", "ended")}}))
    for ob in obligations.of_ticket(tx, ticket_id):
        entries.append((ob["started"], 3, _clock(ob["started"], ob["id"], "due", ob["due_at"])))
        if ob["met_at"] is not None:
            entries.append((ob["met_at"], 3, _clock(ob["met_at"], ob["id"], "met", ob["due_at"])))
    for ev in breaches.events_of(tx, ticket_id):
        if engineer or ev["kind"] == "breach":
            entries.append((ev["recorded_at"], 4, _clock(ev["recorded_at"], ev["obligation_id"], ev["kind"],
                                                          ev["due"])))
    return [entry for _, _, entry in sorted(entries, key=lambda e: (e[0], e[1]))]


def _clock(at: float, obligation_id: str, kind: str, due: float) -> Dict[str, Any]:
    return {"at": iso(at), "type": "clock", "clock": {"obligation": obligation_id, "kind": kind,
                                                      "due_at": iso(due)}}


def _epoch(text: str) -> float:
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
