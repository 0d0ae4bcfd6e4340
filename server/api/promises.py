"""The promises part of the HTTP API: negotiating the time of a ticket's next reply.

- `POST /tickets/{id}/promises` (engineers) `{"due_at", "reason", "estimate_seconds"?}` → 201, the
  proposal; a customer token answers 403 (customers counter a proposal instead).
- `POST …/promises/{promise}/accept` → 200: the side that did not propose accepts; the promise
  is in force and the reply clock's deadline is its time.
- `POST …/promises/{promise}/counter` `{"due_at", "reason"?}` → 201: a new version, the open
  proposal now (an engineer's reason is required).
- `GET …/promises` → every version, oldest first (a customer's view without the estimates).

Admission control refuses a time the engineers' calendars cannot carry with 409
`{"error", "earliest_feasible_at", "must_move"}`: for engineers `must_move` lists the other
commitments that would have to move (ticket, task and due time); a customer only learns how
many, never another customer's tickets. The refusal is recorded either way. Other answers:
400 a time or reason that cannot be taken (unreadable, past, over a year ahead, empty, too
long, control characters) or no reply owed; 403 answering one's own side's proposal; 404 an
unknown promise or another ticket's; 409 a version that is not the open proposal, or whose
time has passed. Times are ISO 8601 UTC (`YYYY-MM-DDTHH:MM:SSZ`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from fastapi import FastAPI, Header
from pydantic import BaseModel, Field

from server import auth
from server.api.access import Who
from server.api.errors import ApiError
from server.api.routing import API, ERRORS, read, write
from server.storage.db import Tx
from server.storage.state import State
from server.support import promises
from server.support.tickets import iso


class PromiseIn(BaseModel):
    due_at: str = Field(max_length=64, description="when the next reply will be sent, UTC "
                                                   "(2026-12-03T15:00:00Z), at most a year ahead")
    reason: str = Field(max_length=4000, description="why this time: one line, at most 500 characters")
    estimate_seconds: Optional[float] = Field(
        None, description="the work still needed, in seconds (60 s to 30 days); admission control "
                          "weighs it against the engineers' calendars")


class CounterIn(BaseModel):
    due_at: str = Field(max_length=64, description="the time wanted instead, UTC")
    reason: Optional[str] = Field(None, max_length=4000,
                                  description="why (one line; required from an engineer)")


class PromiseOut(BaseModel):
    id: str
    ticket_id: str
    obligation_id: str
    version: int
    due_at: str
    policy_due_at: Optional[str] = Field(None, description="what the policy alone asked")
    reason: str
    proposed_by: str
    proposed_side: str = Field(description="engineer or customer")
    proposed_at: str
    replaces: Optional[str] = Field(None, description="the version this one follows")
    state: str = Field(description="proposed, accepted, countered, superseded or withdrawn")
    answered_by: Optional[str] = None
    answered_at: Optional[str] = None
    renegotiated: bool = Field(description="agreed before the promise it replaced had passed")
    estimate_seconds: Optional[float] = Field(None, description="engineers only")
    outcome: Optional[str] = Field(None, description="kept, missed, or null while pending")


class MoveOut(BaseModel):
    task_id: str
    ticket_id: str
    due_at: str


class RefusedOut(BaseModel):
    error: str
    earliest_feasible_at: Optional[str] = Field(
        None, description="the earliest time that passes admission control (null: none in the horizon)")
    must_move: Union[List[MoveOut], int, None] = Field(
        None, description="engineers: the commitments that would have to move for the time wanted; "
                          "a customer: how many")


#: Every documented error, with the refusal's fields under 409.
RESPONSES: Dict[Union[int, str], Dict[str, Any]] = {**ERRORS, 409: {"model": RefusedOut}}


def install(app: FastAPI, state: State, who: Who) -> None:
    base = f"{API}/tickets/{{ticket_id}}/promises"

    @app.post(base, response_model=PromiseOut, status_code=201, responses=RESPONSES, tags=["promises"],
              description="An engineer proposes the time of the next reply (admission control first).")
    async def propose(ticket_id: str, body: PromiseIn, authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        if not principal.is_engineer:
            raise ApiError(403, "customers answer an engineer's proposal: counter it with the time you need")
        return _answer(await write(state, _guarded, principal, _propose, ticket_id, body))

    @app.get(base, response_model=List[PromiseOut], responses=ERRORS, tags=["promises"],
             description="Every version of the ticket's promises, oldest first.")
    async def listed(ticket_id: str, authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        return await read(state, promises.of_ticket, ticket_id, principal.is_engineer)

    @app.post(f"{base}/{{promise_id}}/accept", response_model=PromiseOut, responses=RESPONSES,
              tags=["promises"], description="The side that did not propose accepts the open proposal.")
    async def accept(ticket_id: str, promise_id: str, authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        return _answer(await write(state, _guarded, principal, _accept, ticket_id, promise_id))

    @app.post(f"{base}/{{promise_id}}/counter", response_model=PromiseOut, status_code=201,
              responses=RESPONSES, tags=["promises"],
              description="The side that did not propose answers with a time of its own.")
    async def counter(ticket_id: str, promise_id: str, body: CounterIn,
                      authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        return _answer(await write(state, _guarded, principal, _counter, ticket_id, promise_id, body))


def _side(principal: auth.Principal) -> str:
    return "engineer" if principal.is_engineer else "customer"


def _propose(tx: Tx, principal: auth.Principal, ticket_id: str, body: PromiseIn) -> Dict[str, Any]:
    return promises.propose(tx, ticket_id, due_at=promises.parse_time(body.due_at), reason=body.reason,
                            actor=principal.actor, side="engineer", estimate=body.estimate_seconds)


def _accept(tx: Tx, principal: auth.Principal, ticket_id: str, promise_id: str) -> Dict[str, Any]:
    return promises.accept(tx, ticket_id, promise_id, actor=principal.actor, side=_side(principal))


def _counter(tx: Tx, principal: auth.Principal, ticket_id: str, promise_id: str,
             body: CounterIn) -> Dict[str, Any]:
    return promises.counter(tx, ticket_id, promise_id, due_at=promises.parse_time(body.due_at),
                            reason=body.reason, actor=principal.actor, side=_side(principal))


def _guarded(tx: Tx, principal: auth.Principal, work: Any, *args: Any) -> Any:
    """Run `work`; a refusal comes back as an ApiError *value*, so that the transaction that
    recorded it commits (raising would roll the record of the refusal back)."""
    try:
        return work(tx, principal, *args)
    except promises.Infeasible as exc:
        verdict = exc.verdict
        earliest = verdict.earliest_feasible_at
        moves: Union[List[Dict[str, str]], int] = (_moves(tx, verdict.must_move) if principal.is_engineer
                                                   else len(verdict.must_move))
        return ApiError(409, str(exc), extra={"earliest_feasible_at": iso(earliest) if earliest else None,
                                              "must_move": moves})
    except promises.NotFound as exc:
        raise ApiError(404, str(exc)) from None
    except promises.OwnSide as exc:
        raise ApiError(403, str(exc)) from None
    except promises.Conflict as exc:
        raise ApiError(409, str(exc)) from None


def _answer(found: Any) -> Any:
    if isinstance(found, ApiError):
        raise found
    return found


def _moves(tx: Tx, task_ids: Any) -> List[Dict[str, str]]:
    """The commitments named by admission control, with their tickets and due times (engineers only)."""
    out = []
    for task_id in task_ids:
        table = "work_items" if str(task_id).startswith("wi-") else "obligations"
        row = tx.one(f"SELECT ticket_id, due_at FROM {table} WHERE id = ?", (task_id,))
        if row is not None:
            out.append({"task_id": task_id, "ticket_id": row["ticket_id"], "due_at": iso(row["due_at"])})
    return out
