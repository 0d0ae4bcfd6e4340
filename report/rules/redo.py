"""Rules: redo — the redo log's capacity against the window's writes, checkpoints, flushing
and durability settings."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from report.facts import MONITOR_END, MONITOR_START, dig, monitor_number, size
from report.finding import Evidence, Hit, Insufficient, NotApplicable
from report.model import Bundle
from report.registry import rule
from report.window import guarded_ratio

STATUS = "mysql/global_status.jsonl"
VARIABLES = "mysql/global_variables.json"


def log_capacity(b: Bundle) -> Tuple[float, str]:
    """The redo log's capacity in bytes and the variables it comes from."""
    capacity = b.number("innodb_redo_log_capacity")
    if capacity and capacity > 0:
        return capacity, "innodb_redo_log_capacity"
    file_size = b.number("innodb_log_file_size")
    if not file_size or file_size <= 0:
        raise Insufficient("neither innodb_redo_log_capacity nor innodb_log_file_size is readable")
    files = b.number("innodb_log_files_in_group") or 1.0
    files = files if 1 <= files <= 100 else 1.0
    return file_size * files, "innodb_log_file_size × innodb_log_files_in_group"


def _resize_advice(b: Bundle, target: float) -> str:
    rounded = max(1 << 30, float(1 << max(0, int(target - 1).bit_length())))
    if b.number("innodb_redo_log_capacity"):
        how = f"SET GLOBAL innodb_redo_log_capacity={rounded:.0f} (online on MySQL 8.0.30+) and persist it"
    elif b.version.is_mariadb and b.version.at_least(10, 9):
        how = f"SET GLOBAL innodb_log_file_size={rounded:.0f} (online on MariaDB 10.9+) and put it in my.cnf"
    else:
        how = f"innodb_log_file_size={rounded / max(1.0, b.number('innodb_log_files_in_group') or 1):.0f} " \
              "in my.cnf and a clean restart"
    return (f"Size the redo log to hold about an hour of the measured writes ({size(target)}): {how}. "
            "This is sized from the window's write rate, not from the buffer pool.")


@rule("REDO-01", "The checkpoint age comes close to the redo log's capacity",
      group="redo", severity="warning", window=True,
      needs=(),
      advice="Give the redo log more room (REDO-03 sizes it from the write rate) and let page cleaners "
             "flush earlier (innodb_io_capacity matched to the disk, innodb_adaptive_flushing=ON).",
      risk="A larger redo log takes disk space and lengthens crash recovery somewhat.",
      verify="The checkpoint age stays below 75% of the maximum through a new window of the same load.")
def checkpoint_age(b: Bundle) -> Optional[Hit]:
    """Checks the checkpoint age (LSN minus the last checkpoint) during the window against the
    maximum InnoDB allows (MariaDB's Innodb_checkpoint_max_age, else the log capacity): from the
    status samples where the server reports it (MariaDB), else SHOW ENGINE INNODB STATUS at the
    window's start and end ("Log sequence number", "Last checkpoint at").

    **Why it matters**: near the maximum InnoDB flushes synchronously (furious flushing): every
    write waits for the page cleaner, and throughput collapses until the age falls.

    **Example**: checkpoint age 86% of Innodb_checkpoint_max_age in 5 of 6 samples.

    **Fix**: a redo log that holds about an hour of writes, and flushing that keeps up.
    """
    w = b.window
    samples: List[List[Any]] = []
    if len(w) >= 2 and w.has("Innodb_checkpoint_age"):
        age = w.gauge("Innodb_checkpoint_age").max
        maximum = w.last("Innodb_checkpoint_max_age") if w.has("Innodb_checkpoint_max_age") else None
        member = STATUS
        samples = w.evidence_samples("Innodb_checkpoint_age")
    else:
        ages = []
        for path in (MONITOR_START, MONITOR_END):
            lsn = monitor_number(b, path, "Log sequence number")
            checkpoint = monitor_number(b, path, "Last checkpoint at")
            if lsn is not None and checkpoint is not None and lsn >= checkpoint:
                ages.append(lsn - checkpoint)
        if len(ages) < 2:
            raise Insufficient("the checkpoint age at the window's start and end is needed "
                               f"({MONITOR_START}, {MONITOR_END} or Innodb_checkpoint_age samples)")
        age, maximum, member = max(ages), None, MONITOR_END
    denominator, source = (maximum, "Innodb_checkpoint_max_age") if maximum else log_capacity(b)
    share = guarded_ratio(min(age, denominator), denominator, 1 << 20, "redo log capacity")
    if share < 0.75:
        return None
    return Hit(f"checkpoint age reached {size(age)}, {share:.0%} of {source} ({size(denominator)})",
               severity="error" if share >= 0.9 else None,
               evidence=[Evidence(member, {"checkpoint_age_max": age, "limit_bytes": denominator,
                                           "limit": source, "share": round(share, 3)}, samples=samples)])


@rule("REDO-02", "Writes waited for room in the redo log buffer",
      group="redo", severity="warning", window=True,
      needs=(STATUS,),
      advice="Raise innodb_log_buffer_size so it holds at least a second of the measured redo writes "
             "(the finding gives the figure); it is dynamic on MySQL 8.0 and MariaDB 10.11.",
      risk="The log buffer is allocated once: a few tens of MiB of memory.",
      verify="Innodb_log_waits does not grow during a new window; roll back with "
             "SET GLOBAL innodb_log_buffer_size=<old>.")
def log_waits(b: Bundle) -> Optional[Hit]:
    """Checks Innodb_log_waits during the window: how often a write waited because the redo log
    buffer was full and had to be flushed first.

    **Why it matters**: each wait is a synchronous redo write in a transaction's path; a growing
    count means the buffer is too small for the write bursts (large transactions, bulk loads).

    **Example**: 120 log waits in 60 s with innodb_log_buffer_size=8M and 20 MiB of redo per second.

    **Fix**: a log buffer that holds a second or more of the measured redo write rate.
    """
    w = b.window
    waits = w.delta("Innodb_log_waits")
    per_second = w.rate("Innodb_log_waits")
    if waits < 10:
        return None
    buffer = b.number("innodb_log_buffer_size")
    written = w.rate("Innodb_os_log_written") if w.has("Innodb_os_log_written") else None
    advice = None
    if written:
        target = max(64 << 20, 2 * written)
        advice = (f"Raise innodb_log_buffer_size to about {size(target)} (two seconds of the measured "
                  f"{size(written)}/s of redo, at least 64 MiB).")
    return Hit(f"{waits:.0f} waits for the redo log buffer during the window ({per_second:.2f}/s) with "
               f"innodb_log_buffer_size={size(buffer)}", advice=advice,
               evidence=[Evidence(STATUS, {"log_waits_delta": waits, "log_waits_per_s": round(per_second, 3),
                                           "innodb_log_buffer_size": buffer, "redo_bytes_per_s": written},
                                  samples=w.evidence_samples("Innodb_log_waits"))])


def _redo_rate(b: Bundle) -> Tuple[float, float, str]:
    """Redo bytes written per second during the window, the bytes, and the counter used."""
    w = b.window
    for name in ("Innodb_lsn_current", "Innodb_os_log_written"):
        if w.has(name):
            # The default collection's window (5 samples 1 s apart) is 4 s: the rule's 1 MiB
            # minimum of redo is what keeps a short window from judging an idle server.
            return w.rate(name, min_seconds=3.5), w.delta(name), name
    raise Insufficient("neither Innodb_lsn_current nor Innodb_os_log_written is in the status samples")


@rule("REDO-03", "The redo log holds less than an hour of the window's writes",
      group="redo", severity="notice", window=True, confidence="medium",
      needs=(STATUS,),
      advice="Size the redo log from the measured write rate: about one hour of redo (the finding "
             "gives the figure), not a share of the buffer pool.",
      risk="A larger log takes disk space and makes crash recovery read more; with MySQL before 8.0.30 "
           "and MariaDB before 10.9 resizing needs a clean restart.",
      verify="Redo bytes per second × 3600 stays below the new capacity over a window at peak load.")
def redo_capacity_hours(b: Bundle) -> Optional[Hit]:
    """Checks how long the redo log lasts at the window's write rate: the capacity
    (innodb_redo_log_capacity, or innodb_log_file_size × files) divided by the LSN growth per
    second (Innodb_lsn_current, else Innodb_os_log_written).

    **Why it matters**: a log that fills in minutes forces checkpoints — and so page flushing —
    to keep pace with every burst; a log holding an hour lets InnoDB flush smoothly and absorb
    peaks. The old "25% of the buffer pool" rule ignores the write rate entirely.

    **Example**: 96 MiB of redo and 2 MiB/s of writes: the log holds 48 seconds.

    **Fix**: capacity ≈ redo bytes per second at peak × 3600.
    """
    rate, grown, counter = _redo_rate(b)
    if grown < 1 << 20 or rate <= 0:
        return None
    capacity, source = log_capacity(b)
    hours = capacity / rate / 3600
    if hours >= 1:
        return None
    lasts = f"{hours * 60:.0f} minutes" if hours * 3600 >= 120 else f"{hours * 3600:.0f} seconds"
    return Hit(f"{size(rate)}/s of redo during the window: {source} = {size(capacity)} holds {lasts} of it",
               advice=_resize_advice(b, rate * 3600),
               severity="warning" if hours < 0.25 else None,
               evidence=[Evidence(STATUS, {"redo_bytes_per_s": round(rate), "counter": counter,
                                           "capacity_bytes": capacity, "hours": round(hours, 3)},
                                  samples=b.window.evidence_samples(counter))])


@rule("REDO-04", "Pages are flushed faster than innodb_io_capacity allows for",
      group="redo", severity="notice", window=True, confidence="medium",
      needs=(STATUS,),
      advice="Set innodb_io_capacity near the measured steady flush rate (the finding gives it) and "
             "innodb_io_capacity_max to about twice that — within the disk's sustained write IOPS "
             "(os/diskstats.jsonl), never its burst figure.",
      risk="Too high an io_capacity makes InnoDB flush more than needed and wears SSDs; too low lets "
           "dirty pages and the checkpoint age pile up.",
      verify="The flush rate stays between innodb_io_capacity and innodb_io_capacity_max, and the "
             "checkpoint age (REDO-01) stays low; roll back with SET GLOBAL innodb_io_capacity=<old>.")
def flush_rate(b: Bundle) -> Optional[Hit]:
    """Checks the rate of pages flushed during the window (Innodb_buffer_pool_pages_flushed per
    second) against innodb_io_capacity and innodb_io_capacity_max.

    **Why it matters**: io_capacity tells InnoDB what background flushing the disk affords. When
    the workload needs more, adaptive flushing runs at io_capacity_max or beyond in bursts
    (behind the checkpoint), and writes stall; a capacity far under the real need is the usual
    cause of furious flushing.

    **Example**: 2,400 pages flushed per second with innodb_io_capacity=200, io_capacity_max=2000.

    **Fix**: io_capacity near the measured steady flush rate, within what the disk sustains.
    """
    w = b.window
    grown = w.delta("Innodb_buffer_pool_pages_flushed")
    per_second = w.rate("Innodb_buffer_pool_pages_flushed", min_seconds=10)
    capacity = b.number("innodb_io_capacity")
    if not capacity or capacity <= 0:
        raise Insufficient("innodb_io_capacity is not readable")
    maximum = b.number("innodb_io_capacity_max")
    if grown < 1000 or per_second < 1.5 * capacity:
        return None
    over_max = bool(maximum and per_second >= maximum)
    advice = (f"Set innodb_io_capacity to about {per_second:.0f} (the measured flush rate) and "
              f"innodb_io_capacity_max to about {2 * per_second:.0f}, if the disk sustains that many "
              "write IOPS (check os/diskstats.jsonl); otherwise the disk is the limit.")
    return Hit(f"{per_second:.0f} pages flushed per second during the window with innodb_io_capacity="
               f"{capacity:.0f}" + (f" and innodb_io_capacity_max={maximum:.0f}" if maximum else ""),
               advice=advice, severity="warning" if over_max else None,
               evidence=[Evidence(STATUS, {"pages_flushed_per_s": round(per_second, 1),
                                           "innodb_io_capacity": capacity, "innodb_io_capacity_max": maximum},
                                  samples=w.evidence_samples("Innodb_buffer_pool_pages_flushed"))])


@rule("REDO-05", "Committed transactions are not flushed to disk at commit",
      group="redo", severity="notice",
      needs=(VARIABLES,),
      advice="Set innodb_flush_log_at_trx_commit=1 where losing the last second of commits on a crash is "
             "not acceptable (primaries, anything without a replica to rebuild from).",
      risk="=1 makes each commit wait for an fsync: on disks without a write cache that can cut the "
           "commit rate; group commit softens it. Keep 0/2 only where the loss is accepted.",
      verify="SELECT @@innodb_flush_log_at_trx_commit returns 1; roll back with "
             "SET GLOBAL innodb_flush_log_at_trx_commit=<old>.")
def flush_at_commit(b: Bundle) -> Optional[Hit]:
    """Checks innodb_flush_log_at_trx_commit: 1 writes and syncs the redo log at every commit;
    2 writes at commit and syncs once a second; 0 does both once a second.

    **Why it matters**: with 2 an OS crash or power loss loses up to a second of committed
    transactions; with 0 even a mysqld crash does. A replica set up from such a primary can
    diverge from it after a crash.

    **Example**: innodb_flush_log_at_trx_commit=2 on a primary.

    **Fix**: 1 on primaries; 2 is a deliberate choice on replicas that can be rebuilt.
    """
    value = b.number("innodb_flush_log_at_trx_commit")
    if value is None:
        raise Insufficient("innodb_flush_log_at_trx_commit is not readable")
    if value == 1 or value == 3:  # 3 (MariaDB) is 1 without group-commit waiting
        return None
    loses = "a mysqld crash or an OS crash" if value == 0 else "an OS crash or power loss"
    return Hit(f"innodb_flush_log_at_trx_commit={value:.0f}: {loses} loses up to about "
               f"{b.number('innodb_flush_log_at_timeout') or 1:.0f} s of committed transactions",
               severity="notice" if value == 0 else "info",
               evidence=[Evidence(VARIABLES, {"innodb_flush_log_at_trx_commit": value})])


_DIRECT = ("O_DIRECT", "O_DIRECT_NO_FSYNC")


def _on_linux(b: Bundle) -> Optional[bool]:
    kernel = dig(b.json("os/host.json", {}), "kernel", "name")
    if isinstance(kernel, str) and kernel:
        return kernel.lower() == "linux"
    compiled = b.variable("version_compile_os")
    if compiled:
        return "linux" in compiled.lower()
    return None


@rule("REDO-06", "InnoDB data files go through the OS page cache on Linux",
      group="redo", severity="notice",
      needs=(VARIABLES,),
      advice="Set innodb_flush_method=O_DIRECT in my.cnf (a restart applies it): the buffer pool then "
             "is the only cache of the data, and the page cache stays for everything else.",
      risk="On a few filesystems (some network or FUSE mounts, old kernels on tmpfs) O_DIRECT is not "
           "supported: the server would not start; test first. Reads that relied on the page cache "
           "with a too-small pool get slower: size the pool first (IBP-01).",
      verify="SELECT @@innodb_flush_method shows O_DIRECT after the restart; the host's page cache "
             "holds less InnoDB data (os/meminfo.json Cached).")
def flush_method(b: Bundle) -> Optional[Hit]:
    """Checks innodb_flush_method on Linux: anything other than O_DIRECT (or O_DIRECT_NO_FSYNC)
    reads and writes InnoDB data through the OS page cache.

    **Why it matters**: the data is then cached twice — in the buffer pool and in the page cache
    — which wastes RAM, and the kernel's writeback of the cached copy competes with InnoDB's
    own flushing.

    **Example**: innodb_flush_method=fsync on MySQL 8.0 (its default before 8.4).

    **Fix**: innodb_flush_method=O_DIRECT (the default on MariaDB 10.6+ and MySQL 8.4+).
    """
    method = (b.variable("innodb_flush_method") or "").strip().upper()
    if not method:
        raise NotApplicable("this server has no innodb_flush_method (MariaDB 11: innodb_data_file_buffering)")
    linux = _on_linux(b)
    if linux is None:
        raise Insufficient("the operating system is not known (os/host.json, version_compile_os)")
    if not linux:
        raise NotApplicable("not Linux")
    if method in _DIRECT:
        return None
    return Hit(f"innodb_flush_method={method} on Linux: InnoDB data is cached in the page cache too",
               evidence=[Evidence(VARIABLES, {"innodb_flush_method": method})])


@rule("REDO-07", "The doublewrite buffer is off: a torn page write cannot be repaired",
      group="redo", severity="warning", confidence="medium",
      needs=(VARIABLES,),
      advice="Set innodb_doublewrite=ON unless the storage guarantees atomic 16 KiB writes (ZFS, some "
             "FusionIO/atomic-write devices); on MySQL 8.0.30+ DETECT_ONLY only detects, it cannot repair.",
      risk="Doublewrite writes each flushed page twice (sequentially): a few percent of write "
           "throughput on modern disks.",
      verify="SELECT @@innodb_doublewrite returns ON after the change (a restart on older versions).")
def doublewrite_off(b: Bundle) -> Optional[Hit]:
    """Checks innodb_doublewrite: with it off, a crash in the middle of a page write leaves a
    half-written (torn) page that redo cannot repair.

    **Why it matters**: a torn page is corruption: InnoDB refuses to start or crashes when it
    reads the page, and the fix is a restore from backup.

    **Example**: innodb_doublewrite=OFF set for a benchmark and never turned back.

    **Fix**: innodb_doublewrite=ON (or MariaDB's `fast`), except on storage with atomic page writes.
    """
    value = (b.variable("innodb_doublewrite") or "").strip().upper()
    if not value:
        raise Insufficient("innodb_doublewrite is not readable")
    if value not in ("OFF", "0", "DETECT_ONLY"):
        return None
    return Hit(f"innodb_doublewrite={value}: a torn page after a crash cannot be repaired",
               evidence=[Evidence(VARIABLES, {"innodb_doublewrite": value})])
