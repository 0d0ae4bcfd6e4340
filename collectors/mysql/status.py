"""SHOW GLOBAL STATUS sampled N times, so rates can be computed."""

from __future__ import annotations

import time
from typing import Iterator

from bundle.manifest import utc_now
from collectors.mysql.common import name_value
from collectors.mysql.sql import GLOBAL_STATUS
from collectors.registry import PROFILES, Artifact, CollectorError, Context, Need, collector


@collector("mysql.status", profiles=PROFILES, needs=[Need.MYSQL], timeout=5, sampled=True)
def global_status(ctx: Context) -> Iterator[Artifact]:
    """Global status counters, `samples` readings `interval` seconds apart (JSON Lines)."""
    count = 1 if ctx.profile == "quick" else ctx.samples
    rows = []
    start = time.monotonic()
    try:
        for index in range(count):
            if index:
                # Keep the schedule (not the gaps) so rates use the real spacing.
                time.sleep(max(0.0, start + index * ctx.interval - time.monotonic()))
            taken = utc_now()
            status = name_value(ctx.session.query(GLOBAL_STATUS))
            rows.append(
                {"ts": taken.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                 "sample": index, "status": status}
            )
    except CollectorError as exc:
        if not rows:
            raise
        ctx.notes.add(f"stopped after {len(rows)} of {count} samples: {exc.reason}", partial=True)
    yield Artifact.jsonl("mysql/global_status.jsonl", rows)
