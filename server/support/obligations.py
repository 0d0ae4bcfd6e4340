"""The reply clock on every customer message: obligations, their deadlines and what meets them.

One ticket has at most one running obligation (state `open` or `paused`): the engineers owe
the customer a reply. The rules, as implemented (docs/conversations.md, "Clocks"):

- A customer `needs_reply` message opens one when none runs, else joins it: several
  unanswered messages are one obligation counted from the oldest. Its kind is `first`
  until an engineer's reply has met an obligation of the ticket, then `next`; the policy
  (plan, severity) gives the target and the calendar; `due_at` is the target in business
  time after the start.
- An engineer `reply` meets the running obligation once it is delivered (delivery `sent`
  or `delivered`; `pending` does not count yet) at the delivery time. An
  `acknowledgement` or an `internal` note never does.
- A reply with `waiting_on_customer` asks the customer something: the ticket waits on the
  customer and the running obligation pauses (also once delivered) instead of being met. The
  customer's next message, of either kind, ends the wait and resumes it: the paused time is
  not counted, the business time already used is.
- An `undelivered` reply reopens the obligation it met (its due_at unchanged, never moved
  back) or undoes the pause it made; a running obligation opened meanwhile is merged into
  it (still counted from the oldest).
- A `no_reply_needed` message (the customer's own choice, or a `needs_reply` one an
  engineer marks, audited) belongs to no obligation; an obligation left without messages
  is cancelled; one whose oldest message was marked counts from the next oldest.

Each obligation keeps the times of its four clock events (warnings at 50, 80 and 95% of
the interval, then the breach at due_at) and how many of them were recorded (`fired`);
`next_check` is the next one's time, what the breach sweeper (breaches.py) looks for.

An accepted promise (promises.py, docs/promises.md) replaces the policy's deadline: `set_due`
moves due_at to the promised time and the warnings to 50, 80 and 95% of the time from the
acceptance to it. From then on the promise's times stand where the policy's would be
recomputed: a pause still stops the clock (on resume every time moves on by the paused
time, counted from the acceptance when that came during the pause), a bounce or a marked
message leaves them as they are. The business time `used` is still counted, so
`policy_due` can tell what the policy alone would ask.
"""

from __future__ import annotations

import secrets
from typing import Any, Dict, List, Optional

from server.storage.db import Tx
from server.support import breaches, clock, people, policies
from server.support import calendar as cal
from server.support.policies import DEFAULT_SEVERITY
from server.support.tickets import Invalid

RUNNING = ("open", "paused")
#: The clock events in order, and the share of the interval each falls at.
EVENTS = (("warning_50", 0.50), ("warning_80", 0.80), ("warning_95", 0.95), ("breach", 1.0))
_COLUMNS = ("warn50", "warn80", "warn95", "due_at")


def terms(tx: Tx, ticket_id: str) -> Dict[str, Any]:
    """The ticket's severity, owner and whether it waits on the customer."""
    row = tx.one("SELECT severity, owner, waiting_since, waiting_by FROM ticket_terms WHERE ticket_id = ?",
                 (ticket_id,))
    return row or {"severity": DEFAULT_SEVERITY, "owner": None, "waiting_since": None, "waiting_by": None}


def _save_terms(tx: Tx, ticket_id: str, **changes: Any) -> None:
    current = {**terms(tx, ticket_id), **changes}
    tx.run("INSERT INTO ticket_terms (ticket_id, severity, owner, waiting_since, waiting_by) "
           "VALUES (?, ?, ?, ?, ?) ON CONFLICT (ticket_id) DO UPDATE SET severity = excluded.severity, "
           "owner = excluded.owner, waiting_since = excluded.waiting_since, waiting_by = excluded.waiting_by",
           (ticket_id, current["severity"], current["owner"], current["waiting_since"],
            current["waiting_by"]))


def set_terms(tx: Tx, ticket_id: str, severity: Optional[str] = None, owner: Optional[str] = None) -> None:
    """A ticket's severity (chooses the policy of obligations opened from now on) and owner
    (who gets its clock warnings; default: whoever opened the ticket)."""
    changes: Dict[str, Any] = {}
    if severity is not None:
        if severity not in policies.SEVERITIES:
            raise Invalid(f"severity must be one of {', '.join(policies.SEVERITIES)}")
        changes["severity"] = severity
    if owner is not None:
        changes["owner"] = owner
    _save_terms(tx, ticket_id, **changes)


def policy_for(tx: Tx, ticket_id: str, policy_set: Optional[policies.PolicySet] = None) -> policies.Policy:
    ticket = tx.one("SELECT customer FROM tickets WHERE id = ?", (ticket_id,))
    plan = people.plan_of(tx, ticket["customer"]) if ticket else policies.DEFAULT_PLAN
    return (policy_set or policies.active()).choose(plan, terms(tx, ticket_id)["severity"])


def schedule(active_since: float, used: float, target: float, calendar: cal.Calendar,
             fired: int) -> Dict[str, Any]:
    """The four event times of a running span, and the next one still to record."""
    times = [cal.add_epoch(active_since, max(0.0, share * target - used), calendar) for _, share in EVENTS]
    out: Dict[str, Any] = dict(zip(_COLUMNS, times))
    out["next_check"] = times[fired] if fired < len(times) else None
    return out


def running(tx: Tx, ticket_id: str) -> Optional[Dict[str, Any]]:
    return tx.one("SELECT * FROM obligations WHERE ticket_id = ? AND state IN ('open', 'paused') "
                  "ORDER BY started LIMIT 1", (ticket_id,))


def get(tx: Tx, obligation_id: Optional[str]) -> Optional[Dict[str, Any]]:
    if not obligation_id:
        return None
    return tx.one("SELECT * FROM obligations WHERE id = ?", (obligation_id,))


def _update(tx: Tx, obligation_id: str, **values: Any) -> None:
    sets = ", ".join(f"{k} = ?" for k in values)
    tx.run(f"UPDATE obligations SET {sets} WHERE id = ?", (*values.values(), obligation_id))


def _calendar(row: Dict[str, Any]) -> cal.Calendar:
    return policies.active().calendar(row["calendar"])


def _promised(tx: Tx, obligation_id: str) -> Optional[Dict[str, Any]]:
    """The accepted promise in force on this obligation (its due_at and answered_at), if any."""
    return tx.one("SELECT due_at, answered_at FROM promises WHERE obligation_id = ? AND state = 'accepted' "
                  "ORDER BY version DESC LIMIT 1", (obligation_id,))


def _reschedule(tx: Tx, row: Dict[str, Any], resumed_at: Optional[float] = None, **values: Any) -> None:
    """New event times after a change: the policy's recomputed, or under a promise the times
    as they stand (moved on by the paused time when `resumed_at` ends a pause)."""
    merged = {**row, **values}
    promise = _promised(tx, row["id"])
    if promise is None:
        plan = schedule(merged["active_since"], merged["used"], merged["target"], _calendar(merged),
                        merged["fired"])
    else:
        shift = 0.0
        if resumed_at is not None and row["paused_at"] is not None:
            shift = max(0.0, resumed_at - max(row["paused_at"], promise["answered_at"] or 0.0))
        times = [row[c] + shift for c in _COLUMNS]
        plan = dict(zip(_COLUMNS, times))
        plan["next_check"] = times[merged["fired"]] if merged["fired"] < len(times) else None
    _update(tx, row["id"], **values, **plan)


def set_due(tx: Tx, obligation_id: str, due_at: float, since: Optional[float] = None) -> Dict[str, Any]:
    """An accepted promise: the running obligation is due at `due_at`, its warnings at 50, 80
    and 95% of the time from `since` (now) to it. Events already recorded stay recorded (each
    is recorded once); a paused obligation keeps no next_check until it resumes."""
    row = get(tx, obligation_id)
    if row is None or row["state"] not in RUNNING:
        raise Invalid("no reply is owed on this obligation")
    start = clock.now() if since is None else since
    span = max(0.0, float(due_at) - start)
    times = [start + share * span for _, share in EVENTS[:-1]] + [float(due_at)]
    plan: Dict[str, Any] = dict(zip(_COLUMNS, times))
    fired = int(row["fired"])
    open_now = row["state"] == "open"
    plan["next_check"] = times[fired] if open_now and fired < len(times) else None
    _update(tx, obligation_id, **plan)
    found = get(tx, obligation_id)
    assert found is not None
    return found


def policy_due(tx: Tx, row: Dict[str, Any]) -> float:
    """What the policy alone asks of this obligation: its due time in business time from the
    start (the paused time not counted), whatever a promise has made of due_at."""
    if row["state"] == "open":
        return schedule(row["active_since"], row["used"], row["target"], _calendar(row), 0)["due_at"]
    if row["state"] == "paused" and row["paused_at"] is not None:
        used = row["used"] + cal.between_epoch(row["active_since"], row["paused_at"], _calendar(row))
        left = max(0.0, row["target"] - used)
        return cal.add_epoch(clock.now(), left, _calendar(row))
    return float(row["due_at"])


def _lock(tx: Tx, ticket_id: str) -> None:
    tx.lock("tickets", ticket_id)


def on_customer_message(tx: Tx, message: Dict[str, Any]) -> Optional[str]:
    """Account for a customer message; the obligation id it joined (needs_reply) or None."""
    ticket_id, at = message["ticket_id"], message["at"]
    _lock(tx, ticket_id)
    row = running(tx, ticket_id)
    if terms(tx, ticket_id)["waiting_since"] is not None:
        _save_terms(tx, ticket_id, waiting_since=None, waiting_by=None)
    if row is not None and row["state"] == "paused":
        used = row["used"] + cal.between_epoch(row["active_since"], row["paused_at"], _calendar(row))
        _reschedule(tx, row, resumed_at=max(at, row["paused_at"]), state="open", used=used,
                    active_since=max(at, row["paused_at"]), paused_by=None, paused_at=None)
        row = running(tx, ticket_id)
    if message["kind"] != "needs_reply":
        return None
    if row is None:
        row = _open(tx, ticket_id, message["id"], at)
    tx.run("UPDATE messages SET obligation_id = ? WHERE id = ?", (row["id"], message["id"]))
    return row["id"]


def _open(tx: Tx, ticket_id: str, message_id: str, at: float) -> Dict[str, Any]:
    met_before = tx.one("SELECT id FROM obligations WHERE ticket_id = ? AND met_by IS NOT NULL LIMIT 1",
                        (ticket_id,))
    kind = "next" if met_before else "first"
    policy = policy_for(tx, ticket_id)
    target = policy.target(kind)
    plan = schedule(at, 0.0, target, policy.calendar, 0)
    obligation_id = "ob-" + secrets.token_hex(8)
    tx.run("INSERT INTO obligations (id, ticket_id, kind, policy, calendar, target, opened_by, started, "
           "state, used, active_since, warn50, warn80, warn95, due_at, fired, next_check) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', 0, ?, ?, ?, ?, ?, 0, ?)",
           (obligation_id, ticket_id, kind, policy.name, policy.calendar.name, target, message_id, at, at,
            plan["warn50"], plan["warn80"], plan["warn95"], plan["due_at"], plan["next_check"]))
    row = get(tx, obligation_id)
    assert row is not None
    return row


def on_delivered_reply(tx: Tx, message: Dict[str, Any], at: float) -> None:
    """An engineer's reply reached the customer at `at`: it meets (or, asking the customer
    something, pauses) the ticket's running obligation opened before the reply was written."""
    ticket_id = message["ticket_id"]
    _lock(tx, ticket_id)
    row = running(tx, ticket_id)
    if row is not None and row["started"] > message["at"]:
        row = None
    if message.get("waiting"):
        _save_terms(tx, ticket_id, waiting_since=at, waiting_by=message["id"])
        if row is not None and row["state"] == "open":
            _update(tx, row["id"], state="paused", paused_by=message["id"],
                    paused_at=max(at, row["active_since"]), next_check=None)
        return
    if terms(tx, ticket_id)["waiting_since"] is not None:
        _save_terms(tx, ticket_id, waiting_since=None, waiting_by=None)
    if row is None:
        return
    if row["state"] == "paused":
        # Met while paused: the clock stopped at the pause.
        _update(tx, row["id"], state="met", met_by=message["id"], met_at=row["paused_at"], next_check=None)
        return
    _update(tx, row["id"], state="met", met_by=message["id"], met_at=at, next_check=None)
    if at > row["due_at"] and row["fired"] < len(EVENTS):
        breaches.record_late(tx, row)


def on_undelivered(tx: Tx, message: Dict[str, Any]) -> None:
    """An engineer's reply bounced: what it did to the clock is undone, never back-dated."""
    ticket_id = message["ticket_id"]
    _lock(tx, ticket_id)
    if terms(tx, ticket_id)["waiting_by"] == message["id"]:
        _save_terms(tx, ticket_id, waiting_since=None, waiting_by=None)
    for row in tx.all("SELECT * FROM obligations WHERE paused_by = ? AND state = 'paused'", (message["id"],)):
        _reschedule(tx, row, state="open", paused_by=None, paused_at=None)
    met = tx.one("SELECT * FROM obligations WHERE met_by = ?", (message["id"],))
    if met is None:
        return
    _reschedule(tx, met, state="open", met_by=None, met_at=None, paused_by=None, paused_at=None)
    for later in tx.all("SELECT id FROM obligations WHERE ticket_id = ? AND state IN ('open', 'paused') "
                        "AND id <> ?", (ticket_id, met["id"])):
        tx.run("UPDATE messages SET obligation_id = ? WHERE obligation_id = ?", (met["id"], later["id"]))
        _update(tx, later["id"], state="merged", closed_reason=f"merged into {met['id']}", next_check=None)


def on_no_reply(tx: Tx, message: Dict[str, Any]) -> None:
    """A message of an obligation was marked no reply needed: it leaves the obligation."""
    row = get(tx, message.get("obligation_id"))
    tx.run("UPDATE messages SET obligation_id = NULL WHERE id = ?", (message["id"],))
    if row is None:
        return
    _lock(tx, row["ticket_id"])
    left = tx.all("SELECT id, at FROM messages WHERE obligation_id = ? ORDER BY at, id", (row["id"],))
    if row["state"] not in RUNNING:
        return
    if not left:
        _update(tx, row["id"], state="cancelled", closed_reason="no reply needed", next_check=None)
        return
    if row["opened_by"] == message["id"]:
        first = left[0]
        if first["at"] >= row["active_since"]:
            values: Dict[str, Any] = {"opened_by": first["id"], "started": first["at"], "used": 0.0,
                                      "active_since": first["at"]}
        else:  # the next oldest came before a pause: the business time already used stays
            values = {"opened_by": first["id"], "started": first["at"]}
        if row["state"] == "paused":
            _update(tx, row["id"], **values)
        else:
            _reschedule(tx, row, **values)


def due_at(tx: Tx, obligation_id: Optional[str]) -> Optional[float]:
    """The obligation's deadline while it runs and is not paused, else None."""
    row = get(tx, obligation_id)
    if row is None or row["state"] != "open":
        return None
    return row["due_at"]


def of_ticket(tx: Tx, ticket_id: str) -> List[Dict[str, Any]]:
    return tx.all("SELECT * FROM obligations WHERE ticket_id = ? ORDER BY started, id", (ticket_id,))
