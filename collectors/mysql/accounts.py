"""Accounts summary: plugin, locked, expired, host patterns. Never a password hash."""

from __future__ import annotations

from collections import Counter
from typing import Iterator

from collectors.mysql.common import optional
from collectors.mysql.sql import ACCOUNTS, ACCOUNTS_GLOBAL_PRIV
from collectors.registry import Artifact, CollectorError, Context, Need, collector


@collector("mysql.accounts", needs=[Need.MYSQL], timeout=5)
def accounts(ctx: Context) -> Iterator[Artifact]:
    """Each account's plugin and state, plus counts by plugin and host pattern."""
    rows = None
    if ctx.session.flavor.is_mariadb:
        # Reading single JSON keys of global_priv gives the lock flag without the hash.
        try:
            rows = ctx.session.query(ACCOUNTS_GLOBAL_PRIV)
        except CollectorError:
            rows = None
    if rows is None:
        rows = optional(ctx, ACCOUNTS)
        if rows is None:
            return
        if ctx.session.flavor.is_mariadb:
            ctx.notes.add("lock state needs SELECT on mysql.global_priv; left out")
    for row in rows:
        host = str(row.get("host", ""))
        row["host_pattern"] = "any" if host == "%" else "wildcard" if "%" in host else "exact"
    summary = {
        "accounts": len(rows),
        "by_plugin": dict(Counter(str(r.get("plugin") or "") for r in rows)),
        "by_host_pattern": dict(Counter(r["host_pattern"] for r in rows)),
        "anonymous": sum(1 for r in rows if not r.get("user")),
    }
    yield Artifact.json("mysql/accounts.json", {"summary": summary, "accounts": rows})
