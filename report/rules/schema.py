"""Rules: schema — what the tables are made of (keys, engines, sizes, character sets, definers).

Every rule here reads a single reading of the catalog (mysql/table_facts.json,
mysql/schema_overview.json, mysql/stored_objects.json): none is a window rule. The bundle
holds no AUTO_INCREMENT counters (no collector reads them: information_schema.TABLES'
AUTO_INCREMENT opens every table), so there is no "AUTO_INCREMENT near its maximum" rule;
SCH-07 (space held by tablespace files beyond their data) takes its place.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from report.facts import mapping, rows
from report.finding import Evidence, Hit, Insufficient
from report.model import Bundle, to_number
from report.registry import rule
from report.window import guarded_ratio

FACTS = "mysql/table_facts.json"
OVERVIEW = "mysql/schema_overview.json"
STORED = "mysql/stored_objects.json"
#: How many tables a finding names; the rest are counted.
NAMED = 20
_SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
GIB = 1 << 30


def _name(row: Dict[str, Any]) -> str:
    schema = str(row.get("schema") or row.get("schema_name") or "?")[:64]
    table = str(row.get("table") or row.get("table_name") or row.get("name") or "?")[:64]
    return f"{schema}.{table}"


def _facts(b: Bundle) -> Dict[str, Any]:
    facts = b.json(FACTS)
    if not isinstance(facts, dict):
        raise Insufficient(f"{FACTS} is not a JSON object")
    return facts


def _user(row: Dict[str, Any]) -> bool:
    return str(row.get("schema") or row.get("schema_name") or "").lower() not in _SYSTEM_SCHEMAS


def _count(listed: List[Dict[str, Any]], counted: Any) -> int:
    """The collector's count when it is a sane number, else the list's length."""
    number = to_number(counted)
    if number is None or number < len(listed) or number > 1e9:
        return len(listed)
    return int(number)


@rule("SCH-01", "Tables without a primary key",
      group="schema", severity="warning", needs=(FACTS,),
      advice="Add a primary key to each listed table: an existing NOT NULL unique column, or a new "
             "`id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY`. Run the ALTER with an "
             "online schema-change tool (pt-online-schema-change, gh-ost) or ALGORITHM=INPLACE "
             "on a quiet hour; on a replica first.",
      risk="Adding a key rebuilds the table (I/O and disk space about its size); an application "
           "that uses `SELECT *` or INSERT without column lists sees a new column.",
      verify="The table no longer appears in mysql/table_facts.json `without_primary_key` of a new "
             "bundle; replica lag during row-based updates of those tables drops.")
def tables_without_primary_key(b: Bundle) -> Optional[Hit]:
    """Checks for tables that have no primary key (InnoDB gave them a hidden one).

    **Why it matters**: InnoDB clusters every table by its primary key; without one it adds a
    hidden 6-byte row id shared by the whole server (a global mutex on insert). With
    row-based replication each UPDATE or DELETE on such a table makes the replica scan the
    whole table for every row changed: replicas fall hours behind. Galera/group replication
    refuse or misbehave on them, and online schema-change tools need a key.

    **Example**: `shop.audit_log` (InnoDB) was created without a key; a nightly
    `DELETE … WHERE created < …` of 2 million rows replays on the replica as 2 million
    full-table scans.

    **Fix**: add a primary key (an existing NOT NULL unique column, or a surrogate
    AUTO_INCREMENT column) with an online schema-change tool.
    """
    facts = _facts(b)
    tables = [row for row in rows(facts.get("without_primary_key")) if _user(row)]
    if not tables:
        return None
    total = max(len(tables), _count(tables, mapping(facts.get("counts")).get("without_primary_key")))
    named = [_name(row) for row in tables[:NAMED]]
    more = f" and {total - len(named)} more" if total > len(named) else ""
    return Hit(f"{total} table(s) without a primary key: {', '.join(named)}{more}",
               evidence=[Evidence(FACTS, {"count": total, "tables": named,
                                          "engines": sorted({str(r.get("engine"))[:32] for r in tables})})])


#: Engines that survive a crash without losing committed data (or are not data at all).
_SAFE_ENGINES = ("innodb", "rocksdb", "ndbcluster", "ndb", "sequence", "blackhole", "performance_schema")


@rule("SCH-02", "MyISAM, Aria and other tables that are not crash-safe",
      group="schema", severity="warning", needs=(FACTS,),
      advice="Convert the listed tables to InnoDB (`ALTER TABLE t ENGINE=InnoDB`, or an online "
             "schema-change tool for big ones) unless a feature of the engine is really used "
             "(MEMORY for throw-away data). Check FULLTEXT and spatial indexes: InnoDB has both "
             "since MySQL 5.6/5.7 and MariaDB 10.0.",
      risk="The conversion rebuilds each table and takes a metadata lock; InnoDB tables need "
           "somewhat more disk space and COUNT(*) without WHERE becomes a scan.",
      verify="mysql/table_facts.json `non_innodb` of a new bundle lists no user table; "
             "no more 'is marked as crashed' lines in the error log.")
def non_innodb_tables(b: Bundle) -> Optional[Hit]:
    """Checks for user tables in engines that are not crash-safe (MyISAM, Aria, MEMORY, CSV,
    ARCHIVE, …).

    **Why it matters**: MyISAM has no transactions and no crash recovery: after a crash or an
    OOM kill a table can be marked as crashed and need a repair (hours on a big table), and
    writes lock the whole table. Aria is crash-safe only for TRANSACTIONAL=1 tables and still
    locks whole tables; MEMORY tables are empty after a restart. Backups with
    `--single-transaction` are not consistent for them.

    **Example**: `shop.sessions` is MyISAM; after a power loss the application fails with
    "Table './shop/sessions' is marked as crashed and should be repaired".

    **Fix**: `ALTER TABLE … ENGINE=InnoDB` (online schema-change tool for big tables).
    """
    facts = _facts(b)
    tables = [row for row in rows(facts.get("non_innodb"))
              if _user(row) and str(row.get("engine") or "").lower() not in _SAFE_ENGINES]
    if not tables:
        return None
    engines: Dict[str, int] = {}
    for row in tables:
        engine = str(row.get("engine") or "unreadable")[:32]
        engines[engine] = engines.get(engine, 0) + 1
    named = [f"{_name(row)} ({str(row.get('engine') or 'unreadable')[:32]})" for row in tables[:NAMED]]
    more = f" and {len(tables) - len(named)} more" if len(tables) > len(named) else ""
    kinds = ", ".join(f"{count} {engine}" for engine, count in sorted(engines.items()))
    return Hit(f"{len(tables)} user table(s) are not crash-safe ({kinds}): {', '.join(named)}{more}",
               evidence=[Evidence(FACTS, {"count": len(tables), "by_engine": engines, "tables": named})])


def _size(row: Dict[str, Any]) -> float:
    """A table's bytes: its files when known, else its data and indexes from statistics."""
    files = max(to_number(row.get("allocated_bytes")) or 0, to_number(row.get("file_bytes")) or 0)
    stats = (to_number(row.get("data_bytes")) or 0) + (to_number(row.get("index_bytes")) or 0)
    return max(files, stats, 0.0)


def _schema_total(overview: Dict[str, Any]) -> float:
    total = 0.0
    for schema in rows(overview.get("schemas")):
        if str(schema.get("schema") or "").lower() in _SYSTEM_SCHEMAS:
            continue
        total += _size(schema)
    return total


#: A table above this is hard to back up, alter or restore within a working day.
HUGE_BYTES = 100 * GIB


@rule("SCH-03", "Huge tables: one table above 100 GiB or holding most of the data",
      group="schema", severity="notice", needs=(OVERVIEW,), confidence="medium",
      advice="Plan for the table's size: archive or purge old rows in small batches (pt-archiver), "
             "partition by date when queries filter on it so old partitions can be dropped, and "
             "make sure schema changes use an online tool and backups are tested at this size.",
      risk="Purging in big batches causes replica lag and undo growth; partitioning needs the "
           "partition key in every unique key (a table rebuild).",
      verify="The table's allocated bytes in mysql/schema_overview.json stop growing (or shrink "
             "after OPTIMIZE/rebuild) in later bundles.")
def huge_tables(b: Bundle) -> Optional[Hit]:
    """Checks the largest tables (schema_overview `top_tables`) against 100 GiB and against the
    rest of the data (a table holding more than half of all user data, above 1 GiB in total).

    **Why it matters**: one huge table dominates everything operational: an ALTER rebuilds it
    for hours, a restore or a new replica takes as long as copying it, its buffer-pool
    footprint pushes other tables out, and a purge of old rows creates replica lag.

    **Example**: `app.events` holds 420 GiB of a 450 GiB server (93%): adding a column
    takes 9 hours, and only the newest month of it is ever read.

    **Fix**: archive or purge old rows in small batches, partition by date where queries
    allow, and use online schema-change tools.
    """
    overview = b.json(OVERVIEW)
    if not isinstance(overview, dict):
        raise Insufficient(f"{OVERVIEW} is not a JSON object")
    top = [row for row in rows(overview.get("top_tables")) if _user(row)]
    if not top:
        raise Insufficient("schema_overview holds no table sizes (no top_tables)")
    ranked = sorted(top, key=_size, reverse=True)
    total = max(_schema_total(overview), sum(_size(r) for r in ranked))
    largest = ranked[0]
    size = _size(largest)
    share = guarded_ratio(size, total, GIB, "user data bytes") if total >= GIB else None
    huge = [r for r in ranked if _size(r) > HUGE_BYTES]
    if not huge and (share is None or share <= 0.5):
        return None
    listed = [{"table": _name(r), "engine": str(r.get("engine") or "")[:32],
               "bytes": int(_size(r)), "rows_estimate": to_number(r.get("rows_estimate"))}
              for r in (huge or [largest])[:NAMED]]
    if huge:
        summary = (f"{len(huge)} table(s) above 100 GiB; the largest, {_name(largest)}, holds "
                   f"{size / GIB:,.1f} GiB")
    else:
        summary = f"{_name(largest)} holds {size / GIB:,.1f} GiB"
    if share is not None:
        summary += f" ({share:.0%} of {total / GIB:,.1f} GiB of user data)"
    return Hit(summary, evidence=[Evidence(OVERVIEW, {"tables": listed, "total_bytes": int(total),
                                                      "largest_share": None if share is None else
                                                      round(share, 3)})])


@rule("SCH-04", "Tables that cannot be opened (corrupt, crashed or missing files)",
      group="schema", severity="error", needs=(FACTS,),
      advice="For each table read the server's reason: a MyISAM/Aria table marked as crashed needs "
             "`REPAIR TABLE` (after a file copy of it); an InnoDB table whose .ibd file is missing "
             "needs the file restored from a backup (or `DROP TABLE` if it is not needed); a "
             "definition the server cannot read needs the .frm restored. Take a backup of the "
             "datadir files first.",
      risk="REPAIR can lose rows of a badly damaged MyISAM table; dropping a table whose file is "
           "missing is final.",
      verify="mysql/table_facts.json `unopenable` of a new bundle is empty; `CHECK TABLE` on each "
             "returns OK.")
def unopenable_tables(b: Bundle) -> Optional[Hit]:
    """Checks for tables the server could not open: a crashed MyISAM/Aria table, an InnoDB
    table whose tablespace is missing, a definition the server cannot read.

    **Why it matters**: every query on such a table fails; a backup that reads all tables
    stops at it; a crashed MyISAM table silently returns partial data until repaired.

    **Example**: `shop.orders_2019` says "Tablespace is missing for table" after a file was
    deleted by hand; mysqldump fails at it every night.

    **Fix**: restore the file from a backup, REPAIR a crashed MyISAM/Aria table, or drop what
    is no longer needed.
    """
    facts = _facts(b)
    tables = rows(facts.get("unopenable"))
    if not tables:
        return None
    listed = [{"table": _name(r), "engine": str(r.get("engine") or "")[:32] or None,
               "reason": str(r.get("reason") or "")[:300], "source": str(r.get("source") or "")[:32]}
              for r in tables[:NAMED]]
    total = _count(tables, mapping(facts.get("counts")).get("unopenable"))
    shown = ", ".join(f"{t['table']} ({t['reason'][:80]})" for t in listed[:5])
    more = f" and {total - 5} more" if total > 5 else ""
    return Hit(f"{total} table(s) cannot be opened: {shown}{more}",
               evidence=[Evidence(FACTS, {"count": total, "tables": listed})])


def _columns(row: Dict[str, Any]) -> int:
    return int(max(0.0, min(to_number(row.get("columns")) or 0, 1e7)))


@rule("SCH-05", "Columns and defaults in deprecated character sets (utf8mb3 and others)",
      group="schema", severity="notice", needs=(FACTS,),
      advice="Convert to utf8mb4 table by table (`ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4 "
             "COLLATE utf8mb4_unicode_520_ci` on MariaDB, `utf8mb4_0900_ai_ci` on MySQL 8), and "
             "change the schema defaults (`ALTER DATABASE d CHARACTER SET utf8mb4`). Check first "
             "that indexed VARCHAR columns still fit the index prefix limit (3072 bytes with "
             "DYNAMIC rows, 767 with COMPACT): VARCHAR(255) takes 1020 bytes in utf8mb4.",
      risk="CONVERT rebuilds the table; comparisons and sort order can change with the new "
           "collation (unique keys may then collide); the connection character set of the "
           "application must be utf8mb4 too.",
      verify="mysql/table_facts.json `deprecated_charsets` of a new bundle counts no column; an "
             "emoji round-trips through the application.")
def deprecated_charsets(b: Bundle) -> Optional[Hit]:
    """Checks for columns, schema defaults and table defaults in utf8mb3 (`utf8`) and the other
    character sets MySQL 8.0 deprecated (ucs2, macroman, macce, dec8, hp8).

    **Why it matters**: utf8mb3 stores at most 3 bytes per character: emoji and many CJK
    characters are rejected or cut ("Incorrect string value: '\\xF0\\x9F…'"). MySQL 8.0
    deprecated it and will make `utf8` mean utf8mb4; joining a utf8mb3 column to a utf8mb4
    column cannot use an index (a conversion on every row).

    **Example**: 214 columns of `shop` are utf8mb3_general_ci; customers' names with an
    emoji fail to save.

    **Fix**: convert to utf8mb4 (and its current collation), checking index prefix limits.
    """
    facts = _facts(b)
    charsets = mapping(facts.get("deprecated_charsets"))
    columns = [row for row in rows(charsets.get("innodb_columns")) if _user(row)]
    schemas = [row for row in rows(charsets.get("schema_defaults")) if _user(row)]
    tables = [row for row in rows(charsets.get("non_innodb_table_defaults")) if _user(row)]
    column_count = sum(_columns(r) for r in columns)
    if not (column_count or schemas or tables):
        return None
    utf8mb3 = to_number(charsets.get("utf8mb3_columns"))
    collations: Dict[str, int] = {}
    for row in columns:
        name = str(row.get("collation") or "?")[:64]
        collations[name] = collations.get(name, 0) + _columns(row)
    parts = []
    if column_count:
        parts.append(f"{column_count} column(s) in {len(columns)} table(s)")
    if schemas:
        names = ", ".join(f"{str(s.get('schema'))[:64]} {str(s.get('charset'))[:32]}" for s in schemas[:5])
        parts.append(f"{len(schemas)} schema default(s) ({names})")
    if tables:
        parts.append(f"{len(tables)} non-InnoDB table default(s)")
    return Hit("Deprecated character sets: " + "; ".join(parts),
               evidence=[Evidence(FACTS, {"columns": column_count, "utf8mb3_columns": utf8mb3,
                                          "by_collation": collations,
                                          "tables": [_name(r) for r in columns[:NAMED]],
                                          "schema_defaults": [str(s.get("schema"))[:64]
                                                              for s in schemas[:NAMED]],
                                          "table_defaults": [_name(r) for r in tables[:NAMED]]})])


@rule("SCH-06", "Views, routines, triggers or events whose definer account does not exist",
      group="schema", severity="warning", needs=(STORED,),
      advice="For each object either recreate the definer account (with the privileges the object "
             "needs) or change the definer to an existing account: `ALTER DEFINER=… VIEW`, "
             "`ALTER EVENT … DEFINER=…`; routines and triggers must be dropped and re-created "
             "with the new DEFINER (take their definitions with SHOW CREATE first).",
      risk="A new definer with broader privileges widens what the object can do for its callers "
           "(SQL SECURITY DEFINER); re-creating a trigger leaves a short moment without it.",
      verify="mysql/stored_objects.json `missing_definer_count` of a new bundle is 0; the objects "
             "run without 'The user specified as a definer does not exist'.")
def missing_definers(b: Bundle) -> Optional[Hit]:
    """Checks for stored objects (views, procedures, functions, triggers, events) whose DEFINER
    account no longer exists.

    **Why it matters**: such an object fails the moment it runs with "The user specified as a
    definer ('app'@'10.%') does not exist" (error 1449): a trigger breaks every INSERT on its
    table, a view every SELECT, an event silently stops. It usually appears after an account
    was dropped or a schema was restored on another server.

    **Example**: after `DROP USER 'deploy'@'%'`, the trigger `shop.orders_ai` makes every new
    order fail.

    **Fix**: recreate the account or move the objects to an existing definer.
    """
    stored = b.json(STORED)
    if not isinstance(stored, dict):
        raise Insufficient(f"{STORED} is not a JSON object")
    count = stored.get("missing_definer_count")
    missing = rows(stored.get("missing_definers"))
    if count is None and not missing:
        raise Insufficient("the account list was not readable: missing definers were not checked")
    total = _count(missing, count)
    if not total:
        return None
    listed = [{"object": _name(r), "type": str(r.get("type") or "")[:16],
               "definer": str(r.get("definer") or "")[:100]} for r in missing[:NAMED]]
    definers = sorted({item["definer"] for item in listed})
    return Hit(f"{total} stored object(s) have a definer that does not exist "
               f"({', '.join(definers[:5])})",
               evidence=[Evidence(STORED, {"count": total, "objects": listed})])


#: Free space inside a tablespace worth reclaiming: above this and above half of the file.
RECLAIM_BYTES = 10 * GIB


@rule("SCH-07", "Tablespace files much larger than their data (reclaimable space)",
      group="schema", severity="notice", needs=(OVERVIEW,), confidence="medium",
      advice="Rebuild the listed tables when disk space matters (`OPTIMIZE TABLE t` or "
             "`ALTER TABLE t FORCE`, online for InnoDB; an online schema-change tool on a busy "
             "server). Rows deleted in bulk leave free pages that InnoDB reuses for the same "
             "table but never returns to the filesystem.",
      risk="The rebuild needs free disk space about the size of the table's data and causes I/O "
           "and replica lag for its duration.",
      verify="The table's file_bytes in mysql/schema_overview.json of a new bundle is close to "
             "its data plus index bytes.")
def reclaimable_space(b: Bundle) -> Optional[Hit]:
    """Checks the largest InnoDB tables for files much larger than their data and indexes
    (file bytes minus statistics' data and index bytes above 10 GiB and above half the file).

    **Why it matters**: after a big purge the file keeps its size: disk fills, backups copy
    empty pages, and the statistics still look small. (The bundle holds no AUTO_INCREMENT
    counters, so this rule takes the place of an "AUTO_INCREMENT near its maximum" check.)

    **Example**: `app.events` has a 300 GiB .ibd file but only 40 GiB of data after old rows
    were deleted: 260 GiB could be returned to the disk.

    **Fix**: rebuild the table (OPTIMIZE TABLE / ALTER TABLE … FORCE) when the space is needed.
    """
    overview = b.json(OVERVIEW)
    if not isinstance(overview, dict):
        raise Insufficient(f"{OVERVIEW} is not a JSON object")
    top = [row for row in rows(overview.get("top_tables"))
           if _user(row) and str(row.get("engine") or "").lower() == "innodb"]
    if not top:
        raise Insufficient("schema_overview holds no InnoDB table sizes")
    wasted = []
    for row in top:
        files = max(to_number(row.get("allocated_bytes")) or 0, to_number(row.get("file_bytes")) or 0)
        data = to_number(row.get("data_bytes"))
        if data is None or files <= 0:
            continue
        used = data + (to_number(row.get("index_bytes")) or 0)
        free = files - used
        if free > RECLAIM_BYTES and guarded_ratio(free, files, RECLAIM_BYTES, "file bytes") > 0.5:
            wasted.append((free, row, files))
    if not wasted:
        return None
    wasted.sort(key=lambda item: -item[0])
    total = sum(item[0] for item in wasted)
    listed = [{"table": _name(r), "file_bytes": int(f), "free_bytes": int(free)}
              for free, r, f in wasted[:NAMED]]
    return Hit(f"{len(wasted)} table(s) hold {total / GIB:,.0f} GiB of files beyond their data; "
               f"the most: {listed[0]['table']} ({wasted[0][0] / GIB:,.0f} GiB)",
               evidence=[Evidence(OVERVIEW, {"tables": listed, "reclaimable_bytes": int(total)},
                                  note="data and index bytes come from InnoDB's persistent statistics")])
