"""InnoDB: the monitor output, transactions, lock waits, metrics, mutexes."""

from __future__ import annotations

from typing import Iterator

from collectors.mysql.common import optional
from collectors.mysql.sql import INNODB_METRICS, INNODB_MUTEX, INNODB_STATUS, INNODB_TRX, LOCK_WAITS
from collectors.registry import PROFILES, Artifact, Context, Need, Skip, collector


@collector("mysql.innodb_status", profiles=PROFILES, needs=[Need.MYSQL], timeout=5)
def innodb_status(ctx: Context) -> Iterator[Artifact]:
    """SHOW ENGINE INNODB STATUS, whole (the pipeline takes the statements and record bytes
    out of it: privacy/innodb_status.py)."""
    rows = ctx.session.query(INNODB_STATUS)
    if not rows:
        raise Skip("InnoDB is not enabled on this server")
    yield Artifact.text("mysql/innodb_status.txt", str(rows[0].get("Status", "")))


@collector("mysql.innodb_transactions", needs=[Need.MYSQL], timeout=5)
def innodb_transactions(ctx: Context) -> Iterator[Artifact]:
    """Open InnoDB transactions (oldest first) and who waits for whom."""
    trx = optional(ctx, INNODB_TRX)
    if trx is not None:
        yield Artifact.json("mysql/innodb_transactions.json", trx)
    waits = optional(ctx, LOCK_WAITS)
    if waits is not None:
        yield Artifact.json("mysql/innodb_lock_waits.json", waits)


@collector("mysql.innodb_metrics", needs=[Need.MYSQL], timeout=5)
def innodb_metrics(ctx: Context) -> Iterator[Artifact]:
    """information_schema.INNODB_METRICS (enabled and disabled counters)."""
    yield Artifact.json("mysql/innodb_metrics.json", ctx.session.query(INNODB_METRICS))


@collector("mysql.innodb_mutex", profiles=["full"], needs=[Need.MYSQL], timeout=5)
def innodb_mutex(ctx: Context) -> Iterator[Artifact]:
    """SHOW ENGINE INNODB MUTEX."""
    yield Artifact.json("mysql/innodb_mutex.json", ctx.session.query(INNODB_MUTEX))
