"""SHOW GLOBAL VARIABLES."""

from __future__ import annotations

from typing import Iterator

from collectors.mysql.common import variables
from collectors.registry import PROFILES, Artifact, Context, Need, collector


@collector("mysql.variables", profiles=PROFILES, needs=[Need.MYSQL], timeout=5)
def global_variables(ctx: Context) -> Iterator[Artifact]:
    """Every global variable, as the server reports it."""
    yield Artifact.json("mysql/global_variables.json", variables(ctx))
