"""SHOW GLOBAL STATUS sampled N times, so rates can be computed; its first sample opens
the window (collectors/mysql/window.py), before anything else touches the catalog."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

from collectors.mysql import window
from collectors.mysql.common import name_value
from collectors.mysql.sql import GLOBAL_STATUS
from collectors.registry import PROFILES, Artifact, CollectorError, Context, Need, collector

#: ctx.shared key: the samples taken so far, for collectors that weigh counters (perfschema).
SAMPLES = "mysql.status.samples"


@collector("mysql.status", profiles=PROFILES, needs=[Need.MYSQL], timeout=5, sampled=True)
def global_status(ctx: Context) -> Iterator[Artifact]:
    """Global status counters, `samples` readings `interval` seconds apart (JSON Lines)."""
    count = ctx.readings
    rows: List[Dict[str, Any]] = ctx.shared.setdefault(SAMPLES, [])
    try:
        for index, taken in window.ticks(ctx):
            try:
                status = name_value(ctx.session.query(GLOBAL_STATUS))
            finally:
                if index == 0:
                    window.opened(ctx)
            rows.append({"ts": taken, "sample": index, "status": status})
    except CollectorError as exc:
        if not rows:
            raise
        ctx.notes.add(f"stopped after {len(rows)} of {count} samples: {exc.reason}", partial=True)
    yield Artifact.jsonl("mysql/global_status.jsonl", list(rows))
