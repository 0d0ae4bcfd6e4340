"""Calls with an agenda: requested, scheduled against the engineer's calendar, minuted.

The rules kept here (docs/calls.md, "Calls"):

- **No agenda, no call.** A request needs at least one agenda item (a non-empty line; at most
  `MAX_AGENDA_ITEMS` of at most `AGENDA_ITEM_MAX` characters) and a time limit in whole
  minutes (default `DEFAULT_MINUTES`, at most `MAX_MINUTES`). A request without an agenda, or
  over the limit, or with no free slot in the engineer's calendar within `HORIZON_DAYS`, is
  **refused**: the refusal is a `calls` row (state `refused`, `refused_reason`) and an audit
  entry, then `Refused` is raised — the caller commits the transaction before answering, so the
  refusal stays recorded. Input that cannot be read (control characters, sizes, an address
  that is not strictly an e-mail address, a limit under one minute) is `Invalid` and stores
  nothing.
- A call held as a remote session names it (`session_id`, a session of the same ticket); with
  no agenda given, the session's purpose is the agenda.
- **Scheduling**: the first slot of the limit's length starting at or after
  `max(now + LEAD_SECONDS, earliest)` (on a `STEP_SECONDS` mark) inside the engineer's working
  hours (rosters.calendar_of; the default business calendar where none is set), outside their
  time off (rosters.time_off) and not overlapping their other scheduled calls. Requests for one
  engineer are serialized (a row lock on PostgreSQL, the write transaction on SQLite), so two
  requests never get one slot.
- A scheduled call ends in **minutes** (state `held`) or is **cancelled** (with a reason); a
  refused, held or cancelled call is not changed again. Every step is audited.
- `busy` gives an engineer's calls as busy intervals for the capacity model (capacity.py).

This module stores and schedules; the invitation mail (iCalendar) is server/mail/invites.py's.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from typing import Any, Dict, List, Optional, Sequence, Tuple

from server.safetext import has_controls
from server.storage import audit
from server.storage.db import Tx
from server.support import calendar as cal
from server.support import clock, obligations, rosters
from server.support.tickets import Invalid, clean_text, iso

DEFAULT_MINUTES = 30
MAX_MINUTES = 120
MAX_AGENDA_ITEMS = 20
AGENDA_ITEM_MAX = 200
MAX_ATTENDEES = 20
NAME_MAX = 100
ROLE_MAX = 60
MINUTES_MAX = 20000
REASON_MAX = 500
#: A call is never set up sooner than this after it was asked for.
LEAD_SECONDS = 30 * 60.0
#: Calls start on five-minute marks.
STEP_SECONDS = 300.0
HORIZON_DAYS = 60
STATES = ("scheduled", "refused", "held", "cancelled")
#: Deliberately strict: what an invitation may be addressed to (lower-cased before the match).
_EMAIL = re.compile(r"^[a-z0-9](?:[a-z0-9._%+-]{0,62}[a-z0-9_%+-])?"
                    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class Refused(Exception):
    """The request breaks a rule of calls; already recorded (`.call`), the message says why."""

    def __init__(self, reason: str, call: Dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.call = call


class Conflict(Exception):
    """The call is not in a state that allows this; the message says why."""


class NotFound(LookupError):
    """No such call (or session) on this ticket."""


# --- input -------------------------------------------------------------------------------------


def clean_email(value: Any) -> str:
    """A strictly checked e-mail address, lower-cased (no display name, comment or quoting)."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if len(text) > 254 or not _EMAIL.match(text) or ".." in text:
        shown = repr(value)[:80] if isinstance(value, str) else "it"
        raise Invalid(f"{shown} is not an e-mail address this server sends invitations to "
                      "(letters, digits and . _ % + - before one @, a domain name after it)")
    return text


def clean_agenda(agenda: Any) -> List[str]:
    """The agenda's items: each non-empty line stripped; refuses controls, long items, long lists."""
    if isinstance(agenda, str):
        agenda = agenda.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not isinstance(agenda, (list, tuple)) or len(agenda) > 10 * MAX_AGENDA_ITEMS:
        raise Invalid(f"the agenda must be a list of at most {MAX_AGENDA_ITEMS} items")
    items = []
    for entry in agenda:
        if not isinstance(entry, str):
            raise Invalid("each agenda item must be text")
        entry = entry.strip()
        if not entry:
            continue
        if len(entry) > AGENDA_ITEM_MAX or has_controls(entry):
            raise Invalid(f"each agenda item must be one line of at most {AGENDA_ITEM_MAX} printable "
                          "characters")
        items.append(entry)
    if len(items) > MAX_AGENDA_ITEMS:
        raise Invalid(f"the agenda has {len(items)} items; a call covers at most {MAX_AGENDA_ITEMS}")
    return items


def clean_attendees(attendees: Any) -> List[Dict[str, Optional[str]]]:
    """Each attendee as `{"name", "email" (or None), "role" (or None)}`; an address once only."""
    if attendees is None:
        return []
    if not isinstance(attendees, (list, tuple)) or len(attendees) > MAX_ATTENDEES:
        raise Invalid(f"the attendees must be a list of at most {MAX_ATTENDEES}")
    out: List[Dict[str, Optional[str]]] = []
    seen = set()
    for entry in attendees:
        if not isinstance(entry, dict):
            raise Invalid("each attendee must be an object with a name, and an e-mail address and a role "
                          "if known")
        name = entry.get("name")
        name = clean_text(name if isinstance(name, str) else "", "an attendee's name", NAME_MAX)
        email = clean_email(entry["email"]) if entry.get("email") not in (None, "") else None
        role = entry.get("role")
        if role is not None and not isinstance(role, str):
            raise Invalid("an attendee's role must be text (for example: account manager, consultant)")
        role = clean_text(role, "an attendee's role", ROLE_MAX) if role and role.strip() else None
        if email is not None:
            if email in seen:
                continue
            seen.add(email)
        out.append({"name": name, "email": email, "role": role})
    return out


def _limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value) or not 1 <= value <= 100 * MAX_MINUTES:
        raise Invalid(f"the time limit must be a whole number of minutes, 1-{MAX_MINUTES}")
    return int(value)


def _engineer_exists(tx: Tx, name: Optional[str]) -> bool:
    return isinstance(name, str) and 0 < len(name) <= 64 and \
        tx.one("SELECT name FROM engineers WHERE name = ?", (name,)) is not None


def engineer_for(tx: Tx, ticket_id: str) -> Optional[str]:
    """Who takes a call the customer asks for: the ticket's owner, else whoever opened the
    ticket, when that is an engineer account; else None (the caller picks by earliest slot)."""
    owner = obligations.terms(tx, ticket_id)["owner"]
    ticket = tx.one("SELECT created_by FROM tickets WHERE id = ?", (ticket_id,))
    for name in (owner, (ticket or {}).get("created_by")):
        if isinstance(name, str):
            plain = name.split(":", 1)[1] if ":" in name else name
            if _engineer_exists(tx, plain):
                return plain
    return None


# --- the engineer's calendar ---------------------------------------------------------------------


def _merge(pairs: Sequence[Tuple[float, float]]) -> List[Tuple[float, float]]:
    out: List[Tuple[float, float]] = []
    for a, b in sorted(p for p in pairs if p[1] > p[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def busy(tx: Tx, engineer: str, since: float, until: float) -> List[Tuple[float, float]]:
    """The engineer's calls in [since, until) as sorted disjoint (start, end) epoch pairs: every
    scheduled call, and each held one up to when it was minuted (a call held early frees the rest)."""
    rows = tx.all("SELECT starts_at, ends_at, state, minuted_at FROM calls WHERE engineer = ? "
                  "AND state IN ('scheduled', 'held') AND starts_at < ? AND ends_at > ?",
                  (engineer, until, since))
    pairs = []
    for row in rows:
        end = row["ends_at"]
        if row["state"] == "held" and row["minuted_at"] is not None:
            end = min(end, max(row["starts_at"], row["minuted_at"]))
        pairs.append((max(since, row["starts_at"]), min(until, end)))
    return _merge(pairs)


def first_slot(tx: Tx, engineer: str, seconds: float, start: float) -> Optional[float]:
    """The first start at or after `start` (on a STEP_SECONDS mark) of `seconds` of the engineer's
    free working time: open hours minus time off minus their calls; None within the horizon."""
    end = start + HORIZON_DAYS * 86400.0
    off = [(float(a), float(b)) for a, b in rosters.time_off(tx, engineer, start, end)]
    holes = _merge(off + busy(tx, engineer, start, end))
    for lo, hi in cal.open_intervals(rosters.calendar_of(tx, engineer), start, end):
        pieces = [(lo, hi)]
        for a, b in holes:
            pieces = [q for p in pieces for q in ((p[0], min(p[1], a)), (max(p[0], b), p[1])) if q[1] > q[0]]
        for a, b in pieces:
            at = math.ceil(a / STEP_SECONDS) * STEP_SECONDS
            if at + seconds <= b:
                return float(at)
    return None


def _earliest_engineer(tx: Tx, seconds: float, start: float) -> Optional[str]:
    best: Optional[Tuple[float, str]] = None
    for row in tx.all("SELECT name FROM engineers ORDER BY name"):
        at = first_slot(tx, row["name"], seconds, start)
        if at is not None and (best is None or at < best[0]):
            best = (at, row["name"])
    return best[1] if best else None


# --- the calls ---------------------------------------------------------------------------------


def request(tx: Tx, ticket_id: str, *, agenda: List[str], limit_minutes: int = DEFAULT_MINUTES,
            attendees: List[Dict[str, str]], engineer: Optional[str], earliest: Optional[float],
            actor: str, session_id: Optional[str] = None) -> Dict[str, Any]:
    """A scheduled call, or `Refused` (recorded first). `engineer` None: engineer_for(ticket),
    else the engineer with the earliest free slot."""
    items = clean_agenda(agenda)
    people = clean_attendees(attendees)
    minutes = _limit(limit_minutes)
    now = clock.now()
    if earliest is not None and (isinstance(earliest, bool) or not isinstance(earliest, (int, float))
                                 or not math.isfinite(earliest) or earliest > now + HORIZON_DAYS * 86400.0):
        raise Invalid(f"the earliest start must be a time within the next {HORIZON_DAYS} days")
    if session_id:
        session = tx.one("SELECT id, purpose FROM sessions WHERE id = ? AND ticket_id = ?",
                         (session_id, ticket_id)) if isinstance(session_id, str) and len(session_id) < 64 \
            else None
        if session is None:
            raise NotFound("no such remote session on this ticket")
        if not items:
            items = clean_agenda([session["purpose"][:AGENDA_ITEM_MAX]])
    if engineer is not None and engineer != "" and not _engineer_exists(tx, engineer):
        raise Invalid("the engineer must be an engineer account")
    start = max(now + LEAD_SECONDS, earliest if earliest is not None else 0.0)
    if not engineer:
        engineer = engineer_for(tx, ticket_id) or _earliest_engineer(tx, minutes * 60.0, start)
    if engineer and tx.dialect == "postgresql":
        tx.run("SELECT name FROM engineers WHERE name = ? FOR UPDATE", (engineer,))
    call_id = "call-" + secrets.token_hex(8)
    values: Dict[str, Any] = {"id": call_id, "ticket_id": ticket_id, "requested_by": actor,
                              "requested_at": now, "agenda": json.dumps(items),
                              "limit_minutes": minutes, "attendees": json.dumps(people),
                              "engineer": engineer or None, "session_id": session_id or None,
                              "ical_uid": f"{call_id}@mydiag", "starts_at": None, "ends_at": None}
    reason = None
    if not items:
        reason = ("no agenda, no call: list what the call is to settle, one item per line "
                  f"(at most {MAX_AGENDA_ITEMS})")
    elif minutes > MAX_MINUTES:
        reason = (f"a call is at most {MAX_MINUTES} minutes, not {minutes}: split the agenda into "
                  "several calls")
    elif not engineer:
        reason = "no engineer account can take the call"
    else:
        at = first_slot(tx, engineer, minutes * 60.0, start)
        if at is None:
            reason = (f"{engineer} has no free {minutes} minutes in their working hours in the next "
                      f"{HORIZON_DAYS} days")
        else:
            values.update(starts_at=at, ends_at=at + minutes * 60.0)
    values.update(state="refused" if reason else "scheduled", refused_reason=reason)
    names = ", ".join(values)
    tx.run(f"INSERT INTO calls ({names}) VALUES ({', '.join('?' for _ in values)})", tuple(values.values()))
    if reason:
        audit.record(tx, actor, "call.refused", ticket_id, call_id, reason=reason, items=len(items),
                     limit_minutes=minutes)
        raise Refused(reason, get(tx, ticket_id, call_id))
    audit.record(tx, actor, "call.request", ticket_id, call_id, engineer=engineer,
                 starts_at=iso(values["starts_at"]), limit_minutes=minutes, items=len(items),
                 attendees=len(people), session=session_id or None)
    return get(tx, ticket_id, call_id)


def _row(tx: Tx, ticket_id: str, call_id: str) -> Dict[str, Any]:
    if not isinstance(call_id, str) or not call_id.startswith("call-") or len(call_id) > 40:
        raise NotFound("no such call")
    row = tx.one("SELECT * FROM calls WHERE id = ? AND ticket_id = ?", (call_id, ticket_id))
    if row is None:
        raise NotFound("no such call")
    return row


def _open_row(tx: Tx, ticket_id: str, call_id: str) -> Dict[str, Any]:
    tx.lock("calls", call_id)
    row = _row(tx, ticket_id, call_id)
    if row["state"] != "scheduled":
        raise Conflict(f"call {call_id} is {row['state']}: only a scheduled call can be minuted or cancelled")
    return row


def record_minutes(tx: Tx, ticket_id: str, call_id: str, *, minutes: str, actor: str) -> Dict[str, Any]:
    """The call took place: its minutes (plain text, newlines allowed) on the timeline, state `held`."""
    _open_row(tx, ticket_id, call_id)
    text = (minutes if isinstance(minutes, str) else "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text or len(text) > MINUTES_MAX or has_controls(text.replace("\n", "").replace("\t", "")):
        raise Invalid(f"the minutes must be 1-{MINUTES_MAX} characters of plain text (tab and newline are "
                      "the only control characters)")
    tx.run("UPDATE calls SET state = 'held', minutes = ?, minuted_at = ?, minuted_by = ? WHERE id = ?",
           (text, clock.now(), actor, call_id))
    audit.record(tx, actor, "call.minutes", ticket_id, call_id, chars=len(text))
    return get(tx, ticket_id, call_id)


def cancel(tx: Tx, ticket_id: str, call_id: str, *, reason: str, actor: str) -> Dict[str, Any]:
    """A scheduled call will not take place: the reason is kept (in `refused_reason`, shown as
    the cancellation's reason) and the invitation's sequence moves on for the CANCEL mail."""
    _open_row(tx, ticket_id, call_id)
    why = clean_text(reason if isinstance(reason, str) else "", "the reason", REASON_MAX)
    tx.run("UPDATE calls SET state = 'cancelled', refused_reason = ?, ical_sequence = ical_sequence + 1 "
           "WHERE id = ?", (why, call_id))
    audit.record(tx, actor, "call.cancel", ticket_id, call_id, reason=why)
    return get(tx, ticket_id, call_id)


def _view(row: Dict[str, Any]) -> Dict[str, Any]:
    state = row["state"]
    return {"id": row["id"], "ticket_id": row["ticket_id"], "requested_by": row["requested_by"],
            "requested_at": iso(row["requested_at"]), "agenda": json.loads(row["agenda"]),
            "limit_minutes": row["limit_minutes"], "attendees": json.loads(row["attendees"]),
            "engineer": row["engineer"],
            "starts_at": iso(row["starts_at"]) if row["starts_at"] is not None else None,
            "ends_at": iso(row["ends_at"]) if row["ends_at"] is not None else None,
            "state": state, "refused_reason": row["refused_reason"] if state == "refused" else None,
            "cancel_reason": row["refused_reason"] if state == "cancelled" else None,
            "minutes": row["minutes"], "minuted_at": iso(row["minuted_at"]) if row["minuted_at"] else None,
            "minuted_by": row["minuted_by"], "session_id": row["session_id"], "ical_uid": row["ical_uid"],
            "ical_sequence": row["ical_sequence"]}


def get(tx: Tx, ticket_id: str, call_id: str) -> Dict[str, Any]:
    return _view(_row(tx, ticket_id, call_id))


def of_ticket(tx: Tx, ticket_id: str) -> List[Dict[str, Any]]:
    """Every call of the ticket (refused ones too), oldest request first."""
    return [_view(r) for r in tx.all("SELECT * FROM calls WHERE ticket_id = ? ORDER BY requested_at, id",
                                     (ticket_id,))]


def timeline_entries(tx: Tx, ticket_id: str, engineer: bool) -> List[Tuple[float, Dict[str, Any]]]:
    """(epoch, timeline entry) pairs for support/timeline.py, for both sides: each request (or
    refusal), each call's minutes, each cancellation (its time from the audit log)."""
    out: List[Tuple[float, Dict[str, Any]]] = []
    rows = tx.all("SELECT * FROM calls WHERE ticket_id = ? ORDER BY requested_at, id", (ticket_id,))
    cancelled = {r["subject"]: r["at"] for r in tx.all(
        "SELECT subject, at FROM audit WHERE ticket_id = ? AND action = 'call.cancel'", (ticket_id,))} \
        if any(r["state"] == "cancelled" for r in rows) else {}
    for row in rows:
        call = _view(row)
        first = "refused" if row["state"] == "refused" else "requested"
        out.append((row["requested_at"], {"at": call["requested_at"], "type": "call",
                                          "call": {**call, "event": first}}))
        if row["minuted_at"] is not None:
            out.append((row["minuted_at"], {"at": call["minuted_at"], "type": "call",
                                            "call": {**call, "event": "held"}}))
        if row["id"] in cancelled:
            at = cancelled[row["id"]]
            out.append((at, {"at": iso(at), "type": "call", "call": {**call, "event": "cancelled"}}))
    return out
