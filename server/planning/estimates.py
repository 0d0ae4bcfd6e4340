"""Estimates: how much an engineer's estimates overrun, and how long a kind of work takes.

`overrun` turns (estimate, actual) pairs into the factor planning multiplies estimates by. It
is robust (median and median absolute deviation of the log ratio, so one ticket that took a
week does not move it) and shrunk toward 1 by a prior worth `PRIOR_SAMPLES` on-time samples,
so two unlucky tickets do not double every promise. The factor estimates the mean of
actual/estimate (a log-normal's mean is exp(mu + sigma²/2)): work is planned for what it costs
on average, not for the typical case. It is never below 1: an engineer who overestimates gets
no credit that would let admission promise their reserve away.

`default_effort` is the median actual effort of a kind of work, shrunk toward DEFAULT_EFFORT
the same way, for tasks nobody estimated.
"""

from __future__ import annotations

import math
from statistics import median
from typing import Dict, Sequence, Tuple

DEFAULT_EFFORT: Dict[str, float] = {"first": 3600.0, "next": 1800.0, "work_item": 3600.0}
#: How many samples the prior (estimates are right; the default effort) is worth.
PRIOR_SAMPLES = 5.0
#: The factor is kept within this (a log ratio beyond it is a data error, not an estimate).
MAX_FACTOR = 10.0


def _ok(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def overrun(history: Sequence[Tuple[float, float]]) -> float:
    """(estimate, actual) pairs -> the factor >= 1 estimates are multiplied by."""
    logs = [math.log(actual / estimate) for estimate, actual in history if _ok(estimate) and _ok(actual)]
    if not logs:
        return 1.0
    bound = math.log(MAX_FACTOR)
    logs = [min(bound, max(-bound, x)) for x in logs]
    mu = median(logs)
    spread = 1.4826 * median(abs(x - mu) for x in logs)
    n = len(logs)
    shrunk = (n / (n + PRIOR_SAMPLES)) * (mu + spread * spread / 2.0)
    return min(MAX_FACTOR, max(1.0, math.exp(shrunk)))


def default_effort(kind: str, actuals: Sequence[float]) -> float:
    """The effort to plan for a `kind` of task nobody estimated: learned from history, else DEFAULT_EFFORT."""
    prior = DEFAULT_EFFORT.get(kind, DEFAULT_EFFORT["next"])
    seen = [a for a in actuals if _ok(a)]
    if not seen:
        return prior
    n = len(seen)
    return (n * median(seen) + PRIOR_SAMPLES * prior) / (n + PRIOR_SAMPLES)
