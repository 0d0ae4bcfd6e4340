"""Rules: the table and definition caches and the open files (TBL), and the query cache (QC),
which mydiag advises off, never on."""

from __future__ import annotations

from typing import Any, Dict, Optional

from report.facts import known_rates, setting
from report.finding import Evidence, Hit, Insufficient, NotApplicable
from report.model import Bundle
from report.registry import rule
from report.window import guarded_ratio

STATUS = "mysql/global_status.jsonl"
VARIABLES = "mysql/global_variables.json"
#: MySQL 8.0 removed the query cache.
_QC_VERSIONS = {"mysql": (None, (8, 0))}
_QC_OFF = ("query_cache_type=OFF and query_cache_size=0, at run time (SET GLOBAL query_cache_type=OFF; "
           "SET GLOBAL query_cache_size=0) and in the option file ([mysqld] query_cache_type=0, "
           "query_cache_size=0) so that it stays off after a restart")


def _query_cache_on(b: Bundle) -> bool:
    """True when the query cache caches: a type other than OFF and a size above zero."""
    if (b.variable("have_query_cache") or "YES").upper() == "NO":
        return False
    kind = (b.variable("query_cache_type") or "").strip().upper()
    size = b.number("query_cache_size") or 0
    return kind not in ("", "OFF", "0") and size > 0


@rule("TBL-01", "Tables are opened again and again: the table cache misses",
      group="caches", severity="warning", window=True, needs=(STATUS, VARIABLES),
      advice="Raise table_open_cache to hold the tables in use (Open_tables at its limit during "
             "the window says it is full): SET GLOBAL table_open_cache=N and in the option file, "
             "with open_files_limit large enough (see TBL-03). If Open_tables stays below the "
             "limit, look for FLUSH TABLES in cron jobs or backup tools instead.",
      risk="Each cached table keeps a table handle (a few KiB, more with many partitions or "
           "columns) and, for MyISAM, file descriptors.",
      verify="Table_open_cache_misses (or Opened_tables) per second falls over a new window.")
def table_cache_misses(b: Bundle) -> Optional[Hit]:
    """Checks the share of table opens during the window that missed the table cache
    (Table_open_cache_misses / (hits + misses)), with the rate of Opened_tables; servers
    without the hit and miss counters are judged by the Opened_tables rate alone.

    **Why it matters**: a miss opens the table again: the definition, the handler, the files
    (and on MariaDB a lock on the table definition cache). A cache too small for the tables
    in use turns every statement into opens and closes, visible as CPU and as
    "Opening tables" in the processlist.

    **Example**: `table_open_cache=400`, 3,000 tables in use, 25% of lookups missing, 80
    tables opened per second; Open_tables stays at 400.

    **Fix**: raise `table_open_cache` (and `open_files_limit` with it). Note that the window
    includes mydiag's own reads, which open few tables by design.
    """
    w = b.window
    rate = w.rate("Opened_tables")
    values: Dict[str, Any] = {"Opened_tables_per_s": round(rate, 2),
                              "table_open_cache": setting(b, "table_open_cache")}
    share = None
    if w.has("Table_open_cache_misses") and w.has("Table_open_cache_hits"):
        misses = w.delta("Table_open_cache_misses")
        share = guarded_ratio(misses, misses + w.delta("Table_open_cache_hits"), 1000, "table cache lookups")
        values["miss_share"] = round(share, 4)
    elif w.delta("Opened_tables") < 100:
        raise Insufficient(f"Opened_tables: only {w.delta('Opened_tables'):.0f} opens in the window "
                           "(at least 100 needed without the cache hit and miss counters)")
    if rate < 1 or (share is not None and share < 0.05):
        return None
    limit = b.number("table_open_cache")
    if w.has("Open_tables"):
        values["Open_tables_max"] = w.gauge("Open_tables").max
    full = limit is not None and values.get("Open_tables_max", 0) >= 0.95 * limit
    miss = f"{share:.0%} of table cache lookups miss, " if share is not None else ""
    return Hit(f"{miss}{rate:.1f} tables opened per second with table_open_cache="
               f"{setting(b, 'table_open_cache')}{' (full)' if full else ''}",
               evidence=[Evidence(STATUS, values, samples=w.evidence_samples("Opened_tables"))])


@rule("TBL-02", "The table definition cache is too small",
      group="caches", severity="notice", window=True, needs=(STATUS, VARIABLES),
      advice="Raise table_definition_cache above the number of tables in use (at least the "
             "tables of mysql/schema_overview.json that the application touches): it is dynamic; "
             "persist it in the option file.",
      risk="Each cached definition costs a few KiB of memory.",
      verify="Opened_table_definitions per second falls to near zero over a new window.")
def definition_cache_small(b: Bundle) -> Optional[Hit]:
    """Checks the rate at which table definitions are read again (Opened_table_definitions)
    during the window while the cache is full (Open_table_definitions at
    `table_definition_cache`).

    **Why it matters**: a definition evicted from the cache must be read again from the data
    dictionary or the .frm file before the table can be opened; InnoDB also keeps its own
    dictionary entry for each, and with a small cache both churn.

    **Example**: `table_definition_cache=400` with 5,000 tables: 30 definitions read per
    second, Open_table_definitions pinned at 400.

    **Fix**: raise `table_definition_cache`.
    """
    w = b.window
    opened = w.delta("Opened_table_definitions")
    rate = w.rate("Opened_table_definitions")
    if opened < 30 or rate < 0.5:
        return None
    limit = b.number("table_definition_cache")
    cached = w.gauge("Open_table_definitions").max if w.has("Open_table_definitions") else None
    fill = guarded_ratio(min(cached, limit), limit, 1, "table_definition_cache") \
        if cached is not None and limit is not None else None
    if fill is not None and fill < 0.9:
        return None
    values: Dict[str, Any] = {"Opened_table_definitions_per_s": round(rate, 2),
                              "table_definition_cache": setting(b, "table_definition_cache")}
    if cached is not None:
        values["Open_table_definitions_max"] = cached
    return Hit(f"{rate:.1f} table definitions read per second with table_definition_cache="
               f"{setting(b, 'table_definition_cache')}",
               evidence=[Evidence(STATUS, values, samples=w.evidence_samples("Opened_table_definitions"))])


@rule("TBL-03", "open_files_limit is too low for table_open_cache and max_connections",
      group="caches", severity="warning", needs=(VARIABLES,),
      advice="Raise the open-files limit of the mysqld process (LimitNOFILE= in the systemd unit's "
             "drop-in, or open_files_limit in the option file when mysqld starts as root) to at "
             "least table_open_cache × 2 + max_connections + 10, then restart.",
      risk="A restart. File descriptors are cheap; the kernel's fs.file-max must allow the total.",
      verify="After the restart, open_files_limit shows the new value and the error log has no "
             "'Changed limits' warning.")
def open_files_limit_low(b: Bundle) -> Optional[Hit]:
    """Checks `open_files_limit` against what `table_open_cache` and `max_connections` need:
    about two descriptors per cached table (a MyISAM table has two files; a partitioned table
    one per partition), one per connection, and a few for the logs.

    **Why it matters**: at start-up the server lowers `table_open_cache` and
    `max_connections` itself when the limit is too low (error log: "Changed limits"); at run
    time it fails with "Too many open files" (errno 24) when the limit is reached.

    **Example**: `open_files_limit=1024`, `table_open_cache=4000`, `max_connections=500`.

    **Fix**: raise the process's limit (systemd `LimitNOFILE`) and restart.
    """
    limit = b.number("open_files_limit")
    cache = b.number("table_open_cache")
    connections = b.number("max_connections")
    if limit is None or cache is None or connections is None:
        raise Insufficient("open_files_limit, table_open_cache or max_connections is not a number")
    needed = cache * 2 + connections + 10
    if limit >= needed:
        return None
    return Hit(f"open_files_limit={limit:.0f} is below table_open_cache × 2 + max_connections + 10 = "
               f"{needed:.0f}",
               severity="notice" if limit >= cache + connections + 10 else None,
               evidence=[Evidence(VARIABLES, {"open_files_limit": limit, "table_open_cache": cache,
                                              "max_connections": connections, "needed": needed})])


@rule("TBL-04", "Open files stay close to open_files_limit",
      group="caches", severity="warning", window=True, needs=(STATUS, VARIABLES),
      advice="Raise the process's open-files limit (systemd LimitNOFILE, open_files_limit) before "
             "the server reaches it; find what holds the files (MyISAM or partitioned tables in the "
             "table cache, many binary or relay logs).",
      risk="A restart for a new process limit.",
      verify="Open_files stays below 75% of open_files_limit over a new window.")
def open_files_near_limit(b: Bundle) -> Optional[Hit]:
    """Checks the share of the window's samples in which Open_files (files the server opened
    through its own file layer: MyISAM and Aria data and index files, logs, temporary files;
    not InnoDB tablespaces) is above 85% of `open_files_limit`.

    **Why it matters**: at the limit the server fails to open tables or temporary files with
    "Too many open files" (errno 24), and statements fail.

    **Example**: `open_files_limit=5000`, Open_files between 4,600 and 4,900 in every sample.

    **Fix**: raise the limit; look at what holds the files.
    """
    limit = b.number("open_files_limit")
    if limit is None or limit <= 0:
        raise Insufficient("open_files_limit is not a positive number")
    w = b.window
    share = w.above("Open_files", 0.85 * limit)
    if share < 0.5:
        return None
    files = w.gauge("Open_files")
    return Hit(f"Open_files above 85% of open_files_limit={limit:.0f} in {share:.0%} of the samples "
               f"(max {files.max:.0f})",
               severity="error" if files.max >= 0.95 * limit else None,
               evidence=[Evidence(STATUS, {"open_files_limit": limit, "Open_files_max": files.max,
                                           "share_of_samples": round(share, 3)},
                                  samples=w.evidence_samples("Open_files"))])


@rule("QC-01", "The query cache is on",
      group="caches", severity="warning", versions=_QC_VERSIONS, needs=(VARIABLES,),
      advice="Turn the query cache off: " + _QC_OFF + ". Never turn it on to speed a server up.",
      risk="Statements that were answered from the cache run again: measure their latency in the "
           "top digests after the change; a hot cache hit rate can hide a missing index.",
      verify="SHOW GLOBAL VARIABLES LIKE 'query_cache%' shows OFF and 0; the 'Waiting for query "
             "cache lock' state disappears from the processlist.")
def query_cache_on(b: Bundle) -> Optional[Hit]:
    """Checks whether the query cache is enabled (`query_cache_type` not OFF and
    `query_cache_size` above zero). The rule applies to MariaDB and MySQL before 8.0 (MySQL
    8.0 removed the query cache).

    **Why it matters**: every SELECT looks the cache up and every write to a table
    invalidates all its cached results, both under one global mutex: on more than a few
    cores the cache serializes the server ("Waiting for query cache lock"), and the
    invalidations make it worthless on tables that change. MySQL removed it for this reason;
    MariaDB ships it off.

    **Example**: `query_cache_type=ON`, `query_cache_size=256M`, 8 cores, threads waiting for
    the query cache lock under load.

    **Fix**: both variables off and zero, at run time and in the option file.
    """
    if not _query_cache_on(b):
        return None
    values: Dict[str, Any] = {"query_cache_type": setting(b, "query_cache_type"),
                              "query_cache_size": setting(b, "query_cache_size")}
    w = b.window
    values.update(known_rates(w, ("Qcache_hits", "Qcache_inserts", "Qcache_lowmem_prunes", "Com_select")))
    return Hit(f"The query cache is on (query_cache_type={setting(b, 'query_cache_type')}, "
               f"query_cache_size={setting(b, 'query_cache_size')})",
               evidence=[Evidence(VARIABLES, values)])


def _need_query_cache(b: Bundle) -> None:
    if not _query_cache_on(b):
        raise NotApplicable("the query cache is off")


@rule("QC-02", "The query cache evicts results for lack of memory during the window",
      group="caches", severity="warning", window=True, versions=_QC_VERSIONS, needs=(STATUS, VARIABLES),
      advice="Turn the query cache off (" + _QC_OFF + "); do not make it larger: a larger cache "
             "holds the global mutex longer on every invalidation.",
      risk="Statements answered from the cache run again: watch the top digests after the change.",
      verify="SHOW GLOBAL VARIABLES LIKE 'query_cache%' shows OFF and 0.")
def query_cache_prunes(b: Bundle) -> Optional[Hit]:
    """Checks the rate of Qcache_lowmem_prunes during the window, when the query cache is on:
    results evicted to make room for new ones.

    **Why it matters**: evictions under the global query cache mutex are work done for
    results that are thrown away; a cache that prunes constantly costs more than it saves.
    Tuning scripts advise a larger `query_cache_size`, which makes each invalidation scan
    longer while holding the mutex.

    **Example**: 40 prunes per second with `query_cache_size=64M`.

    **Fix**: the query cache off, not larger.
    """
    _need_query_cache(b)
    w = b.window
    prunes = w.delta("Qcache_lowmem_prunes")
    rate = w.rate("Qcache_lowmem_prunes")
    if prunes < 10 or rate < 0.1:
        return None
    return Hit(f"{rate:.1f} query cache evictions per second for lack of memory "
               f"(query_cache_size={setting(b, 'query_cache_size')})",
               evidence=[Evidence(STATUS, {"Qcache_lowmem_prunes_per_s": round(rate, 2),
                                           "Qcache_lowmem_prunes": prunes},
                                  samples=w.evidence_samples("Qcache_lowmem_prunes"))])


@rule("QC-03", "The query cache's memory is fragmented",
      group="caches", severity="notice", versions=_QC_VERSIONS, needs=(STATUS, VARIABLES),
      advice="Turn the query cache off (" + _QC_OFF + "); neither resizing it nor a routine FLUSH "
             "QUERY CACHE (which holds the mutex while it defragments) is a fix.",
      risk="Statements answered from the cache run again: watch the top digests after the change.",
      verify="SHOW GLOBAL VARIABLES LIKE 'query_cache%' shows OFF and 0.")
def query_cache_fragmented(b: Bundle) -> Optional[Hit]:
    """Checks the share of free blocks among the query cache's blocks
    (Qcache_free_blocks / Qcache_total_blocks, last sample) when the cache is on.

    **Why it matters**: a fragmented cache has memory it cannot use for a result of the
    needed size, so it prunes while memory is free, and every allocation walks the free
    list under the global mutex.

    **Example**: 9,000 free blocks among 20,000, with Qcache_lowmem_prunes growing.

    **Fix**: the query cache off.
    """
    _need_query_cache(b)
    w = b.window
    free, total = w.last("Qcache_free_blocks"), w.last("Qcache_total_blocks")
    share = guarded_ratio(free, total, 100, "query cache blocks")
    if share < 0.2:
        return None
    return Hit(f"{share:.0%} of the query cache's {total:.0f} blocks are free fragments",
               evidence=[Evidence(STATUS, {"Qcache_free_blocks": free, "Qcache_total_blocks": total,
                                           "free_share": round(share, 3)})])
