"""Schema overview from sources that open no table: counts, engines and InnoDB sizes.

Summing DATA_LENGTH from information_schema.TABLES opens every table (measured on
3,000 tables: Opened_tables +3,000, the table cache filled to table_open_cache; 6-7 s
on 20,000), so it is never done. Counts come from information_schema.TABLES by name
only (0 tables opened, 0 definitions read), engines from InnoDB's dictionary plus the
definitions of the few tables it does not hold (collectors/mysql/dictionary.py), sizes
from InnoDB's persistent statistics (mysql.innodb_table_stats: rows and pages as of the
last statistics update) and its tablespace files (INNODB_SYS_TABLESPACES /
INNODB_TABLESPACES: FILE_SIZE, ALLOCATED_SIZE; MariaDB lists a file once used). Each
costs 0 opened tables beyond the four statistics tables. Above `table_guard` tables the
per-table name lists are skipped.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Dict, Iterator, List

from collectors.mysql.common import optional, table_counts, table_total
from collectors.mysql.dictionary import Catalog, catalog, decode_name, innodb_view
from collectors.mysql.flavor import Flavor
from collectors.mysql.sql import (
    OPEN_TABLES,
    STATS_SCHEMA_SIZES,
    STATS_TABLE_COUNT,
    Statement,
)
from collectors.mysql.tablecache import guard
from collectors.registry import Artifact, Context, Need, collector

_USER_SPACES = "NAME LIKE '%%/%%' AND NAME NOT LIKE 'mysql/%%' AND NAME NOT LIKE 'sys/%%'"


def _tablespace_sizes(flavor: Flavor) -> str:
    return (
        "SELECT SUBSTRING_INDEX(NAME, '/', 1) AS schema_name, COUNT(*) AS files,"
        " SUM(FILE_SIZE) AS file_bytes, SUM(ALLOCATED_SIZE) AS allocated_bytes"
        f" FROM {innodb_view(flavor, 'TABLESPACES')} WHERE {_USER_SPACES} GROUP BY 1"
    )


def _dictionary_files(flavor: Flavor) -> str:
    # MariaDB lists a tablespace only once it is opened after start-up: count what it owes.
    # Counted from the catalog's read of the same view (`Catalog.innodb_files`) when it has one.
    return (
        "SELECT SUBSTRING_INDEX(NAME, '/', 1) AS schema_name, COUNT(*) AS files"
        f" FROM {innodb_view(flavor, 'TABLES')} WHERE {_USER_SPACES} AND SPACE > 0 GROUP BY 1"
    )


def _top_tables(flavor: Flavor) -> str:
    # Partitions are folded into their table, in the files and in the statistics.
    return (
        "SELECT ts.space_schema AS schema_name, ts.space_table AS table_name,"
        " 'InnoDB' AS engine, st.rows_estimate, st.data_pages * @@innodb_page_size AS data_bytes,"
        " st.index_pages * @@innodb_page_size AS index_bytes, ts.file_bytes,"
        " ts.allocated_bytes, st.last_update FROM ("
        "SELECT SUBSTRING_INDEX(NAME, '/', 1) AS space_schema, SUBSTRING_INDEX(SUBSTRING_INDEX("
        "SUBSTRING_INDEX(NAME, '/', -1), '#P#', 1), '#p#', 1) AS space_table,"
        " SUM(FILE_SIZE) AS file_bytes, SUM(ALLOCATED_SIZE) AS allocated_bytes"
        f" FROM {innodb_view(flavor, 'TABLESPACES')} WHERE {_USER_SPACES}"
        " GROUP BY 1, 2 ORDER BY 4 DESC LIMIT 50) ts LEFT JOIN ("
        "SELECT database_name, SUBSTRING_INDEX(SUBSTRING_INDEX(table_name, '#P#', 1), '#p#', 1)"
        " AS table_name, SUM(n_rows) AS rows_estimate, SUM(clustered_index_size) AS data_pages,"
        " SUM(sum_of_other_index_sizes) AS index_pages, MAX(last_update) AS last_update"
        " FROM mysql.innodb_table_stats GROUP BY 1, 2) st"
        " ON st.database_name = ts.space_schema AND st.table_name = ts.space_table"
        " ORDER BY ts.allocated_bytes DESC"
    )


#: Data and index files of the engines that keep one file each, by lower-case engine name.
_FILES = {"myisam": (".MYD", ".MYI"), "aria": (".MAD", ".MAI"), "csv": (".CSV", ".CSM"),
          "archive": (".ARZ", "")}

TABLESPACE_SIZES = Statement("tablespace_sizes", _tablespace_sizes, "process")
DICTIONARY_FILES = Statement("dictionary_files", _dictionary_files, "process")
TOP_TABLES_BY_FILE = Statement("top_tables_by_file", _top_tables, "process")


@collector("mysql.schema", needs=[Need.MYSQL], timeout=15)
def schema_overview(ctx: Context) -> Iterator[Artifact]:
    """Per schema: tables by engine, InnoDB data, index and file bytes; the 50 largest
    InnoDB tables. Opens no table."""
    counts = table_counts(ctx)
    total = sum(int(r["tables"]) for r in counts)
    cache = guard(ctx)
    found = catalog(ctx, total)
    innodb_total = len(found.innodb) if found.innodb is not None else _stats_count(ctx)
    overview: Dict[str, Any] = {
        "total_tables": max(total, innodb_total),
        "table_guard": ctx.table_guard,
        "table_cache": cache.as_dict(),
        "tables_per_schema": {r["schema_name"]: int(r["tables"]) for r in counts},
        "source": "mysql.innodb_table_stats",
        "file_source": innodb_view(ctx.session.flavor, "TABLESPACES"),
        "sizes_cover": "InnoDB tables; in top_tables also MyISAM, Aria, CSV and ARCHIVE "
                       "tables from their files in the datadir, when this host can read them",
    }
    hidden = innodb_total > total
    if hidden:
        # information_schema lists only tables this account holds a privilege on.
        ctx.notes.add(
            f"this account sees {total} of at least {innodb_total} tables in "
            "information_schema: counts come from InnoDB's dictionary (InnoDB only)"
        )
        overview["tables_per_schema"] = None
    elif total > ctx.table_guard:
        ctx.notes.add(
            f"{total} tables is above the guard of {ctx.table_guard}: engines other than "
            "InnoDB are not examined and no per-table list is read"
        )
    if not cache.holds(overview["total_tables"]):
        ctx.notes.add(
            f"{overview['total_tables']} tables do not fit the table cache "
            f"(table_open_cache={cache.table_open_cache}, table_definition_cache="
            f"{cache.table_definition_cache}): nothing that opens every table is run"
        )
    sizes = _sizes(ctx, found)
    overview["schemas"] = _by_schema(counts, found, sizes, hidden)
    top = optional(ctx, TOP_TABLES_BY_FILE, timeout=max(ctx.session.statement_timeout, 5))
    ranked = [_named(row) for row in top or []] + _from_files(ctx, found)
    ranked.sort(key=lambda t: -(t["allocated_bytes"] or t["file_bytes"] or 0))
    overview["top_tables"] = ranked[:50]
    yield Artifact.json("mysql/schema_overview.json", overview)


def _stats_count(ctx: Context) -> int:
    rows = optional(ctx, STATS_TABLE_COUNT)
    return int(rows[0]["tables"]) if rows else 0


def _sizes(ctx: Context, found: Catalog) -> Dict[str, Dict[str, int]]:
    out: Dict[str, Dict[str, int]] = {}
    for row in optional(ctx, STATS_SCHEMA_SIZES) or []:
        entry = out.setdefault(str(row["schema_name"]), {})
        entry["data_bytes"] = int(row["data_bytes"] or 0)
        entry["index_bytes"] = int(row["index_bytes"] or 0)
        entry["innodb_tables_in_stats"] = int(row["tables"] or 0)
    for row in optional(ctx, TABLESPACE_SIZES) or []:
        named = decode_name(f"{row['schema_name']}/x")
        if named is None:
            continue
        entry = out.setdefault(named[0], {})
        entry["file_bytes"] = int(row["file_bytes"] or 0)
        entry["allocated_bytes"] = int(row["allocated_bytes"] or 0)
        entry["sized_files"] = int(row["files"] or 0)
    files = (optional(ctx, DICTIONARY_FILES) if found.innodb_files is None else
             [{"schema_name": k, "files": v} for k, v in found.innodb_files.items()])
    for row in files or []:
        named = decode_name(f"{row['schema_name']}/x")
        if named is not None:
            entry = out.setdefault(named[0], {})
            entry["unsized_files"] = max(0, int(row["files"] or 0) - entry.get("sized_files", 0))
    unsized = sum(entry.get("unsized_files", 0) for entry in out.values())
    if unsized:
        ctx.notes.add(f"{unsized} tablespace files not used since start-up have no size yet "
                      "(file_bytes leaves them out; data_bytes counts them from statistics)")
    return out


def _by_schema(
    counts: List[Dict[str, Any]], found: Catalog, sizes: Dict[str, Dict[str, int]], hidden: bool
) -> List[Dict[str, Any]]:
    engines: Dict[str, Counter] = {}
    for schema, _table in found.innodb or ():
        if hidden or found.listed is None or (schema, _table) in found.listed:
            engines.setdefault(schema, Counter())["InnoDB"] += 1
    for (schema, _table), row in found.described.items():
        engines.setdefault(schema, Counter())[_engine(row)] += 1
    for schema, _table in found.undescribed:
        engines.setdefault(schema, Counter())["not examined"] += 1
    listed = {str(r["schema_name"]): int(r["tables"]) for r in counts}
    names = set(listed) | set(sizes) | set(engines)
    schemas = []
    for name in names:
        size = sizes.get(name, {})
        tables = listed.get(name) if not hidden else None
        schemas.append({
            "schema": name,
            "tables": tables if tables is not None else sum(engines.get(name, {}).values()),
            "data_bytes": size.get("data_bytes", 0),
            "index_bytes": size.get("index_bytes", 0),
            "file_bytes": size.get("file_bytes", 0),
            "allocated_bytes": size.get("allocated_bytes", 0),
            "unsized_files": size.get("unsized_files", 0),
            "engines": dict(engines.get(name, {})) if found.innodb is not None else None,
        })
    return sorted(schemas, key=lambda s: (-(s["data_bytes"] + s["index_bytes"]), s["schema"]))


def _engine(row: Dict[str, Any]) -> str:
    if str(row.get("table_type") or "") == "VIEW":
        return "VIEW"
    return str(row.get("engine") or "unreadable")


def _from_files(ctx: Context, found: Catalog) -> List[Dict[str, Any]]:
    """Non-InnoDB tables sized from their data and index files (no table opened)."""
    datadir = str(ctx.session.identity.get("datadir") or "")
    out = []
    for (schema, table), row in found.described.items():
        suffixes = _FILES.get(str(row.get("engine") or "").lower())
        if not suffixes or not datadir:
            continue
        sizes = []
        for suffix in suffixes:
            if not suffix:
                sizes.append(0)
                continue
            try:
                sizes.append(os.stat(os.path.join(datadir, schema, table + suffix)).st_size)
            except OSError:
                sizes.append(None)
        if sizes[0] is None:
            continue
        out.append({
            "schema_name": schema, "table_name": table, "engine": row["engine"],
            "rows_estimate": None, "data_bytes": sizes[0], "index_bytes": sizes[1] or 0,
            "file_bytes": sizes[0] + (sizes[1] or 0), "allocated_bytes": None,
            "last_update": None, "size_source": "datadir files",
        })
    return out


def _named(row: Dict[str, Any]) -> Dict[str, Any]:
    for key in ("rows_estimate", "data_bytes", "index_bytes", "file_bytes", "allocated_bytes"):
        row[key] = int(row[key]) if row.get(key) is not None else None
    named = decode_name(f"{row['schema_name']}/{row['table_name']}")
    if named:
        row["schema_name"], row["table_name"] = named
    return row


@collector("mysql.open_tables", profiles=["full"], needs=[Need.MYSQL], timeout=8)
def open_tables(ctx: Context) -> Iterator[Artifact]:
    """Tables in use right now (SHOW OPEN TABLES: lists the cache, opens nothing), skipped
    above the table guard."""
    total = table_total(ctx)
    if total > ctx.table_guard:
        ctx.notes.add(f"skipped: {total} tables is above the guard of {ctx.table_guard}")
        return
    yield Artifact.json("mysql/open_tables.json", ctx.session.query(OPEN_TABLES))
