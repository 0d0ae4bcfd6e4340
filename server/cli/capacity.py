"""`mydiag-server calendar set|show|time-off`: the engineers' working calendars (support/rosters.py).

`--hours` is a comma-separated list of `DAYS=SPANS`: DAYS a weekday (`mon`) or a range
(`mon-fri`), SPANS one or more `HH:MM-HH:MM` joined by `+` (`mon-fri=09:00-12:00+13:00-17:00,
sat=10:00-14:00`). A day named twice gets both spans.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any, Dict, List

from server import exitcodes
from server.cli.common import Failure, _actor, _emit, _open, actions, command, json_option

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_hours(text: str) -> Dict[str, List[str]]:
    """`mon-fri=09:00-17:00,sat=10:00-12:00+13:00-15:00` as the calendar's hours mapping
    (the spans themselves are checked by the calendar)."""
    hours: Dict[str, List[str]] = {}
    for item in (part.strip() for part in text.split(",")):
        days, sep, spans = item.partition("=")
        first, _, last = days.strip().lower().partition("-")
        if not sep or first not in DAYS or (last and last not in DAYS) or not spans.strip():
            raise Failure(exitcodes.USAGE, f"--hours: {item!r} is not DAYS=HH:MM-HH:MM "
                                           "(e.g. mon-fri=09:00-17:00)")
        lo, hi = DAYS.index(first), DAYS.index(last or first)
        if hi < lo:
            raise Failure(exitcodes.USAGE, f"--hours: {days!r} runs backwards (write mon-fri, not fri-mon)")
        for day in DAYS[lo:hi + 1]:
            hours.setdefault(day, []).extend(s.strip() for s in spans.split("+"))
    return hours


def _when(text: str, option: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Failure(exitcodes.USAGE, f"{option} must be a date like 2026-12-24 or 2026-12-24T09:00Z, "
                                       f"not {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def _lines(found: Dict[str, Any]) -> List[str]:
    own = "own calendar" if found["own"] else f"the default calendar {found['calendar']!r}"
    lines = [f"{found['engineer']}: {own}, {found['timezone']}, holidays "
             f"{found['holidays'] or 'none'}{'/' + found['subdivision'] if found['subdivision'] else ''}, "
             f"share {found['share']:g}"]
    lines += [f"  {day}: {', '.join(spans)}" for day, spans in found["hours"].items()]
    lines += [f"  off {o['starts']} .. {o['ends']}: {o['reason']}" for o in found["time_off"]]
    return lines


def cmd_set(args: argparse.Namespace) -> int:
    from server.support import rosters

    hours = parse_hours(args.hours)
    state = _open(args)
    try:
        with state.db.tx() as tx:
            found = rosters.set_calendar(tx, args.name, timezone=args.timezone, hours=hours,
                                         holidays=args.holidays or "", subdivision=args.subdivision or "",
                                         share=args.share, actor=_actor())
    except rosters.NotFound as exc:
        raise Failure(exitcodes.NOT_FOUND, str(exc)) from None
    finally:
        state.close()
    _emit(args, found, _lines(found))
    return exitcodes.OK


def cmd_show(args: argparse.Namespace) -> int:
    from server.support import rosters

    state = _open(args)
    try:
        with state.db.tx(write=False) as tx:
            found = rosters.view(tx, args.name)
    except rosters.NotFound as exc:
        raise Failure(exitcodes.NOT_FOUND, str(exc)) from None
    finally:
        state.close()
    _emit(args, found, _lines(found))
    return exitcodes.OK


def cmd_time_off(args: argparse.Namespace) -> int:
    from server.support import rosters

    starts, ends = _when(args.starts, "--from"), _when(args.ends, "--to")
    state = _open(args)
    try:
        with state.db.tx() as tx:
            found = rosters.add_time_off(tx, args.name, starts, ends, args.reason, _actor())
    except rosters.NotFound as exc:
        raise Failure(exitcodes.NOT_FOUND, str(exc)) from None
    finally:
        state.close()
    _emit(args, found, [f"{found['engineer']} is off {found['starts']} .. {found['ends']} ({found['id']})"])
    return exitcodes.OK


def _share(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 0.5)") from None


def register(sub: Any) -> None:
    group = actions(sub, "calendar", "engineers' working calendars and time off (the queue's capacity)")
    p = command(group, "set", "an engineer's own working hours, time zone, holidays and share", cmd_set)
    p.add_argument("name", metavar="NAME", help="the engineer account")
    p.add_argument("--timezone", required=True, metavar="ZONE", help="IANA time zone, e.g. Europe/Berlin")
    p.add_argument("--hours", required=True, metavar="DAYS=SPANS,...",
                   help="e.g. mon-fri=09:00-12:00+13:00-17:00,sat=10:00-14:00")
    p.add_argument("--holidays", metavar="CC", help="country code of the public holidays, e.g. DE")
    p.add_argument("--subdivision", metavar="S", help="the country's subdivision, e.g. BY")
    p.add_argument("--share", type=_share, default=1.0, metavar="F",
                   help="the part of the hours given to the queue, 0 < F <= 1 (default 1)")
    json_option(p)
    p = command(group, "show", "an engineer's calendar in force and time off to come", cmd_show)
    p.add_argument("name", metavar="NAME")
    json_option(p)
    p = command(group, "time-off", "a span the engineer does not work", cmd_time_off)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--from", dest="starts", required=True, metavar="ISO", help="start (UTC unless it says)")
    p.add_argument("--to", dest="ends", required=True, metavar="ISO", help="end, exclusive")
    p.add_argument("--reason", required=True, metavar="TEXT")
    json_option(p)
