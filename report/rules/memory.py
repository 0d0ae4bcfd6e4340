"""Rules: memory — mysqld's memory against the host's RAM and its cgroup's limit.

The helpers at the top (the host's RAM, the cgroup limit, mysqld's measured RSS, the
global and per-connection buffers) are read by the innodb rules too; they treat every
member as hostile and return None when a figure is missing or not a number.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from report.finding import Evidence, Hit, Insufficient, NotApplicable
from report.model import Bundle, to_number
from report.registry import rule
from report.window import Window, guarded_ratio

MEMINFO = "os/meminfo.json"
HOST = "os/host.json"
PROCESS = "os/mysqld_process.json"
MEMORY_MAP = "os/mysqld_memory_map.json"
PROCESSES = "os/processes.jsonl"
VMSTAT = "os/vmstat.jsonl"

#: cgroup v1 reports "no limit" as a number close to 2**63; anything this big is no limit.
_UNLIMITED = 1 << 60
#: Buffers allocated once for the whole server (bytes), by variable.
GLOBAL_BUFFERS = ("innodb_buffer_pool_size", "key_buffer_size", "innodb_log_buffer_size",
                  "aria_pagecache_buffer_size", "query_cache_size")
#: Buffers a connection may allocate for itself, each at most once per statement.
PER_CONNECTION = ("sort_buffer_size", "join_buffer_size", "read_buffer_size", "read_rnd_buffer_size",
                  "thread_stack", "binlog_cache_size", "net_buffer_length")
_MYSQLD_NAMES = ("mysqld", "mariadbd")


def dig(data: Any, *keys: str) -> Any:
    """data[k1][k2]… or None when any level is missing or not a dict."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def size(value: Optional[float]) -> str:
    """Bytes as a short human figure (1.5 GiB)."""
    if value is None:
        return "?"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(amount) < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def _positive(value: Any) -> Optional[float]:
    number = to_number(value)
    return number if number is not None and number > 0 else None


def ram_bytes(b: Bundle) -> Optional[float]:
    """The host's physical memory (MemTotal), from os/meminfo.json."""
    data = b.json(MEMINFO, {})
    return _positive(dig(data, "meminfo", "MemTotal")) or _positive(dig(data, "summary", "total_bytes"))


def cgroup_limit_bytes(b: Bundle) -> Optional[float]:
    """mysqld's cgroup memory limit (its own process's, else the host collector's), or None
    when there is none."""
    for path in (PROCESS, HOST):
        limit = _positive(dig(b.json(path, {}), "cgroup", "memory", "limit_bytes"))
        if limit is not None and limit < _UNLIMITED:
            return limit
    return None


def memory_limit(b: Bundle) -> Tuple[float, str]:
    """The memory mysqld can really use: the tighter of RAM and the cgroup limit, and which."""
    ram, cgroup = ram_bytes(b), cgroup_limit_bytes(b)
    if ram is None and cgroup is None:
        raise Insufficient(f"neither the host's RAM nor a cgroup limit is known ({b.why_missing(MEMINFO)})")
    if cgroup is not None and (ram is None or cgroup < ram):
        return cgroup, "the cgroup memory limit"
    return ram, "the host's RAM"  # type: ignore[return-value]


def mysqld_rss_bytes(b: Bundle) -> Optional[float]:
    """mysqld's measured resident memory (the process collector's, else the memory map's)."""
    rss = _positive(dig(b.json(PROCESS, {}), "memory", "VmRSS"))
    if rss is None:
        rss = _positive(dig(b.json(MEMORY_MAP, {}), "resident", "rss_bytes"))
    return rss


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


def _direct_reclaim(values: Dict[str, Any]) -> bool:
    stalls = to_number(values.get("allocstall_per_s")) or 0.0
    scans = to_number(values.get("pgscan_direct_per_s")) or 0.0
    return stalls > 0 or scans > 100


@rule("MEM-06", "Processes waited for memory (direct reclaim) through the window",
      group="memory", severity="warning", window=True,
      needs=(VMSTAT,),
      advice="The host is short of memory: shrink mysqld's buffers to what its measured RSS needs, "
             "or move other consumers; check that the page cache is not squeezed by an oversized pool.",
      risk="None for looking; a smaller buffer pool means more disk reads.",
      verify="allocstall_per_s and pgscan_direct_per_s are zero in most samples of the next window.")
def direct_reclaim(b: Bundle) -> Optional[Hit]:
    """Checks the share of vmstat samples in which processes stalled in direct reclaim
    (allocstall, pgscan_direct in /proc/vmstat) — a process waiting for the kernel to free memory.

    **Why it matters**: in direct reclaim the allocating thread (a mysqld query thread) stops
    until pages are freed; queries stall for milliseconds to seconds, and swapping or the OOM
    killer follow if it persists.

    **Example**: allocation stalls in 5 of 6 samples, 40 per second on average.

    **Fix**: give mysqld less memory (buffer pool sized from the measured RSS), or the host more.
    """
    # The first row's rates are since boot, not the window's (its window_seconds is null).
    rows = [{"ts": row.get("ts"), **row["rates"]} for row in b.jsonl(VMSTAT)
            if isinstance(row.get("rates"), dict) and to_number(row.get("window_seconds"))]
    window_part = Window.from_rows(rows)
    if len(window_part) < 3:
        raise Insufficient(f"{VMSTAT}: {len(window_part)} sample(s) with the window's rates, 3 needed")
    share = window_part.persistence(_direct_reclaim)
    if share < 0.5:
        return None
    stalls = window_part.gauge("allocstall_per_s") if window_part.has("allocstall_per_s") else None
    return Hit(f"direct reclaim in {share:.0%} of the window's samples"
               + (f" (allocation stalls {stalls.avg:.1f}/s on average)" if stalls else ""),
               evidence=[Evidence(VMSTAT, {"share_of_samples": round(share, 3),
                                           "allocstall_per_s_avg": round(stalls.avg, 2) if stalls else None},
                                  samples=window_part.evidence_samples("allocstall_per_s"))])


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
