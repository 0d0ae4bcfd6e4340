"""Rules: innodb — the buffer pool, row locks, purge and long transactions, over the window."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from report.facts import (
    MONITOR_END,
    MONITOR_START,
    memory_limit,
    monitor_number,
    mysqld_rss_bytes,
    ram_bytes,
    size,
)
from report.finding import Evidence, Hit, Insufficient
from report.model import Bundle, to_number
from report.registry import rule
from report.window import guarded_ratio

STATUS = "mysql/global_status.jsonl"
VARIABLES = "mysql/global_variables.json"
TRX = "mysql/innodb_trx.jsonl"
LOCK_WAITS = "mysql/lock_waits.jsonl"


def _pool_advice(b: Bundle, pool: float) -> Tuple[str, Dict[str, Any]]:
    """How far the buffer pool may grow: the memory limit (RAM or cgroup) × 0.9 minus what
    mysqld measurably uses outside the pool; never the data size."""
    limit, which = memory_limit(b)
    rss = mysqld_rss_bytes(b)
    facts: Dict[str, Any] = {"limit_bytes": limit, "limit": which, "rss_bytes": rss}
    if rss is None:
        return (f"mysqld's RSS is not in the bundle: measure it first; the pool plus mysqld's other "
                f"memory must stay under 90% of {which} ({size(limit)}).", facts)
    other = max(0.0, rss - min(rss, pool))
    ceiling = 0.9 * limit - other
    facts["pool_ceiling_bytes"] = ceiling
    if ceiling <= pool * 1.1:
        return (f"There is no room to grow the pool: {which} is {size(limit)} and mysqld uses {size(other)} "
                "outside it. Reduce the reads instead (the statements that read most rows, missing "
                "indexes), or give the host/cgroup more memory.", facts)
    return (f"Raise innodb_buffer_pool_size in steps, up to at most {size(ceiling)} ({which} {size(limit)} "
            f"× 0.9 minus {size(other)} that mysqld uses outside the pool), and re-measure the miss rate "
            "after each step.", facts)


@rule("IBP-01", "Many buffer pool reads miss and go to disk",
      group="innodb", severity="warning", window=True,
      needs=(STATUS,),
      advice="Raise innodb_buffer_pool_size within the memory the host and cgroup leave (the finding "
             "gives the bound), or reduce what the workload reads (indexes for the top digests).",
      risk="A larger pool takes memory from the page cache and other processes; past the limit the "
           "OOM killer ends mysqld. Resizing online can stall briefly.",
      verify="Innodb_buffer_pool_reads per second and the miss rate fall in a new window; roll back "
             "with SET GLOBAL innodb_buffer_pool_size=<old>.")
def pool_miss_rate(b: Bundle) -> Optional[Hit]:
    """Checks the share of logical reads the buffer pool could not serve during the window
    (Innodb_buffer_pool_reads / Innodb_buffer_pool_read_requests) and how many disk reads per
    second that makes.

    **Why it matters**: every miss is a synchronous disk read in the query's path; a miss rate
    of a few percent at hundreds of reads per second is the usual cause of latency that grows
    with the data.

    **Example**: 3% of 40,000 read requests per second miss: 1,200 disk reads per second.

    **Fix**: grow the pool within the RAM and cgroup limit minus mysqld's other measured use —
    never to "the data size" regardless of memory — or make the workload read less.
    """
    w = b.window
    miss = w.ratio("Innodb_buffer_pool_reads", "Innodb_buffer_pool_read_requests", 10000)
    reads = w.rate("Innodb_buffer_pool_reads")
    if miss < 0.01 or reads < 20:
        return None
    pool = b.number("innodb_buffer_pool_size") or 0.0
    advice, facts = _pool_advice(b, pool)
    return Hit(f"{miss:.1%} of buffer pool read requests missed during the window: {reads:.0f} disk reads "
               f"per second with innodb_buffer_pool_size={size(pool)}", advice=advice,
               evidence=[Evidence(STATUS, {"miss_ratio": round(miss, 4), "reads_per_s": round(reads, 1),
                                           "innodb_buffer_pool_size": pool, **facts},
                                  samples=w.evidence_samples("Innodb_buffer_pool_reads"))])


@rule("IBP-02", "Queries waited for a free page in the buffer pool",
      group="innodb", severity="warning", window=True,
      needs=(STATUS,),
      advice="Page cleaners do not keep free pages ahead of demand: raise innodb_lru_scan_depth (MySQL) "
             "or innodb_io_capacity towards what the disk sustains, and check that the pool is not far "
             "too small for the reads (IBP-01).",
      risk="More background flushing uses more write I/O.",
      verify="Innodb_buffer_pool_wait_free does not grow during a new window.")
def free_page_waits(b: Bundle) -> Optional[Hit]:
    """Checks how often a thread had to wait for a clean page to be freed
    (Innodb_buffer_pool_wait_free) during the window.

    **Why it matters**: a wait for a free page means the thread itself flushes or waits for the
    page cleaner — a stall of the query, usually when the pool is full of dirty pages.

    **Example**: Innodb_buffer_pool_wait_free grew by 340 in 60 s.

    **Fix**: flush ahead of demand (io_capacity to what the disk can do, LRU scan depth), and
    size the pool within the memory limits.
    """
    w = b.window
    grown = w.delta("Innodb_buffer_pool_wait_free")
    per_second = w.rate("Innodb_buffer_pool_wait_free")
    if grown < 10:
        return None
    return Hit(f"{grown:.0f} waits for a free buffer pool page during the window ({per_second:.2f}/s)",
               evidence=[Evidence(STATUS, {"wait_free_delta": grown, "wait_free_per_s": round(per_second, 3)},
                                  samples=w.evidence_samples("Innodb_buffer_pool_wait_free"))])


@rule("IBP-03", "Dirty pages fill most of the buffer pool through the window",
      group="innodb", severity="warning", window=True,
      needs=(STATUS,),
      advice="Flushing does not keep up with the writes: check the flush rate against innodb_io_capacity "
             "(REDO-04) and the checkpoint age (REDO-01); raise innodb_io_capacity to what the disk "
             "sustains, not to its burst figure.",
      risk="More flushing writes more; on a saturated disk it moves the stall elsewhere.",
      verify="The dirty share stays below the threshold in most samples of a new window.")
def dirty_pages_persistent(b: Bundle) -> Optional[Hit]:
    """Checks the share of samples in which dirty pages (Innodb_buffer_pool_pages_dirty /
    Innodb_buffer_pool_pages_total) are above 75% of innodb_max_dirty_pages_pct.

    **Why it matters**: a pool that stays mostly dirty leaves few clean pages to evict, so reads
    wait for flushes (IBP-02), and a crash has much redo to apply.

    **Example**: 70% of the pages dirty in 9 of 10 samples with innodb_max_dirty_pages_pct=90.

    **Fix**: flush faster (io_capacity matched to the disk), or spread the write bursts.
    """
    w = b.window
    total = w.gauge("Innodb_buffer_pool_pages_total")
    if total.max < 1000:
        raise Insufficient(f"Innodb_buffer_pool_pages_total: only {total.max:.0f} pages (1,000 needed)")
    pct = b.number("innodb_max_dirty_pages_pct")
    threshold = 0.75 * (pct / 100 if pct and 0 < pct <= 100 else 0.9)

    def dirty(values: Dict[str, Any]) -> bool:
        try:
            share = guarded_ratio(to_number(values.get("Innodb_buffer_pool_pages_dirty")),
                                  to_number(values.get("Innodb_buffer_pool_pages_total")), 1000, "pages")
        except Insufficient:
            return False
        return share >= threshold

    held = w.persistence(dirty)
    if held < 0.8:
        return None
    pages = w.gauge("Innodb_buffer_pool_pages_dirty")
    return Hit(f"dirty pages above {threshold:.0%} of the pool in {held:.0%} of the samples "
               f"(up to {pages.max:.0f} of {total.max:.0f} pages)",
               evidence=[Evidence(STATUS, {"share_of_samples": round(held, 3),
                                           "threshold": round(threshold, 3),
                                           "dirty_pages_max": pages.max, "pages_total": total.max},
                                  samples=w.evidence_samples("Innodb_buffer_pool_pages_dirty"))])


@rule("IBP-04", "The buffer pool takes nearly all of the host's RAM",
      group="innodb", severity="warning",
      needs=(VARIABLES,),
      advice="Leave room for mysqld's other memory (connections, temporary tables, performance_schema) "
             "and the OS: size the pool to RAM × 0.9 minus mysqld's measured use outside the pool.",
      risk="A smaller pool reads more from disk: compare the miss rate (IBP-01) before and after.",
      verify="The pool plus mysqld's other RSS stays under 90% of RAM; roll back with "
             "SET GLOBAL innodb_buffer_pool_size=<old>.")
def pool_vs_ram(b: Bundle) -> Optional[Hit]:
    """Checks innodb_buffer_pool_size against the host's RAM (MemTotal).

    **Why it matters**: the pool is not all of mysqld's memory: connections, sorts, temporary
    tables, the dictionary and performance_schema come on top. A pool of 90% of RAM ends in swap
    or an OOM kill as soon as the pool is full and connections peak.

    **Example**: innodb_buffer_pool_size=30G on a 32 GiB host.

    **Fix**: pool ≤ RAM × 0.9 − (mysqld's measured RSS − pool).
    """
    ram = ram_bytes(b)
    if ram is None:
        raise Insufficient(f"the host's RAM is not known ({b.why_missing('os/meminfo.json')})")
    pool = b.number("innodb_buffer_pool_size")
    if pool is None or pool <= 0:
        raise Insufficient("innodb_buffer_pool_size is not readable")
    share = pool / ram
    if share < 0.85:
        return None
    rss = mysqld_rss_bytes(b)
    other = max(0.0, rss - min(rss, pool)) if rss is not None else None
    advice = None
    if other is not None and 0.9 * ram - other > 0:
        advice = (f"Set innodb_buffer_pool_size to at most {size(0.9 * ram - other)} (RAM {size(ram)} × 0.9 "
                  f"minus {size(other)} that mysqld uses outside the pool).")
    return Hit(f"innodb_buffer_pool_size={size(pool)} is {share:.0%} of the host's RAM ({size(ram)})",
               advice=advice, severity="error" if share >= 1 else None,
               evidence=[Evidence(VARIABLES, {"innodb_buffer_pool_size": pool, "mem_total": ram,
                                              "rss_bytes": rss})])


@rule("IBP-05", "The buffer pool's instances or chunks are set against their purpose",
      group="innodb", severity="notice",
      needs=(VARIABLES,),
      advice="Let the server choose: on MySQL 8 leave innodb_buffer_pool_instances at its default (8 "
             "from 1 GiB of pool) with each instance ≥ 1 GiB, and keep the pool under 1,000 chunks "
             "(raise innodb_buffer_pool_chunk_size to pool / 64 or so).",
      risk="Both are start-up options: a restart applies them.",
      verify="After the restart the variables show the new values and Innodb_buffer_pool_resize_status "
             "reports no adjustment.")
def pool_instances_chunks(b: Bundle) -> Optional[Hit]:
    """Checks innodb_buffer_pool_instances and innodb_buffer_pool_chunk_size against the pool:
    more than 1,000 chunks, instances smaller than 1 GiB, or one instance for a large pool on
    MySQL (MariaDB 10.5+ has one instance by design and is not judged on it).

    **Why it matters**: thousands of chunks make an online resize and start-up slow; tiny
    instances fragment the LRU lists; one instance for a pool of many GiB on MySQL makes its
    mutex a contention point.

    **Example**: innodb_buffer_pool_size=64G with innodb_buffer_pool_chunk_size=32M: 2,048 chunks.

    **Fix**: chunk size about pool / 64; instances so that each is at least 1 GiB.
    """
    pool = b.number("innodb_buffer_pool_size")
    if pool is None or pool <= 0:
        raise Insufficient("innodb_buffer_pool_size is not readable")
    chunk = b.number("innodb_buffer_pool_chunk_size")
    instances = b.number("innodb_buffer_pool_instances")
    single_by_design = b.version.is_mariadb and b.version.at_least(10, 5)
    problems: List[str] = []
    if chunk and chunk > 0 and pool / chunk > 1000:
        problems.append(f"{pool / chunk:.0f} chunks of {size(chunk)}")
    if not single_by_design and instances and instances > 1 and pool / instances < 1 << 30:
        problems.append(f"{instances:.0f} instances of {size(pool / instances)} each (under 1 GiB)")
    if not single_by_design and not b.version.is_mariadb and instances == 1 and pool >= 8 << 30:
        problems.append(f"one instance for {size(pool)}")
    if not problems:
        return None
    return Hit(f"innodb_buffer_pool_size={size(pool)}: " + "; ".join(problems),
               evidence=[Evidence(VARIABLES, {"innodb_buffer_pool_size": pool,
                                              "innodb_buffer_pool_chunk_size": chunk,
                                              "innodb_buffer_pool_instances": instances})])


def _top_blocker(b: Bundle) -> Optional[Dict[str, Any]]:
    for row in reversed(b.jsonl(LOCK_WAITS)):
        waits = row.get("waits")
        if isinstance(waits, list) and waits and isinstance(waits[0], dict):
            first = waits[0]
            return {k: first.get(k) for k in ("blocking_thread", "blocking_statement", "blocking_trx_seconds",
                                              "blocking_idle_seconds", "waiters", "locked_table")}
    return None


@rule("IBP-06", "Row lock waits are frequent during the window",
      group="innodb", severity="warning", window=True,
      needs=(STATUS,),
      advice="Find the blocking transactions (mysql/lock_waits.jsonl: the blocker and its statement): "
             "shorten them, commit sooner, add the index the locking statement lacks, touch rows in one "
             "order; do not only raise innodb_lock_wait_timeout.",
      risk="None for looking; changes are in the application.",
      verify="Innodb_row_lock_waits per second and Innodb_row_lock_current_waits fall in a new window.")
def row_lock_waits(b: Bundle) -> Optional[Hit]:
    """Checks the rate of InnoDB row lock waits during the window (Innodb_row_lock_waits), the
    average wait (Innodb_row_lock_time / waits, ms) and whether threads were waiting in most
    samples (Innodb_row_lock_current_waits).

    **Why it matters**: each wait holds a connection idle behind another transaction; at a few
    per second the waits queue up, connections pile up and timeouts (error 1205) follow.

    **Example**: 4.2 row lock waits per second, 380 ms each on average; a waiter in 8 of 10
    samples, behind a transaction idle for 90 s.

    **Fix**: shorten the blocking transactions and index the statements that lock.
    """
    w = b.window
    waits = w.delta("Innodb_row_lock_waits")
    per_second = w.rate("Innodb_row_lock_waits")
    waiting = w.above("Innodb_row_lock_current_waits", 0) if w.has("Innodb_row_lock_current_waits") \
        and len(w) >= 3 else 0.0
    average_ms = None
    if waits >= 20 and w.has("Innodb_row_lock_time"):
        average_ms = w.delta("Innodb_row_lock_time") / waits
    frequent = waits >= 20 and per_second >= 0.5
    if not frequent and waiting < 0.5:
        return None
    values = {"waits_delta": waits, "waits_per_s": round(per_second, 3), "average_wait_ms": average_ms,
              "share_of_samples_waiting": round(waiting, 3), "top_blocker": _top_blocker(b)}
    summary = f"{per_second:.2f} row lock waits per second during the window"
    if average_ms is not None:
        summary += f", {average_ms:.0f} ms on average"
    if waiting >= 0.5:
        summary += f"; threads waited in {waiting:.0%} of the samples"
    slight = frequent and waiting < 0.5 and (average_ms is None or average_ms < 50)
    return Hit(summary, severity="notice" if slight else None,
               evidence=[Evidence(STATUS, values, samples=w.evidence_samples("Innodb_row_lock_waits"))])


def _history(b: Bundle) -> Tuple[float, float, str, List[List[Any]]]:
    """History list length at the window's start and end, and where it was read."""
    w = b.window
    if len(w) >= 2 and w.has("Innodb_history_list_length"):
        return (w.first("Innodb_history_list_length") or 0.0, w.last("Innodb_history_list_length") or 0.0,
                STATUS, w.evidence_samples("Innodb_history_list_length"))
    start = monitor_number(b, MONITOR_START, "History list length")
    end = monitor_number(b, MONITOR_END, "History list length")
    if start is None or end is None:
        raise Insufficient("History list length at the window's start and end is needed "
                           f"({MONITOR_START}, {MONITOR_END} or the status samples)")
    return start, end, MONITOR_END, []


def _oldest_transaction(b: Bundle) -> Optional[Dict[str, Any]]:
    rows = b.jsonl(TRX)
    if not rows:
        return None
    oldest = None
    for trx in rows[-1].get("transactions") or []:
        if isinstance(trx, dict):
            age = to_number(trx.get("age_seconds"))
            if age is not None and (oldest is None or age > oldest[0]):
                oldest = (age, trx)
    if oldest is None:
        return None
    return {k: oldest[1].get(k) for k in ("trx_id", "trx_mysql_thread_id", "age_seconds", "trx_state",
                                          "trx_rows_modified", "statement")}


@rule("IBP-07", "Purge is behind: the history list is long and grew during the window",
      group="innodb", severity="warning", window=True,
      needs=(),
      advice="Find the oldest open transaction or read view (mysql/innodb_trx.jsonl, oldest first) and "
             "end it; then, if purge still lags under write load, raise innodb_purge_threads.",
      risk="Killing a transaction rolls it back, which can take as long as it ran.",
      verify="History list length falls over a new window.")
def history_list(b: Bundle) -> Optional[Hit]:
    """Checks the InnoDB history list length (undo records not yet purged) at the window's
    start and end, from the status samples (MariaDB's Innodb_history_list_length) or SHOW ENGINE
    INNODB STATUS at both ends.

    **Why it matters**: a long history list means old row versions are kept for an old read
    view: the undo tablespace grows, every read walks longer version chains, and a restart
    takes long to purge.

    **Example**: 2.4 million at the start, 2.6 million at the end, behind a transaction open for
    six hours.

    **Fix**: end the transaction that holds the oldest read view; keep transactions short.
    """
    start, end, member, samples = _history(b)
    if end < 100_000:
        return None
    grew = end - start
    if end < 1_000_000 and grew < 0.1 * max(start, 1.0):
        return None
    return Hit(f"history list length {start:.0f} → {end:.0f} during the window",
               severity="error" if end >= 5_000_000 else None,
               evidence=[Evidence(member, {"start": start, "end": end,
                                           "oldest_transaction": _oldest_transaction(b)}, samples=samples)])


@rule("IBP-08", "A transaction stayed open through the window",
      group="innodb", severity="warning", window=True,
      needs=(TRX,),
      advice="Find the connection (trx_mysql_thread_id in the processlist): an application that "
             "opened a transaction and went idle, or a batch that never commits. Fix the application; "
             "as a guard, an idle-transaction timeout (MariaDB idle_transaction_timeout, or wait_timeout).",
      risk="KILL rolls the transaction back: as long as it ran, holding its locks meanwhile.",
      verify="No transaction older than 5 minutes in mysql/innodb_trx.jsonl of a new bundle.")
def long_transaction(b: Bundle) -> Optional[Hit]:
    """Checks INNODB_TRX in every sample for a transaction present from the window's first sample
    to its last and older than 5 minutes at the end.

    **Why it matters**: a long transaction holds its row locks (others wait, IBP-06) and its read
    view (purge stops, IBP-07); an idle one is usually an application bug.

    **Example**: transaction 4212 on thread 88, open 2 h 10 min, in all 6 samples, 12,000 rows
    modified.

    **Fix**: commit or roll back sooner in the application; set an idle-transaction timeout.
    """
    rows = [r for r in b.jsonl(TRX) if isinstance(r.get("transactions"), list)]
    if len(rows) < 2:
        raise Insufficient(f"{TRX}: {len(rows)} sample(s), 2 needed")

    def ids(row: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        return {str(t.get("trx_id")): t for t in row["transactions"]
                if isinstance(t, dict) and t.get("trx_id")}

    first, last = ids(rows[0]), ids(rows[-1])
    spanning = []
    for trx_id, trx in last.items():
        age = to_number(trx.get("age_seconds"))
        if trx_id in first and age is not None and age >= 300:
            seen = sum(1 for r in rows if trx_id in ids(r))
            spanning.append((age, seen, trx))
    if not spanning:
        return None
    spanning.sort(key=lambda item: -item[0])
    age, seen, trx = spanning[0]
    details = {k: trx.get(k) for k in ("trx_id", "trx_mysql_thread_id", "trx_state", "trx_rows_modified",
                                       "trx_rows_locked", "statement")}
    modified = to_number(trx.get("trx_rows_modified")) or 0
    return Hit(f"{len(spanning)} transaction(s) open through the window; the oldest, on thread "
               f"{trx.get('trx_mysql_thread_id')}, for {age / 60:.0f} min (in {seen} of {len(rows)} samples)",
               severity="error" if age >= 3600 and modified > 0 else None,
               evidence=[Evidence(TRX, {"age_seconds": age, "samples_seen": seen, "samples": len(rows),
                                        "transactions": len(spanning), **details})])
