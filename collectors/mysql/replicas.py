"""The other side of replication: the replicas a primary sees, and the per-worker applier
and connection state a parallel replica keeps only in performance_schema.

SHOW SLAVE HOSTS / SHOW REPLICAS lists replicas that registered with this server (a
replica registers at connect; `report_host` names it). The real SQL error of a parallel
replica is in replication_applier_status_by_worker (MySQL 8, MariaDB 10.5+); the I/O
thread's last error and heartbeats in replication_connection_status (MySQL only).
"""

from __future__ import annotations

from typing import Iterator

from collectors.mysql.common import optional
from collectors.mysql.flavor import Flavor
from collectors.mysql.session import MissingPrivilege
from collectors.mysql.sql import Statement
from collectors.registry import Artifact, Context, Need, collector


def _hosts_statement(flavor: Flavor) -> str:
    if flavor.is_mariadb:
        return "SHOW REPLICA HOSTS" if flavor.at_least(10, 5, 2) else "SHOW SLAVE HOSTS"
    return "SHOW REPLICAS" if flavor.at_least(8, 0, 22) else "SHOW SLAVE HOSTS"


REPLICA_HOSTS = Statement("replica_hosts", _hosts_statement, "replica_hosts")
APPLIER_WORKERS = Statement(
    "applier_workers",
    "SELECT * FROM performance_schema.replication_applier_status_by_worker LIMIT 1000",
    "select_ps",
)
CONNECTION_STATUS = Statement(
    "connection_status",
    "SELECT * FROM performance_schema.replication_connection_status LIMIT 100",
    "select_ps",
)


@collector("mysql.replicas", needs=[Need.MYSQL], timeout=5)
def replicas(ctx: Context) -> Iterator[Artifact]:
    """Replicas registered with this server; per-worker applier and connection status."""
    try:
        hosts = ctx.session.query(REPLICA_HOSTS)
    except MissingPrivilege as exc:
        # Left out of `mydiag grants` on purpose: the privilege also lets an account read
        # binary logs (MySQL) or change primary-side settings (MariaDB).
        ctx.notes.add(f"{exc.reason}; to enable: {exc.fix}")
        hosts = None
    if hosts is not None:
        if not hosts:
            ctx.notes.add("no replica is registered with this server (SHOW "
                          "REPLICA HOSTS is empty; a replica without report_host may not show)")
        yield Artifact.json("mysql/replication/replica_hosts.json", {
            "statement": REPLICA_HOSTS.sql(ctx.session.flavor), "replicas": hosts})
    if str(ctx.session.identity.get("performance_schema", "0")) not in ("1", "ON"):
        ctx.notes.add("performance_schema is OFF: per-worker applier status not available "
                      "(see SHOW SLAVE STATUS in mysql/replication/replica_status.json)")
        return
    workers = optional(ctx, APPLIER_WORKERS)
    if workers is not None:
        yield Artifact.json("mysql/replication/applier_workers.json", workers)
    if ctx.session.flavor.is_mysql_family:
        connection = optional(ctx, CONNECTION_STATUS)
        if connection is not None:
            yield Artifact.json("mysql/replication/connection_status.json", connection)
