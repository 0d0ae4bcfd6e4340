"""Memory by thread: who holds the server's memory right now.

MySQL: sys.memory_by_thread_by_current_bytes, the top 20 threads, when performance_schema
and its memory instruments are on (a note says which is off, so an empty list is not
read as "no memory used"). MariaDB keeps it per connection in information_schema
PROCESSLIST (MEMORY_USED, MAX_MEMORY_USED), which the processlist samples carry.
"""

from __future__ import annotations

from typing import Iterator

from collectors.mysql.common import optional
from collectors.mysql.sql import Statement
from collectors.registry import Artifact, Context, Need, Skip, collector

MEMORY_BY_THREAD = Statement(
    "memory_by_thread",
    "SELECT thread_id, user, current_count_used, current_allocated, current_avg_alloc,"
    " current_max_alloc, total_allocated FROM sys.x$memory_by_thread_by_current_bytes"
    " ORDER BY current_allocated DESC LIMIT 20",
    "select_sys",
)
MEMORY_INSTRUMENTS = Statement(
    "memory_instruments",
    "SELECT SUM(ENABLED = 'YES') AS enabled, COUNT(*) AS instruments"
    " FROM performance_schema.setup_instruments WHERE NAME LIKE 'memory/%%'",
    "select_ps",
)


@collector("mysql.thread_memory", needs=[Need.MYSQL], timeout=5)
def thread_memory(ctx: Context) -> Iterator[Artifact]:
    """The 20 threads holding the most memory (MySQL's sys schema)."""
    if ctx.session.flavor.is_mariadb:
        raise Skip("MariaDB reports memory per connection in the processlist samples "
                   "(MEMORY_USED, MAX_MEMORY_USED), not per thread in sys")
    if str(ctx.session.identity.get("performance_schema", "0")) not in ("1", "ON"):
        raise Skip("performance_schema is OFF: no per-thread memory",
                   "set performance_schema=ON in the server's option file (takes effect at restart)")
    instruments = optional(ctx, MEMORY_INSTRUMENTS)
    enabled = int((instruments or [{}])[0].get("enabled") or 0)
    if instruments is not None and not enabled:
        ctx.notes.add("memory instruments are off (setup_instruments 'memory/%'): per-thread "
                      "memory reads zero; enable with performance-schema-instrument='memory/%=ON'")
    rows = optional(ctx, MEMORY_BY_THREAD)
    if rows is not None:
        yield Artifact.json("mysql/thread_memory.json", {
            "memory_instruments_enabled": enabled if instruments is not None else None,
            "threads": rows,
        })
