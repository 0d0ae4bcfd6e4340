"""The queue part of the HTTP API: the next task for this engineer, the ranked queue, and the
steps of a time slice (take, release or done, wait, resume) and an estimate.

Engineers only (a customer's token answers 403). `GET /queue/next` answers 200 with the task
or 204 when there is nothing this engineer may take. A take holds the task for one slice; a
take of a task another engineer holds answers 409, and so does a step the task's state does
not allow (waiting, pinned to another, not held). An id that is no task answers 404.
Semantics: support/queue.py and docs/queue.md.
"""

from __future__ import annotations

from typing import Any, List, Literal, Optional, Union

from fastapi import FastAPI, Header
from fastapi.responses import Response
from pydantic import BaseModel, Field

from server import auth
from server.api.access import Who, engineer_only
from server.api.errors import ApiError
from server.api.routing import API, ERRORS, read, write
from server.storage.db import Tx
from server.storage.state import State
from server.support import clock, queue, tasks
from server.support.policies import PolicyError, duration
from server.support.tickets import Invalid


class TaskOut(BaseModel):
    task_id: str = Field(description="ob-… (a reply owed) or wi-… (a work item)")
    ticket_id: str
    kind: str = Field(description="first | next (replies) or work_item")
    due_at: str
    slack_seconds: float = Field(description="usable engineer time until due minus the work due by then")
    effort_seconds: float = Field(description="the work still to do, inflated by the estimator's overrun")
    why: str
    engineer: Optional[str] = Field(None, description="the only engineer who may do it (a work item's owner)")
    held_by: Optional[str] = None
    owner: Optional[str] = Field(None, description="the dedicated owner of a long task")


class HoldOut(BaseModel):
    id: str
    task_id: str
    ticket_id: str
    engineer: str
    taken_at: str
    slice_ends: str
    released_at: Optional[str] = None
    released_why: Optional[str] = Field(None, description="released | done | slice | waiting")
    done: bool = False


class DoneOut(BaseModel):
    task_id: str
    ticket_id: str
    done: bool


class WaitOut(BaseModel):
    task_id: str
    ticket_id: str
    waiting_on: str
    since: str
    note: Optional[str] = None
    actor: Optional[str] = None
    id: Optional[str] = None
    released: Optional[bool] = None


class QueueOut(BaseModel):
    engineer: str
    now: str
    next: Optional[TaskOut] = None
    holds: List[HoldOut]
    tasks: List[TaskOut]
    waiting: List[WaitOut]


class ReleaseIn(BaseModel):
    done: bool = Field(False, description="the work is finished (records the effort's actual)")


class WaitIn(BaseModel):
    on: Literal["customer", "upload", "reproduction", "vendor"]
    note: str = Field("", description="one line, at most 500 characters")


class EstimateIn(BaseModel):
    estimate: Union[float, str] = Field(
        description="the whole task's work: seconds, or \"45m\", \"4h\", \"2d\"")


class ResumeOut(BaseModel):
    task_id: str
    ticket_id: str
    resumed: str
    reopened: bool


class EstimateOut(BaseModel):
    task_id: str
    ticket_id: str
    kind: str
    estimate_seconds: float
    estimated_by: str
    spent_seconds: float
    owner: Optional[str] = None


def _guarded(work: Any, *args: Any) -> Any:
    """`work(tx, …)` with the queue's errors as API answers."""
    def run(tx: Tx) -> Any:
        try:
            return work(tx, *args)
        except tasks.NotFound as exc:
            raise ApiError(404, str(exc)) from None
        except (queue.Busy, queue.Conflict) as exc:
            raise ApiError(409, str(exc)) from None
    return run


def _seconds(value: Union[float, str]) -> float:
    try:
        return duration(value, "the estimate")
    except PolicyError as exc:
        raise Invalid(str(exc)) from None


def install(app: FastAPI, state: State, who: Who) -> None:
    async def engineer(authorization: Optional[str]) -> auth.Principal:
        principal = await who(authorization)
        engineer_only(principal)
        return principal

    @app.get(f"{API}/queue/next", response_model=TaskOut,
             responses={**ERRORS, 204: {"description": "nothing"}}, tags=["queue"],
             description="The next task for this engineer: earliest deadline first, least slack on a tie; "
                         "204 when there is none they may take.")
    async def next_task(authorization: Optional[str] = Header(None)) -> Any:
        principal = await engineer(authorization)
        found = await read(state, _guarded(lambda tx: queue.next_for(tx, principal.name, clock.now())))
        return found if found is not None else Response(status_code=204)

    @app.get(f"{API}/queue", response_model=QueueOut, responses=ERRORS, tags=["queue"],
             description="Every open task ranked, this engineer's holds, the waiting tasks and the next "
                         "task.")
    async def whole_queue(authorization: Optional[str] = Header(None)) -> Any:
        principal = await engineer(authorization)
        return await read(state, _guarded(lambda tx: queue.ranked(tx, principal.name, clock.now())))

    @app.post(f"{API}/queue/tasks/{{task_id}}/take", response_model=HoldOut, responses=ERRORS, tags=["queue"],
              description="Hold the task for one slice; 409 while another engineer holds it.")
    async def take(task_id: str, authorization: Optional[str] = Header(None)) -> Any:
        principal = await engineer(authorization)
        return await write(state, _guarded(queue.take, principal.name, task_id, clock.now()))

    @app.post(f"{API}/queue/tasks/{{task_id}}/release", response_model=Union[HoldOut, DoneOut],
              responses=ERRORS, tags=["queue"],
              description="Let go of a held task, or with {\"done\": true} finish it (its time spent is "
                          "kept).")
    async def release(task_id: str, body: Optional[ReleaseIn] = None,
                      authorization: Optional[str] = Header(None)) -> Any:
        principal = await engineer(authorization)
        why = "done" if body is not None and body.done else "released"
        return await write(state, _guarded(queue.release, principal.name, task_id, clock.now(), why))

    @app.post(f"{API}/queue/tasks/{{task_id}}/wait", response_model=WaitOut, responses=ERRORS, tags=["queue"],
              description="The task waits on the customer, an upload, a reproduction or a vendor: the hold "
                          "ends at once, and the task is not offered until the wait ends.")
    async def wait(task_id: str, body: WaitIn, authorization: Optional[str] = Header(None)) -> Any:
        principal = await engineer(authorization)
        return await write(state, _guarded(queue.wait, principal.name, task_id, body.on, body.note,
                                           clock.now()))

    @app.post(f"{API}/queue/tasks/{{task_id}}/resume", response_model=ResumeOut, responses=ERRORS,
              tags=["queue"],
              description="End the task's wait, or reopen it when it was marked done.")
    async def resume(task_id: str, authorization: Optional[str] = Header(None)) -> Any:
        principal = await engineer(authorization)
        return await write(state, _guarded(queue.resume, task_id, principal.actor, clock.now()))

    @app.put(f"{API}/queue/tasks/{{task_id}}/estimate", response_model=EstimateOut, responses=ERRORS,
             tags=["queue"], description="The engineer's estimate of the task's whole work.")
    async def estimate(task_id: str, body: EstimateIn, authorization: Optional[str] = Header(None)) -> Any:
        principal = await engineer(authorization)
        seconds = _seconds(body.estimate)
        return await write(state, _guarded(tasks.set_estimate, task_id, seconds, principal.actor))

