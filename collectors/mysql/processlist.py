"""The processlist at every sample of the window, with statement text reduced to fingerprints.

Each flavor gives what it has: MariaDB's TIME_MS, STAGE/MAX_STAGE/PROGRESS,
MEMORY_USED/MAX_MEMORY_USED, EXAMINED_ROWS and the OS thread id (TID); on MySQL the OS
thread id comes from performance_schema.threads. `mysql/processlist.json` is sample 0,
as a single snapshot.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

from collectors.mysql import window
from collectors.mysql.session import MissingPrivilege, NotAvailable, StatementTimeout
from collectors.mysql.sql import PROCESSLIST, PROCESSLIST_PLAIN
from collectors.registry import PROFILES, Artifact, CollectorError, Context, Need, collector
from privacy.fingerprint import fingerprint


@collector("mysql.processlist", profiles=PROFILES, needs=[Need.MYSQL], timeout=5, sampled=True)
def processlist(ctx: Context) -> Iterator[Artifact]:
    """Every connection per sample: user, host, db, command, time, state, statement
    fingerprint, and the flavor's progress, memory and OS thread columns (JSON Lines)."""
    samples: List[Dict[str, Any]] = []
    statement = PROCESSLIST
    try:
        for index, taken in window.ticks(ctx):
            try:
                rows = ctx.session.query(statement)
            except StatementTimeout as exc:
                ctx.notes.add(f"sample {index}: {exc.reason}", partial=True)
                continue
            except (MissingPrivilege, NotAvailable) as exc:
                if statement is PROCESSLIST_PLAIN or ctx.session.flavor.is_mariadb:
                    raise
                # MySQL: the OS thread id needs SELECT on performance_schema; go without it.
                ctx.notes.add(f"{exc.reason}: no OS thread ids" +
                              (f"; to enable: {exc.fix}" if exc.fix else ""))
                statement = PROCESSLIST_PLAIN
                rows = ctx.session.query(statement)
            threads = _threads(ctx, rows)
            samples.append({"ts": taken, "sample": index, "threads": threads})
            if index == 0:
                yield Artifact.json("mysql/processlist.json", threads)
    except CollectorError as exc:
        if not samples:
            raise
        ctx.notes.add(f"stopped after {len(samples)} samples: {exc.reason}", partial=True)
    yield Artifact.jsonl("mysql/processlist.jsonl", samples)


def _threads(ctx: Context, rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    own = window.own_connections(ctx)
    for row in rows:
        info = row.pop("info", None)
        row["statement"] = fingerprint(str(info)) if info else None
        row["mydiag"] = row.get("id") in own
    rows.sort(key=lambda r: -(r.get("time") or 0))
    return rows
