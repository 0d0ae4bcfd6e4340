"""Table facts a support engineer asks first, read without opening every table.

- Tables without a primary key: InnoDB's dictionary names the tables it gave a hidden
  clustered index (GEN_CLUST_INDEX; 0 tables opened, 0 definitions read). A table with
  a NOT NULL unique key instead of a primary key has none, so it is not listed. Other
  engines: information_schema.STATISTICS by name (one definition read each).
- MyISAM, Aria and other non-InnoDB tables: the tables InnoDB's dictionary does not
  hold, their definitions read by name (collectors/mysql/dictionary.py), within the
  guard's budget.
- utf8mb3 and other deprecated character sets: columns from InnoDB's dictionary (the
  collation id in PRTYPE; 0 / 0), schema defaults from SCHEMATA (0 / 0), the other
  tables' defaults from their definitions.
- Tables that cannot be opened, with the server's reason: a definition the server
  cannot read (its words from TABLE_COMMENT); a table InnoDB does not hold although its
  definition says InnoDB (opened by name, within the table-cache guard); a MyISAM table
  marked as crashed in its .MYI header (read from the datadir when this host can: a
  crashed table is never opened while myisam_recover_options is on, since the open
  repairs it). With recovery off, MyISAM and Aria tables are opened by name (within the
  guard) and the server says what is wrong.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Dict, Iterator, List, Optional

from collectors.mysql.common import optional, table_total, variables
from collectors.mysql.dictionary import (
    COLLATION_IDS,
    INNODB_CHARSET_COLUMNS,
    INNODB_WITHOUT_KEY,
    Catalog,
    Name,
    catalog,
    decode_name,
    lookup,
    open_tables,
)
from collectors.mysql.sql import Statement
from collectors.mysql.tablecache import guard
from collectors.registry import Artifact, Context, Need, collector

#: utf8mb3 (utf8 before MySQL 8.0.30) and the character sets MySQL 8.0.28 deprecated.
DEPRECATED_CHARSETS = ("utf8mb3", "utf8", "ucs2", "macroman", "macce", "dec8", "hp8")

SCHEMA_CHARSETS = Statement(
    "schema_charsets",
    "SELECT SCHEMA_NAME AS schema_name, DEFAULT_CHARACTER_SET_NAME AS charset,"
    " DEFAULT_COLLATION_NAME AS collation FROM information_schema.SCHEMATA"
    " WHERE SCHEMA_NAME NOT IN ('mysql','information_schema','performance_schema','sys')",
)
_PRIMARY = (
    "SELECT TABLE_SCHEMA AS schema_name, TABLE_NAME AS table_name"
    " FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %(s{i})s"
    " AND TABLE_NAME = %(t{i})s AND INDEX_NAME = 'PRIMARY'"
)
#: Byte 26 of a .MYI file holds the state flags; 2 and 4: crashed, crashed during repair.
_MYI_STATE_OFFSET = 26
_MYI_CRASHED = 0x02 | 0x04


@collector("mysql.table_facts", needs=[Need.MYSQL], timeout=10)
def table_facts(ctx: Context) -> Iterator[Artifact]:
    """Tables without a primary key, non-InnoDB tables, deprecated character sets, and
    tables that cannot be opened (with the server's reason). Opens no healthy table."""
    total = table_total(ctx)
    found = catalog(ctx, total)
    if found.innodb is None:
        ctx.notes.add("InnoDB's dictionary is not readable here (PROCESS): InnoDB facts left out",
                      partial=True)
    if found.listed is None and total > ctx.table_guard:
        ctx.notes.add(f"{total} tables is above the guard of {ctx.table_guard}: only InnoDB's "
                      "dictionary was read (non-InnoDB tables not examined)")
    if found.undescribed:
        ctx.notes.add(f"{len(found.undescribed)} tables InnoDB does not hold were not examined "
                      "(at most 100 definitions are read per run)")
    others = {n: row for n, row in found.described.items() if row.get("table_type") != "VIEW"}
    facts: Dict[str, Any] = {
        "without_primary_key": _without_key(ctx, found, others),
        "non_innodb": _non_innodb(others),
        "deprecated_charsets": _charsets(ctx, found, others),
        "unopenable": _unopenable(ctx, found, others),
    }
    facts["counts"] = {
        "without_primary_key": len(facts["without_primary_key"]),
        "non_innodb": len(facts["non_innodb"]),
        "unopenable": len(facts["unopenable"]),
        "by_engine": dict(Counter(t["engine"] for t in facts["non_innodb"])),
    }
    yield Artifact.json("mysql/table_facts.json", facts)


def _without_key(ctx: Context, found: Catalog,
                 others: Dict[Name, Dict[str, Any]]) -> List[Dict[str, Any]]:
    tables = set()
    # The catalog's dictionary read says which have InnoDB's hidden key; asked apart only
    # when it could not be read (INNODB_WITHOUT_KEY's limit kept either way).
    hidden = (found.innodb_without_key[:2000] if found.innodb_without_key is not None else
              [str(row["name"]) for row in optional(ctx, INNODB_WITHOUT_KEY) or []])
    for encoded in hidden:
        named = decode_name(encoded)
        if named:
            tables.add((named[0], named[1], "InnoDB"))
    readable = [n for n, row in others.items() if row.get("engine")]
    keyed = {(str(r["schema_name"]), str(r["table_name"]))
             for r in lookup(ctx, "primary_keys_by_name", _PRIMARY, readable)}
    for name in readable:
        if name not in keyed:
            tables.add((name[0], name[1], str(others[name]["engine"])))
    return [{"schema": s, "table": t, "engine": e} for s, t, e in sorted(tables)]


def _non_innodb(others: Dict[Name, Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [
        {"schema": s, "table": t, "engine": str(row.get("engine") or "unreadable")}
        for (s, t), row in sorted(others.items())
        if str(row.get("engine") or "").lower() != "innodb"
    ]


def _charsets(ctx: Context, found: Catalog, others: Dict[Name, Dict[str, Any]]) -> Dict[str, Any]:
    collations = {int(r["id"]): str(r["collation"]) for r in
                  optional(ctx, COLLATION_IDS, {"charsets": DEPRECATED_CHARSETS}) or []}
    counted: Counter = Counter()
    rows = optional(ctx, INNODB_CHARSET_COLUMNS, {"ids": tuple(collations)}) if collations else []
    for row in rows or []:
        named = decode_name(found.innodb_ids.get(int(row["table_id"]), ""))
        if named:
            counted[(named, collations.get(int(row["collation_id"]), "?"))] += int(row["columns"])
    columns = [{"schema": n[0], "table": n[1], "collation": c, "columns": k}
               for (n, c), k in sorted(counted.items())]
    schemas = [
        {"schema": r["schema_name"], "charset": r["charset"], "collation": r["collation"]}
        for r in optional(ctx, SCHEMA_CHARSETS) or []
        if str(r["charset"]) in DEPRECATED_CHARSETS
    ]
    tables = [
        {"schema": s, "table": t, "collation": row["collation"]}
        for (s, t), row in sorted(others.items())
        if str(row.get("collation") or "").split("_")[0] in DEPRECATED_CHARSETS
    ]
    return {
        "charsets": list(DEPRECATED_CHARSETS),
        "innodb_columns": columns,
        "schema_defaults": schemas,
        "non_innodb_table_defaults": tables,
        "utf8mb3_columns": sum(c["columns"] for c in columns
                               if str(c["collation"]).startswith(("utf8mb3_", "utf8_"))),
    }


def _unopenable(
    ctx: Context, found: Catalog, others: Dict[Name, Dict[str, Any]]
) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    to_open: List[Name] = []
    unchecked = 0
    settings = variables(ctx)
    for name, row in sorted(others.items()):
        engine = str(row.get("engine") or "")
        if not engine:
            out.append(_problem(name, None, row.get("comment"), "definition"))
        elif engine.lower() == "innodb" and found.innodb is not None:
            to_open.append(name)  # its definition says InnoDB, InnoDB does not hold it
        elif engine.lower() in ("myisam", "aria"):
            recovery = str(settings.get(f"{engine.lower()}_recover_options") or "OFF")
            if recovery.upper() in ("OFF", "", "DEFAULT"):
                to_open.append(name)
                continue
            state = _myi_state(ctx, name) if engine.lower() == "myisam" else None
            if state is None:
                unchecked += 1
            elif state:
                out.append(_problem(name, engine, state, "file header"))
    if unchecked:
        ctx.notes.add(f"{unchecked} MyISAM/Aria tables not checked for a crash: opening them "
                      "would repair a crashed one (recover options on) and their index "
                      "headers are not readable from this host")
    allowed = guard(ctx).tables_to_open(len(to_open))
    if allowed < len(to_open):
        ctx.notes.add(f"{len(to_open) - allowed} tables were not opened to check them "
                      "(the table-cache guard allows at most 20, within the caches' free slots)")
    for row in open_tables(ctx, to_open[:allowed]):
        if row.get("engine") is None or row.get("rows_estimate") is None:
            out.append(_problem((str(row["schema_name"]), str(row["table_name"])),
                                others.get((row["schema_name"], row["table_name"]), {})
                                .get("engine"), row.get("comment"), "server"))
    return out


def _problem(name: Name, engine: Optional[str], reason: Any, source: str) -> Dict[str, Any]:
    return {"schema": name[0], "table": name[1], "engine": engine,
            "reason": str(reason or "the server gave no reason"), "source": source}


def _myi_state(ctx: Context, name: Name) -> Optional[str]:
    """The crash reason from a .MYI header, "" when it is sound, None when unreadable."""
    datadir = str(ctx.session.identity.get("datadir") or "")
    path = os.path.join(datadir, name[0], f"{name[1]}.MYI")
    try:
        with open(path, "rb") as index:
            index.seek(_MYI_STATE_OFFSET)
            state = index.read(1)
    except OSError:
        return None
    if state and state[0] & _MYI_CRASHED:
        return ("marked as crashed in its .MYI header (not opened: with "
                "myisam_recover_options on, opening it would repair it)")
    return ""
