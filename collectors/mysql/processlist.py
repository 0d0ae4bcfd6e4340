"""The processlist, with statement text reduced to fingerprints."""

from __future__ import annotations

from typing import Iterator

from collectors.mysql.sql import PROCESSLIST
from collectors.registry import PROFILES, Artifact, Context, Need, collector
from privacy.fingerprint import fingerprint


@collector("mysql.processlist", profiles=PROFILES, needs=[Need.MYSQL], timeout=5)
def processlist(ctx: Context) -> Iterator[Artifact]:
    """Every connection: user, host, db, command, time, state and statement fingerprint."""
    rows = ctx.session.query(PROCESSLIST)
    own = ctx.session.connection_id
    for row in rows:
        info = row.pop("info", None)
        row["statement"] = fingerprint(str(info)) if info else None
        row["mydiag"] = row.get("id") == own
    rows.sort(key=lambda r: -(r.get("time") or 0))
    yield Artifact.json("mysql/processlist.json", rows)
