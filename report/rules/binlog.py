"""Rules: the binary log — durability, format, its caches and how fast it fills the disk."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from report.facts import replica_count
from report.finding import Evidence, Hit, Insufficient, NotApplicable
from report.model import Bundle, to_number
from report.registry import rule
from report.window import Window, guarded_ratio

GROUP = "binlog"
VARIABLES = "mysql/global_variables.json"
STATUS = "mysql/global_status.jsonl"
REPLICA_HOSTS = "mysql/replication/replica_hosts.json"
BINARY_LOGS = "mysql/replication/binary_logs.json"
DISKS = "os/disks.json"


def _binlog_on(b: Bundle) -> None:
    """NotApplicable unless the server writes a binary log."""
    on = b.switch("log_bin")
    if on is None:
        status = b.json("mysql/replication/binlog_status.json")
        if isinstance(status, list):
            on = bool(status)
    if on is None:
        raise Insufficient("log_bin is not in the variables and the binary log status was not read")
    if not on:
        raise NotApplicable("binary logging is off (log_bin=OFF)")


def _unrestarted(w: Window) -> Window:
    if w.restarted:
        raise Insufficient("the server restarted during the window (Uptime went down): its "
                           "counters describe a cold start")
    return w


def _mib(value: float) -> str:
    return f"{value / (1 << 20):,.1f} MiB"


@rule("BIN-01", "The binary log is not synced at every commit (sync_binlog is not 1)",
      group=GROUP, severity="warning", needs=(VARIABLES,),
      advice="Set sync_binlog=1 (SET GLOBAL sync_binlog=1, and in the option file). With binary log "
             "group commit the extra cost is one fsync per commit group, not per transaction.",
      risk="One more fsync per commit group: on disks without a write cache commit latency rises "
           "(measure with a new window's Binlog_commits rate); nothing else changes.",
      verify="SELECT @@sync_binlog returns 1; the commit rate of a new window stays where it was. "
             "Roll back with SET GLOBAL sync_binlog=<old>.")
def sync_binlog(b: Bundle) -> Optional[Hit]:
    """Checks that a server writing a binary log flushes it to disk at every commit
    (`sync_binlog=1`).

    **Why it matters**: with `sync_binlog=0` the operating system decides when binary log
    writes reach the disk; with `sync_binlog=N` up to N-1 commit groups can be lost. After a
    power loss or a kernel crash the binary log then lacks transactions InnoDB committed:
    replicas miss them for good, and point-in-time recovery from the binary log stops short.
    On a replication source this is data divergence, which is why the severity rises when
    replicas are registered (mysql/replication/replica_hosts.json).

    **Example**: `log_bin=ON`, `sync_binlog=0` (MariaDB's default), two replicas registered.

    **Fix**: `SET GLOBAL sync_binlog=1` and `sync_binlog=1` in the `[mysqld]` section of the
    option file.
    """
    _binlog_on(b)
    value = b.number("sync_binlog")
    if value is None:
        raise Insufficient("sync_binlog is not in the variables")
    if value == 1:
        return None
    replicas = replica_count(b)
    source = bool(replicas)
    what = "when the OS decides" if value == 0 else f"only every {int(value)} commit groups"
    summary = (f"sync_binlog={int(value)}: the binary log is flushed to disk {what}; "
               + (f"{replicas} replica(s) read from this server, and a crash can leave them with "
                  "transactions the source lost (or the other way round)" if source else
                  "a crash can lose committed transactions from the binary log"))
    return Hit(summary, severity="error" if source else "warning",
               confidence="high" if replicas is not None else "medium",
               evidence=[Evidence(VARIABLES, {"log_bin": b.variable("log_bin"), "sync_binlog": int(value)}),
                         Evidence(REPLICA_HOSTS, {"replicas": replicas},
                                  note="" if replicas is not None else "replica hosts not read")])


@rule("BIN-02", "The binary log format is not ROW",
      group=GROUP, severity="notice", needs=(VARIABLES,),
      advice="Use binlog_format=ROW (SET GLOBAL binlog_format='ROW' affects new sessions; put it in the "
             "option file). Set binlog_row_image=MINIMAL if the binary log volume matters.",
      risk="Row events are larger than statements for bulk UPDATE/DELETE (more binary log bytes and "
           "replica I/O); a replica must run a version that reads row events (all supported ones do). "
           "Changing it while replicas apply STATEMENT events is safe; change it on the source first.",
      verify="SELECT @@global.binlog_format returns ROW; the error log no longer shows "
             "\"Unsafe statement written to the binary log\". Roll back with SET GLOBAL "
             "binlog_format=<old>.")
def binlog_format(b: Bundle) -> Optional[Hit]:
    """Checks the binary log format: `ROW` records the changed rows; `STATEMENT` records the
    SQL text and `MIXED` switches to rows only for statements the server knows to be unsafe.

    **Why it matters**: a statement whose result depends on something the replica sees
    differently (`UPDATE … LIMIT` without `ORDER BY`, `NOW()` in a trigger, a non-deterministic
    function, `INSERT … SELECT` on a table with an auto-increment) replays to different rows
    on the replica: silent divergence. `MIXED` narrows this to what the server's
    unsafe-statement list misses. `ROW` is the default of MySQL 8 and what every
    replication-consistency tool assumes.

    **Example**: `binlog_format=STATEMENT` on a source with replicas.

    **Fix**: `binlog_format=ROW` in the option file (and `SET GLOBAL` for new sessions).
    """
    _binlog_on(b)
    value = (b.variable("binlog_format") or "").strip().upper()
    if not value:
        raise Insufficient("binlog_format is not in the variables")
    if value == "ROW":
        return None
    statement = value == "STATEMENT"
    return Hit(f"binlog_format={value[:20]}: " + (
        "every statement is logged as SQL text, and unsafe ones replay differently on replicas"
        if statement else "statements the server does not know to be unsafe are logged as SQL text"),
        severity="warning" if statement else "notice",
        evidence=[Evidence(VARIABLES, {"binlog_format": value[:20], "replicas": replica_count(b)})])


def _cache_spill(b: Bundle, disk: str, use: str, size_var: str, what: str) -> Optional[Dict[str, Any]]:
    _binlog_on(b)
    w = _unrestarted(b.window)
    spilled = w.delta(disk)
    share = guarded_ratio(spilled, w.delta(use), 50, f"{what} ({use})")
    if share < 0.1 or spilled < 5:
        return None
    return {"share": share, "per_s": w.rate(disk), "spilled": spilled,
            "size": b.number(size_var), "samples": w.evidence_samples(disk)}


@rule("BIN-03", "Transactions overflow the binary log cache to a temporary file",
      group=GROUP, severity="warning", window=True, needs=(VARIABLES, STATUS),
      advice="Look first for the large transactions (bulk loads, big UPDATE/DELETE): splitting them in "
             "batches of a few thousand rows keeps them in memory and the replicas' lag small. Then "
             "raise binlog_cache_size in steps (e.g. 32 KiB → 256 KiB → 1 MiB) until Binlog_cache_disk_use "
             "stops growing; keep max_connections × binlog_cache_size in the memory budget.",
      risk="binlog_cache_size is allocated by each session that writes to the binary log: the worst "
           "case is max_connections × binlog_cache_size of extra memory.",
      verify="Over a new window Binlog_cache_disk_use grows by less than 10% of Binlog_cache_use. Roll "
             "back with SET GLOBAL binlog_cache_size=<old>.")
def binlog_cache_spill(b: Bundle) -> Optional[Hit]:
    """Checks, over the sampled window, the share of transactions whose binary log events did
    not fit in `binlog_cache_size` and went to a temporary file (`Binlog_cache_disk_use` /
    `Binlog_cache_use`).

    **Why it matters**: a spilled transaction writes its events twice (to a temporary file in
    `tmpdir`, then to the binary log) and holds the binary log lock longer at commit, so
    commits of other sessions queue behind it. Large transactions also replay as one long
    event on replicas: lag.

    **Example**: 800 of 2,000 transactions in the window (40%) spilled, with
    `binlog_cache_size=32768`.

    **Fix**: split the large transactions; then raise `binlog_cache_size` step by step.
    """
    found = _cache_spill(b, "Binlog_cache_disk_use", "Binlog_cache_use", "binlog_cache_size",
                         "transactions that used the binary log cache")
    if found is None:
        return None
    size = found["size"]
    return Hit(f"{found['share']:.0%} of the window's transactions ({found['spilled']:,.0f}, "
               f"{found['per_s']:.2f}/s) overflowed binlog_cache_size"
               + (f"={int(size):,}" if size is not None else "") + " to a temporary file",
               evidence=[Evidence(STATUS, {"Binlog_cache_disk_use_delta": found["spilled"],
                                           "spill_share": round(found["share"], 3),
                                           "binlog_cache_size": size,
                                           "max_connections": b.number("max_connections")},
                                  samples=found["samples"])])


@rule("BIN-04", "Statements on non-transactional tables overflow the binary log statement cache",
      group=GROUP, severity="notice", window=True, needs=(VARIABLES, STATUS),
      advice="Find the statements writing many rows to MyISAM/Aria/MEMORY tables (the statement "
             "digests of the window) and convert those tables to InnoDB; if they must stay, raise "
             "binlog_stmt_cache_size in steps until Binlog_stmt_cache_disk_use stops growing.",
      risk="binlog_stmt_cache_size is allocated per session that writes such statements: worst case "
           "max_connections × binlog_stmt_cache_size. Converting a table to InnoDB rebuilds it.",
      verify="Over a new window Binlog_stmt_cache_disk_use grows by less than 10% of "
             "Binlog_stmt_cache_use. Roll back with SET GLOBAL binlog_stmt_cache_size=<old>.")
def binlog_stmt_cache_spill(b: Bundle) -> Optional[Hit]:
    """Checks, over the sampled window, the share of non-transactional statements whose
    binary log events overflowed `binlog_stmt_cache_size` to a temporary file
    (`Binlog_stmt_cache_disk_use` / `Binlog_stmt_cache_use`).

    **Why it matters**: each overflow is an extra write to `tmpdir` and a longer hold of the
    binary log at commit; it also says that large writes go to tables without transactions,
    which a crash can leave half-applied while the binary log says otherwise.

    **Example**: 30% of 500 statements on Aria tables spilled during the window.

    **Fix**: move the tables to InnoDB; otherwise raise `binlog_stmt_cache_size`.
    """
    found = _cache_spill(b, "Binlog_stmt_cache_disk_use", "Binlog_stmt_cache_use", "binlog_stmt_cache_size",
                         "statements that used the binary log statement cache")
    if found is None:
        return None
    return Hit(f"{found['share']:.0%} of the window's non-transactional statements "
               f"({found['spilled']:,.0f}) overflowed binlog_stmt_cache_size to a temporary file",
               evidence=[Evidence(STATUS, {"Binlog_stmt_cache_disk_use_delta": found["spilled"],
                                           "spill_share": round(found["share"], 3),
                                           "binlog_stmt_cache_size": found["size"]},
                                  samples=found["samples"])])


def _retention_seconds(b: Bundle) -> float:
    seconds = b.number("binlog_expire_logs_seconds") or 0.0
    if seconds <= 0:
        seconds = (b.number("expire_logs_days") or 0.0) * 86400
    return max(0.0, seconds)


def _binlog_free_bytes(b: Bundle) -> Optional[float]:
    """Free bytes of the filesystem that holds the binary logs (os/disks.json)."""
    disks = b.json(DISKS)
    if not isinstance(disks, dict):
        return None
    paths = disks.get("mysql_paths") if isinstance(disks.get("mysql_paths"), dict) else {}
    mount = None
    for key in ("log_bin_basename", "datadir"):
        entry = paths.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("mountpoint"), str):
            mount = entry["mountpoint"]
            break
    if mount is None:
        return None
    filesystems = disks.get("filesystems") if isinstance(disks.get("filesystems"), list) else []
    for fs in filesystems:
        if isinstance(fs, dict) and fs.get("mountpoint") == mount:
            return to_number(fs.get("free_bytes"))
    return None


def _binlog_bytes(b: Bundle) -> Optional[float]:
    logs = b.json(BINARY_LOGS)
    if not isinstance(logs, list):
        return None
    sizes: List[float] = [to_number(row.get("File_size")) or 0.0 for row in logs if isinstance(row, dict)]
    return sum(sizes)


@rule("BIN-05", "The binary logs will fill the disk at the window's write rate",
      group=GROUP, severity="warning", window=True, needs=(VARIABLES, STATUS),
      advice="Set a retention that the disk can hold at the measured rate: binlog_expire_logs_seconds "
             "(MySQL 8, MariaDB 10.6+) or expire_logs_days, no shorter than what backups and the "
             "slowest replica need; or move the binary logs to a larger filesystem (log_bin=/path). "
             "Never delete binlog files by hand: use PURGE BINARY LOGS BEFORE '<time>'.",
      risk="A shorter retention limits point-in-time recovery and lets a replica that is stopped "
           "longer than the retention fall out of reach (it then needs a rebuild). Check the "
           "replicas' lag and the backup schedule before purging.",
      verify="SHOW BINARY LOGS' total stays under the retention × the write rate; the filesystem's free "
             "space stops shrinking over days. Roll back by setting the old retention again.")
def binlog_growth(b: Bundle) -> Optional[Hit]:
    """Checks the binary log's write rate during the window (`Binlog_bytes_written` per
    second) against its retention (`binlog_expire_logs_seconds`, `expire_logs_days`, MariaDB
    11.4's `max_binlog_total_size`) and the free space of the filesystem holding it
    (os/disks.json), with the current binary logs' size (mysql/replication/binary_logs.json).

    **Why it matters**: binary logs that outgrow their disk stop the server's writes (a full
    disk makes every commit wait, see "Disk is full writing" in the error log); a retention of
    0 means they are never purged and the question is only when.

    **Example**: 2 MiB/s of binary log, `expire_logs_days=0`, 80 GiB free: the disk is full
    in about 11 hours of this load.

    **Fix**: a retention the disk can hold at the measured rate, no shorter than backups and
    replicas need; or a larger filesystem for the binary logs.
    """
    _binlog_on(b)
    w = _unrestarted(b.window)
    if not w.has("Binlog_bytes_written"):
        raise Insufficient("Binlog_bytes_written is not in the samples (MySQL does not count it)")
    rate = w.rate("Binlog_bytes_written", min_seconds=5.0)
    if rate <= 0:
        return None
    free = _binlog_free_bytes(b)
    current = _binlog_bytes(b)
    retention = _retention_seconds(b)
    limit = b.number("max_binlog_total_size") or b.number("binlog_space_limit") or 0.0
    values: Dict[str, Any] = {"bytes_per_s": round(rate, 1), "retention_seconds": retention,
                              "max_binlog_total_size": limit or None, "free_bytes": free,
                              "binary_logs_bytes": current}
    samples = w.evidence_samples("Binlog_bytes_written")
    evidence = [Evidence(STATUS, values, samples=samples)]
    if retention <= 0 and limit <= 0:
        if free is None:
            return Hit(f"The binary logs are never purged (no expiry set) and grow by {_mib(rate)}/s "
                       "in the window; the free space of their filesystem is unknown",
                       severity="notice", confidence="medium", evidence=evidence)
        days = free / rate / 86400
        values["days_to_full"] = round(days, 2)
        severity = "error" if days < 3 else "warning" if days < 30 else "notice"
        return Hit(f"The binary logs are never purged (no expiry set): at the window's {_mib(rate)}/s "
                   f"the {_mib(free)} free on their filesystem last about {days:,.1f} days",
                   severity=severity, evidence=evidence)
    if free is None:
        raise Insufficient("the free space of the binary logs' filesystem is unknown (os/disks.json)")
    footprint = rate * retention if retention > 0 else limit
    if limit > 0:
        footprint = min(footprint, limit)
    extra = footprint - (current or 0.0)
    values["projected_bytes"] = round(footprint)
    if extra <= 0.8 * free:
        return None
    return Hit(f"At the window's {_mib(rate)}/s the retention keeps about {_mib(footprint)} of binary "
               f"logs, {_mib(max(extra, 0))} more than today, and {_mib(free)} are free",
               severity="error" if extra > free else "warning", evidence=evidence)


@rule("BIN-06", "The binary log is synced at commit but InnoDB's redo log is not",
      group=GROUP, severity="warning", needs=(VARIABLES,),
      advice="Pair the two: innodb_flush_log_at_trx_commit=1 with sync_binlog=1 for a crash-safe "
             "source. If the fsync cost is the reason for the setting, measure it over a window first "
             "(Innodb_os_log_fsyncs, commit latency); group commit usually makes =1 cheap.",
      risk="innodb_flush_log_at_trx_commit=1 adds one redo fsync per commit group: on slow disks, "
           "higher commit latency.",
      verify="SELECT @@innodb_flush_log_at_trx_commit returns 1. Roll back with SET GLOBAL "
             "innodb_flush_log_at_trx_commit=<old>.")
def durability_pairing(b: Bundle) -> Optional[Hit]:
    """Checks that `innodb_flush_log_at_trx_commit` and `sync_binlog` agree: a binary log
    synced at every commit (`sync_binlog=1`) with a redo log that is not
    (`innodb_flush_log_at_trx_commit` 0 or 2).

    **Why it matters**: after an operating-system crash or power loss, the binary log then
    holds transactions whose redo InnoDB never wrote: the replicas (and a point-in-time
    restore) have rows the source itself lost. The half-durable pair pays for one fsync and
    still loses data; it is usually a leftover of a benchmark.

    **Example**: `sync_binlog=1`, `innodb_flush_log_at_trx_commit=2`.

    **Fix**: `innodb_flush_log_at_trx_commit=1`.
    """
    _binlog_on(b)
    sync = b.number("sync_binlog")
    flush = b.number("innodb_flush_log_at_trx_commit")
    if sync is None or flush is None:
        raise Insufficient("sync_binlog or innodb_flush_log_at_trx_commit is not in the variables")
    if sync != 1 or flush == 1:
        return None
    return Hit(f"sync_binlog=1 but innodb_flush_log_at_trx_commit={int(flush)}: after a crash the binary "
               "log (and the replicas) can hold transactions InnoDB lost",
               evidence=[Evidence(VARIABLES, {"sync_binlog": 1, "innodb_flush_log_at_trx_commit": int(flush),
                                              "replicas": replica_count(b)})])
