"""The breach sweeper: records each obligation's warnings and breach as they happen.

An obligation keeps the times of its four clock events (obligations.EVENTS: warnings at
50, 80 and 95% of the interval, the breach at due_at) and `next_check`, the time of the
next one not yet recorded. `sweep` takes the obligations whose next_check has come, in
order, and records each event that is due in `clock_events`, whose key (obligation id,
kind) makes it exactly once: `INSERT … ON CONFLICT DO NOTHING`, and on PostgreSQL the
rows are taken `FOR UPDATE SKIP LOCKED`, so several server processes share the work
instead of repeating it. An event keeps its `due` time; `recorded_at` is when a sweeper
saw it, never earlier (never back-dated). A warning that is recorded also notifies the
ticket's owner (`notifications`). `run` is the background loop, one round a second at
most apart, sooner when an event falls due.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, List, Optional, Tuple

from server.storage.db import Database, Tx
from server.support import clock

#: The clock events in order, and the column that holds each one's time.
KINDS = ("warning_50", "warning_80", "warning_95", "breach")
_TIMES = ("warn50", "warn80", "warn95", "due_at")
#: The longest pause between two rounds: an event is recorded within about this of its time.
ROUND_SECONDS = 1.0
BATCH = 2000

log = logging.getLogger("mydiag.breaches")


def _owners(tx: Tx, ticket_ids: List[str]) -> Dict[str, str]:
    """Who gets each ticket's clock notifications: its owner, else whoever opened it."""
    found: Dict[str, str] = {}
    unique = sorted(set(ticket_ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in tx.all("SELECT t.id, t.created_by, tt.owner FROM tickets t LEFT JOIN ticket_terms tt "
                          f"ON tt.ticket_id = t.id WHERE t.id IN ({marks})", chunk):
            found[row["id"]] = row["owner"] or row["created_by"]
    return found


def _write(tx: Tx, due_events: List[Tuple[Dict[str, Any], int]], now: float, by: str) -> None:
    """Record these (obligation, event index) pairs: each key once, whoever writes it first; the
    notification has the same key, so it too exists once."""
    if not due_events:
        return
    owners = _owners(tx, [row["ticket_id"] for row, _ in due_events])
    tx.many("INSERT INTO clock_events (obligation_id, kind, ticket_id, due, recorded_at, recorded_by) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (obligation_id, kind) DO NOTHING",
            [(row["id"], KINDS[i], row["ticket_id"], row[_TIMES[i]], now, by) for row, i in due_events])
    tx.many("INSERT INTO notifications (id, recipient, ticket_id, kind, text, at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            [(f"{row['id']}:{KINDS[i]}", owners.get(row["ticket_id"], "unknown"), row["ticket_id"], KINDS[i],
              _text(row["ticket_id"], KINDS[i]), now) for row, i in due_events])


def _text(ticket_id: str, kind: str) -> str:
    if kind == "breach":
        return f"reply deadline of {ticket_id} breached"
    return f"{kind[-2:]}% of the reply time of {ticket_id} used"


def record_late(tx: Tx, row: Dict[str, Any], by: str = "reply") -> None:
    """A reply met an obligation after its due_at before a sweeper saw the breach: record it
    now (the reply's transaction is the first to see it)."""
    _write(tx, [(row, len(KINDS) - 1)], clock.now(), by)
    tx.run("UPDATE obligations SET fired = ? WHERE id = ?", (len(KINDS), row["id"]))


def sweep(db: Database, by: str = "sweeper", now: Optional[float] = None, batch: int = BATCH) -> int:
    """One round: every event due by now recorded; the number of events this call wrote
    (another process may have written one of them first: the key keeps it once)."""
    recorded = 0
    while True:
        moment = clock.now() if now is None else now
        skip = " FOR UPDATE SKIP LOCKED" if db.dialect == "postgresql" else ""
        with db.tx() as tx:
            rows = tx.all("SELECT id, ticket_id, warn50, warn80, warn95, due_at, fired FROM obligations "
                          "WHERE next_check IS NOT NULL AND next_check <= ? "
                          f"ORDER BY next_check LIMIT ?{skip}", (moment, batch))
            due_events: List[Tuple[Dict[str, Any], int]] = []
            updates = []
            for row in rows:
                fired = int(row["fired"])
                while fired < len(KINDS) and row[_TIMES[fired]] <= moment:
                    due_events.append((row, fired))
                    fired += 1
                updates.append((fired, row[_TIMES[fired]] if fired < len(KINDS) else None, row["id"]))
            _write(tx, due_events, moment, by)
            tx.many("UPDATE obligations SET fired = ?, next_check = ? WHERE id = ?", updates)
            recorded += len(due_events)
        if len(rows) < batch:
            return recorded


def next_due_in(db: Database) -> Optional[float]:
    with db.tx(write=False) as tx:
        row = tx.one("SELECT MIN(next_check) AS t FROM obligations WHERE next_check IS NOT NULL")
    if not row or row["t"] is None:
        return None
    return max(0.0, row["t"] - clock.now())


def run(db: Database, stop: threading.Event, by: str = "sweeper") -> None:
    """The background loop of one server process, until `stop` is set."""
    while not stop.is_set():
        try:
            sweep(db, by)
            due = next_due_in(db)
        except Exception as exc:  # noqa: BLE001 - keep sweeping; the next round retries
            log.warning("breach sweep failed: %s: %s", type(exc).__name__, exc)
            due = None
        stop.wait(ROUND_SECONDS if due is None else min(ROUND_SECONDS, due + 0.01))


def events_of(tx: Tx, ticket_id: str) -> List[Dict[str, Any]]:
    return tx.all("SELECT obligation_id, kind, due, recorded_at FROM clock_events WHERE ticket_id = ? "
                  "ORDER BY recorded_at, kind", (ticket_id,))


def notifications_for(tx: Tx, recipient: str, limit: int = 100) -> List[Dict[str, Any]]:
    return tx.all("SELECT id, ticket_id, kind, text, at, seen FROM notifications WHERE recipient = ? "
                  "ORDER BY at DESC LIMIT ?", (recipient, limit))
