"""The open work as planning Tasks: what the queue offers and admission control weighs.

The rules kept here (docs/queue.md, "Tasks"):

- A reply owed is a task: every obligation in state `open` (a `paused` one waits on the
  customer and is no task), id the obligation's (`ob-…`), due its `due_at` (an accepted
  promise has already set it), kind `first` or `next`.
- Every open work item (workitems.open_items) is a task of its owner alone (`wi-…`).
- A task put in a waiting state (task_waits) is not offered until the wait ends: a
  `customer` wait ends with the ticket's next customer message, an `upload` wait with its
  next bundle (both read from those tables: newer than the wait's start), a
  `reproduction` or `vendor` wait when an engineer resumes it. A task marked done
  (task_efforts.done_at) is not offered again until it is resumed.
- Effort is what is still to do: the estimate (task_efforts, set with `set_estimate`; else
  the accepted promise's; else the default for the kind learned from finished tasks,
  planning.estimates.default_effort) inflated by the estimator's measured overrun
  (planning.estimates.overrun over their finished tasks' estimate and time spent), minus the
  time already spent, never below MIN_REMAINING_SECONDS while the task is open.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from server.planning import estimates
from server.planning.model import Task
from server.storage import audit
from server.storage.db import Tx
from server.support import workitems
from server.support.tickets import Invalid

#: An open task always needs some work: at least this much is left until it is done.
MIN_REMAINING_SECONDS = 300.0
#: An estimate is seconds of engineer work: at least a minute, at most 30 days.
MIN_ESTIMATE_SECONDS = 60.0
MAX_ESTIMATE_SECONDS = 30 * 86400.0
WAITS = ("customer", "upload", "reproduction", "vendor")
TASK_ID = re.compile(r"^(ob|wi)-[0-9a-f]{16}$")


class NotFound(LookupError):
    """No such task in the queue."""


def well_formed(task_id: Any) -> bool:
    return isinstance(task_id, str) and bool(TASK_ID.match(task_id))


def _chunks(ids: List[str], size: int = 500) -> Iterable[List[str]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _efforts(tx: Tx, ids: List[str]) -> Dict[str, Dict[str, Any]]:
    found: Dict[str, Dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(ids))):
        marks = ", ".join("?" for _ in chunk)
        for row in tx.all(f"SELECT * FROM task_efforts WHERE task_id IN ({marks})", chunk):
            found[row["task_id"]] = row
    return found


def _promised(tx: Tx, ids: List[str]) -> Dict[str, Tuple[float, str]]:
    """The accepted promises' estimates by obligation: (seconds, who proposed it)."""
    found: Dict[str, Tuple[float, str]] = {}
    for chunk in _chunks(sorted(set(ids))):
        marks = ", ".join("?" for _ in chunk)
        for row in tx.all("SELECT obligation_id, estimate, proposed_by, version FROM promises "
                          f"WHERE state = 'accepted' AND estimate IS NOT NULL AND obligation_id IN ({marks}) "
                          "ORDER BY version", chunk):
            found[row["obligation_id"]] = (float(row["estimate"]), row["proposed_by"])
    return found


class _History:
    """What finished tasks teach: the defaults per kind and each estimator's overrun."""

    def __init__(self, tx: Tx) -> None:
        rows = tx.all("SELECT kind, estimate, estimated_by, spent FROM task_efforts "
                      "WHERE done_at IS NOT NULL AND spent > 0")
        self.actuals: Dict[str, List[float]] = {}
        self.pairs: Dict[str, List[Tuple[float, float]]] = {}
        for row in rows:
            self.actuals.setdefault(row["kind"], []).append(float(row["spent"]))
            if row["estimate"] and row["estimated_by"]:
                pair = (float(row["estimate"]), float(row["spent"]))
                self.pairs.setdefault(row["estimated_by"], []).append(pair)
        self._factors: Dict[str, float] = {}

    def overrun(self, estimator: Optional[str]) -> float:
        if not estimator:
            return 1.0
        if estimator not in self._factors:
            self._factors[estimator] = estimates.overrun(self.pairs.get(estimator, []))
        return self._factors[estimator]

    def default(self, kind: str) -> float:
        return estimates.default_effort(kind, self.actuals.get(kind, []))


def _remaining(history: _History, kind: str, effort: Optional[Dict[str, Any]],
               promised: Optional[Tuple[float, str]]) -> float:
    spent = float(effort["spent"]) if effort else 0.0
    if effort and effort["estimate"]:
        total = float(effort["estimate"]) * history.overrun(effort["estimated_by"])
    elif promised is not None:
        total = promised[0] * history.overrun(promised[1])
    else:
        total = history.default(kind)
    return max(total - spent, MIN_REMAINING_SECONDS)


def waiting(tx: Tx) -> Dict[str, Dict[str, Any]]:
    """The waits in force by task id (a customer or upload wait that the ticket's newer
    message or bundle ended counts as over, also before the loop has written its end)."""
    rows = tx.all("SELECT * FROM task_waits WHERE ended IS NULL ORDER BY since")
    if not rows:
        return {}
    over = set(ended_waits(tx))
    return {row["task_id"]: row for row in rows if row["id"] not in over}


def ended_waits(tx: Tx) -> List[str]:
    """Open waits whose end has come by the tables: a customer message or a bundle newer than them."""
    found = tx.all("SELECT w.id FROM task_waits w WHERE w.ended IS NULL AND w.waiting_on = 'customer' AND "
                   "EXISTS (SELECT 1 FROM messages m WHERE m.ticket_id = w.ticket_id "
                   "AND m.author_kind = 'customer' AND m.at > w.since)")
    found += tx.all("SELECT w.id FROM task_waits w WHERE w.ended IS NULL AND w.waiting_on = 'upload' AND "
                    "EXISTS (SELECT 1 FROM bundles b WHERE b.ticket_id = w.ticket_id "
                    "AND b.received > w.since)")
    return [row["id"] for row in found]


def open_tasks(tx: Tx, now: float, *, include_waiting: bool = False) -> List[Task]:
    """Every open task (see the module's rules); `include_waiting`: waiting ones too, ready
    now (admission control counts work that will resume)."""
    obligations = tx.all("SELECT id, ticket_id, kind, due_at FROM obligations WHERE state = 'open' "
                         "ORDER BY due_at, id")
    items = workitems.open_items(tx)
    ids = [o["id"] for o in obligations] + [i["id"] for i in items]
    efforts = _efforts(tx, ids)
    promised = _promised(tx, [o["id"] for o in obligations])
    waits = {} if include_waiting else waiting(tx)
    history = _History(tx)
    out: List[Task] = []
    for row in obligations:
        effort = efforts.get(row["id"])
        if row["id"] in waits or (effort and effort["done_at"] is not None):
            continue
        out.append(Task(id=row["id"], due=float(row["due_at"]), ticket=row["ticket_id"], kind=row["kind"],
                        effort=_remaining(history, row["kind"], effort, promised.get(row["id"]))))
    paused = _paused(tx, {i["obligation_id"] for i in items})
    for item in items:
        effort = efforts.get(item["id"])
        done = bool(effort and effort["done_at"] is not None)
        if item["id"] in waits or item["obligation_id"] in paused or done:
            continue
        # The item's own estimate stands unless an engineer set another (task_efforts).
        own = effort if effort and effort["estimate"] else {
            "estimate": item["estimate"], "estimated_by": None, "spent": effort["spent"] if effort else 0.0}
        out.append(Task(id=item["id"], due=float(item["due_at"]), ticket=item["ticket_id"], kind="work_item",
                        engineer=item["owner"], effort=_remaining(history, "work_item", own, None)))
    return out


def _paused(tx: Tx, obligation_ids: Set[str]) -> Set[str]:
    """Of these obligations, the paused ones (the ticket waits on the customer: no task of it is offered)."""
    found: Set[str] = set()
    for chunk in _chunks(sorted(obligation_ids)):
        marks = ", ".join("?" for _ in chunk)
        rows = tx.all(f"SELECT id FROM obligations WHERE state = 'paused' AND id IN ({marks})", chunk)
        found |= {r["id"] for r in rows}
    return found


def describe(tx: Tx, task_id: str) -> Optional[Dict[str, Any]]:
    """A task id's ticket, kind and state whatever it is now (None: no such id)."""
    if not well_formed(task_id):
        return None
    if task_id.startswith("ob-"):
        row = tx.one("SELECT ticket_id, kind, state FROM obligations WHERE id = ?", (task_id,))
        if row is None:
            return None
        return {"ticket_id": row["ticket_id"], "kind": row["kind"], "state": row["state"]}
    row = tx.one("SELECT w.ticket_id, w.state, o.state AS obligation_state FROM work_items w "
                 "LEFT JOIN obligations o ON o.id = w.obligation_id WHERE w.id = ?", (task_id,))
    if row is None:
        return None
    state = "paused" if row["state"] == "open" and row["obligation_state"] == "paused" else row["state"]
    return {"ticket_id": row["ticket_id"], "kind": "work_item", "state": state}


def record_effort(tx: Tx, task_id: str, ticket_id: str, kind: str, *, spent: float = 0.0,
                  estimate: Optional[float] = None, estimated_by: Optional[str] = None,
                  owner: Optional[str] = None, done_at: Optional[float] = None, reopen: bool = False) -> None:
    """Add `spent` seconds to the task's effort and set what is given (one row per task)."""
    tx.run("INSERT INTO task_efforts (task_id, ticket_id, kind, estimate, estimated_by, spent, owner, "
           "done_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET "
           "spent = task_efforts.spent + excluded.spent, "
           "estimate = COALESCE(excluded.estimate, task_efforts.estimate), "
           "estimated_by = COALESCE(excluded.estimated_by, task_efforts.estimated_by), "
           "owner = COALESCE(task_efforts.owner, excluded.owner), "
           + ("done_at = NULL" if reopen else "done_at = COALESCE(excluded.done_at, task_efforts.done_at)"),
           (task_id, ticket_id, kind, estimate, estimated_by, max(0.0, spent), owner, done_at))


def effort_of(tx: Tx, task_id: str) -> Optional[Dict[str, Any]]:
    return tx.one("SELECT * FROM task_efforts WHERE task_id = ?", (task_id,))


def set_estimate(tx: Tx, task_id: str, seconds: float, actor: str) -> Dict[str, Any]:
    """The engineer's estimate of the task's whole effort (replacing the one before; audited)."""
    found = describe(tx, task_id)
    if found is None or found["state"] not in ("open", "paused"):
        raise NotFound("no such open task (a reply owed `ob-…` or an open work item `wi-…`)")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or not MIN_ESTIMATE_SECONDS <= seconds <= MAX_ESTIMATE_SECONDS:
        raise Invalid(f"the estimate must be from {int(MIN_ESTIMATE_SECONDS)} seconds to 30 days of work")
    tx.lock("tickets", found["ticket_id"])
    record_effort(tx, task_id, found["ticket_id"], found["kind"])
    tx.run("UPDATE task_efforts SET estimate = ?, estimated_by = ? WHERE task_id = ?",
           (float(seconds), actor, task_id))
    audit.record(tx, actor, "task.estimate", found["ticket_id"], task_id, seconds=float(seconds))
    row = effort_of(tx, task_id)
    assert row is not None
    return {"task_id": task_id, "ticket_id": row["ticket_id"], "kind": row["kind"],
            "estimate_seconds": row["estimate"], "estimated_by": row["estimated_by"],
            "spent_seconds": row["spent"],
            "owner": row["owner"]}
