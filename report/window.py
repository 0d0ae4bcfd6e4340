"""Window primitives over a bundle's samples: delta, rate, ratio, gauge, persistence, trend.

A bundle's samplers take N readings a few seconds apart. A rule reads what happened *during
that window*, not an average since start-up (MySQLTuner's flaw). Every primitive guards
its arithmetic: a counter that goes down (a restart, FLUSH STATUS, a wrap) splits the window
at that interval, which then counts for nothing; a ratio below its minimum volume, a window
with one sample, or a value that is not a number raises `Insufficient` with a sentence that
says why, so no rule divides by zero or prints a negative or >100% "efficiency".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from report.finding import Insufficient

#: Counters that restart with the server: when one goes down, the server restarted.
_RESTART_MARKERS = ("Uptime",)


def parse_ts(text: Any) -> Optional[float]:
    """UTC ISO 8601 (`2026-01-02T03:04:05.678Z`) → POSIX seconds, or None."""
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _counter(value: Any) -> Optional[float]:
    return to_number(value, booleans=False)


def to_number(value: Any, booleans: bool = True) -> Optional[float]:
    """A finite number from a member's value (a number, or its text), else None. A boolean
    counts as 1 or 0 unless `booleans` is False (a sample's counter is never a boolean)."""
    if isinstance(value, bool):
        return float(value) if booleans else None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value if value is not None else "").strip()
        if not text or len(text) > 40:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    return number if math.isfinite(number) else None


@dataclass
class Gauge:
    min: float
    avg: float
    max: float
    p95: float
    last: float
    n: int


@dataclass
class Trend:
    """Least-squares slope of a gauge over the window, per second, and its end points."""

    per_second: float
    first: float
    last: float
    n: int


def guarded_ratio(part: Optional[float], whole: Optional[float], minimum: float, what: str) -> float:
    """part / whole in [0, 1], or Insufficient when `whole` is under `minimum` (too little
    volume to mean anything) or the two are inconsistent (part > whole, a negative)."""
    if part is None or whole is None:
        raise Insufficient(f"{what}: not measured")
    if whole < max(minimum, 1e-12):
        raise Insufficient(f"{what}: only {_plain(whole)} in the window (at least {_plain(minimum)} needed)")
    # SHOW GLOBAL STATUS reads its counters one after another, not at one instant: on a busy
    # server the part can run a little ahead of the whole (3,124 new threads of 3,120
    # connections). A small overshoot is that skew; more is inconsistent data.
    if part < 0 or part > whole * 1.02 + 2:
        raise Insufficient(f"{what}: inconsistent counters ({_plain(part)} of {_plain(whole)})")
    return min(1.0, max(0.0, part / whole))


def _plain(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.3g}"


class Window:
    """Samples as (POSIX time, {name: value}); `names` are what a sample's dict holds."""

    def __init__(self, samples: Sequence[Tuple[float, Dict[str, Any]]]) -> None:
        self.samples = sorted(samples, key=lambda s: s[0])
        self._broken = self._restart_intervals()

    @classmethod
    def from_rows(cls, rows: Sequence[Dict[str, Any]], key: Optional[str] = None) -> Window:
        samples = []
        for row in rows:
            if not isinstance(row, dict):
                continue
            moment = parse_ts(row.get("ts"))
            values = row.get(key) if key else row
            if moment is not None and isinstance(values, dict):
                samples.append((moment, values))
        return cls(samples)

    # -- shape ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    @property
    def seconds(self) -> float:
        return self.samples[-1][0] - self.samples[0][0] if len(self.samples) > 1 else 0.0

    @property
    def start(self) -> Optional[float]:
        return self.samples[0][0] if self.samples else None

    @property
    def restarted(self) -> bool:
        """True when the server restarted inside the window (its uptime went down)."""
        return bool(self._broken)

    def _restart_intervals(self) -> set:
        broken = set()
        for marker in _RESTART_MARKERS:
            previous = None
            for index, (_t, values) in enumerate(self.samples):
                current = _counter(values.get(marker))
                if current is not None and previous is not None and current < previous:
                    broken.add(index)
                if current is not None:
                    previous = current
        return broken

    def series(self, name: str) -> List[Tuple[float, Optional[float]]]:
        return [(t, _counter(values.get(name))) for t, values in self.samples]

    def has(self, name: str) -> bool:
        return any(v is not None for _t, v in self.series(name))

    def _need(self, count: int, name: str) -> None:
        if len(self.samples) < count:
            raise Insufficient(f"{name}: {len(self.samples)} sample(s) in the window, {count} needed "
                               "(collect with --samples)")

    # -- counters -------------------------------------------------------------------------
    def delta(self, name: str) -> float:
        """How much counter `name` grew during the window, intervals with a reset left out."""
        return self._counted(name)[0]

    def rate(self, name: str, min_seconds: float = 1.0) -> float:
        """Counter `name`'s growth per second over the window's valid intervals."""
        grown, seconds = self._counted(name)
        if seconds < min_seconds:
            raise Insufficient(f"{name}: the window's valid part is {seconds:.1f} s "
                               f"(at least {min_seconds:g} s needed)")
        return grown / seconds

    def resets(self, name: str) -> int:
        """Intervals where `name` went down (or the server restarted)."""
        points = self.series(name)
        return sum(1 for i in range(1, len(points)) if self._invalid(points, i))

    def _invalid(self, points: List[Tuple[float, Optional[float]]], i: int) -> bool:
        before, after = points[i - 1][1], points[i][1]
        return i in self._broken or before is None or after is None or after < before

    def _counted(self, name: str) -> Tuple[float, float]:
        self._need(2, name)
        points = self.series(name)
        if not any(v is not None for _t, v in points):
            raise Insufficient(f"{name}: not in the samples")
        grown = seconds = 0.0
        valid = 0
        for i in range(1, len(points)):
            if self._invalid(points, i):
                continue
            grown += points[i][1] - points[i - 1][1]  # type: ignore[operator]
            seconds += points[i][0] - points[i - 1][0]
            valid += 1
        if not valid:
            raise Insufficient(f"{name}: every interval of the window was cut by a reset or a restart")
        return grown, seconds

    def ratio(self, part: str, whole: str, minimum: float) -> float:
        """delta(part) / delta(whole) in [0, 1], guarded (see `guarded_ratio`)."""
        return guarded_ratio(self.delta(part), self.delta(whole), minimum, f"{part} / {whole}")

    # -- gauges ---------------------------------------------------------------------------
    def gauge(self, name: str) -> Gauge:
        values = [v for _t, v in self.series(name) if v is not None]
        if not values:
            raise Insufficient(f"{name}: not in the samples")
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
        return Gauge(ordered[0], sum(values) / len(values), ordered[-1], p95, values[-1], len(values))

    def persistence(self, condition: Callable[[Dict[str, Any]], bool], min_samples: int = 3) -> float:
        """The share of samples (0…1) where `condition(values)` holds."""
        self._need(min_samples, "persistence")
        held = 0
        for _t, values in self.samples:
            try:
                held += bool(condition(values))
            except (TypeError, ValueError, KeyError):
                continue
        return held / len(self.samples)

    def above(self, name: str, threshold: float, min_samples: int = 3) -> float:
        """The share of samples where gauge `name` is above `threshold`."""
        def over(values: Dict[str, Any]) -> bool:
            value = _counter(values.get(name))
            return value is not None and value > threshold
        return self.persistence(over, min_samples)

    def trend(self, name: str, min_samples: int = 3) -> Trend:
        self._need(min_samples, name)
        points = [(t, v) for t, v in self.series(name) if v is not None]
        if len(points) < min_samples:
            raise Insufficient(f"{name}: {len(points)} readings, {min_samples} needed for a trend")
        t0 = points[0][0]
        xs = [t - t0 for t, _v in points]
        ys = [v for _t, v in points]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        spread = sum((x - mean_x) ** 2 for x in xs)
        if spread <= 0:
            raise Insufficient(f"{name}: the readings share one time")
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread
        return Trend(slope, ys[0], ys[-1], len(ys))

    def first(self, name: str) -> Optional[float]:
        for _t, value in self.series(name):
            if value is not None:
                return value
        return None

    def last(self, name: str) -> Optional[float]:
        for _t, value in reversed(self.series(name)):
            if value is not None:
                return value
        return None

    def evidence_samples(self, name: str, limit: int = 60) -> List[List[Any]]:
        """`[[iso ts, value], …]` for a finding's evidence (at most `limit`, evenly spread)."""
        points = self.series(name)
        step = max(1, math.ceil(len(points) / limit))
        return [[_iso(t), v] for t, v in points[::step]]


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
