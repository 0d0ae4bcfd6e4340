"""Per-CPU utilization from /proc/stat, sampled alongside the MySQL status samples."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

import psutil

from collectors.os.sampling import schedule
from collectors.registry import PROFILES, Artifact, Context, collector


@collector("os.cpu_usage", profiles=PROFILES, timeout=5, sampled=True)
def cpu_usage(ctx: Context) -> Iterator[Artifact]:
    """Per-CPU and total utilization (% user, system, iowait, steal, …) per sample (JSON Lines)."""
    rows: List[Dict[str, Any]] = []
    before, previous = None, 0.0
    for index, stamp, moment in schedule(ctx):
        now = psutil.cpu_times(percpu=True)
        # The first window starts at boot: every counter then counts from zero.
        base = before or [type(t)(*([0.0] * len(t))) for t in now]
        cpus = [dict(cpu=n, **_percent(b, a)) for n, (b, a) in enumerate(zip(base, now))]
        rows.append({
            "ts": stamp, "sample": index,
            "window_seconds": None if before is None else round(moment - previous, 3),
            "total": _percent(_sum(base), _sum(now)), "cpus": cpus,
        })
        before, previous = now, moment
    yield Artifact.jsonl("os/proc_stat.jsonl", rows)


def _sum(times: List[Any]) -> Any:
    kind = type(times[0])
    return kind(*(sum(column) for column in zip(*times)))


def _percent(before: Any, after: Any) -> Dict[str, float]:
    """Each field's share of the window in %; guest time is already inside user time."""
    fields = [f for f in after._fields if not f.startswith("guest")]
    delta = {f: max(getattr(after, f) - getattr(before, f), 0.0) for f in fields}
    total = sum(delta.values())
    if total <= 0:
        return {**{f: 0.0 for f in fields}, "busy": 0.0}
    shares = {f: round(100.0 * v / total, 2) for f, v in delta.items()}
    shares["busy"] = round(100.0 - shares.get("idle", 0.0) - shares.get("iowait", 0.0), 2)
    return shares
