"""The work part of the HTTP API: a reply's work items (fan-out) and calls with an agenda.

- Work items are the support side's: engineers only (a customer token answers 403).
  `POST /tickets/{id}/work-items` `{"title", "owner", "estimate_seconds", "due_at"}` → 201, or
  409 when no reply is owed on the ticket, 400 when a value is out of bounds (the due time
  must lie inside the promise); `PATCH …/work-items/{item}` `{"state": "done"|"cancelled",
  "result"}`; `GET …/work-items/compose`: the reply made from the done items.
- Calls: the engineer or the ticket's customer token requests one (`POST /tickets/{id}/calls`
  `{"agenda": [...], "limit_minutes", "attendees", "earliest"?, "engineer"?, "session_id"?}`) →
  201 scheduled, with the invitation queued to everyone invited; a request without an agenda
  (or over 120 minutes, or without a free slot) → 422 with the reason, the refusal recorded.
  `POST …/calls/{call}/minutes` (engineers) → held; `POST …/calls/{call}/cancel` (either side).

Times are ISO 8601 UTC (`YYYY-MM-DDTHH:MM:SSZ`). An id of another ticket answers 404.
"""

from __future__ import annotations

import calendar as _calendar
import re
import time
from typing import Any, Dict, List, Literal, Optional

from fastapi import FastAPI, Header
from pydantic import BaseModel, Field

from server import auth
from server.api.access import Who, engineer_only
from server.api.errors import ApiError
from server.api.routing import API, ERRORS, read, write
from server.mail import invites
from server.mail.inbound import signer_of
from server.storage.db import Tx
from server.storage.state import State
from server.support import calls, workitems
from server.support.tickets import Invalid

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


class WorkItemIn(BaseModel):
    title: str = Field(description="one line, at most 200 characters")
    owner: str = Field(description="the engineer account that does it")
    estimate_seconds: float = Field(description="seconds of work, more than 0, at most 30 days")
    due_at: str = Field(description="UTC, after now and at or before the reply's due time (the promise)")


class WorkItemPatch(BaseModel):
    state: Optional[Literal["done", "cancelled"]] = None
    result: Optional[str] = Field(None, description="what was found (required when done), plain text")


class WorkItemOut(BaseModel):
    id: str
    ticket_id: str
    obligation_id: Optional[str] = None
    owner: str
    title: str
    estimate_seconds: float
    due_at: str
    state: str = Field(description="open, done or cancelled")
    result: Optional[str] = None
    created_by: str
    created_at: str
    done_at: Optional[str] = None


class ComposeOut(BaseModel):
    body: str = Field(description="the done items' titles and results, in the order they were added")
    obligation_id: Optional[str] = None
    done: List[str]
    open: List[str]


class AttendeeIn(BaseModel):
    name: str
    email: Optional[str] = None
    role: Optional[str] = Field(None, description="for example: account manager, consultant, DBA")


class CallIn(BaseModel):
    agenda: List[str] = Field(default_factory=list, description="the items to settle, at most 20")
    limit_minutes: int = Field(calls.DEFAULT_MINUTES, description="the time limit, at most 120")
    attendees: List[AttendeeIn] = Field(default_factory=list)
    earliest: Optional[str] = Field(None, description="UTC: not before this time")
    engineer: Optional[str] = Field(None, description="engineers only: who takes the call (default: "
                                                       "the one asking)")
    session_id: Optional[str] = Field(None, description="a remote session of this ticket the call is held "
                                                         "as; its purpose is the agenda when none is given")


class MinutesIn(BaseModel):
    minutes: str


class CancelIn(BaseModel):
    reason: str


class CallOut(BaseModel):
    id: str
    ticket_id: str
    requested_by: str
    requested_at: str
    agenda: List[str]
    limit_minutes: int
    attendees: List[Dict[str, Any]]
    engineer: Optional[str] = None
    starts_at: Optional[str] = None
    ends_at: Optional[str] = None
    state: str = Field(description="scheduled, refused, held or cancelled")
    refused_reason: Optional[str] = None
    cancel_reason: Optional[str] = None
    minutes: Optional[str] = None
    minuted_at: Optional[str] = None
    minuted_by: Optional[str] = None
    session_id: Optional[str] = None
    ical_uid: Optional[str] = None
    ical_sequence: int = 0


def epoch_of(text: Optional[str], what: str) -> Optional[float]:
    """An API time (`YYYY-MM-DDTHH:MM:SSZ`) as epoch seconds; None stays None; anything else is 400."""
    if text is None:
        return None
    try:
        if not _ISO.match(text):
            raise ValueError(text)
        return float(_calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except (ValueError, OverflowError):
        raise Invalid(f"{what} must be a UTC time like 2026-12-02T15:00:00Z") from None


def _guard(work):
    """Run `work(tx, …)`, turning the support modules' refusals into the API's answers."""

    def run(tx: Tx, *args: Any) -> Any:
        try:
            return work(tx, *args)
        except (workitems.NotFound, calls.NotFound) as exc:
            raise ApiError(404, str(exc)) from None
        except (workitems.Conflict, calls.Conflict) as exc:
            raise ApiError(409, str(exc)) from None

    return run


def _add_item(tx: Tx, principal: auth.Principal, ticket_id: str, body: WorkItemIn) -> Dict[str, Any]:
    return workitems.add(tx, ticket_id, title=body.title, owner=body.owner, estimate=body.estimate_seconds,
                         due_at=epoch_of(body.due_at, "due_at"), actor=principal.actor)


def _patch_item(tx: Tx, principal: auth.Principal, ticket_id: str, item_id: str,
                body: WorkItemPatch) -> Dict[str, Any]:
    return workitems.update(tx, ticket_id, item_id, state=body.state, result=body.result,
                            actor=principal.actor)


def request_call(tx: Tx, ticket_id: str, *, agenda: List[str], limit_minutes: int,
                 attendees: List[Dict[str, Any]], engineer: Optional[str], earliest: Optional[float],
                 actor: str, session_id: Optional[str], signer: Any) -> Any:
    """calls.request and, when scheduled, the invitation queued in the same transaction. A refusal
    is returned (not raised) so that the transaction commits and the refusal stays recorded."""
    try:
        call = calls.request(tx, ticket_id, agenda=agenda, limit_minutes=limit_minutes, attendees=attendees,
                             engineer=engineer, earliest=earliest, actor=actor, session_id=session_id)
    except calls.Refused as refused:
        return refused
    invites.send(tx, signer, call, actor=actor)
    return call


def cancel_call(tx: Tx, ticket_id: str, call_id: str, reason: str, actor: str, signer: Any) -> Dict[str, Any]:
    call = calls.cancel(tx, ticket_id, call_id, reason=reason, actor=actor)
    invites.send(tx, signer, call, method="CANCEL", actor=actor)
    return call


def _post_call(tx: Tx, principal: auth.Principal, ticket_id: str, body: CallIn, signer: Any) -> Any:
    engineer = body.engineer if principal.is_engineer and body.engineer else None
    if principal.is_engineer and engineer is None and tx.one("SELECT name FROM engineers WHERE name = ?",
                                                             (principal.name,)):
        engineer = principal.name  # an engineer asking takes the call, unless they name another
    return request_call(tx, ticket_id, agenda=body.agenda, limit_minutes=body.limit_minutes,
                        attendees=[a.model_dump() for a in body.attendees], engineer=engineer,
                        earliest=epoch_of(body.earliest, "earliest"), actor=principal.actor,
                        session_id=body.session_id, signer=signer)


def install(app: FastAPI, state: State, who: Who) -> None:
    base = f"{API}/tickets/{{ticket_id}}"

    @app.post(f"{base}/work-items", response_model=WorkItemOut, status_code=201, responses=ERRORS,
              tags=["work"], description="Split the running reply's work: an item for one engineer, due "
                                         "inside the promise.")
    async def add_item(ticket_id: str, body: WorkItemIn, authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        engineer_only(principal)
        return await write(state, _guard(_add_item), principal, ticket_id, body)

    @app.get(f"{base}/work-items", response_model=List[WorkItemOut], responses=ERRORS, tags=["work"])
    async def list_items(ticket_id: str, authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        engineer_only(principal)
        return await read(state, workitems.of_ticket, ticket_id)

    @app.get(f"{base}/work-items/compose", response_model=ComposeOut, responses=ERRORS, tags=["work"],
             description="The reply composed from the done work items of the running obligation.")
    async def compose(ticket_id: str, authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        engineer_only(principal)
        return await read(state, workitems.composition, ticket_id)

    @app.patch(f"{base}/work-items/{{item_id}}", response_model=WorkItemOut, responses=ERRORS, tags=["work"])
    async def patch_item(ticket_id: str, item_id: str, body: WorkItemPatch,
                         authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        engineer_only(principal)
        return await write(state, _guard(_patch_item), principal, ticket_id, item_id, body)

    @app.post(f"{base}/calls", response_model=CallOut, status_code=201, responses=ERRORS, tags=["work"],
              description="Request a call: an agenda and a time limit are required (no agenda, no call: "
                          "422 with the reason, the refusal recorded).")
    async def post_call(ticket_id: str, body: CallIn, authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        if body.engineer and not principal.is_engineer:
            raise ApiError(403, "only support engineers choose who takes a call")
        done = await write(state, _guard(_post_call), principal, ticket_id, body, signer_of(state))
        if isinstance(done, calls.Refused):
            raise ApiError(422, done.reason)
        return done

    @app.get(f"{base}/calls", response_model=List[CallOut], responses=ERRORS, tags=["work"])
    async def list_calls(ticket_id: str, authorization: Optional[str] = Header(None)) -> Any:
        await who(authorization, ticket_id)
        return await read(state, calls.of_ticket, ticket_id)

    @app.post(f"{base}/calls/{{call_id}}/minutes", response_model=CallOut, responses=ERRORS, tags=["work"],
              description="The call took place: its minutes go on the timeline (state held).")
    async def minutes(ticket_id: str, call_id: str, body: MinutesIn,
                      authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        engineer_only(principal)
        return await write(state, _guard(lambda tx: calls.record_minutes(
            tx, ticket_id, call_id, minutes=body.minutes, actor=principal.actor)))

    @app.post(f"{base}/calls/{{call_id}}/cancel", response_model=CallOut, responses=ERRORS, tags=["work"],
              description="Call a scheduled call off (either side); a CANCEL goes to everyone invited.")
    async def cancel(ticket_id: str, call_id: str, body: CancelIn,
                     authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        return await write(state, _guard(cancel_call), ticket_id, call_id, body.reason, principal.actor,
                           signer_of(state))
