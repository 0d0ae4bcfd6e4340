"""Plugins and storage engines."""

from __future__ import annotations

from typing import Iterator

from collectors.mysql.sql import ENGINES, PLUGINS
from collectors.registry import Artifact, Context, Need, collector


@collector("mysql.plugins", needs=[Need.MYSQL], timeout=5)
def plugins(ctx: Context) -> Iterator[Artifact]:
    """Installed plugins and available storage engines."""
    yield Artifact.json("mysql/plugins.json", ctx.session.query(PLUGINS))
    yield Artifact.json("mysql/engines.json", ctx.session.query(ENGINES))
