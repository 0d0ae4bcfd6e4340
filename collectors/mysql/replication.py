"""Replication in each flavor's syntax: replica status at every sample (so lag has a
trend), binary log position and files, GTID state."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

from collectors.mysql import window
from collectors.mysql.common import optional
from collectors.mysql.sql import BINARY_LOGS, BINLOG_STATUS, GTID_STATE, REPLICA_STATUS
from collectors.registry import PROFILES, Artifact, CollectorError, Context, Need, collector


@collector("mysql.replication", profiles=PROFILES, needs=[Need.MYSQL], timeout=8, sampled=True)
def replication(ctx: Context) -> Iterator[Artifact]:
    """Replica channels per sample, binary log position and files, GTID state."""
    statement = REPLICA_STATUS.sql(ctx.session.flavor)
    samples: List[Dict[str, Any]] = []
    ticks = window.ticks(ctx)
    _index, taken = next(ticks)
    replicas = optional(ctx, REPLICA_STATUS)
    if replicas is not None:
        if not replicas:
            ctx.notes.add("not a replica (no replication channel configured)")
        yield Artifact.json(
            "mysql/replication/replica_status.json",
            {"statement": statement, "channels": replicas},
        )
        samples.append({"ts": taken, "sample": 0, "channels": replicas})
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
    if not replicas:
        return
    readable = {REPLICA_STATUS.name}
    try:
        for index, taken in ticks:
            channels = window.read(ctx, REPLICA_STATUS, index, readable)
            if channels is not None:
                samples.append({"ts": taken, "sample": index, "channels": channels})
            elif not readable:
                break
    except CollectorError as exc:
        ctx.notes.add(f"replica status stopped after {len(samples)} samples: {exc.reason}",
                      partial=True)
    yield Artifact.jsonl("mysql/replication/replica_status.jsonl", samples)
