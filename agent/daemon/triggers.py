"""Trigger conditions: a small expression language, its tree, and when a trigger fires.

    Threads_running > 50
    rate(Com_select) > 5000 AND load1 >= 8
    processlist.state("Waiting for table metadata lock") > 0 OR longest_query_seconds > 30
    (iowait > 20 OR mem_free_pct < 5) AND NOT disk_free_pct("/var/lib/mysql") < 10

Names are global status variables (any case), `rate(Name)` is a status counter's change
per second between two checks, and these come from the host or the processlist:

    load1 load5 load15        the load average
    iowait cpu_busy           % of CPU time between two checks
    mem_free_pct swap_used_pct
    disk_free_pct("/path")    % of the filesystem holding /path that is free
    longest_query_seconds     the oldest running statement (not ours)
    processlist.state("…") processlist.command("…") processlist.user("…")
                              how many connections are in that state / command / of that user

A value not known yet (the first reading of a rate, a server that does not answer) makes
its comparison unknown, and a trigger holds only when its whole condition is true.
The text is parsed by agent.daemon.trigger_language (hand-written: a bad expression is
refused at start with its position); this module holds the tree it builds, evaluates it
against one check, and says when a trigger fires.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

Number = Optional[float]
Truth = Optional[bool]

#: Host values by name, as a Reading holds them (agent.daemon.monitor reads them).
OS_VALUES = ("load1", "load5", "load15", "iowait", "cpu_busy", "mem_free_pct", "swap_used_pct")
PROCESSLIST_VALUES = ("longest_query_seconds",)
PROCESSLIST_FIELDS = ("state", "command", "user")


@dataclass
class Reading:
    """What one check saw: status values, their rates, host values, the processlist."""

    status: Dict[str, float] = field(default_factory=dict)
    rates: Dict[str, float] = field(default_factory=dict)
    host: Dict[str, float] = field(default_factory=dict)
    disk_free: Dict[str, float] = field(default_factory=dict)
    #: (field, value) -> connections; "longest_query_seconds" -> seconds.
    processlist: Optional[Dict[Tuple[str, str], int]] = None
    longest_query: Number = None


# -- the tree ------------------------------------------------------------------


class Node:
    kind = "number"  # or "truth"

    def eval(self, reading: Reading) -> Any:
        raise NotImplementedError

    def children(self) -> List[Node]:
        return []

    def walk(self) -> List[Node]:
        found: List[Node] = [self]
        for child in self.children():
            found += child.walk()
        return found


@dataclass
class Const(Node):
    value: float

    def eval(self, reading: Reading) -> Number:
        return self.value


class Leaf(Node):
    """A value read from the world; its label names it in a capture's manifest."""

    label = ""


@dataclass
class Status(Leaf):
    name: str

    @property
    def label(self) -> str:  # type: ignore[override]
        return self.name

    def eval(self, reading: Reading) -> Number:
        return reading.status.get(self.name.lower())


@dataclass
class Rate(Leaf):
    name: str

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"rate({self.name})"

    def eval(self, reading: Reading) -> Number:
        return reading.rates.get(self.name.lower())


@dataclass
class Host(Leaf):
    name: str

    @property
    def label(self) -> str:  # type: ignore[override]
        return self.name

    def eval(self, reading: Reading) -> Number:
        return reading.host.get(self.name)


@dataclass
class DiskFree(Leaf):
    path: str

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"disk_free_pct({self.path})"

    def eval(self, reading: Reading) -> Number:
        return reading.disk_free.get(self.path)


@dataclass
class Longest(Leaf):
    label = "longest_query_seconds"

    def eval(self, reading: Reading) -> Number:
        if reading.processlist is None:
            return None
        return reading.longest_query if reading.longest_query is not None else 0.0


@dataclass
class Processes(Leaf):
    field_name: str
    value: str

    @property
    def label(self) -> str:  # type: ignore[override]
        return f'processlist.{self.field_name}("{self.value}")'

    def eval(self, reading: Reading) -> Number:
        if reading.processlist is None:
            return None
        return float(reading.processlist.get((self.field_name, self.value.lower()), 0))


_ARITH: Dict[str, Callable[[float, float], Number]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b else None,
}
_COMPARE: Dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b, ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
    "=": lambda a, b: a == b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


@dataclass
class Arith(Node):
    op: str
    left: Node
    right: Node

    def children(self) -> List[Node]:
        return [self.left, self.right]

    def eval(self, reading: Reading) -> Number:
        a, b = self.left.eval(reading), self.right.eval(reading)
        return None if a is None or b is None else _ARITH[self.op](a, b)


@dataclass
class Negate(Node):
    operand: Node

    def children(self) -> List[Node]:
        return [self.operand]

    def eval(self, reading: Reading) -> Number:
        value = self.operand.eval(reading)
        return None if value is None else -value


@dataclass
class Compare(Node):
    op: str
    left: Node
    right: Node
    kind = "truth"

    def children(self) -> List[Node]:
        return [self.left, self.right]

    def eval(self, reading: Reading) -> Truth:
        a, b = self.left.eval(reading), self.right.eval(reading)
        return None if a is None or b is None else _COMPARE[self.op](a, b)


@dataclass
class Logic(Node):
    op: str  # "and" | "or"
    parts: List[Node]
    kind = "truth"

    def children(self) -> List[Node]:
        return list(self.parts)

    def eval(self, reading: Reading) -> Truth:
        values = [p.eval(reading) for p in self.parts]
        decisive = self.op == "or"
        if decisive in values:
            return decisive
        return None if None in values else not decisive


@dataclass
class Not(Node):
    operand: Node
    kind = "truth"

    def children(self) -> List[Node]:
        return [self.operand]

    def eval(self, reading: Reading) -> Truth:
        value = self.operand.eval(reading)
        return None if value is None else not value


@dataclass
class Expression:
    """A parsed condition, and what it needs to be evaluated."""

    text: str
    root: Node

    def leaves(self) -> List[Leaf]:
        return [n for n in self.root.walk() if isinstance(n, Leaf)]

    @property
    def status_names(self) -> Set[str]:
        return {n.name for n in self.leaves() if isinstance(n, (Status, Rate))}

    @property
    def rate_names(self) -> Set[str]:
        return {n.name for n in self.leaves() if isinstance(n, Rate)}

    @property
    def host_names(self) -> Set[str]:
        return {n.name for n in self.leaves() if isinstance(n, Host)}

    @property
    def disk_paths(self) -> Set[str]:
        return {n.path for n in self.leaves() if isinstance(n, DiskFree)}

    @property
    def needs_processlist(self) -> bool:
        return any(isinstance(n, (Longest, Processes)) for n in self.leaves())

    def evaluate(self, reading: Reading) -> Tuple[Truth, Dict[str, Number]]:
        """The condition's truth and every value it read, by label."""
        values = {leaf.label: _round(leaf.eval(reading)) for leaf in self.leaves()}
        return self.root.eval(reading), values


def _round(value: Number) -> Number:
    return None if value is None else round(value, 3)


# -- when a trigger fires -------------------------------------------------------


@dataclass
class Fire:
    name: str
    when: str
    values: Dict[str, Number]
    checks: int
    at: float

    def tag(self) -> Dict[str, Any]:
        """The manifest's `trigger` field."""
        return {
            "name": self.name, "when": self.when, "values": self.values, "checks": self.checks,
            "fired_at": _dt.datetime.fromtimestamp(self.at, _dt.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }


@dataclass
class TriggerState:
    """A trigger's memory: the run of true checks, and its firing history (kept on disk)."""

    streak: int = 0
    last_fired: Optional[float] = None
    day: str = ""
    fired_today: int = 0
    fired_total: int = 0
    last_check: Optional[float] = None
    last_result: Truth = None
    last_values: Dict[str, Number] = field(default_factory=dict)
    #: Why the last true run did not fire: cooling down, daily cap.
    held_back: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {
            "streak": self.streak, "last_fired": self.last_fired, "day": self.day,
            "fired_today": self.fired_today, "fired_total": self.fired_total,
            "last_check": self.last_check, "last_result": self.last_result,
            "last_values": self.last_values, "held_back": self.held_back,
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> TriggerState:
        state = cls()
        for key in ("last_fired", "day", "fired_today", "fired_total"):
            if key in data:
                setattr(state, key, data[key])
        return state


def utc_day(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%d")


def observe(name: str, expression: Expression, need: int, cooldown: float, max_per_day: int,
            state: TriggerState, reading: Reading, now: float) -> Optional[Fire]:
    """Record one check; return a Fire when the trigger fires now."""
    result, values = expression.evaluate(reading)
    state.last_check, state.last_result, state.last_values = now, result, values
    today = utc_day(now)
    if state.day != today:
        state.day, state.fired_today = today, 0
    state.streak = state.streak + 1 if result is True else 0
    if state.streak < need:
        if state.streak == 0:
            state.held_back = ""
        return None
    if state.last_fired is not None and now - state.last_fired < cooldown:
        state.held_back = f"cooling down until {_clock(state.last_fired + cooldown)}"
        return None
    if max_per_day and state.fired_today >= max_per_day:
        state.held_back = f"daily cap of {max_per_day} reached (UTC day {today})"
        return None
    checks = state.streak
    state.streak, state.held_back = 0, ""
    state.last_fired = now
    state.fired_today += 1
    state.fired_total += 1
    return Fire(name, expression.text, values, checks, now)


def _clock(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
