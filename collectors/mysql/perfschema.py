"""performance_schema summaries, when it is enabled: digests, waits, I/O, memory."""

from __future__ import annotations

from typing import Iterator

from collectors.mysql.common import optional
from collectors.mysql.sql import PS_DIGESTS, PS_FILE_IO, PS_MEMORY, PS_TABLE_IO, PS_WAITS
from collectors.registry import Artifact, Context, Need, Skip, collector
from privacy.fingerprint import fingerprint

_PARTS = (
    (PS_DIGESTS, "statement_digests"),
    (PS_WAITS, "waits"),
    (PS_FILE_IO, "file_io"),
    (PS_TABLE_IO, "table_io"),
    (PS_MEMORY, "memory"),
)


@collector("mysql.performance_schema", needs=[Need.MYSQL], timeout=10)
def performance_schema(ctx: Context) -> Iterator[Artifact]:
    """Top statement digests (digest text only), waits, file and table I/O, memory."""
    if str(ctx.session.identity.get("performance_schema", "0")) not in ("1", "ON"):
        raise Skip(
            "performance_schema is OFF",
            "set performance_schema=ON in the server's option file (takes effect at restart)",
        )
    limit = 200 if ctx.full else 50
    for stmt, name in _PARTS:
        rows = optional(ctx, stmt, {"limit": limit})
        if rows is None:
            continue
        if stmt is PS_DIGESTS:
            for row in rows:
                if row.get("digest_text"):
                    row["digest_text"] = fingerprint(str(row["digest_text"]))
        yield Artifact.json(f"mysql/performance_schema/{name}.json", rows)
