"""The synthetic month: who writes when, how much work each message really is.

Everything random is drawn here, once, from the seed, so every policy faces the same
tickets, messages, estimates, true efforts, waits and customer delays; only when a follow-up
arrives depends on when the reply to the previous message was delivered.

The generator's assumptions (docs/scheduling.md lists them with the figures):
- engineers in `timezones` zones (Tokyo, Berlin, Chicago, ...), round robin, each working
  09:00-17:00 local Monday to Friday, no holidays; customers in six zones;
- a ticket's first message arrives at a uniformly random moment of the period, inside its
  customer's office hours with probability IN_HOURS; each ticket is urgent with probability
  URGENT (24x7 targets: 4 h for the first reply, 8 h for the next), else normal (8 and 16
  business hours of the customer's office calendar);
- follow-ups: after each reply the customer writes again with probability FOLLOW_UP (at most
  MAX_FOLLOW_UPS), a log-normal think time later (median 20 h), moved into office hours with
  probability IN_HOURS;
- estimates: a first message ~ log-normal (median 1 h), INVESTIGATION of them are long
  investigations (4-8 h), a follow-up ~ log-normal (median 30 min); the true effort is the
  estimate times exp(N(0, sigma)) (`--estimate-error`); then every estimate and effort is
  scaled by one factor so that the total true effort is `load` times the engineers' working
  time in the period;
- waits: a message's work stops for a question to the customer with probability WAIT (after
  20-60 % of its effort); the answer comes a log-normal time later (median 3 h); the
  obligation is paused meanwhile (its clock stops, as obligations.py does).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from server.planning.supply import Supply
from server.support import calendar as cal

ENGINEER_ZONES = ("Asia/Tokyo", "Europe/Berlin", "America/Chicago", "Asia/Kolkata", "America/Los_Angeles",
                  "Australia/Sydney")
CUSTOMER_ZONES = ("America/New_York", "Europe/London", "Asia/Singapore", "America/Los_Angeles",
                  "Europe/Berlin", "Australia/Sydney")
#: The simulated month starts on a Monday, 00:00 UTC.
START = dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc).timestamp()
#: How long after the period the engineers' calendars run, for the work still open at its end.
SPILL_DAYS = 45
IN_HOURS = 0.85
URGENT = 0.15
FOLLOW_UP = 0.55
MAX_FOLLOW_UPS = 5
INVESTIGATION = 0.06
WAIT = 0.2
#: (severity, first reply or next) -> target seconds; urgent ones run 24x7.
TARGETS = {("urgent", 0): 4 * 3600.0, ("urgent", 1): 8 * 3600.0,
           ("normal", 0): 8 * 3600.0, ("normal", 1): 16 * 3600.0}


@dataclass
class Message:
    id: str
    ticket: int
    index: int
    estimate: float
    effort: float
    #: Seconds of work after which the engineer asks the customer a question (None: no question).
    wait_at: Optional[float]
    #: How long the customer takes to answer it.
    wait_for: float
    #: Seconds after the previous reply until this follow-up is written (0 for the first).
    think: float
    #: Moved into the customer's office hours.
    in_hours: bool


@dataclass
class Ticket:
    id: int
    zone: str
    severity: str
    opened: float
    messages: List[Message] = field(default_factory=list)


@dataclass
class Workload:
    start: float
    end: float
    horizon: float
    tickets: List[Ticket]
    #: Engineer -> open intervals until the horizon.
    engineers: Dict[str, List[Tuple[float, float]]]
    #: Customer zone -> its office hours, as a one-"engineer" Supply (business time arithmetic).
    offices: Dict[str, Supply]
    working_seconds: float
    scale: float
    params: Dict[str, float]


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


Spans = List[Tuple[float, float]]


def engineer_calendars(count: int, zones: int, start: float, until: float) -> Dict[str, Spans]:
    """`count` engineers, round robin over the first `zones` zones, 09:00-17:00 local on weekdays."""
    out = {}
    for i in range(count):
        zone = ENGINEER_ZONES[i % zones]
        name = f"e{i + 1}-{zone.split('/')[-1].lower()}"
        out[name] = cal.open_intervals(cal.office(f"sim-{zone}", timezone=zone), start, until)
    return out


def generate(tickets: int, days: int, load: float, engineers: int, sigma: float, seed: int,
             timezones: int = 3) -> Workload:
    rng = random.Random(seed)
    start = START
    end = start + days * 86400.0
    horizon = end + SPILL_DAYS * 86400.0
    team = engineer_calendars(engineers, timezones, start, horizon)
    working = sum(min(b, end) - a for spans in team.values() for a, b in spans if a < end)
    offices = {}
    for zone in CUSTOMER_ZONES:
        hours = cal.office(f"customer-{zone}", timezone=zone)
        offices[zone] = Supply(start, {"office": cal.open_intervals(hours, start, horizon)})
    made: List[Ticket] = []
    for n in range(tickets):
        zone = CUSTOMER_ZONES[rng.randrange(len(CUSTOMER_ZONES))]
        severity = "urgent" if rng.random() < URGENT else "normal"
        if rng.random() < IN_HOURS:
            office = offices[zone]
            opened = office.reach(rng.random() * office.capacity(end)) or start
        else:
            opened = start + rng.random() * (end - start)
        ticket = Ticket(n + 1, zone, severity, opened)
        follow_ups = 0
        while follow_ups < MAX_FOLLOW_UPS and rng.random() < FOLLOW_UP:
            follow_ups += 1
        for i in range(1 + follow_ups):
            if i == 0 and rng.random() < INVESTIGATION:
                estimate = rng.uniform(4, 8) * 3600.0
            elif i == 0:
                estimate = min(4 * 3600.0, max(600.0, _lognormal(rng, 3600.0, 0.5)))
            else:
                estimate = min(2 * 3600.0, max(300.0, _lognormal(rng, 1800.0, 0.5)))
            effort = estimate * math.exp(rng.gauss(0.0, sigma))
            waits = rng.random() < WAIT
            wait_share = rng.uniform(0.2, 0.6)
            wait_for = min(3 * 86400.0, max(600.0, _lognormal(rng, 3 * 3600.0, 1.0)))
            think = 0.0 if i == 0 else min(10 * 86400.0, _lognormal(rng, 20 * 3600.0, 0.8))
            ticket.messages.append(Message(f"m{n + 1}.{i}", n + 1, i, estimate, effort,
                                           wait_share if waits else None, wait_for, think,
                                           rng.random() < IN_HOURS))
        made.append(ticket)
    total = sum(m.effort for t in made for m in t.messages)
    scale = load * working / total if total > 0 else 1.0
    for t in made:
        for m in t.messages:
            m.estimate *= scale
            m.effort *= scale
            if m.wait_at is not None:
                m.wait_at *= m.effort
    made.sort(key=lambda t: (t.opened, t.id))
    return Workload(start, end, horizon, made, team, offices, working, scale,
                    {"tickets": tickets, "days": days, "load": load, "engineers": engineers,
                     "estimate_error": sigma, "seed": seed, "timezones": timezones})


def target(ticket: Ticket, message: Message) -> float:
    return TARGETS[(ticket.severity, min(1, message.index))]


def business_clock(workload: Workload, ticket: Ticket) -> Optional[Supply]:
    """The calendar a message's clock runs on: None for 24x7 (urgent), else the customer's office."""
    return None if ticket.severity == "urgent" else workload.offices[ticket.zone]


def add(clock: Optional[Supply], at: float, seconds: float) -> float:
    """`seconds` of the clock's time after `at` (24x7 when clock is None)."""
    if clock is None:
        return at + seconds
    found = clock.reach(clock.capacity(at, "office") + seconds, "office")
    # reach() of a flat stretch (after hours) is where it went flat, before `at`: never go back.
    return max(at, found) if found is not None else max(at, clock.horizon)


def between(clock: Optional[Supply], a: float, b: float) -> float:
    if b <= a:
        return 0.0
    if clock is None:
        return b - a
    return clock.capacity(b, "office") - clock.capacity(a, "office")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1), nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
