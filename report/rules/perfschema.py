"""Rules: perfschema — what the workload did during the window, from performance_schema.

`mysql/performance_schema/NAME.json` is the reading at the window's start and
`NAME_end.json` at its end (each the top N by total time): the window's own activity is
end minus start, per digest (report/digests.py) or per event.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from report.digests import DIGESTS, DIGESTS_END, PS, TEXT_LIMIT, _count, window_digests
from report.facts import mysqld_rss_bytes
from report.facts import rows as _rows
from report.finding import Evidence, Hit, Insufficient
from report.model import Bundle
from report.registry import rule
from report.window import guarded_ratio

WAITS, WAITS_END = PS + "waits.json", PS + "waits_end.json"
EVENTS, EVENTS_END = PS + "statements_by_event.json", PS + "statements_by_event_end.json"
SETUP = PS + "setup.json"
VARIABLES = "mysql/global_variables.json"

#: Below this much statement time in the window, shares of it mean nothing.
MIN_SECONDS = 0.1
MIN_CALLS = 10
TOP = 5



def _evidence_digest(d: Dict[str, Any], grew: Sequence[str]) -> Dict[str, Any]:
    entry = {"digest": d["digest"], "digest_text": d["digest_text"][:TEXT_LIMIT],
             "schema_name": d["schema_name"], "calls": d["calls"], "total_seconds": d["total_seconds"],
             "new": d["new"]}
    for name in grew:
        entry[name] = d[name]
    return entry


def _active(b: Bundle) -> List[Dict[str, Any]]:
    """The application's digests of the window: catalog reads and SHOW/SET (mydiag's own
    reads during the window among them; report/digests.py `catalog`) are left out."""
    digests = [d for d in window_digests(b) if not d["catalog"]]
    if not digests:
        raise Insufficient("no statement digest of the application ran during the window")
    return digests


def _per_call(value: float, calls: float) -> Optional[float]:
    """A per-call average, None when there are no calls to average over."""
    return value / calls if calls >= 1 else None


@rule("PFS-01", "The window's top statements by total time",
      group="perfschema", severity="info", window=True, needs=(DIGESTS, DIGESTS_END),
      advice="Start tuning with the first statements listed: their share of the window's statement "
             "time is what an improvement can win. EXPLAIN each (with literal values from the "
             "application) and look at rows examined against rows sent.",
      risk="None: this finding only lists what ran.",
      verify="A new bundle's PFS-01 shows the tuned statement with less total time for a similar "
             "number of calls.")
def top_digests(b: Bundle) -> Optional[Hit]:
    """Lists the five statement digests with the most total latency during the window (end
    reading minus start reading per digest) and their share of all statement time.

    **Why it matters**: averages since start-up hide what the server does now; the window's
    top five usually hold most of the time, so they are where tuning pays.

    **Example**: `SELECT … FROM orders WHERE customer_id = ?` took 61% of the window's
    statement time in 12,000 calls.

    **Fix**: nothing to fix by itself; the list tells where to look first.
    """
    digests = _active(b)
    total = sum(d["total_seconds"] for d in digests)
    calls = sum(d["calls"] for d in digests)
    if calls < MIN_CALLS:
        raise Insufficient(f"only {calls} statement call(s) in the window ({MIN_CALLS} needed)")
    guarded_ratio(total, total, MIN_SECONDS, "statement seconds")
    top = digests[:TOP]
    shares = [guarded_ratio(d["total_seconds"], total, MIN_SECONDS, "statement seconds") for d in top]
    listed = []
    for d, share in zip(top, shares):
        entry = _evidence_digest(d, ("rows_examined", "rows_sent"))
        entry["share"] = round(share, 3)
        listed.append(entry)
    summary = "; ".join(f"{d['digest_text'][:60]!r} {share:.0%}" for d, share in zip(top, shares))
    return Hit(f"Top {len(top)} statements hold {sum(shares):.0%} of {total:,.2f} s of statement time "
               f"in the window: {summary}",
               evidence=[Evidence(DIGESTS_END, {"total_seconds": round(total, 3), "calls": calls,
                                                "digests_active": len(digests)}, digests=listed)])


#: A statement examining this many rows per call without an index is a scan worth fixing.
SCAN_ROWS_PER_CALL = 1000
SCAN_ROWS = 10000


@rule("PFS-02", "Statements that scan whole tables (no index used) during the window",
      group="perfschema", severity="warning", window=True, needs=(DIGESTS, DIGESTS_END),
      advice="EXPLAIN each listed statement: add an index on the columns of its WHERE and JOIN "
             "conditions (in the order equality columns, then ranges), or rewrite a condition "
             "that hides a column in a function. Do not raise join_buffer_size for it: the fix "
             "is an index.",
      risk="A new index costs disk space and slows writes to that table slightly; building it "
           "on a big table is an online ALTER with its own I/O.",
      verify="In a new bundle the statement's rows examined per call falls to near its rows sent "
             "and no_index_used stops growing.")
def full_scans(b: Bundle) -> Optional[Hit]:
    """Checks the window's digests for statements that used no index (SUM_NO_INDEX_USED or
    SUM_SELECT_FULL_JOIN grew) and examined at least 1,000 rows per call (10,000 in all).
    Catalog and instrumentation reads (information_schema, performance_schema, SHOW) are left out.

    **Why it matters**: a full scan costs in proportion to the table, not to the result: it
    reads every row through the buffer pool, pushes hot pages out, and gets slower every
    day the table grows. One such statement called often can use most of the CPU.

    **Example**: `SELECT * FROM orders WHERE status = ?` examined 480,000 rows per call to
    return 12, 900 times in the window.

    **Fix**: an index that matches the condition (EXPLAIN first).
    """
    digests = _active(b)
    scans = []
    for d in digests:
        if d["no_index_used"] < 1 and d["full_joins"] < 1:
            continue
        per_call = _per_call(d["rows_examined"], d["calls"])
        if per_call is not None and per_call >= SCAN_ROWS_PER_CALL and d["rows_examined"] >= SCAN_ROWS:
            scans.append((d, per_call))
    if not scans:
        return None
    scans.sort(key=lambda item: -item[0]["rows_examined"])
    listed = []
    for d, per_call in scans[:TOP]:
        entry = _evidence_digest(d, ("rows_examined", "rows_sent", "no_index_used", "full_joins"))
        entry["rows_examined_per_call"] = round(per_call, 1)
        listed.append(entry)
    worst, per_call = scans[0]
    return Hit(f"{len(scans)} statement(s) scanned without an index during the window; the worst "
               f"examined {per_call:,.0f} rows per call in {worst['calls']:,} calls: "
               f"{worst['digest_text'][:100]!r}",
               evidence=[Evidence(DIGESTS_END, {"statements": len(scans),
                                                "rows_examined": sum(d["rows_examined"] for d, _ in scans)},
                                  digests=listed)])


TMP_DISK_TABLES = 10


@rule("PFS-03", "Statements that create temporary tables on disk during the window",
      group="perfschema", severity="warning", window=True, needs=(DIGESTS, DIGESTS_END),
      advice="EXPLAIN each listed statement (\"Using temporary\"): an index matching its GROUP BY "
             "or ORDER BY removes the temporary table; selecting fewer TEXT/BLOB columns keeps it "
             "in memory (on MySQL before 8.0 and on MariaDB such columns force it to disk). Raise "
             "tmp_table_size and max_heap_table_size together only when the statements' temporary "
             "tables are known to fit: the limit is per table, per connection.",
      risk="A higher tmp_table_size lets every connection use that much memory per temporary "
           "table: with many concurrent statements the server can run out of memory.",
      verify="In a new bundle the statements' tmp_disk_tables stop growing and "
             "Created_tmp_disk_tables per second falls.")
def tmp_disk_tables(b: Bundle) -> Optional[Hit]:
    """Checks the window's digests for statements whose temporary tables went to disk
    (SUM_CREATED_TMP_DISK_TABLES grew by 10 or more in all). Catalog and instrumentation
    reads are left out.

    **Why it matters**: an on-disk temporary table turns a GROUP BY or ORDER BY into file
    I/O: the statement is many times slower and competes with the data files for the disk.

    **Example**: `SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id ORDER BY 2`
    created 3,400 on-disk temporary tables in the window.

    **Fix**: an index for the grouping or ordering, fewer TEXT/BLOB columns; bigger in-memory
    limits only when measured to fit.
    """
    digests = _active(b)
    growing = sorted((d for d in digests if d["tmp_disk_tables"] >= 1),
                     key=lambda d: -d["tmp_disk_tables"])
    total = sum(d["tmp_disk_tables"] for d in growing)
    if total < TMP_DISK_TABLES:
        return None
    listed = [_evidence_digest(d, ("tmp_disk_tables",)) for d in growing[:TOP]]
    worst = growing[0]
    return Hit(f"{total:,} temporary tables went to disk during the window from {len(growing)} "
               f"statement(s); the most: {worst['tmp_disk_tables']:,} from {worst['digest_text'][:100]!r}",
               evidence=[Evidence(DIGESTS_END, {"tmp_disk_tables": total, "statements": len(growing)},
                                  digests=listed)])


@rule("PFS-04", "performance_schema is OFF: the report cannot see the workload",
      group="perfschema", severity="notice", needs=(VARIABLES,),
      advice="Set `performance_schema=ON` in the [mysqld] section of the option file; it takes "
             "effect at the next restart (it cannot be turned on at run time). Plan the restart "
             "with the memory cost in mind.",
      risk="performance_schema allocates its buffers at start-up: measured about +100 MB of RSS on "
           "MariaDB 10.11 with default sizing, a few hundred MB on MySQL 8 with many connections and "
           "tables; the CPU overhead with the default instruments is a few percent.",
      verify="After the restart `SELECT @@performance_schema` returns 1 and a new bundle has "
             "mysql/performance_schema/statement_digests.json.")
def performance_schema_off(b: Bundle) -> Optional[Hit]:
    """Checks that performance_schema is enabled.

    **Why it matters**: without it there are no statement digests, no wait events and no
    per-file I/O: the report can say that the server is busy but not with what, and every
    workload rule (top statements, scans, temporary tables) stays silent.

    **Example**: MariaDB runs with its default `performance_schema=OFF`; a CPU-bound
    server's report shows high Questions per second but no statement to look at.

    **Fix**: `performance_schema=ON` in the option file, at the next planned restart.
    """
    state = b.switch("performance_schema")
    if state is None:
        raise Insufficient("performance_schema is not in the server variables")
    if state:
        return None
    values: Dict[str, Any] = {"performance_schema": b.variable("performance_schema")}
    rss = mysqld_rss_bytes(b)
    if rss:
        values["mysqld_rss_bytes"] = int(rss)
    note = f"; mysqld uses {rss / (1 << 20):,.0f} MiB now" if rss else ""
    return Hit(f"performance_schema is OFF: no statement digests or wait events in this bundle{note}",
               evidence=[Evidence(VARIABLES, values)])


def _enabled(value: Any) -> Optional[bool]:
    text = str(value or "").strip().upper()
    return True if text in ("YES", "1", "ON") else False if text in ("NO", "0", "OFF") else None


#: The consumers the digest table needs (MariaDB leaves the events_* ones off by default).
_NEEDED_CONSUMERS = ("global_instrumentation", "thread_instrumentation", "statements_digest")


@rule("PFS-05", "Statement instruments or consumers are disabled",
      group="perfschema", severity="notice", needs=(SETUP,),
      advice="Enable them at run time: `UPDATE performance_schema.setup_consumers SET ENABLED='YES' "
             "WHERE NAME IN ('global_instrumentation','thread_instrumentation','statements_digest')` "
             "and `UPDATE performance_schema.setup_instruments SET ENABLED='YES', TIMED='YES' WHERE "
             "NAME LIKE 'statement/%'`; make it permanent with performance-schema-consumer-…=ON and "
             "performance-schema-instrument='statement/%=ON' in the option file.",
      risk="Statement instrumentation costs a few percent of CPU on a busy server; no restart.",
      verify="A new bundle's setup.json shows the consumers YES and every statement instrument "
             "enabled and timed; statement_digests.json is filled.")
def statement_instrumentation(b: Bundle) -> Optional[Hit]:
    """Checks performance_schema's setup: the consumers the digest table needs
    (global_instrumentation, thread_instrumentation, statements_digest) and the `statement`
    instruments (enabled and timed).

    **Why it matters**: performance_schema can be ON and still record nothing useful: with
    statements_digest off the digest table stays empty, with statement instruments not
    timed every latency is zero, so the report's workload rules see no workload.

    **Example**: a configuration copied from a benchmark has
    `performance-schema-instrument='%=OFF'`: statement_digests.json is empty.

    **Fix**: enable the consumers and statement instruments (at run time and in the option file).
    """
    setup = b.json(SETUP)
    if not isinstance(setup, dict):
        raise Insufficient(f"{SETUP} is not a JSON object")
    consumers = {str(r.get("name")): _enabled(r.get("enabled")) for r in _rows(setup.get("consumers"))}
    off = [name for name in _NEEDED_CONSUMERS if consumers.get(name) is False]
    statement = next((r for r in _rows(setup.get("instruments_by_class"))
                      if str(r.get("class")) == "statement"), None)
    problems = [f"consumer {name} is off" for name in off]
    values: Dict[str, Any] = {"consumers_off": off}
    if statement is not None:
        count = _count(statement.get("instruments"))
        enabled, timed = _count(statement.get("enabled")), _count(statement.get("timed"))
        if count >= 1:
            values.update(statement_instruments=int(count), enabled=int(enabled), timed=int(timed))
            if enabled < count:
                problems.append(f"{int(count - enabled)} of {int(count)} statement instruments disabled")
            if timed < min(enabled, count):
                problems.append(f"{int(min(enabled, count) - timed)} enabled statement instruments not timed")
    elif not consumers:
        raise Insufficient("setup.json lists neither consumers nor instruments")
    if not problems:
        return None
    return Hit("performance_schema records less than it could: " + "; ".join(problems),
               evidence=[Evidence(SETUP, values)])


def _event_deltas(b: Bundle, start_path: str, end_path: str, key: str,
                  counters: Sequence[str]) -> List[Dict[str, Any]]:
    if b.window.restarted:
        raise Insufficient("the server restarted inside the window: the start reading no longer counts")
    start = {str(r.get(key)): r for r in _rows(b.json(start_path))}
    out = []
    for row in _rows(b.json(end_path)):
        name = str(row.get(key) or "")[:200]
        before = start.get(name, {})
        if before and _count(row.get(counters[0])) < _count(before.get(counters[0])):
            before = {}  # the summary was truncated during the window
        delta = {c: max(0.0, _count(row.get(c)) - _count(before.get(c))) for c in counters}
        if any(delta.values()):
            out.append({key: name, **delta, "new": not before})
    return out


#: Below this much wait time in the window the top events say nothing.
MIN_WAIT_SECONDS = 0.5


@rule("PFS-06", "The window's top wait events",
      group="perfschema", severity="info", window=True, needs=(WAITS, WAITS_END),
      advice="Read the top event's family: wait/io/file/innodb/* is data or redo I/O (disk "
             "latency, buffer pool misses), wait/synch/* is contention on a server mutex or "
             "lock (concurrency), wait/io/table/* and wait/lock/table/* are row and table access "
             "and locking. Pair it with the statements of PFS-01.",
      risk="None: this finding only lists what the server waited for.",
      verify="A new bundle's PFS-06 shows the top event with less time for a similar workload.")
def top_waits(b: Bundle) -> Optional[Hit]:
    """Lists the wait events with the most time during the window (waits_end minus waits) and
    their share of the window's instrumented wait time.

    **Why it matters**: where statement time goes tells what to tune: file I/O waits point at
    the disk or the buffer pool, mutex waits at concurrency, lock waits at the application.

    **Example**: `wait/io/file/innodb/innodb_log_file` holds 72% of the window's wait time:
    commits wait for redo writes (see innodb_flush_log_at_trx_commit and the disk).

    **Fix**: depends on the event; the list tells where to look.
    """
    events = _event_deltas(b, WAITS, WAITS_END, "event", ("count", "total_seconds"))
    events = [e for e in events if e["event"] != "idle"]
    total = sum(e["total_seconds"] for e in events)
    guarded_ratio(total, total, MIN_WAIT_SECONDS, "wait seconds")
    events.sort(key=lambda e: -e["total_seconds"])
    listed = []
    for event in events[:TOP]:
        share = guarded_ratio(event["total_seconds"], total, MIN_WAIT_SECONDS, "wait seconds")
        listed.append({"event": event["event"], "count": int(event["count"]),
                       "total_seconds": round(event["total_seconds"], 6), "share": round(share, 3)})
    summary = ", ".join(f"{e['event']} {e['share']:.0%}" for e in listed)
    return Hit(f"{total:,.2f} s of instrumented waits in the window; top: {summary}",
               evidence=[Evidence(WAITS_END, {"total_seconds": round(total, 3), "events": listed},
                                  note="only the enabled wait instruments are counted")])


MIN_STATEMENTS = 100
ERROR_SHARE = 0.01
MIN_ERRORS = 10


@rule("PFS-07", "Statements failing with errors during the window",
      group="perfschema", severity="notice", window=True, needs=(EVENTS, EVENTS_END),
      advice="Find the failing statements: the error log (for server-side errors), the "
             "application's own log, or performance_schema.events_statements_history with "
             "MYSQL_ERRNO <> 0 (enable the events_statements_history consumer for a while). "
             "Deadlocks and lock wait timeouts (1213, 1205) need shorter transactions; duplicate "
             "keys (1062) are often the application's normal path.",
      risk="Enabling the history consumer costs a little memory and CPU; no restart.",
      verify="In a new bundle the errors of the listed statement kinds stop growing.")
def statement_errors(b: Bundle) -> Optional[Hit]:
    """Checks statements by event name (statement/sql/insert, statement/com/Execute, …) for
    errors during the window: at least 10 errors and 1% of the window's statements.

    **Why it matters**: a statement that fails is work thrown away and often a retry loop in
    the application; a rising error share is one of the first signs of deadlocks, lock wait
    timeouts or a broken deployment.

    **Example**: `statement/sql/update` failed 2,300 times out of 40,000 in the window
    (5.8%): lock wait timeouts behind a long transaction.

    **Fix**: find the error numbers (history consumer, error log) and fix their cause.
    """
    events = _event_deltas(b, EVENTS, EVENTS_END, "event", ("calls", "errors", "total_seconds"))
    calls = sum(e["calls"] for e in events)
    errors = sum(min(e["errors"], e["calls"]) for e in events)
    share = guarded_ratio(errors, calls, MIN_STATEMENTS, "statements in the window")
    if errors < MIN_ERRORS or share < ERROR_SHARE:
        return None
    failing = sorted((e for e in events if e["errors"] >= 1), key=lambda e: -e["errors"])
    listed = [{"event": e["event"], "calls": int(e["calls"]), "errors": int(e["errors"])}
              for e in failing[:TOP]]
    return Hit(f"{errors:,.0f} of {calls:,.0f} statements failed during the window ({share:.1%}); most: "
               + ", ".join(f"{e['event']} {e['errors']:,}" for e in listed),
               evidence=[Evidence(EVENTS_END, {"errors": int(errors), "calls": int(calls),
                                               "share": round(share, 4), "events": listed})])

