"""The on-time report of a period: how many customer messages got their reply in time.

Per customer message of the period (by its time): a `needs_reply` message counts once,
with its obligation's kind (first reply or follow-up) and deadline. It was on time when
the obligation was met by its due_at; late when met after it, or still open past it (its
lateness so far); messages whose reply is not yet due (or that wait on the customer) are
counted as pending, outside the rate. Messages marked "no reply needed" are counted by
who marked them (`customer`: the author's own choice).

Promises (docs/promises.md) of the period, by the time each was agreed: `promised` (every
agreement), `kept` and `missed` (their outcome; a missed one is a reply delivered late, or
a promise replaced after its time had passed), `renegotiated` (agreements that replaced a
promise before its time passed, counted apart: the promise they replaced is neither kept
nor missed), `pending` (in force, no outcome yet); and `refused`, the admission refusals
of the period (admission_refusals).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from server.storage.db import Tx
from server.support import clock, promises
from server.support.tickets import iso

BUCKETS = ((3600.0, "under 1h"), (4 * 3600.0, "1h-4h"), (24 * 3600.0, "4h-24h"), (float("inf"), "over 24h"))


def _quantile(values: List[float], q: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(tx: Tx, since: float, until: float, now: Optional[float] = None) -> Dict[str, Any]:
    moment = clock.now() if now is None else now
    rows = tx.all("SELECT m.id, m.kind, m.no_reply_by, o.kind AS ob_kind, o.state, o.due_at, o.met_at "
                  "FROM messages m LEFT JOIN obligations o ON o.id = m.obligation_id "
                  "WHERE m.author_kind = 'customer' AND m.at >= ? AND m.at < ?", (since, until))
    groups = {k: {"messages": 0, "on_time": 0, "late": 0, "open_late": 0, "pending": 0, "rate": None}
              for k in ("first", "next")}
    lateness: List[float] = []
    by: Dict[str, int] = {}
    for row in rows:
        if row["kind"] == "no_reply_needed":
            who = row["no_reply_by"] or "customer"
            by[who] = by.get(who, 0) + 1
            continue
        if row["ob_kind"] is None:
            continue
        group = groups[row["ob_kind"]]
        group["messages"] += 1
        if row["met_at"] is not None:
            if row["met_at"] <= row["due_at"]:
                group["on_time"] += 1
            else:
                group["late"] += 1
                lateness.append(row["met_at"] - row["due_at"])
        elif row["state"] == "open" and row["due_at"] < moment:
            group["open_late"] += 1
            lateness.append(moment - row["due_at"])
        else:
            group["pending"] += 1
    for group in groups.values():
        decided = group["on_time"] + group["late"] + group["open_late"]
        group["rate"] = round(group["on_time"] / decided, 4) if decided else None
    buckets = {name: 0 for _, name in BUCKETS}
    for late in lateness:
        buckets[next(name for bound, name in BUCKETS if late < bound)] += 1
    return {"since": since, "until": until, "first_replies": groups["first"], "follow_ups": groups["next"],
            "lateness": {"count": len(lateness), "p50_seconds": _quantile(lateness, 0.5),
                         "p90_seconds": _quantile(lateness, 0.9),
                         "max_seconds": max(lateness) if lateness else None, "buckets": buckets},
            "no_reply_needed": {"total": sum(by.values()), "by": dict(sorted(by.items()))},
            "promises": _promises(tx, since, until)}


def _promises(tx: Tx, since: float, until: float) -> Dict[str, int]:
    rows = tx.all("SELECT DISTINCT ticket_id FROM promises WHERE state IN ('accepted', 'superseded') "
                  "AND answered_at >= ? AND answered_at < ?", (since, until))
    out = {"promised": 0, "kept": 0, "missed": 0, "renegotiated": 0, "pending": 0,
           "refused": promises.refusals(tx, since, until)}
    for ticket in rows:
        for version in promises.of_ticket(tx, ticket["ticket_id"]):
            agreed = version["state"] in ("accepted", "superseded") and version["answered_at"] is not None
            if not agreed or not iso(since) <= version["answered_at"] < iso(until):
                continue
            out["promised"] += 1
            if version["renegotiated"]:
                out["renegotiated"] += 1
            if version["outcome"] in ("kept", "missed"):
                out[version["outcome"]] += 1
            elif version["state"] == "accepted":
                out["pending"] += 1
    return out
