"""Business calendars: when a reply clock runs.

A calendar is a time zone (zoneinfo), weekly hours (local wall-clock intervals per weekday),
holidays (the `holidays` package's country and subdivision, plus extra dates), or `always`
(24×7). Business time is real elapsed seconds inside the open intervals: on a DST change
day an interval 00:00-04:00 is 3 or 5 real hours long, and a clock counts what really
passed. Times in and out are aware datetimes (UTC on the way out).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Dict, FrozenSet, Iterator, List, Optional, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.timezone.utc
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
#: How far ahead a deadline is searched before the calendar counts as having no business time.
_HORIZON_DAYS = 3 * 366


class CalendarError(ValueError):
    """A calendar setting that cannot be used; the message says which."""


@dataclass(frozen=True)
class Calendar:
    name: str
    timezone: str = "UTC"
    #: Weekday (0 = Monday) -> ((start minute, end minute), ...) in local wall-clock time.
    hours: Tuple[Tuple[Tuple[int, int], ...], ...] = ((), (), (), (), (), (), ())
    country: str = ""
    subdivision: str = ""
    extra_holidays: FrozenSet[dt.date] = field(default_factory=frozenset)
    always: bool = False

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_holiday(self, day: dt.date) -> bool:
        return day in self.extra_holidays or (bool(self.country) and day in _holidays(
            self.country, self.subdivision, day.year))

    def intervals(self, start: dt.datetime) -> Iterator[Tuple[dt.datetime, dt.datetime]]:
        """The open intervals (UTC) that end after `start`, in order, within the horizon."""
        zone = self.zone
        day = start.astimezone(zone).date() - dt.timedelta(days=1)
        for _ in range(_HORIZON_DAYS):
            if not self.is_holiday(day):
                for lo, hi in self.hours[day.weekday()]:
                    a = _wall(day, lo, zone)
                    b = _wall(day, hi, zone)
                    if b > start and b > a:
                        yield max(a, start), b
            day += dt.timedelta(days=1)


def _wall(day: dt.date, minute: int, zone: ZoneInfo) -> dt.datetime:
    """A local wall-clock minute of `day` as UTC (24:00 is the next midnight; a time in a DST
    gap is read with the offset before the gap, the first of a repeated hour is taken)."""
    base = dt.datetime.combine(day, dt.time(0), tzinfo=zone) if minute < 1440 else \
        dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    if minute < 1440:
        base = base.replace(hour=minute // 60, minute=minute % 60)
    return base.astimezone(UTC)


@lru_cache(maxsize=64)
def _holidays(country: str, subdivision: str, year: int) -> Any:
    import holidays

    return holidays.country_holidays(country, subdiv=subdivision or None, years=year)


def _aware(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise CalendarError("calendar times must be timezone-aware")
    return moment.astimezone(UTC)


def add_business_time(start: dt.datetime, seconds: float, calendar: Calendar) -> dt.datetime:
    """The moment `seconds` of business time after `start` (UTC)."""
    start = _aware(start)
    if calendar.always or seconds <= 0:
        return start + dt.timedelta(seconds=max(0.0, seconds))
    left = float(seconds)
    for a, b in calendar.intervals(start):
        room = (b - a).total_seconds()
        if left <= room:
            return a + dt.timedelta(seconds=left)
        left -= room
    raise CalendarError(f"calendar {calendar.name!r} has no business time in the next "
                        f"{_HORIZON_DAYS} days")


def business_seconds_between(a: dt.datetime, b: dt.datetime, calendar: Calendar) -> float:
    """Business seconds in [a, b) (0 when b is not after a)."""
    a, b = _aware(a), _aware(b)
    if b <= a:
        return 0.0
    if calendar.always:
        return (b - a).total_seconds()
    total = 0.0
    for lo, hi in calendar.intervals(a):
        if lo >= b:
            break
        total += (min(hi, b) - lo).total_seconds()
    return total


def from_epoch(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, UTC)


def add_epoch(start: float, seconds: float, calendar: Calendar) -> float:
    """`add_business_time` over epoch seconds."""
    if calendar.always or seconds <= 0:
        return start + max(0.0, seconds)
    return add_business_time(from_epoch(start), seconds, calendar).timestamp()


def between_epoch(a: float, b: float, calendar: Calendar) -> float:
    if calendar.always:
        return max(0.0, b - a)
    return business_seconds_between(from_epoch(a), from_epoch(b), calendar)


def parse(name: str, spec: Dict[str, Any]) -> Calendar:
    """A calendar from its config.json form (docs/conversations.md, "Policies")."""
    if not isinstance(spec, dict):
        raise CalendarError(f"calendar {name!r} must be an object")
    unknown = set(spec) - {"timezone", "hours", "holidays", "subdivision", "extra_holidays", "always"}
    if unknown:
        raise CalendarError(f"calendar {name!r}: unknown setting(s) {', '.join(sorted(unknown))}")
    if spec.get("always"):
        return Calendar(name, always=True)
    zone = str(spec.get("timezone", "UTC"))
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError(f"calendar {name!r}: unknown time zone {zone!r}") from None
    hours: List[Tuple[Tuple[int, int], ...]] = []
    given = spec.get("hours", {})
    if not isinstance(given, dict) or set(given) - set(DAYS):
        raise CalendarError(f"calendar {name!r}: hours must map mon..sun to lists of 'HH:MM-HH:MM'")
    for day in DAYS:
        spans = []
        for text in given.get(day, []):
            m = _SPAN.match(str(text))
            lo = int(m.group(1)) * 60 + int(m.group(2)) if m else 0
            hi = int(m.group(3)) * 60 + int(m.group(4)) if m else 0
            if not m or hi <= lo or hi > 1440:
                raise CalendarError(f"calendar {name!r}: {day} hours {text!r} is not 'HH:MM-HH:MM'")
            spans.append((lo, hi))
        hours.append(tuple(sorted(spans)))
    if not any(hours):
        raise CalendarError(f"calendar {name!r} has no open hours (use \"always\": true for 24x7)")
    country = str(spec.get("holidays", "") or "")
    subdivision = str(spec.get("subdivision", "") or "")
    if country:
        try:
            _holidays(country, subdivision, 2026)
        except (NotImplementedError, ValueError, KeyError) as exc:
            raise CalendarError(f"calendar {name!r}: holidays {country!r}/{subdivision!r}: {exc}") from None
    try:
        extra = frozenset(dt.date.fromisoformat(str(d)) for d in spec.get("extra_holidays", []))
    except ValueError:
        raise CalendarError(f"calendar {name!r}: extra_holidays must be YYYY-MM-DD dates") from None
    return Calendar(name, zone, tuple(hours), country, subdivision, extra)


ALWAYS = Calendar("24x7", always=True)


def office(name: str = "business", timezone: str = "UTC", start: str = "09:00", end: str = "17:00",
           country: str = "", subdivision: str = "") -> Calendar:
    """Monday to Friday, one interval a day."""
    return parse(name, {"timezone": timezone, "hours": {d: [f"{start}-{end}"] for d in DAYS[:5]},
                        "holidays": country, "subdivision": subdivision})


def describe(calendar: Optional[Calendar]) -> str:
    if calendar is None or calendar.always:
        return "24x7"
    return f"{calendar.timezone}, holidays {calendar.country or 'none'}"


def open_intervals(calendar: Calendar, start: float, end: float) -> List[Tuple[float, float]]:
    """The calendar's open time in [start, end) as sorted, disjoint epoch pairs (24x7: one interval);
    what planning.supply.Supply is built from."""
    if end <= start:
        return []
    if calendar.always:
        return [(float(start), float(end))]
    out: List[Tuple[float, float]] = []
    for a, b in calendar.intervals(from_epoch(start)):
        lo, hi = a.timestamp(), min(b.timestamp(), end)
        if lo >= end:
            break
        if hi > lo:
            if out and lo <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], hi))
            else:
                out.append((lo, hi))
    return out
