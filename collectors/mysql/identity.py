"""Who the server is: version, flavor, uptime, server_id, hostname, read_only."""

from __future__ import annotations

from typing import Iterator

from collectors.mysql.common import name_value
from collectors.mysql.sql import UPTIME
from collectors.mysql.status import SAMPLES
from collectors.registry import PROFILES, Artifact, Context, Need, collector


@collector("mysql.identity", profiles=PROFILES, needs=[Need.MYSQL], timeout=5)
def identity(ctx: Context) -> Iterator[Artifact]:
    """Server identity and flavor."""
    session = ctx.session
    info = dict(session.identity)
    info.pop("connection_id", None)
    info["flavor"] = session.flavor.name
    info["version_tuple"] = list(session.flavor.version)
    # The window's first status sample is taken before anything else: its Uptime will do.
    first = list(ctx.shared.get(SAMPLES) or [])[:1]
    uptime = first[0]["status"].get("Uptime") if first else None
    if uptime is None:
        uptime = name_value(session.query(UPTIME)).get("Uptime", 0)
    info["uptime_seconds"] = int(uptime)
    yield Artifact.json("mysql/identity.json", info)
