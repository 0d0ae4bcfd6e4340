"""Supply: the engineer time usable from a moment on, as prefix sums searched by bisection.

Each engineer has sorted disjoint open intervals (epoch pairs: calendar minus time off minus
calls); each second of them is worth `share[engineer] * (1 - reserve)` usable seconds, the
reserve being kept for work that has not arrived yet. `capacity(until)` is the usable time in
[start, until) and `reach(seconds)` its inverse. The total over all engineers is one merged
piecewise-linear function, so both answer with one bisection whatever the number of
engineers: admission control and the queue call them thousands of times in a simulation.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

Interval = Tuple[float, float]


def subtract(intervals: Sequence[Interval], holes: Sequence[Interval]) -> List[Interval]:
    """`intervals` (sorted, disjoint) minus `holes` (any order, may overlap)."""
    cuts = sorted((a, b) for a, b in holes if b > a)
    out: List[Interval] = []
    for a, b in intervals:
        lo = a
        for ha, hb in cuts:
            if hb <= lo:
                continue
            if ha >= b:
                break
            if ha > lo:
                out.append((lo, ha))
            lo = max(lo, hb)
            if lo >= b:
                break
        if lo < b:
            out.append((lo, b))
    return out


def _clean(start: float, spans: Sequence[Interval]) -> List[Interval]:
    """Clipped at `start`, sorted, overlaps merged, empty ones dropped."""
    out: List[Interval] = []
    for a, b in sorted((max(float(a), start), float(b)) for a, b in spans):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


class _Line:
    """A nondecreasing piecewise-linear function: value `cum[k]` at `at[k]`, slope `rate[k]` after."""

    __slots__ = ("at", "cum", "rate")

    def __init__(self, at: List[float], cum: List[float], rate: List[float]) -> None:
        self.at, self.cum, self.rate = at, cum, rate

    def value(self, t: float) -> float:
        k = bisect_right(self.at, t) - 1
        if k < 0:
            return 0.0
        return self.cum[k] + self.rate[k] * (t - self.at[k])

    def inverse(self, v: float) -> Optional[float]:
        if not self.at:
            return None if v > 0 else -float("inf")
        if v <= 0:
            return self.at[0]
        k = bisect_left(self.cum, v)
        if k >= len(self.cum):
            return None
        # cum[k] >= v > cum[k-1]: inside segment k-1, which has a positive rate.
        return self.at[k - 1] + (v - self.cum[k - 1]) / self.rate[k - 1]


def _line(events: List[Tuple[float, float]]) -> _Line:
    """From (time, rate change) events: the running integral of the rate."""
    events.sort()
    at: List[float] = []
    cum: List[float] = []
    rate: List[float] = []
    value, slope = 0.0, 0.0
    for t, delta in events:
        if at and t == at[-1]:
            slope += delta
            rate[-1] = max(0.0, slope)
            continue
        if at:
            value += rate[-1] * (t - at[-1])
        slope += delta
        at.append(t)
        cum.append(value)
        rate.append(max(0.0, slope if abs(slope) > 1e-12 else 0.0))
    return _Line(at, cum, rate)


class Supply:
    """Usable engineer time from `start` on: per engineer sorted disjoint open intervals (epoch pairs),
    each second worth share[engineer] * (1 - reserve)."""

    def __init__(self, start: float, availability: Mapping[str, Sequence[Interval]],
                 reserve: float = 0.0, share: Optional[Mapping[str, float]] = None) -> None:
        self.start = float(start)
        self.reserve = float(reserve)
        self.engineers: Tuple[str, ...] = tuple(sorted(availability))
        self._spans: Dict[str, List[Interval]] = {}
        self._lines: Dict[str, _Line] = {}
        self._starts: Dict[str, List[float]] = {}
        everyone: List[Tuple[float, float]] = []
        horizon = self.start
        for name in self.engineers:
            spans = _clean(self.start, availability[name])
            weight = max(0.0, float((share or {}).get(name, 1.0))) * (1.0 - self.reserve)
            events = []
            for a, b in spans:
                events += [(a, weight), (b, -weight)]
            everyone += events
            self._spans[name] = spans
            self._starts[name] = [a for a, _ in spans]
            self._lines[name] = _line(events) if weight > 0 else _line([])
            if spans:
                horizon = max(horizon, spans[-1][1])
        self._total = _line(everyone)
        self.horizon: float = horizon
        # Engineers with the same calendar and share have the same line: "the best single
        # engineer" needs only one of each (a team of 8 in 3 zones has 3).
        seen: Dict[Tuple[float, Tuple[Interval, ...]], str] = {}
        for name in self.engineers:
            weight = max(0.0, float((share or {}).get(name, 1.0)))
            seen.setdefault((weight, tuple(self._spans[name])), name)
        self._distinct: Tuple[str, ...] = tuple(seen.values())
        #: What the lines had reached at `start` (0 until `since` moves it on).
        self._used: Dict[Optional[str], float] = {}

    def since(self, start: float) -> Supply:
        """The same supply counted from a later `start`: built once, re-based cheaply (a simulation
        advancing its clock asks this thousands of times)."""
        moved = object.__new__(Supply)
        moved.__dict__.update(self.__dict__)
        moved.start = max(self.start, float(start))
        moved._used = {name: line.value(moved.start) for name, line in self._lines.items()}
        moved._used[None] = self._total.value(moved.start)
        return moved

    def _of(self, engineer: Optional[str]) -> _Line:
        if engineer is None:
            return self._total
        line = self._lines.get(engineer)
        return line if line is not None else _Line([], [], [])

    def capacity(self, until: float, engineer: Optional[str] = None) -> float:
        """Usable seconds in [start, until) (of one engineer, or of all)."""
        if until <= self.start:
            return 0.0
        return self._of(engineer).value(until) - self._used.get(engineer, 0.0)

    def reach(self, seconds: float, engineer: Optional[str] = None) -> Optional[float]:
        """The earliest t with capacity(t) >= seconds; None past the horizon."""
        if seconds <= 0:
            return self.start
        found = self._of(engineer).inverse(seconds + self._used.get(engineer, 0.0))
        return None if found is None else max(found, self.start)

    def best_room(self, since: float, until: float) -> float:
        """The most usable time any single engineer has in [since, until) (from start at the earliest)."""
        since = max(since, self.start)
        if until <= since:
            return 0.0
        best = 0.0
        for name in self._distinct:
            line = self._lines[name]
            best = max(best, line.value(until) - line.value(since))
        return best

    def working(self, engineer: str, at: float) -> bool:
        starts = self._starts.get(engineer, [])
        k = bisect_right(starts, at) - 1
        return k >= 0 and at < self._spans[engineer][k][1]

    def next_open(self, engineer: str, at: float) -> Optional[float]:
        """`at` when the engineer works then, else the start of their next interval (None: none left)."""
        if self.working(engineer, at):
            return at
        starts = self._starts.get(engineer, [])
        k = bisect_right(starts, at)
        return starts[k] if k < len(starts) else None

    def closes(self, engineer: str, at: float) -> Optional[float]:
        """The end of the interval the engineer is working in at `at` (None when not working)."""
        starts = self._starts.get(engineer, [])
        k = bisect_right(starts, at) - 1
        if k >= 0 and at < self._spans[engineer][k][1]:
            return self._spans[engineer][k][1]
        return None
