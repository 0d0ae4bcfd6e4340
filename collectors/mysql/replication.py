"""Replication in each flavor's syntax: replica status, binary logs, GTID state."""

from __future__ import annotations

from typing import Iterator

from collectors.mysql.common import optional
from collectors.mysql.sql import BINARY_LOGS, BINLOG_STATUS, GTID_STATE, REPLICA_STATUS
from collectors.registry import PROFILES, Artifact, Context, Need, collector


@collector("mysql.replication", profiles=PROFILES, needs=[Need.MYSQL], timeout=8)
def replication(ctx: Context) -> Iterator[Artifact]:
    """Replica channels, binary log position and files, GTID state."""
    replicas = optional(ctx, REPLICA_STATUS)
    if replicas is not None:
        if not replicas:
            ctx.notes.add("not a replica (no replication channel configured)")
        yield Artifact.json(
            "mysql/replication/replica_status.json",
            {"statement": REPLICA_STATUS.sql(ctx.session.flavor), "channels": replicas},
        )
    binlog = optional(ctx, BINLOG_STATUS)
    if binlog is not None:
        if not binlog:
            ctx.notes.add("binary logging is off")
        yield Artifact.json("mysql/replication/binlog_status.json", binlog)
        logs = optional(ctx, BINARY_LOGS) if binlog else None
        if logs is not None:
            yield Artifact.json("mysql/replication/binary_logs.json", logs)
    gtid = optional(ctx, GTID_STATE)
    if gtid:
        yield Artifact.json("mysql/replication/gtid.json", gtid[0])
