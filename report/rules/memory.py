"""Rules: memory — mysqld's memory against the host's RAM and its cgroup's limit.

The host's RAM, the cgroup limit and mysqld's measured RSS come from report/facts.py (the
innodb rules read them too). Direct reclaim is the host group's (OS-14).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from report.facts import (
    MEMINFO,
    PROCESS,
    cgroup_limit_bytes,
    dig,
    memory_limit,
    mysqld_rss_bytes,
    ram_bytes,
    size,
)
from report.finding import Evidence, Hit, Insufficient, NotApplicable
from report.model import Bundle, to_number
from report.registry import rule
from report.window import Window, guarded_ratio

PROCESSES = "os/processes.jsonl"

#: Buffers allocated once for the whole server (bytes), by variable.
GLOBAL_BUFFERS = ("innodb_buffer_pool_size", "key_buffer_size", "innodb_log_buffer_size",
                  "aria_pagecache_buffer_size", "query_cache_size")
#: Buffers a connection may allocate for itself, each at most once per statement.
PER_CONNECTION = ("sort_buffer_size", "join_buffer_size", "read_buffer_size", "read_rnd_buffer_size",
                  "thread_stack", "binlog_cache_size", "net_buffer_length")
_MYSQLD_NAMES = ("mysqld", "mariadbd")


def _buffers(b: Bundle, names: Tuple[str, ...]) -> Dict[str, float]:
    found = {}
    for name in names:
        value = b.number(name)
        if value is not None and value > 0:
            if name == "query_cache_size" and (b.variable("query_cache_type") or "").upper() in ("OFF", "0"):
                continue  # not allocated while the query cache is off
            found[name] = value
    return found


def _peak_connections(b: Bundle) -> Optional[float]:
    w = b.window
    if len(w) and w.has("Max_used_connections"):
        return w.gauge("Max_used_connections").max
    return None


@rule("MEM-01", "The worst case of mysqld's buffers exceeds the memory it may use",
      group="memory", severity="warning", confidence="medium",
      needs=("mysql/global_variables.json",),
      advice="Bring global buffers + peak connections × per-connection buffers under about 90% of the "
             "limit: lower max_connections towards the measured peak (with a margin), or the largest "
             "per-connection buffers back towards their defaults, or the buffer pool; or give the host "
             "or the cgroup more memory.",
      risk="Lowering max_connections refuses clients beyond it; smaller sort/join buffers can make some "
           "queries slower (check the digests that sort or join without indexes first).",
      verify="Recompute the worst case from the new variables; mysqld's RSS stays under the limit at the "
             "next peak; roll back with SET GLOBAL <variable>=<old>.")
def worst_case_memory(b: Bundle) -> Optional[Hit]:
    """Checks the worst case of mysqld's memory: the global buffers plus every connection's
    per-connection buffers, against the tighter of the host's RAM and the cgroup memory limit.

    The global buffers are innodb_buffer_pool_size, key_buffer_size, innodb_log_buffer_size,
    aria_pagecache_buffer_size and query_cache_size (when the query cache is on); the
    per-connection ones sort_buffer_size, join_buffer_size, read_buffer_size,
    read_rnd_buffer_size, thread_stack, binlog_cache_size and net_buffer_length. The worst case
    is computed twice: with the *measured* peak of connections (Max_used_connections) — a
    warning — and with max_connections — a notice, since that many clients may never come.

    **Why it matters**: when the connections that really come each allocate their buffers, a
    server sized past its memory is killed by the kernel's (or the cgroup's) OOM killer, which
    is a crash and a crash recovery in the middle of the peak.

    **Example**: 24 GiB of buffer pool on a 32 GiB host, sort_buffer_size=64M and 400 connections
    at peak: 24 GiB + 400 × 65 MiB ≈ 49 GiB.

    **Fix**: lower max_connections towards the measured peak, the per-connection buffers back to
    their defaults (raise them per session where a query needs it), or give the host more memory.
    """
    limit, which = memory_limit(b)
    globals_ = _buffers(b, GLOBAL_BUFFERS)
    per_conn = _buffers(b, PER_CONNECTION)
    if not globals_:
        raise Insufficient("no global buffer size is readable in mysql/global_variables.json")
    total_global = sum(globals_.values())
    each = sum(per_conn.values())
    peak = _peak_connections(b)
    maximum = b.number("max_connections")
    values: Dict[str, Any] = {"limit_bytes": limit, "limit": which, "global_buffers_bytes": total_global,
                              "per_connection_bytes": each, "max_used_connections": peak,
                              "max_connections": maximum}
    values.update({name: value for name, value in globals_.items()})
    if peak is not None:
        measured = total_global + peak * each
        values["worst_case_measured_bytes"] = measured
        if measured > 0.9 * limit:
            return Hit(f"global buffers {size(total_global)} + {peak:.0f} connections at peak × "
                       f"{size(each)} = {size(measured)}, over 90% of {which} ({size(limit)})",
                       evidence=[Evidence("mysql/global_variables.json", values)])
    if maximum is not None and maximum > 0:
        theoretical = total_global + maximum * each
        values["worst_case_max_connections_bytes"] = theoretical
        if theoretical > limit:
            return Hit(f"global buffers {size(total_global)} + max_connections={maximum:.0f} × {size(each)} "
                       f"= {size(theoretical)}, more than {which} ({size(limit)})"
                       + (f"; at the measured peak of {peak:.0f} connections it stays under"
                          if peak is not None else ""),
                       evidence=[Evidence("mysql/global_variables.json", values)], severity="notice",
                       advice="Lower max_connections towards the measured peak of connections with a "
                              "margin (or use a connection pool), so that a burst of clients cannot "
                              "take the server past its memory.")
    return None


@rule("MEM-02", "mysqld's resident memory is close to the memory it may use",
      group="memory", severity="warning",
      needs=(PROCESS,),
      advice="Find what holds the memory before it grows further (performance_schema memory "
             "instruments, the buffer pool, per-connection buffers × connections); shrink the largest "
             "consumer, or raise the cgroup limit / the host's RAM.",
      risk="Shrinking the buffer pool makes more reads go to disk; check the buffer pool miss rate "
           "(IBP-01) before and after.",
      verify="mysqld's VmRSS (os/mysqld_process.json) stays below 85% of the limit in the next bundle.")
def rss_near_limit(b: Bundle) -> Optional[Hit]:
    """Checks mysqld's measured resident memory (VmRSS) against the tighter of the host's RAM
    and its cgroup memory limit.

    **Why it matters**: a process over its cgroup limit is killed by the OOM killer at once; a
    host whose RAM is nearly all mysqld's swaps or kills the server under the next allocation
    burst (a big sort, many new connections, a DDL).

    **Example**: VmRSS 7.6 GiB in a container limited to 8 GiB — 95% of the limit.

    **Fix**: reduce the largest consumer (usually the buffer pool, sized by the measured RSS
    minus the pool), or give the cgroup or host more memory.
    """
    rss = mysqld_rss_bytes(b)
    if rss is None:
        raise Insufficient("mysqld's resident memory is not in the bundle")
    limit, which = memory_limit(b)
    share = guarded_ratio(min(rss, limit), limit, 1 << 20, "memory limit")
    if share < 0.85:
        return None
    return Hit(f"mysqld's resident memory is {size(rss)}, {share:.0%} of {which} ({size(limit)})",
               evidence=[Evidence(PROCESS, {"rss_bytes": rss, "limit_bytes": limit, "limit": which,
                                            "share": round(share, 3)})],
               severity="error" if share >= 0.95 else None)


def _rss_series(b: Bundle) -> Window:
    """mysqld's RSS over the window, from the process table samples (its pid's rows)."""
    pid = to_number(dig(b.json(PROCESS, {}), "pid"))
    rows = []
    for row in b.jsonl(PROCESSES):
        same = to_number(row.get("pid")) == pid if pid is not None else row.get("name") in _MYSQLD_NAMES
        if same and to_number(row.get("rss_bytes")) is not None:
            rows.append({"ts": row.get("ts"), "rss_bytes": row.get("rss_bytes")})
    return Window.from_rows(rows)


@rule("MEM-03", "mysqld's resident memory grew during the window",
      group="memory", severity="warning", window=True, confidence="medium",
      needs=(PROCESSES,),
      advice="Take another bundle in an hour: if RSS keeps growing, find the consumer in "
             "performance_schema.memory_summary_global_by_event_name (or MariaDB's Memory_used) and "
             "check the allocator (os/mysqld_memory_map.json: glibc malloc fragments; jemalloc or "
             "tcmalloc usually do not).",
      risk="None for looking; changing the allocator needs a restart.",
      verify="RSS is flat over a new window of the same length, or the projected time to the limit grows.")
def rss_growth(b: Bundle) -> Optional[Hit]:
    """Checks whether mysqld's resident memory grew during the sampling window, more than the
    buffer pool's own filling explains, and when it would reach the memory limit at that pace.

    **Why it matters**: memory that grows without bound (a leak, allocator fragmentation,
    ever more connections or prepared statements) ends in an OOM kill; the growth rate says how
    soon.

    **Example**: RSS 5.1 → 5.4 GiB in 10 minutes while the buffer pool was already full: at
    that pace the 8 GiB cgroup limit is reached in about 1.5 hours.

    **Fix**: find the growing consumer (performance_schema memory instruments), then fix it:
    close idle connections, cap prepared statements, or switch the allocator to jemalloc.
    """
    series = _rss_series(b)
    if len(series) < 3:
        raise Insufficient(f"mysqld's RSS: {len(series)} sample(s) in {PROCESSES}, 3 needed")
    trend = series.trend("rss_bytes")
    grown = trend.last - trend.first
    filled = 0.0
    status = b.window
    page = b.number("innodb_page_size") or 16384
    if len(status) >= 2 and status.has("Innodb_buffer_pool_pages_data"):
        filled = max(0.0, (status.last("Innodb_buffer_pool_pages_data") or 0)
                     - (status.first("Innodb_buffer_pool_pages_data") or 0)) * page
    unexplained = grown - filled
    if trend.per_second <= 0 or unexplained < 32 << 20:
        return None
    limit, which = memory_limit(b)
    headroom = limit - trend.last
    hours = headroom / trend.per_second / 3600 if headroom > 0 else 0.0
    if hours > 24:
        return None
    return Hit(f"mysqld's RSS grew {size(grown)} in {series.seconds:.0f} s ({size(trend.per_second * 3600)}"
               f"/h, {size(unexplained)} of it not the buffer pool filling); at that pace it reaches "
               f"{which} ({size(limit)}) in {hours:.1f} h",
               evidence=[Evidence(PROCESSES, {"rss_first_bytes": trend.first, "rss_last_bytes": trend.last,
                                              "bytes_per_hour": round(trend.per_second * 3600),
                                              "buffer_pool_filled_bytes": filled, "limit_bytes": limit,
                                              "hours_to_limit": round(hours, 2)},
                                  samples=series.evidence_samples("rss_bytes"))],
               severity="error" if hours < 1 else None)


@rule("MEM-04", "The buffer pool is larger than the cgroup memory limit allows",
      group="memory", severity="error",
      needs=("mysql/global_variables.json",),
      advice="Set innodb_buffer_pool_size to at most the cgroup limit minus mysqld's measured memory "
             "outside the pool (RSS − pool) minus a 10% margin; or raise the container's memory limit.",
      risk="A smaller pool means more reads from disk (see IBP-01); resizing online moves pages and "
           "can stall briefly on a busy server.",
      verify="innodb_buffer_pool_size + the rest of mysqld's RSS stays under 90% of the cgroup limit; "
             "roll back with SET GLOBAL innodb_buffer_pool_size=<old>.")
def pool_over_cgroup(b: Bundle) -> Optional[Hit]:
    """Checks innodb_buffer_pool_size against mysqld's cgroup memory limit (a container's or a
    systemd unit's MemoryMax).

    **Why it matters**: the pool is allocated as pages are touched; once the server has read
    enough data it passes the limit and the cgroup's OOM killer ends mysqld — often hours after
    start, which hides the cause.

    **Example**: innodb_buffer_pool_size=12G in a container with a 8 GiB limit.

    **Fix**: size the pool from the limit: limit − (measured RSS − pool) − 10%.
    """
    limit = cgroup_limit_bytes(b)
    if limit is None:
        raise NotApplicable("mysqld has no cgroup memory limit")
    pool = b.number("innodb_buffer_pool_size")
    if pool is None or pool <= 0:
        raise Insufficient("innodb_buffer_pool_size is not readable")
    if pool < 0.8 * limit:
        return None
    rss = mysqld_rss_bytes(b)
    other = max(0.0, rss - min(rss, pool)) if rss is not None else 0.0
    target = 0.9 * limit - other
    advice = None
    if target > 0:
        advice = (f"Set innodb_buffer_pool_size to at most {size(target)} (the limit {size(limit)} × 0.9 "
                  f"minus {size(other)} measured outside the pool), or raise the cgroup limit.")
    return Hit(f"innodb_buffer_pool_size={size(pool)} is {pool / limit:.0%} of the cgroup memory limit "
               f"({size(limit)})", advice=advice,
               evidence=[Evidence(PROCESS, {"innodb_buffer_pool_size": pool, "cgroup_limit_bytes": limit,
                                            "rss_bytes": rss})],
               severity="critical" if pool >= limit else None)


def _available(meminfo: Any) -> Optional[float]:
    return to_number(dig(meminfo, "MemAvailable"))


@rule("MEM-05", "The host had little available memory during the whole window",
      group="memory", severity="warning", window=True,
      needs=(MEMINFO,),
      advice="Find the host's largest consumers (os/processes.jsonl by RSS): if mysqld, size its "
             "buffers from the measured RSS; if another process, move it or give the host more memory.",
      risk="None for looking; shrinking buffers makes the server do more I/O.",
      verify="MemAvailable stays above 10% of MemTotal at the start and the end of the next window.")
def low_available_memory(b: Bundle) -> Optional[Hit]:
    """Checks MemAvailable (the kernel's estimate of memory available without swapping) at the
    start and at the end of the sampling window against MemTotal.

    **Why it matters**: a host that stays below a few percent of available memory reclaims page
    cache under every allocation, swaps, and sooner or later OOM-kills its largest process — mysqld.

    **Example**: MemAvailable 3% of 64 GiB at the start and 2% at the end of the window.

    **Fix**: shrink mysqld's buffers from measured figures, or move the other consumers away.
    """
    data = b.json(MEMINFO, {})
    total = ram_bytes(b)
    start, end = _available(dig(data, "meminfo")), _available(dig(data, "end", "meminfo"))
    if start is None or end is None:
        raise Insufficient("MemAvailable at the start and the end of the window is needed "
                           "(collect with --samples 2 or more)")
    if total is None:
        raise Insufficient("MemTotal is not in os/meminfo.json")
    low = max(start, end)
    share = guarded_ratio(min(low, total), total, 64 << 20, "MemTotal")
    if share >= 0.05 and low >= 256 << 20:
        return None
    return Hit(f"MemAvailable was {size(start)} at the start and {size(end)} at the end of the window "
               f"({share:.1%} of {size(total)} at best)",
               evidence=[Evidence(MEMINFO, {"mem_available_start": start, "mem_available_end": end,
                                            "mem_total": total})],
               severity="error" if share < 0.02 else None)


@rule("MEM-07", "Part of mysqld's memory is in swap",
      group="memory", severity="warning",
      needs=(PROCESS,),
      advice="Keep mysqld out of swap: size its buffers so RSS fits in RAM with room for the page "
             "cache, set vm.swappiness=1, and consider memlock only with care.",
      risk="Swapped pages come back on access: the first queries touching them are slow.",
      verify="VmSwap of mysqld is zero or shrinking in the next bundle.")
def mysqld_swapped(b: Bundle) -> Optional[Hit]:
    """Checks how much of mysqld's memory the kernel moved to swap (VmSwap).

    **Why it matters**: a buffer-pool page in swap costs a disk read twice — once from swap,
    again from the data file when evicted — and latch holders stall on page faults.

    **Example**: VmSwap 1.2 GiB with VmRSS 6 GiB.

    **Fix**: size mysqld below the RAM (measured RSS), lower vm.swappiness.
    """
    memory = dig(b.json(PROCESS, {}), "memory")
    swapped = to_number(dig(memory, "VmSwap"))
    if swapped is None:
        raise Insufficient("VmSwap is not in os/mysqld_process.json")
    rss = to_number(dig(memory, "VmRSS")) or 0.0
    share = guarded_ratio(swapped, swapped + rss, 1 << 20, "mysqld memory")
    if swapped < 64 << 20 or share < 0.05:
        return None
    return Hit(f"{size(swapped)} of mysqld's memory is in swap ({share:.0%} of resident + swapped)",
               evidence=[Evidence(PROCESS, {"VmSwap": swapped, "VmRSS": rss, "share": round(share, 3)})])
