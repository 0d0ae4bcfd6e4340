"""Rules: temporary tables, sorts and joins (TMP), each with the statement digests behind it.

The digests come from report/digests.py: the window's activity per digest (the end reading
of events_statements_summary_by_digest minus the start reading).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from report.digests import DIGESTS as DIGESTS_START
from report.digests import DIGESTS_END, top_digests, window_digests
from report.facts import known_rates
from report.finding import Evidence, Hit, Insufficient, NotApplicable
from report.model import Bundle
from report.registry import rule
from report.window import guarded_ratio

STATUS = "mysql/global_status.jsonl"
VARIABLES = "mysql/global_variables.json"
MIB = 1 << 20


def catalog_tmp_disk_tables(b: Bundle) -> Optional[int]:
    """On-disk temporary tables the window's catalog digests made (None without digests)."""
    try:
        digests = window_digests(b)
    except Insufficient:
        return None
    return sum(d["tmp_disk_tables"] for d in digests if d["catalog"] and not d["upper_bound"])


def _digest_note(b: Bundle, rows: List[Dict[str, Any]], counters: Tuple[str, ...]) -> str:
    if rows:
        return f"the digests whose {' / '.join(counters)} grew most during the window"
    if not (b.has(DIGESTS_START) and b.has(DIGESTS_END)):
        return ("no statement digests (performance_schema: "
                f"{b.why_missing(DIGESTS_END if b.has(DIGESTS_START) else DIGESTS_START)})")
    return f"no digest's {' / '.join(counters)} grew during the window (outside the collected top N)"


def _digest_evidence(b: Bundle, counters: Tuple[str, ...]) -> Evidence:
    rows = top_digests(b, counters)
    return Evidence(DIGESTS_END, digests=rows, note=_digest_note(b, rows, counters))


def _names(rows: List[Dict[str, Any]]) -> str:
    return ", ".join(str(r["digest"])[:12] for r in rows[:3])


@rule("TMP-01", "Temporary tables go to disk during the window",
      group="workload", severity="warning", window=True, needs=(STATUS,),
      advice="Work on the digests named in the evidence: an index that serves their GROUP BY / "
             "ORDER BY / DISTINCT avoids the temporary table; selecting fewer columns (no TEXT/BLOB "
             "in the temporary table's rows, which sends it to disk on MariaDB and MySQL before "
             "8.0.13) keeps it in memory. Raise tmp_table_size and max_heap_table_size together "
             "only when these tables go to disk for their size and the memory allows it (each "
             "connection may hold one).",
      risk="An index costs writes and space; a larger tmp_table_size is per temporary table, per "
           "connection: the worst case is tmp_table_size × the concurrent statements.",
      verify="Created_tmp_disk_tables per second, and its share of Created_tmp_tables, fall over a "
             "new window; the digests' tmp_disk_tables stop growing.")
def tmp_disk_tables(b: Bundle) -> Optional[Hit]:
    """Checks the rate of internal temporary tables created on disk during the window
    (Created_tmp_disk_tables) and their share of all internal temporary tables
    (Created_tmp_tables), and names the digests whose `tmp_disk_tables` grew.

    **Why it matters**: a GROUP BY, DISTINCT, UNION or derived table without a usable index
    materialises a temporary table; past `tmp_table_size` / `max_heap_table_size` (or with
    a BLOB/TEXT column) it is written to disk, and the statement becomes disk-bound.

    **Example**: 12 on-disk temporary tables per second, 40% of all temporary tables, nearly
    all from one report query's `GROUP BY` on an unindexed column.

    **Fix**: index or rewrite the named digests; raise the in-memory limit only on measured
    need.
    """
    w = b.window
    disk, created = w.delta("Created_tmp_disk_tables"), w.delta("Created_tmp_tables")
    # The status counters include the catalog reads of the window (mydiag's own collection
    # among them: information_schema results with TEXT columns go to disk on MariaDB). With
    # the digests, those are taken out; without them the volume needed is higher.
    own = catalog_tmp_disk_tables(b)
    minimum = 20 if own is not None else 50
    disk, created = max(0.0, disk - (own or 0)), max(0.0, created - (own or 0))
    share = guarded_ratio(disk, created, minimum, "Created_tmp_disk_tables / Created_tmp_tables"
                          + (" (catalog reads left out)" if own else ""))
    rate = disk / max(w.seconds, 1e-9)
    if rate < 0.5 or share < 0.25:
        return None
    digests = _digest_evidence(b, ("tmp_disk_tables",))
    named = f"; digests {_names(digests.digests)}" if digests.digests else ""
    return Hit(f"{rate:.1f} temporary tables per second go to disk ({share:.0%} of all temporary "
               f"tables){named}",
               severity="error" if share >= 0.5 and rate >= 10 else None,
               evidence=[Evidence(STATUS, {"Created_tmp_disk_tables_per_s": round(rate, 2),
                                           "disk_share": round(share, 3),
                                           "catalog_tmp_disk_tables_left_out": own,
                                           "tmp_table_size": b.variable("tmp_table_size"),
                                           "max_heap_table_size": b.variable("max_heap_table_size")},
                                  samples=w.evidence_samples("Created_tmp_disk_tables")), digests])


@rule("TMP-02", "tmp_table_size and max_heap_table_size differ: the lower one is the limit",
      group="workload", severity="notice", needs=(VARIABLES,),
      advice="Set tmp_table_size and max_heap_table_size to the same value, chosen deliberately: "
             "the lower one is what in-memory temporary tables get today, so raising only the "
             "higher one changes nothing.",
      risk="max_heap_table_size also caps user MEMORY tables: lowering it stops such a table from "
           "growing past the new size (existing ones keep theirs until rebuilt).",
      verify="SHOW GLOBAL VARIABLES LIKE '%table_size' shows one value for both.")
def tmp_table_size_mismatch(b: Bundle) -> Optional[Hit]:
    """Checks that `tmp_table_size` and `max_heap_table_size` are equal: an in-memory
    internal temporary table (MEMORY engine) is limited by the lower of the two.

    **Why it matters**: raising only one of them is a common mistake whose effect is nil;
    the configuration then says 256 MiB while temporary tables still go to disk at 16 MiB.
    On MySQL 8 with the TempTable engine (`internal_tmp_mem_storage_engine=TempTable`)
    `max_heap_table_size` does not apply, and this rule does not either.

    **Example**: `tmp_table_size=256M`, `max_heap_table_size=16M`: the limit is 16 MiB.

    **Fix**: set both to one value.
    """
    tmp, heap = b.number("tmp_table_size"), b.number("max_heap_table_size")
    if tmp is None or heap is None:
        raise Insufficient("tmp_table_size or max_heap_table_size is not a number")
    engine = (b.variable("internal_tmp_mem_storage_engine") or "").lower()
    if not b.version.is_mariadb and engine == "temptable":
        raise NotApplicable("internal temporary tables use TempTable (max_heap_table_size does not apply)")
    if abs(tmp - heap) <= 0.05 * max(tmp, heap):
        return None
    lower = "tmp_table_size" if tmp < heap else "max_heap_table_size"
    return Hit(f"tmp_table_size={tmp / MIB:.0f} MiB and max_heap_table_size={heap / MIB:.0f} MiB: "
               f"in-memory temporary tables are limited to {min(tmp, heap) / MIB:.0f} MiB ({lower})",
               evidence=[Evidence(VARIABLES, {"tmp_table_size": tmp, "max_heap_table_size": heap,
                                              "effective_limit": min(tmp, heap), "limited_by": lower})])


@rule("TMP-03", "Sorts need merge passes during the window",
      group="workload", severity="notice", window=True, needs=(STATUS,),
      advice="Let an index deliver the order (an index on the ORDER BY columns after the WHERE "
             "equality columns), or sort fewer rows (a selective WHERE, a LIMIT). For one query "
             "that must sort a lot, raise sort_buffer_size in its session only (SET SESSION "
             "sort_buffer_size=...), not globally: the global value is allocated per sort, per "
             "connection.",
      risk="A larger global sort_buffer_size costs memory on every sort of every connection and can "
           "make small sorts slower (the buffer is allocated whole on some platforms).",
      verify="Sort_merge_passes per second falls over a new window.")
def sort_merge_passes(b: Bundle) -> Optional[Hit]:
    """Checks the rate of Sort_merge_passes during the window: sorts too large for
    `sort_buffer_size`, merged from temporary files on disk.

    **Why it matters**: each merge pass writes and reads the sorted rows again; a steady
    rate means ORDER BY / GROUP BY queries sort large results without an index.

    **Example**: 5 merge passes per second while Sort_rows grows by 2 million rows per
    second.

    **Fix**: an index for the order, fewer rows to sort; a larger sort buffer per session for
    the one query that needs it. The evidence lists the window's digests that examined the
    most rows without an index (the digest table does not count sorts).
    """
    w = b.window
    rate = w.rate("Sort_merge_passes")
    passes = w.delta("Sort_merge_passes")
    if passes < 20 or rate < 0.5:
        return None
    values: Dict[str, Any] = {"Sort_merge_passes_per_s": round(rate, 2),
                              "sort_buffer_size": b.variable("sort_buffer_size")}
    values.update(known_rates(w, ("Sort_rows", "Sort_scan", "Sort_range")))
    return Hit(f"{rate:.1f} sort merge passes per second (sort_buffer_size="
               f"{b.variable('sort_buffer_size')})",
               evidence=[Evidence(STATUS, values, samples=w.evidence_samples("Sort_merge_passes")),
                         _digest_evidence(b, ("no_index_used", "rows_examined"))])


@rule("TMP-04", "Joins without an index during the window",
      group="workload", severity="warning", window=True, needs=(STATUS,),
      advice="Add an index on the join columns of the joined table for the digests named in the "
             "evidence (EXPLAIN shows 'Using join buffer' and type ALL for it). Do not raise "
             "join_buffer_size for this: it makes the full scan per join a little cheaper and every "
             "connection's join buffer larger; the index removes the scan.",
      risk="An index costs writes and space on the joined table.",
      verify="Select_full_join stops growing over a new window; the digests' full_joins stop "
             "growing.")
def full_joins(b: Bundle) -> Optional[Hit]:
    """Checks the rate of joins that scanned a table without an index for each row of the
    table before it (Select_full_join) during the window, and their share of the SELECTs;
    names the digests whose `full_joins` (then `no_index_used`) grew.

    **Why it matters**: a full join reads the whole joined table (or the join buffer's worth
    of rows) for every batch of outer rows: its cost grows with the product of the two
    tables, and it is the classic query that gets slower every month as the tables grow.

    **Example**: 3 full joins per second from one digest joining `orders` to `customers`
    on a column without an index.

    **Fix**: the index on the join column. Never a larger `join_buffer_size` as the fix.
    """
    w = b.window
    rate = w.rate("Select_full_join")
    joins = w.delta("Select_full_join")
    share = w.ratio("Select_full_join", "Com_select", 100)
    if joins < 5 or rate < 0.05:
        return None
    digests = _digest_evidence(b, ("full_joins", "no_index_used"))
    named = f"; digests {_names(digests.digests)}" if digests.digests else ""
    return Hit(f"{rate:.2f} joins per second without an index ({share:.1%} of the SELECTs){named}",
               evidence=[Evidence(STATUS, {"Select_full_join_per_s": round(rate, 3),
                                           "Select_full_join": joins, "share_of_selects": round(share, 4)},
                                  samples=w.evidence_samples("Select_full_join")), digests])


_INDEX_READS = ("Handler_read_first", "Handler_read_key", "Handler_read_last", "Handler_read_next",
                "Handler_read_prev", "Handler_read_rnd")


@rule("TMP-05", "Most rows are read by full table scans during the window",
      group="workload", severity="notice", window=True, needs=(STATUS,),
      advice="Index the WHERE columns of the digests named in the evidence (their no_index_used "
             "grew; EXPLAIN shows type ALL). A scan of a small lookup table is fine; a scan of a "
             "growing table is the one to fix.",
      risk="An index costs writes and space.",
      verify="Handler_read_rnd_next's share of the rows read, and Select_scan per second, fall over "
             "a new window.")
def full_scans(b: Bundle) -> Optional[Hit]:
    """Checks the share of rows the storage engines read by scanning
    (Handler_read_rnd_next) among all row reads (plus the index reads: Handler_read_key,
    _next, _prev, _first, _last, _rnd) during the window, with the rate of full scans
    (Select_scan); names the digests whose `no_index_used` grew.

    **Why it matters**: a server that reads most rows by scanning does work proportional to
    the table sizes instead of the result sizes; it needs more buffer pool, more CPU and
    more I/O for the same answers.

    **Example**: 90% of 400,000 rows read per second come from scans, from two digests
    filtering on an unindexed `status` column.

    **Fix**: indexes for the named digests.
    """
    w = b.window
    scanned = w.delta("Handler_read_rnd_next")
    total = scanned
    for name in _INDEX_READS:
        if w.has(name):
            total += w.delta(name)
    share = guarded_ratio(scanned, total, 100_000, "rows read")
    rate = w.rate("Handler_read_rnd_next")
    if share < 0.8 or rate < 10_000:
        return None
    values: Dict[str, Any] = {"Handler_read_rnd_next_per_s": round(rate), "scan_share": round(share, 3)}
    if w.has("Select_scan"):
        values["Select_scan_per_s"] = round(w.rate("Select_scan"), 2)
    return Hit(f"{share:.0%} of the rows read come from table scans ({rate:,.0f} rows per second)",
               evidence=[Evidence(STATUS, values, samples=w.evidence_samples("Handler_read_rnd_next")),
                         _digest_evidence(b, ("no_index_used", "rows_examined"))])


@rule("TMP-06", "Joins re-evaluate index choice for every row (Select_range_check)",
      group="workload", severity="notice", window=True, needs=(STATUS,),
      advice="Find the digests named in the evidence whose EXPLAIN shows 'Range checked for each "
             "record' and give the joined table an index that fits the join condition (or make the "
             "condition's types match the indexed column's, so the index is usable).",
      risk="An index costs writes and space.",
      verify="Select_range_check stops growing over a new window.")
def range_check(b: Bundle) -> Optional[Hit]:
    """Checks whether Select_range_check grew during the window: joins without a usable
    key where the optimizer re-plans an index range for every row of the previous table.

    **Why it matters**: "Range checked for each record" is a join without a suitable index:
    it calls the range optimizer once per outer row. It should be zero; a few per second is
    a query that will hurt as its tables grow.

    **Example**: 20 range-checked joins during a 60-second window, from a join on
    `a.x < b.y` with no index on `b.y`.

    **Fix**: the index on the joined table.
    """
    w = b.window
    checks = w.delta("Select_range_check")
    if checks < 5:
        return None
    rate = w.rate("Select_range_check")
    digests = _digest_evidence(b, ("full_joins", "no_index_used"))
    return Hit(f"{checks:.0f} range-checked joins during the window ({rate:.2f} per second)",
               evidence=[Evidence(STATUS, {"Select_range_check": checks, "per_s": round(rate, 3)},
                                  samples=w.evidence_samples("Select_range_check")), digests])


@rule("TMP-07", "join_buffer_size is large globally",
      group="workload", severity="warning", needs=(VARIABLES,),
      advice="Lower join_buffer_size to its default (256 KiB) globally; a query that truly "
             "benefits from a larger buffer (a batched key access join) can set it in its own "
             "session. Joins without an index need the index, not a bigger buffer.",
      risk="A query tuned for the large buffer may run slower until it gets its index or a session "
           "setting; watch Select_full_join and the top digests after the change.",
      verify="SHOW GLOBAL VARIABLES LIKE 'join_buffer_size'; new connections use the new value. "
             "Roll back with SET GLOBAL join_buffer_size=<old>.")
def join_buffer_large(b: Bundle) -> Optional[Hit]:
    """Checks that the global `join_buffer_size` is not above 4 MiB.

    **Why it matters**: the join buffer is allocated whole, per join that uses it, per
    connection — a query joining several tables without indexes allocates several. Tuning
    scripts advise raising it again and again; it only makes full joins slightly cheaper
    while raising the worst-case memory by `join_buffer_size × joins × connections`.

    **Example**: `join_buffer_size=64M` with `max_connections=500`: a worst case of 32 GiB
    for one unindexed join per connection.

    **Fix**: back to the default globally; the index for the full joins (TMP-04).
    """
    size = b.number("join_buffer_size")
    if size is None:
        raise Insufficient("join_buffer_size is not a number")
    if size <= 4 * MIB:
        return None
    connections = b.number("max_connections")
    values: Dict[str, Any] = {"join_buffer_size": size}
    worst = ""
    if connections is not None and connections > 0:
        values["max_connections"] = connections
        values["worst_case_one_join_per_connection"] = size * connections
        worst = f"; one join per connection at max_connections={connections:.0f} is " \
                f"{size * connections / (1 << 30):.1f} GiB"
    return Hit(f"join_buffer_size={size / MIB:.0f} MiB{worst}",
               evidence=[Evidence(VARIABLES, values)])
