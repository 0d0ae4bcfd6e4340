"""Negotiated promises: the date of the next reply, agreed by both sides, in place of the policy's.

The rules kept here (docs/promises.md):

- A promise belongs to the ticket's running obligation (obligations.py). An engineer
  proposes a time with a reason; the customer accepts it or counters with a time of their
  own, which an engineer accepts or counters again. A customer never proposes first: they
  answer a proposal. Nobody answers their own side's proposal.
- Every step is a version (`pr-…`, numbered per ticket) whose terms never change: a change
  is a new version that `replaces` the one before. States: `proposed` (the open proposal,
  at most one per ticket), `countered` (answered by the next version), `withdrawn` (its
  side proposed again before an answer, or no reply is owed any more), `accepted` (in
  force), `superseded` (an accepted one replaced by a later agreement).
- Accepting moves the obligation's due_at and warnings to the promise
  (obligations.set_due); the policy's due is kept on the version as `policy_due_at`. An
  agreement that replaces an accepted promise before its time passed is `renegotiated`.
- Admission control (admission.py) runs before an engineer proposes or counters, and
  before any acceptance: a date the engineers' calendars cannot carry is refused, the
  refusal recorded, and `Infeasible` carries the verdict (its earliest feasible time). The
  caller must let its transaction commit (catch `Infeasible` inside it) so the refusal stays.
- Outcome: the accepted version in force when the reply met the obligation is `kept` when
  the reply came by the obligation's due, else `missed`; a version replaced after its time
  had passed is `missed` too. A pending or renegotiated version has none.
- Times: a proposed time is in the future and at most MAX_AHEAD_SECONDS ahead; a reason is
  1-REASON_MAX printable characters on one line. Every step is audited.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
from typing import Any, Dict, List, Optional, Tuple

from server.safetext import has_controls
from server.storage import audit
from server.storage.db import Tx
from server.support import admission, clock, obligations, tasks
from server.support.tickets import Invalid, iso

SIDES = ("engineer", "customer")
STATES = ("proposed", "accepted", "countered", "superseded", "withdrawn")
REASON_MAX = 500
#: Further ahead than this is a typing mistake, not a promise.
MAX_AHEAD_SECONDS = 366 * 86400.0
_COLUMNS = ("id, ticket_id, obligation_id, version, due_at, policy_due_at, reason, proposed_by, "
            "proposed_side, proposed_at, replaces, state, answered_by, answered_at, renegotiated, estimate")


class Infeasible(Exception):
    """Admission control refused the time (recorded in admission_refusals as `refusal_id`)."""

    def __init__(self, verdict: Any, refusal_id: str = "") -> None:
        earliest = verdict.earliest_feasible_at
        offer = (f"; the earliest time that can be promised is {iso(earliest)}" if earliest is not None
                 else "; nothing within the planning horizon can be promised")
        super().__init__(f"the engineers' calendars cannot carry a reply by {iso(verdict.wanted_at)}{offer}")
        self.verdict = verdict
        self.refusal_id = refusal_id


class Conflict(Exception):
    """The promise is not in a state that allows this (answered already, replaced, time passed)."""


class OwnSide(Conflict):
    """A side tried to answer its own proposal, or a customer to propose without a proposal to answer."""


class NotFound(LookupError):
    """No such promise on this ticket."""


def parse_time(value: Any) -> float:
    """Epoch seconds of an ISO 8601 time with its offset (`2026-12-03T15:00:00Z`), else Invalid."""
    if not isinstance(value, str) or not 16 <= len(value) <= 40 or has_controls(value):
        raise Invalid("due_at must be a UTC time like 2026-12-03T15:00:00Z")
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Invalid("due_at must be a UTC time like 2026-12-03T15:00:00Z") from None
    if moment.tzinfo is None:
        raise Invalid("due_at needs its time zone: end it with Z for UTC (2026-12-03T15:00:00Z)")
    return moment.timestamp()


def _due(value: Any, now: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid("due_at must be a time")
    if value <= now:
        raise Invalid(f"due_at must be in the future (it is {iso(now)} now)")
    if value > now + MAX_AHEAD_SECONDS:
        raise Invalid("due_at may be at most a year ahead")
    return float(value)


def _reason(value: Any, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise Invalid("a reason must be text")
    text = value.strip()
    if not text:
        raise Invalid("a reason is required: say why this time (one line)")
    if len(text) > REASON_MAX:
        raise Invalid(f"a reason may hold at most {REASON_MAX} characters")
    if has_controls(text):
        raise Invalid("a reason is one line of printable text (no control or bidi characters)")
    return text


def _estimate(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not tasks.MIN_ESTIMATE_SECONDS <= value <= tasks.MAX_ESTIMATE_SECONDS:
        raise Invalid(f"estimate_seconds must be from {int(tasks.MIN_ESTIMATE_SECONDS)} seconds to 30 days")
    return float(value)


def _side(side: str) -> str:
    if side not in SIDES:
        raise Invalid("side is engineer or customer")
    return side


def _row(tx: Tx, promise_id: Any) -> Optional[Dict[str, Any]]:
    if not isinstance(promise_id, str) or not promise_id.startswith("pr-") or len(promise_id) > 40:
        return None
    return tx.one(f"SELECT {_COLUMNS} FROM promises WHERE id = ?", (promise_id,))


def _rows(tx: Tx, ticket_id: str) -> List[Dict[str, Any]]:
    return tx.all(f"SELECT {_COLUMNS} FROM promises WHERE ticket_id = ? ORDER BY version", (ticket_id,))


def _outcomes(rows: List[Dict[str, Any]], obs: Dict[str, Dict[str, Any]]) -> Dict[str, Optional[str]]:
    """Each version's outcome (see the module's rules)."""
    out: Dict[str, Optional[str]] = {}
    agreed = [r for r in rows if r["state"] in ("accepted", "superseded")]
    for i, row in enumerate(agreed):
        ob = obs.get(row["obligation_id"]) or {}
        if row["state"] == "superseded":
            after = next((r for r in agreed[i + 1:] if r["obligation_id"] == row["obligation_id"]), None)
            out[row["id"]] = "missed" if after is not None and not after["renegotiated"] else None
        elif ob.get("state") == "met" and ob.get("met_at") is not None:
            out[row["id"]] = "kept" if ob["met_at"] <= ob["due_at"] else "missed"
    return out


def _public(row: Dict[str, Any], ob: Optional[Dict[str, Any]], outcome: Optional[str],
            engineer: bool = True) -> Dict[str, Any]:
    state = row["state"]
    if state == "proposed" and (ob is None or ob["state"] not in obligations.RUNNING):
        state = "withdrawn"  # no reply is owed any more: nothing left to answer
    return {"id": row["id"], "ticket_id": row["ticket_id"], "obligation_id": row["obligation_id"],
            "version": int(row["version"]), "due_at": iso(row["due_at"]),
            "policy_due_at": iso(row["policy_due_at"]) if row["policy_due_at"] is not None else None,
            "reason": row["reason"], "proposed_by": row["proposed_by"], "proposed_side": row["proposed_side"],
            "proposed_at": iso(row["proposed_at"]), "replaces": row["replaces"], "state": state,
            "answered_by": row["answered_by"],
            "answered_at": iso(row["answered_at"]) if row["answered_at"] is not None else None,
            "renegotiated": bool(row["renegotiated"]),
            "estimate_seconds": row["estimate"] if engineer else None, "outcome": outcome}


def _dicts(tx: Tx, rows: List[Dict[str, Any]], engineer: bool = True) -> List[Dict[str, Any]]:
    obs = {oid: obligations.get(tx, oid) or {} for oid in {r["obligation_id"] for r in rows}}
    outcomes = _outcomes(rows, obs)
    return [_public(r, obs.get(r["obligation_id"]) or None, outcomes.get(r["id"]), engineer) for r in rows]


def of_ticket(tx: Tx, ticket_id: str, engineer: bool = True) -> List[Dict[str, Any]]:
    """Every version of the ticket's promises, oldest first (a customer's view without estimates)."""
    return _dicts(tx, _rows(tx, ticket_id), engineer)


def get(tx: Tx, promise_id: Any) -> Optional[Dict[str, Any]]:
    row = _row(tx, promise_id)
    if row is None:
        return None
    found = {d["id"]: d for d in of_ticket(tx, row["ticket_id"])}
    return found.get(row["id"])


def in_force(tx: Tx, ticket_id: str) -> Optional[Dict[str, Any]]:
    """The accepted promise of the ticket's running obligation, if any."""
    ob = obligations.running(tx, ticket_id)
    if ob is None:
        return None
    row = tx.one(f"SELECT {_COLUMNS} FROM promises WHERE obligation_id = ? AND state = 'accepted' "
                 "ORDER BY version DESC LIMIT 1", (ob["id"],))
    return get(tx, row["id"]) if row else None


def open_proposal(tx: Tx, ticket_id: str) -> Optional[Dict[str, Any]]:
    """The version awaiting the other side's answer (of the running obligation), if any."""
    ob = obligations.running(tx, ticket_id)
    if ob is None:
        return None
    row = tx.one(f"SELECT {_COLUMNS} FROM promises WHERE obligation_id = ? AND state = 'proposed' "
                 "ORDER BY version DESC LIMIT 1", (ob["id"],))
    return get(tx, row["id"]) if row else None


def _owed(tx: Tx, ticket_id: str) -> Dict[str, Any]:
    tx.lock("tickets", ticket_id)
    ob = obligations.running(tx, ticket_id)
    if ob is None:
        raise Invalid("no reply is owed on this ticket: a promise is made for the reply to a customer's "
                      "message")
    return ob


def _admit(tx: Tx, ticket_id: str, ob: Dict[str, Any], due_at: float, estimate: Optional[float],
           actor: str, now: float) -> None:
    verdict = admission.check(tx, ticket_id, ob["id"], due_at, effort=estimate, now=now)
    if not verdict.ok:
        raise Infeasible(verdict, admission.record_refusal(tx, ticket_id, actor, verdict))


def _insert(tx: Tx, ticket_id: str, ob: Dict[str, Any], *, due_at: float, reason: str, actor: str,
            side: str, estimate: Optional[float], replaces: Optional[str], now: float) -> str:
    last = tx.one("SELECT MAX(version) AS v FROM promises WHERE ticket_id = ?", (ticket_id,))
    version = int(last["v"] or 0) + 1 if last else 1
    current = tx.one("SELECT policy_due_at FROM promises WHERE obligation_id = ? AND state = 'accepted' "
                     "ORDER BY version DESC LIMIT 1", (ob["id"],))
    policy_due = current["policy_due_at"] if current else obligations.policy_due(tx, ob)
    promise_id = "pr-" + secrets.token_hex(8)
    tx.run(f"INSERT INTO promises ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'proposed', NULL, "
           "NULL, 0, ?)", (promise_id, ticket_id, ob["id"], version, due_at, policy_due, reason, actor, side,
                           now, replaces, estimate))
    return promise_id


def _answer(tx: Tx, promise_id: str, state: str, actor: str, now: float, renegotiated: bool = False) -> None:
    tx.run("UPDATE promises SET state = ?, answered_by = ?, answered_at = ?, renegotiated = ? WHERE id = ?",
           (state, actor, now, 1 if renegotiated else 0, promise_id))


def propose(tx: Tx, ticket_id: str, *, due_at: float, reason: str, actor: str, side: str,
            estimate: Optional[float] = None) -> Dict[str, Any]:
    """An engineer proposes the time of the next reply (admission control first)."""
    if _side(side) == "customer":
        raise OwnSide("a customer answers an engineer's proposal: counter it with the time you need")
    now = clock.now()
    ob = _owed(tx, ticket_id)
    due, why, effort = _due(due_at, now), _reason(reason), _estimate(estimate)
    _admit(tx, ticket_id, ob, due, effort, actor, now)
    tx.run("UPDATE promises SET state = 'withdrawn', answered_at = ? WHERE ticket_id = ? "
           "AND state = 'proposed' AND obligation_id <> ?", (now, ticket_id, ob["id"]))
    before = open_proposal(tx, ticket_id)
    force = in_force(tx, ticket_id)
    if before is not None:
        _answer(tx, before["id"], "withdrawn" if before["proposed_side"] == side else "countered", actor, now)
    replaces = before["id"] if before else (force["id"] if force else None)
    promise_id = _insert(tx, ticket_id, ob, due_at=due, reason=why, actor=actor, side=side, estimate=effort,
                         replaces=replaces, now=now)
    audit.record(tx, actor, "promise.propose", ticket_id, promise_id, due_at=iso(due), replaces=replaces)
    found = get(tx, promise_id)
    assert found is not None
    return found


def _open_one(tx: Tx, ticket_id: str, promise_id: str, side: str, now: float) -> Tuple[Dict[str, Any], Dict]:
    """The open proposal `promise_id` of the ticket that `side` may answer, and its obligation."""
    _side(side)
    row = _row(tx, promise_id)
    if row is None or row["ticket_id"] != ticket_id:
        raise NotFound("no such promise on this ticket")
    tx.lock("tickets", ticket_id)
    ob = obligations.running(tx, ticket_id)
    if ob is None or ob["id"] != row["obligation_id"]:
        raise Conflict(f"version {row['version']} is {(get(tx, promise_id) or {}).get('state', 'closed')}: "
                       "the reply it was about is no longer owed")
    current = open_proposal(tx, ticket_id)
    if current is None or current["id"] != promise_id:
        state = (get(tx, promise_id) or {}).get("state", "closed")
        raise Conflict(f"version {row['version']} is {state}: only the open proposal can be answered"
                       + (f" (version {current['version']})" if current else " (there is none now)"))
    if row["proposed_side"] == side:
        raise OwnSide(f"this is the {side}s' own proposal: the other side answers it")
    if row["due_at"] <= now:
        raise Conflict(f"the proposed time {iso(row['due_at'])} has passed: propose another")
    return row, ob


def accept(tx: Tx, ticket_id: str, promise_id: str, *, actor: str, side: str) -> Dict[str, Any]:
    """The other side accepts the open proposal: it is in force (admission control first)."""
    now = clock.now()
    row, ob = _open_one(tx, ticket_id, promise_id, side, now)
    _admit(tx, ticket_id, ob, row["due_at"], row["estimate"], actor, now)
    force = in_force(tx, ticket_id)
    renegotiated = force is not None and now < float(ob["due_at"])
    if force is not None:  # its answer (who accepted it, when) stays: the new agreement says when it ended
        tx.run("UPDATE promises SET state = 'superseded' WHERE id = ?", (force["id"],))
    _answer(tx, promise_id, "accepted", actor, now, renegotiated)
    obligations.set_due(tx, ob["id"], row["due_at"], since=now)
    audit.record(tx, actor, "promise.accept", ticket_id, promise_id, due_at=iso(row["due_at"]),
                 renegotiated=renegotiated, superseded=force["id"] if force else None)
    found = get(tx, promise_id)
    assert found is not None
    return found


def counter(tx: Tx, ticket_id: str, promise_id: str, *, due_at: float, reason: Optional[str] = None,
            actor: str, side: str) -> Dict[str, Any]:
    """The other side answers the open proposal with a time of its own: the new open proposal
    (an engineer's counter passes admission control first)."""
    now = clock.now()
    row, ob = _open_one(tx, ticket_id, promise_id, side, now)
    due, why = _due(due_at, now), _reason(reason, required=side == "engineer")
    if side == "engineer":
        _admit(tx, ticket_id, ob, due, row["estimate"], actor, now)
    _answer(tx, promise_id, "countered", actor, now)
    new_id = _insert(tx, ticket_id, ob, due_at=due, reason=why, actor=actor, side=side,
                     estimate=row["estimate"], replaces=promise_id, now=now)
    audit.record(tx, actor, "promise.counter", ticket_id, new_id, due_at=iso(due), replaces=promise_id)
    found = get(tx, new_id)
    assert found is not None
    return found


def refusals(tx: Tx, since: float, until: float) -> int:
    row = tx.one("SELECT COUNT(*) AS n FROM admission_refusals WHERE at >= ? AND at < ?", (since, until))
    return int(row["n"]) if row else 0


def timeline_entries(tx: Tx, ticket_id: str, engineer: bool) -> List[Tuple[float, Dict[str, Any]]]:
    """(epoch, timeline entry) pairs for support/timeline.py: each version when proposed, and
    again when accepted (`event` says which); a customer's view without the estimates."""
    rows = _rows(tx, ticket_id)
    out: List[Tuple[float, Dict[str, Any]]] = []
    for row, shown in zip(rows, _dicts(tx, rows, engineer)):
        out.append((row["proposed_at"], {"at": shown["proposed_at"], "type": "promise",
                                         "promise": {**shown, "event": "proposed"}}))
        if row["state"] in ("accepted", "superseded") and row["answered_at"] is not None:
            out.append((row["answered_at"], {"at": shown["answered_at"], "type": "promise",
                                             "promise": {**shown, "event": "accepted"}}))
    return out
