"""The sampling schedule the OS samplers share with `mysql.status`, so readings line up.

Each sampler takes `samples` readings `interval` seconds apart (one in the quick
profile, like `mysql.status`); a row holds the counters' change over the window that
ends at its timestamp, and the first row's window starts at boot, as iostat's first
report does.
"""

from __future__ import annotations

import time
from typing import Iterator, Tuple

from collectors.os.procfs import utc_stamp
from collectors.registry import Context


def schedule(ctx: Context) -> Iterator[Tuple[int, str, float]]:
    """(index, UTC timestamp, monotonic time) at each reading; stops early at the deadline."""
    count = ctx.readings
    start = time.monotonic()
    for index in range(count):
        due = start + index * ctx.interval
        if index and ctx.deadline and due > ctx.deadline - 0.5:
            ctx.notes.add(f"stopped after {index} of {count} samples: the deadline came first",
                          partial=True)
            return
        # Keep the schedule (not the gaps) so windows match the MySQL status samples.
        time.sleep(max(0.0, due - time.monotonic()))
        yield index, utc_stamp(), time.monotonic()


def rate(now: float, before: float, seconds: float) -> float:
    """Change per second; counters that went backwards (wrap, reset) count as zero."""
    return round(max(now - before, 0.0) / seconds, 3) if seconds > 0 else 0.0
