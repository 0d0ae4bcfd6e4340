"""Engineers' working calendars and time off: who can work when (the supply side of capacity.py).

The rules kept here (docs/queue.md, "Calendars"):

- Every account in `engineers` takes work. Its calendar is its own row of
  `engineer_calendars` (time zone, weekly hours, public holidays of a country and
  subdivision) when one was set, else the policies' `business` calendar.
- A calendar is checked by server.support.calendar.parse before it is stored, so a stored
  one always parses; `share` is the part of the open time the engineer gives to the queue
  (0 < share <= 1: someone who also runs trainings works the queue at 0.5).
- Time off is a span `[starts, ends)` (at most a year, plain-text reason), subtracted from
  the calendar's open time. Every change is audited.
"""

from __future__ import annotations

import json
import math
import secrets
from typing import Any, Dict, List, Tuple

from server.storage import audit
from server.storage.db import Tx
from server.support import calendar as cal
from server.support import clock, policies
from server.support.tickets import Invalid, clean_text, iso

#: Time off longer than a year is a typing mistake.
MAX_TIME_OFF_SECONDS = 366 * 86400.0
REASON_MAX = 200


class NotFound(LookupError):
    """No such engineer account."""


def engineers(tx: Tx) -> List[str]:
    """The accounts that take work (the engineers table), by name."""
    return [row["name"] for row in tx.all("SELECT name FROM engineers ORDER BY name")]


def _require(tx: Tx, engineer: str) -> None:
    if not isinstance(engineer, str) or not engineer or len(engineer) > 64 or \
            tx.one("SELECT name FROM engineers WHERE name = ?", (engineer,)) is None:
        raise NotFound(f"no engineer {str(engineer)[:64]!r} (`mydiag-server engineer add NAME`)")


def _share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= 1:
        raise Invalid("the share must be a number more than 0 and at most 1 (the part of the working hours "
                      "given to the queue)")
    return float(value)


def set_calendar(tx: Tx, engineer: str, *, timezone: str, hours: Dict[str, List[str]], holidays: str = "",
                 subdivision: str = "", share: float = 1.0, actor: str) -> Dict[str, Any]:
    """The engineer's own calendar (replacing the one before), checked like config.json's."""
    _require(tx, engineer)
    spec = {"timezone": timezone, "hours": hours, "holidays": holidays or "",
            "subdivision": subdivision or ""}
    try:
        cal.parse(engineer, spec)
    except cal.CalendarError as exc:
        raise Invalid(str(exc)) from None
    share = _share(share)
    tx.run("INSERT INTO engineer_calendars (engineer, timezone, hours, holidays, subdivision, share, "
           "updated) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (engineer) DO UPDATE SET "
           "timezone = excluded.timezone, hours = excluded.hours, holidays = excluded.holidays, "
           "subdivision = excluded.subdivision, share = excluded.share, updated = excluded.updated",
           (engineer, timezone, json.dumps(hours, sort_keys=True), spec["holidays"], spec["subdivision"],
            share, clock.now()))
    audit.record(tx, actor, "calendar.set", subject=engineer, timezone=timezone, hours=hours,
                 holidays=spec["holidays"], subdivision=spec["subdivision"], share=share)
    return view(tx, engineer)


def _row(tx: Tx, engineer: str) -> Any:
    return tx.one("SELECT * FROM engineer_calendars WHERE engineer = ?", (engineer,))


def calendar_of(tx: Tx, engineer: str) -> cal.Calendar:
    """The engineer's calendar; without one of their own, the policies' `business` calendar."""
    row = _row(tx, engineer)
    if row is None:
        return policies.active().calendar("business")
    return cal.parse(engineer, {"timezone": row["timezone"], "hours": json.loads(row["hours"]),
                                "holidays": row["holidays"] or "", "subdivision": row["subdivision"] or ""})


def share_of(tx: Tx, engineer: str) -> float:
    row = _row(tx, engineer)
    return float(row["share"]) if row is not None else 1.0


def add_time_off(tx: Tx, engineer: str, starts: float, ends: float, reason: str,
                 actor: str) -> Dict[str, Any]:
    """A span the engineer does not work, whatever the calendar says."""
    _require(tx, engineer)
    for value in (starts, ends):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise Invalid("time off starts and ends at a date and time")
    if not 0 < ends - starts <= MAX_TIME_OFF_SECONDS:
        raise Invalid("time off must end after it starts, and last at most 366 days")
    reason = clean_text(reason if isinstance(reason, str) else "", "the reason", REASON_MAX)
    off_id = "to-" + secrets.token_hex(8)
    tx.run("INSERT INTO engineer_time_off (id, engineer, starts, ends, reason) VALUES (?, ?, ?, ?, ?)",
           (off_id, engineer, float(starts), float(ends), reason))
    audit.record(tx, actor, "calendar.time_off", subject=engineer, id=off_id, starts=iso(starts),
                 ends=iso(ends))
    return {"id": off_id, "engineer": engineer, "starts": iso(starts), "ends": iso(ends), "reason": reason}


def time_off(tx: Tx, engineer: str, since: float, until: float) -> List[Tuple[float, float]]:
    """The engineer's time off inside [since, until), clipped to it, in order."""
    rows = tx.all("SELECT starts, ends FROM engineer_time_off WHERE engineer = ? AND ends > ? AND starts < ? "
                  "ORDER BY starts", (engineer, since, until))
    return [(max(float(r["starts"]), since), min(float(r["ends"]), until)) for r in rows]


def view(tx: Tx, engineer: str) -> Dict[str, Any]:
    """What `calendar show` prints: the calendar in force (own or default), share, time off to come."""
    _require(tx, engineer)
    row = _row(tx, engineer)
    now = clock.now()
    off = tx.all("SELECT id, starts, ends, reason FROM engineer_time_off WHERE engineer = ? AND ends > ? "
                 "ORDER BY starts", (engineer, now))
    if row is None:
        default = policies.active().calendar("business")
        found: Dict[str, Any] = {"own": False, "calendar": default.name, "timezone": default.timezone,
                                 "hours": _hours_text(default), "holidays": default.country,
                                 "subdivision": default.subdivision, "share": 1.0}
    else:
        found = {"own": True, "calendar": engineer, "timezone": row["timezone"],
                 "hours": _in_order(json.loads(row["hours"])),
                 "holidays": row["holidays"] or "", "subdivision": row["subdivision"] or "",
                 "share": float(row["share"]), "updated": iso(row["updated"])}
    found["engineer"] = engineer
    found["time_off"] = [{"id": r["id"], "starts": iso(r["starts"]), "ends": iso(r["ends"]),
                          "reason": r["reason"]} for r in off]
    return found


def _in_order(hours: Dict[str, List[str]]) -> Dict[str, List[str]]:
    return {day: hours[day] for day in cal.DAYS if hours.get(day)}


def _hours_text(calendar: cal.Calendar) -> Dict[str, List[str]]:
    if calendar.always:
        return {day: ["00:00-24:00"] for day in cal.DAYS}
    return {day: [f"{lo // 60:02d}:{lo % 60:02d}-{hi // 60:02d}:{hi % 60:02d}" for lo, hi in spans]
            for day, spans in zip(cal.DAYS, calendar.hours) if spans}
