"""InnoDB: the monitor output at the window's start and end, transactions and who blocks
whom at every sample, metrics, mutexes."""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Iterator, List

from collectors.mysql import window
from collectors.mysql.sql import INNODB_METRICS, INNODB_MUTEX, INNODB_STATUS, INNODB_TRX, LOCK_WAITS
from collectors.registry import PROFILES, Artifact, CollectorError, Context, Need, Skip, collector
from privacy.fingerprint import fingerprint

_STATUS_FILES = {"start": "mysql/innodb_status.txt", "end": "mysql/innodb_status_end.txt"}


@collector("mysql.innodb_status", profiles=PROFILES, needs=[Need.MYSQL], timeout=5, sampled=True)
def innodb_status(ctx: Context) -> Iterator[Artifact]:
    """SHOW ENGINE INNODB STATUS, whole, at the window's start and end (the pipeline takes
    the statements and record bytes out of it: privacy/innodb_status.py)."""
    for moment, _taken in window.start_and_end(ctx):
        try:
            rows = ctx.session.query(INNODB_STATUS)
        except CollectorError as exc:
            if moment == "start":
                raise
            ctx.notes.add(f"no reading at the window's end: {exc.reason}", partial=True)
            return
        if not rows:
            raise Skip("InnoDB is not enabled on this server")
        yield Artifact.text(_STATUS_FILES[moment], str(rows[0].get("Status", "")))


@collector("mysql.innodb_transactions", needs=[Need.MYSQL], timeout=5, sampled=True)
def innodb_transactions(ctx: Context) -> Iterator[Artifact]:
    """Open InnoDB transactions (oldest first) and who blocks whom, at every sample."""
    trx_samples: List[Dict[str, Any]] = []
    wait_samples: List[Dict[str, Any]] = []
    readable = {INNODB_TRX.name, LOCK_WAITS.name}
    try:
        for index, taken in window.ticks(ctx):
            trx = window.read(ctx, INNODB_TRX, index, readable) if INNODB_TRX.name in readable else None
            waits = None
            # Lock waits only when a transaction waits (or INNODB_TRX could not say).
            if LOCK_WAITS.name in readable:
                if trx is None or any(t.get("trx_state") == "LOCK WAIT" for t in trx):
                    waits = window.read(ctx, LOCK_WAITS, index, readable)
                else:
                    waits = []
            if trx is not None:
                for row in trx:
                    query = row.pop("trx_query", None)
                    row["statement"] = fingerprint(str(query)) if query else None
                trx_samples.append({"ts": taken, "sample": index, "transactions": trx})
            if waits is not None:
                waits = blockers(waits)
                wait_samples.append({"ts": taken, "sample": index, "waits": waits})
            if index == 0:
                if trx is not None:
                    yield Artifact.json("mysql/innodb_transactions.json", trx)
                if waits is not None:
                    yield Artifact.json("mysql/innodb_lock_waits.json", waits)
            if not readable:
                break
    except CollectorError as exc:
        if not trx_samples and not wait_samples:
            raise
        ctx.notes.add(f"stopped after {len(trx_samples)} samples: {exc.reason}", partial=True)
    if trx_samples:
        yield Artifact.jsonl("mysql/innodb_trx.jsonl", trx_samples)
    if wait_samples:
        yield Artifact.jsonl("mysql/lock_waits.jsonl", wait_samples)


def blockers(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Lock waits with statements as fingerprints and each blocker's number of waiters,
    the blocker that holds up most threads first."""
    waiters = Counter(str(r.get("blocking_trx_id")) for r in rows)
    for row in rows:
        for side in ("waiting", "blocking"):
            query = row.pop(f"{side}_query", None)
            row[f"{side}_statement"] = fingerprint(str(query)) if query else None
        row["waiters"] = waiters[str(row.get("blocking_trx_id"))]
    rows.sort(key=lambda r: (-r["waiters"], -(r.get("wait_seconds") or 0)))
    return rows


@collector("mysql.innodb_metrics", needs=[Need.MYSQL], timeout=5)
def innodb_metrics(ctx: Context) -> Iterator[Artifact]:
    """information_schema.INNODB_METRICS (enabled and disabled counters)."""
    yield Artifact.json("mysql/innodb_metrics.json", ctx.session.query(INNODB_METRICS))


@collector("mysql.innodb_mutex", profiles=["full"], needs=[Need.MYSQL], timeout=5)
def innodb_mutex(ctx: Context) -> Iterator[Artifact]:
    """SHOW ENGINE INNODB MUTEX."""
    rows = ctx.session.query(INNODB_MUTEX)
    if not rows:
        # An empty list is not "no contention": say what the server leaves out.
        ctx.notes.add(
            "empty: MariaDB's InnoDB lists no mutexes here (only rw-locks that waited); see "
            "performance_schema waits (wait/synch/%)" if ctx.session.flavor.is_mariadb else
            "empty: mutex statistics need innodb_monitor_enable='latch'"
        )
    yield Artifact.json("mysql/innodb_mutex.json", rows)
