"""Capacity: the queue's settings, and the engineers' usable time as a planning Supply.

Settings come from config.json `support.capacity` (docs/queue.md), read once at start:

```json
"support": {"capacity": {"reserve": 0.15, "slice": "30m", "long_slices": 4,
                         "alarm_slack": "1h", "horizon_days": 60}}
```

- `reserve`: the share of every engineer's time kept for work that has not arrived yet
  (0 <= reserve < 1); admission control never promises it away.
- `slice`: how long a taken task is held (2 seconds to a day; seconds are for tests).
- `long_slices`: a task needing more than this many slices is long: it gets a dedicated owner.
- `alarm_slack`: a task whose slack (usable time before its due minus the work due by then)
  falls below this raises a slack alarm.
- `horizon_days`: how far ahead the supply is computed (1-366 days); nothing past it is promised.

An unknown key or a bad value stops the start with one line, like the policies do.

`supply(tx, now)`: for each engineer, the open intervals of their calendar (rosters.py) in
[now, now + horizon], minus their time off, minus the calls they are booked on (calls.busy),
each second worth their share times (1 - reserve).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from server.planning.supply import Supply, subtract
from server.storage.db import Tx
from server.support import calendar as cal
from server.support import calls, rosters
from server.support.policies import PolicyError, duration

_KEYS = ("reserve", "slice", "long_slices", "alarm_slack", "horizon_days")


@dataclass(frozen=True)
class Settings:
    reserve: float = 0.15
    slice_seconds: float = 1800.0
    long_slices: int = 4
    alarm_slack_seconds: float = 3600.0
    horizon_days: int = 60


def _where(key: str) -> str:
    return f"config.json support.capacity.{key}"


def _integer(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PolicyError(f"{_where(key)} must be a whole number from {low} to {high}")
    return value


def parse(section: Optional[Dict[str, Any]]) -> Settings:
    if section is None:
        return Settings()
    if not isinstance(section, dict):
        raise PolicyError("config.json support.capacity must be an object")
    unknown = set(section) - set(_KEYS)
    if unknown:
        raise PolicyError(f"config.json support.capacity: unknown setting(s) {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(_KEYS)})")
    base = Settings()
    reserve = section.get("reserve", base.reserve)
    if isinstance(reserve, bool) or not isinstance(reserve, (int, float)) or not math.isfinite(reserve) \
            or not 0 <= reserve < 1:
        raise PolicyError(f"{_where('reserve')} must be a number from 0 to below 1 (a share of the time)")
    slice_seconds = duration(section.get("slice", base.slice_seconds), _where("slice"))
    if not 2 <= slice_seconds <= 86400:
        raise PolicyError(f"{_where('slice')} must be from 2 seconds to 1 day")
    alarm = section.get("alarm_slack", base.alarm_slack_seconds)
    alarm_seconds = 0.0 if alarm in (0, "0") else duration(alarm, _where("alarm_slack"))
    if alarm_seconds > 30 * 86400:
        raise PolicyError(f"{_where('alarm_slack')} must be at most 30 days")
    return Settings(float(reserve), slice_seconds,
                    _integer(section.get("long_slices", base.long_slices), "long_slices", 1, 1000),
                    alarm_seconds,
                    _integer(section.get("horizon_days", base.horizon_days), "horizon_days", 1, 366))


_active = Settings()


def configure(section: Optional[Dict[str, Any]]) -> Settings:
    """Make these the process's settings (the server calls it once at start, next to the policies)."""
    global _active
    _active = parse(section)
    return _active


def settings() -> Settings:
    return _active


def availability(tx: Tx, engineer: str, since: float, until: float) -> List[Tuple[float, float]]:
    """The engineer's open time in [since, until): calendar minus time off minus calls."""
    intervals = cal.open_intervals(rosters.calendar_of(tx, engineer), since, until)
    holes = sorted(rosters.time_off(tx, engineer, since, until) + calls.busy(tx, engineer, since, until))
    return subtract(intervals, holes)


def supply(tx: Tx, now: float) -> Supply:
    """Every engineer's usable time from now to the horizon."""
    until = now + _active.horizon_days * 86400.0
    names = rosters.engineers(tx)
    return Supply(now, {name: availability(tx, name, now, until) for name in names},
                  reserve=_active.reserve, share={name: rosters.share_of(tx, name) for name in names})
