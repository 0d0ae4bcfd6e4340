"""Metadata-lock holders at every sample, where the server can say who holds them.

MySQL: performance_schema.metadata_locks (granted and pending). MariaDB: the
METADATA_LOCK_INFO plugin (granted locks only; the threads that wait show in the
processlist as "Waiting for table metadata lock"); without the plugin, a note says how
to install it.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

from collectors.mysql import window
from collectors.mysql.session import MissingPrivilege, NotAvailable, StatementTimeout
from collectors.mysql.sql import METADATA_LOCKS
from collectors.registry import Artifact, CollectorError, Context, Need, Skip, collector
from privacy.fingerprint import fingerprint

PLUGIN_MISSING = (
    "metadata-lock holders are not visible: the METADATA_LOCK_INFO plugin is not installed; "
    "to see them, run INSTALL SONAME 'metadata_lock_info' (no restart needed)"
)


@collector("mysql.metadata_locks", needs=[Need.MYSQL], timeout=5, sampled=True)
def metadata_locks(ctx: Context) -> Iterator[Artifact]:
    """Who holds (or, on MySQL, waits for) which metadata lock, per sample (JSON Lines)."""
    session = ctx.session
    if not session.flavor.is_mariadb and str(
            session.identity.get("performance_schema", "0")) not in ("1", "ON"):
        raise Skip("performance_schema is OFF: metadata locks are not recorded",
                   "set performance_schema=ON in the server's option file (takes effect at "
                   "restart)")
    samples: List[Dict[str, Any]] = []
    try:
        for index, taken in window.ticks(ctx):
            try:
                rows = session.query(METADATA_LOCKS)
            except NotAvailable:
                if not session.flavor.is_mariadb:
                    raise
                ctx.notes.add(PLUGIN_MISSING)
                raise Skip("the METADATA_LOCK_INFO plugin is not installed",
                           "INSTALL SONAME 'metadata_lock_info' (no restart needed)") from None
            except StatementTimeout as exc:
                ctx.notes.add(f"sample {index}: {exc.reason}", partial=True)
                continue
            except MissingPrivilege as exc:
                ctx.notes.add(exc.reason + (f"; to enable: {exc.fix}" if exc.fix else ""),
                              partial=True)
                break
            for row in rows:
                info = row.pop("info", None)
                row["statement"] = fingerprint(str(info)) if info else None
            samples.append({"ts": taken, "sample": index, "locks": rows})
    except CollectorError as exc:
        if not samples or isinstance(exc, Skip):
            raise
        ctx.notes.add(f"stopped after {len(samples)} samples: {exc.reason}", partial=True)
    if samples:
        yield Artifact.jsonl("mysql/metadata_locks.jsonl", samples)
