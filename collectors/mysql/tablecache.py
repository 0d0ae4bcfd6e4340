"""The table-cache guard: how many tables a collection may open without disturbing the server.

Opening a table puts it in the server's table cache (`table_open_cache`) and its
definition in the definition cache (`table_definition_cache`); a scan that opens every
table evicts the customer's hot tables and then makes the status samples say "table
cache too small". So nothing here opens a table unless it fits in the caches' free slots
and in a small budget per run; whole-catalog opens are never made. The state read at the
start (the window's first status sample, taken before anything touches the catalog; its
own statement when there is none) is kept in the bundle, so an engineer can tell the
server's fill from ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

from collectors.mysql.common import name_value, variables
from collectors.mysql.sql import Statement
from collectors.mysql.status import SAMPLES
from collectors.registry import Context

CACHE_STATUS = Statement(
    "table_cache_status",
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('Open_tables', 'Open_table_definitions',"
    " 'Opened_tables', 'Opened_table_definitions')",
)

#: At most this many tables opened per run (a crashed or unlisted table's reason).
OPEN_BUDGET = 20
#: At most this many table definitions read per run (engine, type, collation of the
#: tables InnoDB's dictionary does not list: MyISAM, Aria, views, orphans).
DEFINITION_BUDGET = 100


@dataclass(frozen=True)
class CacheGuard:
    table_open_cache: int
    table_definition_cache: int
    open_tables: int
    open_definitions: int

    @property
    def free_tables(self) -> int:
        return max(0, self.table_open_cache - self.open_tables)

    @property
    def free_definitions(self) -> int:
        return max(0, self.table_definition_cache - self.open_definitions)

    def tables_to_open(self, wanted: int) -> int:
        """How many of `wanted` tables may be opened: within the budget and the free slots."""
        return max(0, min(wanted, OPEN_BUDGET, self.free_tables, self.free_definitions))

    def definitions_to_read(self, wanted: int) -> int:
        """How many of `wanted` definitions may be read (no table is opened by that)."""
        return max(0, min(wanted, DEFINITION_BUDGET))

    def holds(self, tables: int) -> bool:
        """Whether both caches could hold `tables` tables at once."""
        return tables <= min(self.table_open_cache, self.table_definition_cache)

    def as_dict(self) -> Dict[str, Any]:
        return {
            "table_open_cache": self.table_open_cache,
            "table_definition_cache": self.table_definition_cache,
            "open_tables_at_start": self.open_tables,
            "open_table_definitions_at_start": self.open_definitions,
            "open_budget": OPEN_BUDGET,
            "definition_budget": DEFINITION_BUDGET,
        }


def guard(ctx: Context) -> CacheGuard:
    """The caches' sizes and fill, read once per run (before this run opens anything)."""
    if "table_cache" not in ctx.shared:
        settings = variables(ctx)
        samples = ctx.shared.get(SAMPLES) or []
        first = samples[0].get("status") if samples else None
        status = (first if first and "Open_tables" in first and "Open_table_definitions" in first
                  else name_value(ctx.session.query(CACHE_STATUS)))
        ctx.shared["table_cache"] = CacheGuard(
            _int(settings.get("table_open_cache")),
            _int(settings.get("table_definition_cache")),
            _int(status.get("Open_tables")),
            _int(status.get("Open_table_definitions")),
        )
    return ctx.shared["table_cache"]


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
