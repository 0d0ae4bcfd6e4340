"""The time-shared queue: engineers take the next task for one slice, and let go at its end or
as soon as the task must wait.

The rules kept here (docs/queue.md):

- `next_for(engineer)` is planning.queue.pick over the open tasks (tasks.py) and the
  engineers' supply (capacity.py): earliest deadline first, least slack on a tie, among the
  tasks this engineer may take (not held by another, not another's work item, not another's
  long task). A task the engineer holds already is not offered again.
- `take` holds a task for one slice (capacity.settings().slice_seconds) in `queue_holds`.
  While it is held another engineer's take answers `Busy` (409): the ticket's row is locked
  first, so two takes of one task are serialized and only one hold is ever open. A hold ends
  at the slice's end (`released_why` 'slice': the loop writes it; read before that, a hold
  past its slice already counts as ended), when the engineer releases it ('released'), marks
  it done ('done'), or puts the task in a waiting state ('waiting'), at once.
- A task that needs more than `long_slices` slices gets a dedicated owner: the first engineer
  who takes it (task_efforts.owner). Only they are offered it from then on, first unless
  another task's slack says otherwise, so a large investigation is not starved by small ones.
- Every ended hold adds its held time to task_efforts.spent; `done` also sets done_at, so the
  estimate can be compared with what it took (tasks.py learns the overrun from it).
- A wait (customer | upload | reproduction | vendor) keeps the task out of the queue until it
  ends (tasks.py says how); `resume` ends any wait, and reopens a task marked done.
- `alarms(now)`: a task whose slack falls below the configured threshold (capacity.py) notifies
  its holder, else the engineer it is pinned or dedicated to, else the ticket's owner, through
  `notifications` with the id `<task>:slack:<level>` (level `low`, then `none` once the slack is
  gone): each exactly once, before the breach, not after it.
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Any, Dict, List, Optional

from server.planning import queue as policy
from server.planning.model import Task
from server.planning.supply import Supply
from server.safetext import has_controls
from server.storage import audit
from server.storage.db import Database, Tx
from server.support import capacity, clock, tasks
from server.support.tasks import WAITS, NotFound
from server.support.tickets import Invalid, iso

NOTE_MAX = 500
#: The loop's round: slices end and alarms fire within about this of their time.
ROUND_SECONDS = 5.0
RELEASES = ("released", "done", "slice", "waiting")

log = logging.getLogger("mydiag.queue")


class Busy(Exception):
    """Another engineer holds the task now (409); the message says who and until when."""


class Conflict(Exception):
    """The task is not in a state that allows this (409): waiting, pinned to another, not held."""


def _actor(tx: Tx, engineer: str) -> str:
    """How the audit log names the engineer (`engineer:alice`, `admin:admin`)."""
    row = tx.one("SELECT role FROM engineers WHERE name = ?", (engineer,))
    return f"{row['role'] if row else 'engineer'}:{engineer}"


def _hold_view(row: Dict[str, Any], now: float) -> Dict[str, Any]:
    released_at, why = row["released_at"], row["released_why"]
    if released_at is None and row["slice_ends"] <= now:
        released_at, why = row["slice_ends"], "slice"
    return {"id": row["id"], "task_id": row["task_id"], "ticket_id": row["ticket_id"],
            "engineer": row["engineer"], "taken_at": iso(row["taken_at"]),
            "slice_ends": iso(row["slice_ends"]),
            "released_at": iso(released_at) if released_at is not None else None, "released_why": why}


def _open_holds(tx: Tx, now: float, task_id: Optional[str] = None) -> List[Dict[str, Any]]:
    """The holds in force (not released, slice not over), oldest first."""
    if task_id is None:
        return tx.all("SELECT * FROM queue_holds WHERE released_at IS NULL AND slice_ends > ? "
                      "ORDER BY taken_at, id", (now,))
    return tx.all("SELECT * FROM queue_holds WHERE released_at IS NULL AND slice_ends > ? AND task_id = ? "
                  "ORDER BY taken_at, id", (now, task_id))


def _owners(tx: Tx, ids: List[str]) -> Dict[str, str]:
    found: Dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in tx.all("SELECT task_id, owner FROM task_efforts WHERE owner IS NOT NULL "
                          f"AND task_id IN ({marks})", chunk):
            found[row["task_id"]] = row["owner"]
    return found


def _view(pick: policy.Pick, why: Optional[str] = None) -> Dict[str, Any]:
    task = pick.task
    return {"task_id": task.id, "ticket_id": task.ticket, "kind": task.kind, "due_at": iso(task.due),
            "slack_seconds": round(pick.slack, 1), "effort_seconds": round(task.effort, 1),
            "why": why or pick.why, "engineer": task.engineer}


class _Snapshot:
    """The open tasks, the supply, the holds and the dedicated owners, read once."""

    def __init__(self, tx: Tx, now: float) -> None:
        self.now = now
        self.tasks: List[Task] = tasks.open_tasks(tx, now)
        self.supply: Supply = capacity.supply(tx, now)
        open_ids = {t.id for t in self.tasks}
        # A hold on a task that left the queue (met, paused) has ended, also before the loop wrote it.
        self.holds = [h for h in _open_holds(tx, now) if h["task_id"] in open_ids]
        self.held = {h["task_id"]: h["engineer"] for h in self.holds}
        self.owners = _owners(tx, [t.id for t in self.tasks])
        for task in self.tasks:
            if task.engineer:
                self.owners.setdefault(task.id, task.engineer)

    def pick(self, engineer: str) -> Optional[policy.Pick]:
        mine = {task_id for task_id, holder in self.held.items() if holder == engineer}
        # A task the engineer already holds is theirs: the next one is another.
        offered = [t for t in self.tasks if t.id not in mine]
        settings = capacity.settings()
        return policy.pick(engineer, offered, self.supply, self.now, held=self.held, owners=self.owners,
                           slice_seconds=settings.slice_seconds, long_slices=settings.long_slices)


def next_for(tx: Tx, engineer: str, now: float) -> Optional[Dict[str, Any]]:
    """The next task for this engineer, or None when there is nothing they may take."""
    found = _Snapshot(tx, now).pick(engineer)
    return _view(found) if found is not None else None


def ranked(tx: Tx, engineer: str, now: float) -> Dict[str, Any]:
    """The queue as a page shows it: every open task ranked (with who holds it, who it is
    dedicated to), the engineer's holds, the waiting tasks and the next task for them."""
    snap = _Snapshot(tx, now)
    listed = []
    for pick in policy.rank(snap.tasks, snap.supply, now):
        shown = _view(pick)
        shown["held_by"] = snap.held.get(pick.task.id)
        shown["owner"] = snap.owners.get(pick.task.id)
        listed.append(shown)
    following = snap.pick(engineer)
    waits = [{"task_id": w["task_id"], "ticket_id": w["ticket_id"], "waiting_on": w["waiting_on"],
              "since": iso(w["since"]), "actor": w["actor"], "note": w["note"]}
             for w in tasks.waiting(tx).values()]
    return {"engineer": engineer, "now": iso(now), "next": _view(following) if following else None,
            "holds": [_hold_view(h, now) for h in snap.holds if h["engineer"] == engineer],
            "tasks": listed, "waiting": waits}


def _task(tx: Tx, task_id: str, now: float) -> Dict[str, Any]:
    """The task's ticket and kind, its ticket row locked; NotFound/Conflict when it is no task now."""
    found = tasks.describe(tx, task_id)
    if found is None:
        raise NotFound("no such task (a reply owed `ob-…` or a work item `wi-…`)")
    tx.lock("tickets", found["ticket_id"])
    if found["state"] == "paused":
        raise Conflict("the ticket waits on the customer: its reply clock is paused, nothing to take")
    if found["state"] not in ("open",):
        raise NotFound(f"no such task in the queue: it is {found['state']}")
    return found


def _close(tx: Tx, hold: Dict[str, Any], at: float, why: str) -> bool:
    """End a hold at `at`; its held time goes to the task's effort (only the writer who ended it adds)."""
    if tx.run("UPDATE queue_holds SET released_at = ?, released_why = ? WHERE id = ? AND released_at IS NULL",
              (at, why, hold["id"])) != 1:
        return False
    kind = (tasks.describe(tx, hold["task_id"]) or {}).get("kind", "reply")
    tasks.record_effort(tx, hold["task_id"], hold["ticket_id"], kind, spent=at - hold["taken_at"])
    return True


def sweep(tx: Tx, now: float) -> int:
    """End what has ended: holds past their slice ('slice'), holds of tasks that left the
    queue ('done': met, cancelled, or paused), and waits that a message or bundle ended.
    The number of holds and waits ended."""
    ended = 0
    for hold in tx.all("SELECT * FROM queue_holds WHERE released_at IS NULL AND slice_ends <= ?", (now,)):
        ended += _close(tx, hold, hold["slice_ends"], "slice")
    for hold in tx.all("SELECT * FROM queue_holds WHERE released_at IS NULL"):
        found = tasks.describe(tx, hold["task_id"])
        if found is None or found["state"] != "open":
            ended += _close(tx, hold, now, "done")
    for wait_id in tasks.ended_waits(tx):
        ended += tx.run("UPDATE task_waits SET ended = ? WHERE id = ? AND ended IS NULL", (now, wait_id))
    return ended


def _sweep_task(tx: Tx, task_id: str, now: float) -> None:
    for hold in tx.all("SELECT * FROM queue_holds WHERE task_id = ? AND released_at IS NULL "
                       "AND slice_ends <= ?", (task_id, now)):
        _close(tx, hold, hold["slice_ends"], "slice")


def take(tx: Tx, engineer: str, task_id: str, now: float) -> Dict[str, Any]:
    """Hold the task for one slice (the engineer's own hold in force is answered as it is)."""
    found = _task(tx, task_id, now)
    _sweep_task(tx, task_id, now)
    for hold in _open_holds(tx, now, task_id):
        if hold["engineer"] == engineer:
            return _hold_view(hold, now)
        raise Busy(f"{hold['engineer']} holds {task_id} until {iso(hold['slice_ends'])}")
    snap = {t.id: t for t in tasks.open_tasks(tx, now)}
    if task_id not in snap:
        wait = tasks.waiting(tx).get(task_id)
        if wait is not None:
            raise Conflict(f"{task_id} waits on {wait['waiting_on']} since {iso(wait['since'])}: "
                           "resume it first")
        raise Conflict(f"{task_id} is marked done: resume it to work on it again")
    task = snap[task_id]
    effort = tasks.effort_of(tx, task_id)
    owner = (effort or {}).get("owner") or task.engineer
    if owner and owner != engineer:
        what = "a work item of" if task.engineer else "dedicated to"
        raise Conflict(f"{task_id} is {what} {owner}")
    settings = capacity.settings()
    if owner is None and policy.is_long(task, settings.slice_seconds, settings.long_slices):
        tasks.record_effort(tx, task_id, found["ticket_id"], found["kind"], owner=engineer)
    hold_id = "qh-" + secrets.token_hex(8)
    tx.run("INSERT INTO queue_holds (id, engineer, task_id, ticket_id, taken_at, slice_ends) "
           "VALUES (?, ?, ?, ?, ?, ?)", (hold_id, engineer, task_id, found["ticket_id"], now,
                                         now + settings.slice_seconds))
    audit.record(tx, _actor(tx, engineer), "queue.take", found["ticket_id"], task_id, hold=hold_id)
    row = tx.one("SELECT * FROM queue_holds WHERE id = ?", (hold_id,))
    assert row is not None
    return _hold_view(row, now)


def _own_hold(tx: Tx, engineer: str, task_id: str, now: float) -> Optional[Dict[str, Any]]:
    for hold in _open_holds(tx, now, task_id):
        if hold["engineer"] != engineer:
            raise Busy(f"{hold['engineer']} holds {task_id} until {iso(hold['slice_ends'])}")
        return hold
    return None


def release(tx: Tx, engineer: str, task_id: str, now: float, why: str = "released") -> Dict[str, Any]:
    """Let go of a held task ('released'), or finish it ('done': also without a hold, when the
    slice ended before the engineer said so). The ended hold, or for a done task without one
    `{"task_id", "done": true}`."""
    if why not in ("released", "done"):
        raise Invalid("a release is 'released' or 'done'")
    if not tasks.well_formed(task_id) or tasks.describe(tx, task_id) is None:
        raise NotFound("no such task (a reply owed `ob-…` or a work item `wi-…`)")
    found = tasks.describe(tx, task_id) or {}
    tx.lock("tickets", found["ticket_id"])
    _sweep_task(tx, task_id, now)
    hold = _own_hold(tx, engineer, task_id, now)
    if hold is None and why == "released":
        raise Conflict(f"you do not hold {task_id} (its slice may have ended: take it again)")
    if hold is not None:
        _close(tx, hold, now, why)
    if why == "done":
        tasks.record_effort(tx, task_id, found["ticket_id"], found["kind"], done_at=now)
    audit.record(tx, _actor(tx, engineer), f"queue.{why}", found["ticket_id"], task_id)
    if hold is None:
        return {"task_id": task_id, "ticket_id": found["ticket_id"], "done": True}
    row = tx.one("SELECT * FROM queue_holds WHERE id = ?", (hold["id"],))
    assert row is not None
    return dict(_hold_view(row, now), done=why == "done")


def _note(note: Any) -> str:
    text = (note if isinstance(note, str) else "").strip()
    if len(text) > NOTE_MAX or has_controls(text):
        raise Invalid(f"the note must be at most {NOTE_MAX} printable characters on one line")
    return text


def wait(tx: Tx, engineer: str, task_id: str, on: str, note: str, now: float) -> Dict[str, Any]:
    """Put the task in a waiting state: the engineer's hold on it ends at once ('waiting')."""
    if on not in WAITS:
        raise Invalid(f"a task waits on one of: {', '.join(WAITS)}")
    text = _note(note)
    found = _task(tx, task_id, now)
    _sweep_task(tx, task_id, now)
    if task_id in tasks.waiting(tx):
        raise Conflict(f"{task_id} is already waiting: resume it first")
    hold = _own_hold(tx, engineer, task_id, now)
    wait_id = "tw-" + secrets.token_hex(8)
    tx.run("INSERT INTO task_waits (id, task_id, ticket_id, waiting_on, since, actor, note) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)", (wait_id, task_id, found["ticket_id"], on, now, engineer, text))
    if hold is not None:
        _close(tx, hold, now, "waiting")
    audit.record(tx, _actor(tx, engineer), "queue.wait", found["ticket_id"], task_id, on=on)
    return {"id": wait_id, "task_id": task_id, "ticket_id": found["ticket_id"], "waiting_on": on,
            "since": iso(now), "note": text, "released": hold is not None}


def resume(tx: Tx, task_id: str, actor: str, now: float) -> Dict[str, Any]:
    """End the task's wait (any kind), or reopen it when it was marked done."""
    found = tasks.describe(tx, task_id)
    if found is None:
        raise NotFound("no such task (a reply owed `ob-…` or a work item `wi-…`)")
    tx.lock("tickets", found["ticket_id"])
    ended = tx.run("UPDATE task_waits SET ended = ? WHERE task_id = ? AND ended IS NULL", (now, task_id))
    effort = tasks.effort_of(tx, task_id)
    reopened = bool(effort and effort["done_at"] is not None)
    if not ended and not reopened:
        raise Conflict(f"{task_id} is neither waiting nor done: nothing to resume")
    if reopened:
        tasks.record_effort(tx, task_id, found["ticket_id"], found["kind"], reopen=True)
    audit.record(tx, actor, "queue.resume", found["ticket_id"], task_id)
    return {"task_id": task_id, "ticket_id": found["ticket_id"], "resumed": iso(now), "reopened": reopened}


def _recipient(tx: Tx, task: Task, held: Dict[str, str], owners: Dict[str, str]) -> str:
    if task.id in held:
        return held[task.id]
    if task.id in owners:
        return owners[task.id]
    row = tx.one("SELECT t.created_by, tt.owner FROM tickets t "
                 "LEFT JOIN ticket_terms tt ON tt.ticket_id = t.id WHERE t.id = ?", (task.ticket,))
    who = (row or {}).get("owner") or (row or {}).get("created_by") or "unknown"
    # created_by is an actor (`engineer:alice`); a notification goes to the account's name.
    kind, sep, name = who.partition(":")
    return name if sep and kind in ("engineer", "admin") else who


def alarms(tx: Tx, now: float) -> int:
    """Slack alarms of every task whose slack is below the threshold; the number written now."""
    threshold = capacity.settings().alarm_slack_seconds
    if threshold <= 0:
        return 0
    snap = _Snapshot(tx, now)
    written = 0
    for pick in policy.alarms(snap.tasks, snap.supply, now, threshold):
        levels = ["low"] + (["none"] if pick.slack <= 0 else [])
        recipient = _recipient(tx, pick.task, snap.held, snap.owners)
        for level in levels:
            text = (f"{pick.task.id} on {pick.task.ticket}: only {round(max(pick.slack, 0) / 60)} min "
                    f"of slack before its due {iso(pick.task.due)}" if level == "low" else
                    f"{pick.task.id} on {pick.task.ticket}: no slack left, its due {iso(pick.task.due)} "
                    "cannot be met without moving other work")
            written += tx.run("INSERT INTO notifications (id, recipient, ticket_id, kind, text, at) "
                              "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                              (f"{pick.task.id}:slack:{level}", recipient, pick.task.ticket, f"slack_{level}",
                               text, now))
    return written


def alarms_for(tx: Tx, engineer: str, limit: int = 50) -> List[Dict[str, Any]]:
    rows = tx.all("SELECT id, ticket_id, kind, text, at FROM notifications WHERE recipient = ? "
                  "AND kind IN ('slack_low', 'slack_none') ORDER BY at DESC LIMIT ?", (engineer, limit))
    return [dict(r, at=iso(r["at"])) for r in rows]


def run(db: Database, stop: threading.Event) -> None:
    """The background loop of one server process: slices ended, waits ended, alarms raised."""
    while not stop.is_set():
        try:
            with db.tx() as tx:
                now = clock.now()
                sweep(tx, now)
                alarms(tx, now)
        except Exception as exc:  # noqa: BLE001 - keep going; the next round retries
            log.warning("queue round failed: %s: %s", type(exc).__name__, exc)
        stop.wait(ROUND_SECONDS)
