"""Galera and group replication status, when the server is part of a cluster."""

from __future__ import annotations

from typing import Iterator

from collectors.mysql.common import name_value, optional, variables
from collectors.mysql.sql import GALERA_STATUS, GROUP_REPLICATION_MEMBERS
from collectors.registry import Artifact, Context, Need, Skip, collector


@collector("mysql.cluster", needs=[Need.MYSQL], timeout=5)
def cluster(ctx: Context) -> Iterator[Artifact]:
    """wsrep status on a Galera node; group members on a group replication member."""
    settings = variables(ctx)
    galera = str(settings.get("wsrep_on", "OFF")).upper() == "ON"
    group = bool(settings.get("group_replication_group_name"))
    if not galera and not group:
        raise Skip("not a Galera node or group replication member")
    if galera:
        yield Artifact.json("mysql/cluster/galera_status.json",
                            name_value(ctx.session.query(GALERA_STATUS)))
    if group:
        members = optional(ctx, GROUP_REPLICATION_MEMBERS)
        if members is not None:
            yield Artifact.json("mysql/cluster/group_replication_members.json", members)
