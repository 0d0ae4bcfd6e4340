"""Small helpers shared by the MySQL collectors."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from collectors.mysql.session import MissingPrivilege, NotAvailable, StatementTimeout
from collectors.mysql.sql import Statement
from collectors.registry import Context


def optional(
    ctx: Context,
    stmt: Statement,
    params: Optional[Dict[str, Any]] = None,
    *,
    timeout: Optional[float] = None,
) -> Optional[List[Dict[str, Any]]]:
    """Rows of `stmt`, or None with a note when this part cannot be read here.

    A denied privilege or a statement stopped by its time limit makes the collector
    partial; a lost server is not caught, so the collector fails.
    """
    try:
        return ctx.session.query(stmt, params, timeout=timeout)
    except (MissingPrivilege, StatementTimeout) as exc:
        ctx.notes.add(f"{exc.reason}" + (f"; to enable: {exc.fix}" if exc.fix else ""), partial=True)
    except NotAvailable as exc:
        ctx.notes.add(exc.reason)
    return None


def name_value(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """SHOW VARIABLES / SHOW STATUS rows as one dict."""
    return {row["Variable_name"]: row["Value"] for row in rows}


def variables(ctx: Context) -> Dict[str, Any]:
    """Global variables, read once per run and shared between collectors."""
    from collectors.mysql.sql import GLOBAL_VARIABLES

    if "variables" not in ctx.shared:
        ctx.shared["variables"] = name_value(ctx.session.query(GLOBAL_VARIABLES))
    return ctx.shared["variables"]


def table_counts(ctx: Context) -> List[Dict[str, Any]]:
    """Tables per schema (information_schema by name only: opens nothing), read once per run."""
    from collectors.mysql.sql import TABLE_COUNT

    if "table_counts" not in ctx.shared:
        ctx.shared["table_counts"] = ctx.session.query(TABLE_COUNT)
    return ctx.shared["table_counts"]


def table_total(ctx: Context) -> int:
    return sum(int(r["tables"]) for r in table_counts(ctx))
