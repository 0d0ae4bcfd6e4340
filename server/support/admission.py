"""Admission control on the server: may this obligation be promised for this due time?

`check` weighs the whole set: every open task (tasks.py, waiting ones too: their work resumes)
with the obligation at the wanted due in it, against the engineers' supply (capacity.py), by
planning.admission's earliest-deadline-first demand test. The new task's effort is the given
estimate (inflated by nobody's overrun: it is fresh), else the obligation's own remaining
effort, else the default for its kind. `record_refusal` keeps every refusal
(`admission_refusals`, audited): the wanted time, the earliest feasible one and why.
"""

from __future__ import annotations

import json
import secrets
from typing import Optional

from server.planning import admission as planning_admission
from server.planning import estimates
from server.planning.admission import Verdict
from server.planning.model import Task
from server.storage import audit
from server.storage.db import Tx
from server.support import capacity, clock, tasks
from server.support.tickets import iso


def check(tx: Tx, ticket_id: str, obligation_id: str, due_at: float, *, effort: Optional[float] = None,
          now: Optional[float] = None) -> Verdict:
    """The verdict on promising `obligation_id` of `ticket_id` for `due_at`."""
    moment = clock.now() if now is None else now
    others = tasks.open_tasks(tx, moment, include_waiting=True)
    own = next((t for t in others if t.id == obligation_id), None)
    if effort is None:
        if own is not None:
            effort = own.effort
        else:
            row = tx.one("SELECT kind FROM obligations WHERE id = ?", (obligation_id,))
            effort = estimates.default_effort(row["kind"] if row else "next", [])
    new = Task(id=obligation_id, due=float(due_at), effort=float(effort), ticket=ticket_id,
               kind=own.kind if own is not None else "reply")
    return planning_admission.check(others, new, capacity.supply(tx, moment))


def record_refusal(tx: Tx, ticket_id: str, actor: str, verdict: Verdict) -> str:
    """Keep a refusal: its id (`ar-…`)."""
    refusal_id = "ar-" + secrets.token_hex(8)
    detail = {"reason": verdict.reason, "failing_at": iso(verdict.failing_at) if verdict.failing_at else None,
              "shortfall_seconds": round(verdict.shortfall, 1), "must_move": list(verdict.must_move)}
    tx.run("INSERT INTO admission_refusals (id, ticket_id, at, actor, wanted_at, earliest_feasible_at, "
           "detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
           (refusal_id, ticket_id, clock.now(), actor, verdict.wanted_at, verdict.earliest_feasible_at,
            json.dumps(detail, sort_keys=True)))
    earliest = verdict.earliest_feasible_at
    audit.record(tx, actor, "admission.refuse", ticket_id, refusal_id, wanted_at=iso(verdict.wanted_at),
                 earliest_feasible_at=iso(earliest) if earliest else None)
    return refusal_id
