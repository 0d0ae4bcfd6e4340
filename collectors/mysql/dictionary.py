"""The table list, read from sources that open no table (InnoDB's own dictionary first).

Measured on MariaDB 10.11 with 3,000 InnoDB tables, after FLUSH TABLES (Opened_tables /
Opened_table_definitions each statement added):

- information_schema.TABLES, TABLE_SCHEMA and TABLE_NAME only, or COUNT(*): 0 / 0.
- information_schema.TABLES with TABLE_TYPE, ENGINE, TABLE_COLLATION or TABLE_COMMENT:
  0 / 3,000 (every .frm is read into the definition cache); with TABLE_ROWS, DATA_LENGTH
  or CREATE_OPTIONS: 3,000 / 3,000 (every table opened). COLUMNS, STATISTICS, VIEWS:
  0 / 3,000; TABLE_CONSTRAINTS, KEY_COLUMN_USAGE: 3,000 / 3,000.
- The same columns with `TABLE_SCHEMA = … AND TABLE_NAME = …` (also as a UNION ALL of
  such lookups): only the named tables. VIEWS by name: 0 / 0.
- INNODB_SYS_TABLES, _INDEXES, _COLUMNS, _TABLESPACES: 0 / 0 (under 0.05 s).
  INNODB_SYS_TABLESTATS: 0 / 0 but 0.27 s, as it loads every table into InnoDB's
  dictionary cache: not used. mysql.innodb_table_stats: 4 / 4 (the statistics tables).
- TRIGGERS: 0 / 0 (.TRG files); ROUTINES, EVENTS: 1 / 1 (mysql.proc, mysql.event).

So InnoDB tables are known from the dictionary; only the tables it does not hold
(MyISAM, Aria, views, orphans: usually few) get their definitions read, by name, within
the guard's budget (collectors/mysql/tablecache.py). Opening a crashed MyISAM or Aria
table is never done while `myisam_recover_options` / `aria_recover_options` is on: the
open itself repairs the table (measured: "Recovering table", a .BAK file written).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from collectors.mysql.common import optional
from collectors.mysql.flavor import Flavor
from collectors.mysql.sql import Statement
from collectors.mysql.tablecache import guard
from collectors.registry import Context

Name = Tuple[str, str]

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
_SYSTEM = "('mysql','information_schema','performance_schema','sys')"


def innodb_view(flavor: Flavor, name: str) -> str:
    """InnoDB's dictionary views lost their SYS_ infix in MySQL 8.0."""
    if flavor.is_mysql_family and flavor.at_least(8, 0, 0):
        return f"information_schema.INNODB_{name}"
    return f"information_schema.INNODB_SYS_{name}"


def _dict_sql(template: str, *views: str) -> Callable[[Flavor], str]:
    """A statement text whose `{TABLES}`-style holes get the flavor's view names."""
    def text(flavor: Flavor) -> str:
        return template.format(**{v: innodb_view(flavor, v) for v in views})
    return text


#: Names only: no definition read.
LISTED_TABLES = Statement(
    "listed_tables",
    "SELECT TABLE_SCHEMA AS schema_name, TABLE_NAME AS table_name FROM information_schema.TABLES"
    f" WHERE TABLE_SCHEMA NOT IN {_SYSTEM}",
)
INNODB_TABLE_NAMES = Statement(
    "innodb_table_names",
    # With whether InnoDB gave the table its hidden key (what INNODB_WITHOUT_KEY reads):
    # the same two views, one statement.
    _dict_sql(
        "SELECT t.TABLE_ID AS table_id, t.NAME AS name, t.SPACE AS space,"
        " i.TABLE_ID IS NOT NULL AS hidden_key FROM {TABLES} t LEFT JOIN"
        " (SELECT TABLE_ID FROM {INDEXES} WHERE NAME = 'GEN_CLUST_INDEX') i"
        " ON i.TABLE_ID = t.TABLE_ID WHERE t.NAME LIKE '%%/%%'",
        "TABLES", "INDEXES",
    ),
    "process",
)
#: InnoDB gives a table without a primary key (or a NOT NULL unique key) a hidden one.
INNODB_WITHOUT_KEY = Statement(
    "innodb_without_key",
    _dict_sql(
        "SELECT t.NAME AS name FROM {INDEXES} i JOIN {TABLES} t ON t.TABLE_ID = i.TABLE_ID"
        " WHERE i.NAME = 'GEN_CLUST_INDEX' LIMIT 2000",
        "INDEXES", "TABLES",
    ),
    "process",
)
COLLATION_IDS = Statement(
    "collation_ids",
    "SELECT ID AS id, COLLATION_NAME AS collation FROM information_schema.COLLATIONS"
    " WHERE CHARACTER_SET_NAME IN %(charsets)s",
)
#: The collation id sits in bits 16-30 of a column's PRTYPE (InnoDB's dtype_get_charset_coll);
#: character columns only (MTYPE VARCHAR, CHAR, BLOB, VARMYSQL, MYSQL). No join: a join of
#: information_schema tables materializes both.
INNODB_CHARSET_COLUMNS = Statement(
    "innodb_charset_columns",
    _dict_sql(
        "SELECT TABLE_ID AS table_id, (PRTYPE >> 16) & 32767 AS collation_id, COUNT(*) AS columns"
        " FROM {COLUMNS} WHERE MTYPE IN (1, 2, 5, 12, 13)"
        " AND (PRTYPE >> 16) & 32767 IN %(ids)s GROUP BY 1, 2 LIMIT 2000",
        "COLUMNS",
    ),
    "process",
)

#: Per table: what its definition says (read from the .frm; the table is not opened).
_DESCRIBE = (
    "SELECT TABLE_SCHEMA AS schema_name, TABLE_NAME AS table_name, TABLE_TYPE AS table_type,"
    " ENGINE AS engine, TABLE_COLLATION AS collation, TABLE_COMMENT AS comment"
    " FROM information_schema.TABLES WHERE TABLE_SCHEMA = %(s{i})s AND TABLE_NAME = %(t{i})s"
)
#: Per table: opens it (rows, sizes; a table that cannot be opened says why in TABLE_COMMENT).
_OPEN = (
    "SELECT TABLE_SCHEMA AS schema_name, TABLE_NAME AS table_name, ENGINE AS engine,"
    " TABLE_ROWS AS rows_estimate, DATA_LENGTH AS data_bytes, INDEX_LENGTH AS index_bytes,"
    " TABLE_COMMENT AS comment"
    " FROM information_schema.TABLES WHERE TABLE_SCHEMA = %(s{i})s AND TABLE_NAME = %(t{i})s"
)

_ENCODED = re.compile(r"@([0-9a-fA-F]{4})")
_PARTITION = re.compile(r"#[pP]#.*$")
_INTERNAL = re.compile(r"^(#sql|FTS_[0-9a-fA-F]{16}_)")


def decode_name(encoded: str) -> Optional[Name]:
    """`db/table` as InnoDB spells it (file-name encoding, partitions) as a table name;
    None for InnoDB's internal tables (FTS auxiliaries, #sql intermediates)."""
    if "/" not in encoded:
        return None
    schema, table = encoded.split("/", 1)
    table = _PARTITION.sub("", table)
    if _INTERNAL.match(table) or schema in SYSTEM_SCHEMAS:
        return None
    return _plain(schema), _plain(table)


def _plain(text: str) -> str:
    return _ENCODED.sub(lambda m: chr(int(m.group(1), 16)), text)


@dataclass
class Catalog:
    """What is known of the tables without opening them."""

    #: Names information_schema lists (None above the table guard or when unreadable).
    listed: Optional[Set[Name]] = None
    #: Tables InnoDB's dictionary holds (None without the PROCESS privilege).
    innodb: Optional[Set[Name]] = None
    #: InnoDB's table ids and their names as it spells them (partitions apart).
    innodb_ids: Dict[int, str] = field(default_factory=dict)
    #: Tables with their own tablespace file (SPACE > 0) by schema as InnoDB spells it,
    #: the system schemas apart (None without the PROCESS privilege).
    innodb_files: Optional[Dict[str, int]] = None
    #: InnoDB tables with the hidden key of a table without a primary key, as InnoDB
    #: spells them (None without the PROCESS privilege).
    innodb_without_key: Optional[List[str]] = None
    #: Definitions read of the tables InnoDB does not hold, by name.
    described: Dict[Name, Dict[str, Any]] = field(default_factory=dict)
    #: Tables InnoDB does not hold whose definitions were left unread (the budget).
    undescribed: List[Name] = field(default_factory=list)

    @property
    def others(self) -> List[Name]:
        """Listed tables that InnoDB's dictionary does not hold."""
        if self.listed is None or self.innodb is None:
            return []
        return sorted(self.listed - self.innodb)


def catalog(ctx: Context, total_tables: int) -> Catalog:
    """The run's catalog, built once: names, InnoDB's tables, the others' definitions."""
    if "catalog" in ctx.shared:
        return ctx.shared["catalog"]
    found = Catalog()
    names = optional(ctx, INNODB_TABLE_NAMES)
    if names is not None:
        found.innodb = {n for n in (decode_name(str(r["name"])) for r in names) if n}
        found.innodb_ids = {int(r["table_id"]): str(r["name"]) for r in names}
        found.innodb_files = {}
        found.innodb_without_key = [str(r["name"]) for r in names if int(r.get("hidden_key") or 0)]
        for row in names:
            schema = str(row["name"]).split("/", 1)[0]
            if int(row.get("space") or 0) > 0 and schema.lower() not in ("mysql", "sys"):
                found.innodb_files[schema] = found.innodb_files.get(schema, 0) + 1
    if total_tables <= ctx.table_guard:
        rows = optional(ctx, LISTED_TABLES)
        if rows is not None:
            found.listed = {(str(r["schema_name"]), str(r["table_name"])) for r in rows}
    others = found.others
    allowed = guard(ctx).definitions_to_read(len(others))
    for row in lookup(ctx, "table_definitions", _DESCRIBE, others[:allowed]):
        found.described[(str(row["schema_name"]), str(row["table_name"]))] = row
    found.undescribed = others[allowed:]
    ctx.shared["catalog"] = found
    return found


def lookup(ctx: Context, name: str, template: str, tables: Sequence[Name]) -> List[Dict[str, Any]]:
    """Rows of `template` for each named table: one UNION ALL of equality lookups per 50,
    so information_schema touches only those tables."""
    rows: List[Dict[str, Any]] = []
    for start in range(0, len(tables), 50):
        chunk = tables[start:start + 50]
        params: Dict[str, Any] = {}
        parts = []
        for i, (schema, table) in enumerate(chunk):
            params[f"s{i}"], params[f"t{i}"] = schema, table
            parts.append(template.format(i=i))
        got = optional(ctx, Statement(name, " UNION ALL ".join(parts)), params)
        rows.extend(got or [])
    return rows


def open_tables(ctx: Context, tables: Sequence[Name]) -> List[Dict[str, Any]]:
    """Open these tables (the caller decided they fit the guard): sizes and the server's
    reason for each table it cannot open."""
    return lookup(ctx, "open_named_tables", _OPEN, tables)
