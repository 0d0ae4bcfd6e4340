"""Fan-out: one reply's work split into work items, each with an owner, an estimate and a due time.

The rules kept here (docs/calls.md, "Fan-out"):

- A work item splits the ticket's **running** obligation (open or paused): without one no
  reply is owed and nothing can be split (`Conflict`, 409). Its due time lies inside the
  promise: `now < due_at <= the obligation's due_at` (an accepted promise has already set that
  due_at; a paused obligation's stored due_at only moves later when it resumes).
- The owner is an engineer account; the title is one printable line (at most 200
  characters); the estimate is seconds, `0 < estimate <= MAX_ESTIMATE_SECONDS`.
- An item is `open` until it is `done` (with a result: what the owner found) or `cancelled`;
  a finished item is never changed again. Every step is audited.
- `open_items` is what the queue reads (support/tasks.py): the open items of running
  obligations, each in its owner's queue. `compose_reply` is the reply that meets the
  promise, made from the done items' results in the order they were added.

Times are epoch seconds inside (open_items' rows), ISO 8601 UTC in what `of_ticket` returns.
"""

from __future__ import annotations

import math
import secrets
from typing import Any, Dict, List, Optional, Tuple

from server.safetext import has_controls
from server.storage import audit
from server.storage.db import Tx
from server.support import clock, obligations
from server.support.tickets import Invalid, clean_text, iso

STATES = ("open", "done", "cancelled")
FINISHED = ("done", "cancelled")
#: A work item is part of one reply: more than 30 days of work is a typing mistake.
MAX_ESTIMATE_SECONDS = 30 * 86400.0
TITLE_MAX = 200
RESULT_MAX = 20000
#: Items one obligation may be split into (a page and a queue stay readable).
MAX_ITEMS_PER_OBLIGATION = 50


class Conflict(Exception):
    """The ticket or the item is not in a state that allows this; the message says why."""


class NotFound(LookupError):
    """No such work item on this ticket."""


def _engineer_exists(tx: Tx, name: str) -> bool:
    return tx.one("SELECT name FROM engineers WHERE name = ?", (name,)) is not None


def _result_text(value: Optional[str], what: str = "the result") -> str:
    text = (value or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text or len(text) > RESULT_MAX or has_controls(text.replace("\n", "").replace("\t", "")):
        raise Invalid(f"{what} must be 1-{RESULT_MAX} characters of plain text (tab and newline are the "
                      "only control characters)")
    return text


def add(tx: Tx, ticket_id: str, *, title: str, owner: str, estimate: float, due_at: float,
        actor: str) -> Dict[str, Any]:
    """A new open work item of the ticket's running obligation."""
    tx.lock("tickets", ticket_id)
    running = obligations.running(tx, ticket_id)
    if running is None:
        raise Conflict("no reply is owed on this ticket: a work item splits the work of a running "
                       "obligation (a customer message that needs a reply)")
    title = clean_text(title if isinstance(title, str) else "", "a title", TITLE_MAX)
    if not isinstance(owner, str) or not owner or len(owner) > 64 or not _engineer_exists(tx, owner):
        raise Invalid("the owner must be an engineer account (`mydiag-server engineer add`)")
    if (not isinstance(estimate, (int, float)) or isinstance(estimate, bool) or not math.isfinite(estimate)
            or not 0 < estimate <= MAX_ESTIMATE_SECONDS):
        raise Invalid(f"the estimate must be seconds, more than 0 and at most {int(MAX_ESTIMATE_SECONDS)}")
    now = clock.now()
    limit = float(running["due_at"])
    if (not isinstance(due_at, (int, float)) or isinstance(due_at, bool) or not math.isfinite(due_at)
            or not now < due_at <= limit):
        raise Invalid(f"the due time must be after now ({iso(now)}) and at or before the reply's due time "
                      f"({iso(limit)}): a work item is due inside the promise")
    count = tx.one("SELECT COUNT(*) AS n FROM work_items WHERE obligation_id = ?", (running["id"],))
    if count and int(count["n"]) >= MAX_ITEMS_PER_OBLIGATION:
        raise Conflict(f"this reply is already split into {MAX_ITEMS_PER_OBLIGATION} work items")
    item_id = "wi-" + secrets.token_hex(8)
    tx.run("INSERT INTO work_items (id, ticket_id, obligation_id, owner, title, estimate, due_at, state, "
           "result, created_by, created_at, done_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', NULL, ?, ?, NULL)",
           (item_id, ticket_id, running["id"], owner, title, float(estimate), float(due_at), actor, now))
    audit.record(tx, actor, "work_item.add", ticket_id, item_id, owner=owner, estimate=float(estimate),
                 due_at=iso(due_at), obligation=running["id"])
    return _view(_row(tx, ticket_id, item_id))


def update(tx: Tx, ticket_id: str, item_id: str, *, state: Optional[str] = None,
           result: Optional[str] = None, actor: str) -> Dict[str, Any]:
    """Finish an item (`done` with a result, or `cancelled`) or set an open item's result."""
    tx.lock("work_items", item_id)
    row = _row(tx, ticket_id, item_id)
    if state is not None and state not in FINISHED:
        raise Invalid("the state must be done or cancelled")
    if state is None and result is None:
        raise Invalid("nothing to change: give a state (done or cancelled) or a result")
    if row["state"] in FINISHED:
        raise Conflict(f"work item {item_id} is already {row['state']}: a finished item is not changed")
    text = row["result"]
    if result is not None or state == "done":
        text = _result_text(result, "a done item's result" if state == "done" else "the result")
    if state is None:
        tx.run("UPDATE work_items SET result = ? WHERE id = ?", (text, item_id))
        audit.record(tx, actor, "work_item.update", ticket_id, item_id)
    else:
        tx.run("UPDATE work_items SET state = ?, result = ?, done_at = ? WHERE id = ?",
               (state, text, clock.now(), item_id))
        audit.record(tx, actor, "work_item.done" if state == "done" else "work_item.cancel", ticket_id,
                     item_id, owner=row["owner"])
    return _view(_row(tx, ticket_id, item_id))


def _row(tx: Tx, ticket_id: str, item_id: str) -> Dict[str, Any]:
    if not isinstance(item_id, str) or not item_id.startswith("wi-") or len(item_id) > 40:
        raise NotFound("no such work item")
    row = tx.one("SELECT * FROM work_items WHERE id = ? AND ticket_id = ?", (item_id, ticket_id))
    if row is None:
        raise NotFound("no such work item")
    return row


def _view(row: Dict[str, Any]) -> Dict[str, Any]:
    return {"id": row["id"], "ticket_id": row["ticket_id"], "obligation_id": row["obligation_id"],
            "owner": row["owner"], "title": row["title"], "estimate_seconds": row["estimate"],
            "due_at": iso(row["due_at"]), "state": row["state"], "result": row["result"],
            "created_by": row["created_by"], "created_at": iso(row["created_at"]),
            "done_at": iso(row["done_at"]) if row["done_at"] is not None else None}


def get(tx: Tx, ticket_id: str, item_id: str) -> Dict[str, Any]:
    return _view(_row(tx, ticket_id, item_id))


def of_ticket(tx: Tx, ticket_id: str) -> List[Dict[str, Any]]:
    """Every work item of the ticket, oldest first."""
    return [_view(r) for r in tx.all("SELECT * FROM work_items WHERE ticket_id = ? ORDER BY created_at, id",
                                     (ticket_id,))]


def open_items(tx: Tx) -> List[Dict[str, Any]]:
    """The open items of running obligations (the queue's work items), soonest due first:
    `id, ticket_id, obligation_id, owner, title, estimate, due_at, created_at` (epoch seconds)."""
    return tx.all("SELECT w.id, w.ticket_id, w.obligation_id, w.owner, w.title, w.estimate, w.due_at, "
                  "w.created_at FROM work_items w JOIN obligations o ON o.id = w.obligation_id "
                  "WHERE w.state = 'open' AND o.state IN ('open', 'paused') ORDER BY w.due_at, w.id")


def _current_obligation(tx: Tx, ticket_id: str) -> Optional[str]:
    running = obligations.running(tx, ticket_id)
    if running is not None:
        return running["id"]
    row = tx.one("SELECT obligation_id FROM work_items WHERE ticket_id = ? ORDER BY created_at DESC, id DESC "
                 "LIMIT 1", (ticket_id,))
    return row["obligation_id"] if row else None


def compose_reply(tx: Tx, ticket_id: str) -> str:
    """The reply made from the done items of the running obligation (else of the latest one split),
    in the order they were added: each item's title, then its result. Empty when none is done."""
    obligation_id = _current_obligation(tx, ticket_id)
    if obligation_id is None:
        return ""
    done = tx.all("SELECT title, result FROM work_items WHERE ticket_id = ? AND obligation_id = ? "
                  "AND state = 'done' ORDER BY created_at, id", (ticket_id, obligation_id))
    return "\n\n".join(f"{row['title']}:\n{row['result']}" for row in done)


def composition(tx: Tx, ticket_id: str) -> Dict[str, Any]:
    """`compose_reply` with the ids of the items it used and of those still open."""
    obligation_id = _current_obligation(tx, ticket_id)
    rows = tx.all("SELECT id, state FROM work_items WHERE ticket_id = ? AND obligation_id = ? "
                  "ORDER BY created_at, id", (ticket_id, obligation_id)) if obligation_id else []
    return {"body": compose_reply(tx, ticket_id), "obligation_id": obligation_id,
            "done": [r["id"] for r in rows if r["state"] == "done"],
            "open": [r["id"] for r in rows if r["state"] == "open"]}


def timeline_entries(tx: Tx, ticket_id: str, engineer: bool) -> List[Tuple[float, Dict[str, Any]]]:
    """(epoch, timeline entry) pairs for support/timeline.py: each item when it was added and when
    it was finished; engineers only (how the work is split is the support side's business)."""
    if not engineer:
        return []
    out: List[Tuple[float, Dict[str, Any]]] = []
    for row in tx.all("SELECT * FROM work_items WHERE ticket_id = ? ORDER BY created_at, id", (ticket_id,)):
        item = _view(row)
        out.append((row["created_at"], {"at": item["created_at"], "type": "work_item",
                                        "work_item": {**item, "event": "added"}}))
        if row["done_at"] is not None:
            out.append((row["done_at"], {"at": item["done_at"], "type": "work_item",
                                         "work_item": {**item, "event": row["state"]}}))
    return out
