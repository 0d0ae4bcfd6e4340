"""Rules: what the server wrote to its error log — crashes, OOM kills, corruption, refused
and aborted connections, restarts and crash recovery, deadlocks.

logs/error.log is the tail of the log (collectors/logs/error_log.py), redacted on the way
(InnoDB record dumps reduced, statements fingerprinted), in MariaDB's format
(`2026-12-02  5:11:34 0 [Note] …`, the hour padded with a space) or MySQL 8's
(`2024-08-04T07:51:55.786346Z 0 [Note] [MY-010931] [Server] …`). Its lines are customer text:
evidence quotes at most a few, each cut to QUOTE characters with control characters shown
as U+FFFD, and never the statement of a crash report.
"""

from __future__ import annotations

import re
import weakref
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from report.finding import Evidence, Hit, Insufficient, NotApplicable
from report.model import Bundle, to_number
from report.registry import rule

GROUP = "errorlog"
LOG = "logs/error.log"
OOM = "os/oom_kills.json"
KERNEL = "os/kernel_log.json"

#: Quoted lines are cut to this many characters; lines are matched on their first SCAN.
QUOTE = 300
SCAN = 4096
#: At most this many lines quoted per finding.
QUOTED_LINES = 3

_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T]+(\d{1,2}):(\d{2}):(\d{2})")
_OLD_STAMP = re.compile(r"^(\d{2})(\d{2})(\d{2}) +(\d{1,2}):(\d{2}):(\d{2})")
_SIGNAL = re.compile(r"\b(?:mysqld|mariadbd|mysqld-debug)\b.{0,80}?\bgot signal (\d{1,3})\b")
_FRAME = re.compile(r"^\s*(?:#\d+\s+0x[0-9a-fA-F]+\s+\S|\S.*\(.*\)\s*\[0x[0-9a-fA-F]+\]\s*$)")
_HANDLER_FRAMES = ("my_print_stacktrace", "handle_fatal_signal", "print_fatal_signal", "my_write_core",
                   "signal_handler", "__restore_rt", "pthread_kill", "raise", "abort")
_ASSERTION = re.compile(r"Assertion failure|Failing assertion|Assertion `|assertion failed", re.I)
_CORRUPTION = re.compile(
    r"database page corruption|\bis corrupt(?:ed)?\b|looks corrupted|checksum mismatch|"
    r"is marked as crashed|incorrect key file for table|corrupted page|page .{0,80} is in the future",
    re.I)
_CORRUPTION_WORDS = ("corrupt", "checksum mismatch", "marked as crashed", "incorrect key file",
                     "in the future")
_ABORTED = re.compile(r"Aborted connection \d+ to db:.*\(([^()]{1,200})\)\.?\s*$")
_DEADLOCK = re.compile(r"Transactions deadlock detected")
_DEADLOCK_TABLE = re.compile(r" of table (`[^`]{1,64}`\.`[^`]{1,64}`|\S{1,130}) ")
_READY = re.compile(r"\bready for connections\b")
_READY_WORDS = ("ready for connections",)
_RECOVERY = re.compile(r"Starting crash recovery|Database was not shut ?down normally|"
                       r"crash recovery from checkpoint", re.I)
_SERVER_NAMES = ("mysqld", "mariadbd", "mysqld-debug")


def quote(line: str) -> str:
    """A log line fit for evidence: cut, control characters shown, no trailing blanks."""
    cut = line[:QUOTE]
    return "".join(ch if ch >= " " and ch != "\x7f" or ch == "\t" else "\ufffd" for ch in cut).rstrip()


@dataclass
class ErrorLog:
    lines: List[str] = field(default_factory=list)
    _lowered: Optional[List[str]] = field(default=None, repr=False)

    def stamp(self, index: int) -> Optional[str]:
        """The time of line `index`'s entry (its own, or the last stamped line before it)."""
        for i in range(index, max(-1, index - 200), -1):
            moment = _moment(self.lines[i])
            if moment is not None:
                return moment.strftime("%Y-%m-%d %H:%M:%S")
        return None

    def moment(self, index: int) -> Optional[datetime]:
        text = self.stamp(index)
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S") if text else None

    def find(self, pattern: re.Pattern, needles: Tuple[str, ...]) -> List[int]:
        """Lines matching `pattern`; only lines holding one of `needles` (lower case) are
        matched, so a large log costs a substring scan, not a regex per line."""
        if self._lowered is None:
            self._lowered = [line.lower() for line in self.lines]
        return [i for i, low in enumerate(self._lowered)
                if any(n in low for n in needles) and pattern.search(self.lines[i])]


def _moment(line: str) -> Optional[datetime]:
    match = _STAMP.match(line)
    try:
        if match:
            day, hour, minute, second = match.groups()
            return datetime.strptime(f"{day} {int(hour):02d}:{minute}:{second}", "%Y-%m-%d %H:%M:%S")
        match = _OLD_STAMP.match(line)
        if match:
            yy, mm, dd, hour, minute, second = match.groups()
            return datetime.strptime(f"20{yy}-{mm}-{dd} {int(hour):02d}:{minute}:{second}",
                                     "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return None


_CACHE: weakref.WeakKeyDictionary[Bundle, ErrorLog] = weakref.WeakKeyDictionary()


def _log(b: Bundle) -> ErrorLog:
    """The error log's lines (each cut to SCAN characters for matching), read once per bundle."""
    if b in _CACHE:
        return _CACHE[b]
    text = b.text(LOG)
    if text is None:
        raise Insufficient(b.why_missing(LOG))
    parsed = ErrorLog([line[:SCAN] for line in text.split("\n")])
    _CACHE[b] = parsed
    return parsed


def _span_hours(log: ErrorLog, indexes: List[int]) -> Optional[float]:
    if len(indexes) < 2:
        return None
    first, last = log.moment(indexes[0]), log.moment(indexes[-1])
    if first is None or last is None or last <= first:
        return None
    return (last - first).total_seconds() / 3600


def _frames(log: ErrorLog, start: int) -> Tuple[List[str], Optional[str]]:
    """The first frames of the backtrace after a crash line (the signal handler's own frames
    left out), and the assertion that fired, if any."""
    frames: List[str] = []
    assertion = None
    for i in range(max(0, start - 30), start):
        if _ASSERTION.search(log.lines[i]):
            assertion = quote(log.lines[i])
    handler_seen = False
    for line in log.lines[start + 1:start + 400]:
        if _moment(line) is not None and "got signal" not in line and frames:
            break
        if assertion is None and _ASSERTION.search(line):
            assertion = quote(line)
        if not _FRAME.match(line):
            continue
        if any(name in line for name in _HANDLER_FRAMES):
            handler_seen = True
            continue
        if handler_seen and not frames and ("libc" in line or "libpthread" in line) and "(+0x" in line:
            continue
        frames.append(quote(line.strip()))
        if len(frames) >= 6:
            break
    return frames, assertion


@rule("LOG-01", "The server crashed (a fatal signal in the error log)",
      group=GROUP, severity="critical", needs=(LOG,),
      advice="Match the backtrace's first frames against the bug trackers (MariaDB JIRA, MySQL bugs) for "
             "this exact version; upgrade to the latest release of the same series when a fix exists. "
             "Signal 6 with an InnoDB assertion often follows corruption (see LOG-03) or a full disk; "
             "signal 11 on a hot path usually a server bug a minor upgrade fixes. Keep core files "
             "(core-file, LimitCORE) for the next time.",
      risk="A minor upgrade restarts the server; read the release notes of the versions in between.",
      verify="No new \"got signal\" in the error log over the following days.")
def crash(b: Bundle) -> Optional[Hit]:
    """Checks the error log for a crash: `mysqld got signal 11` (segmentation fault), `6`
    (abort, often an assertion), `7` (bus error), and quotes the backtrace's first frames
    after the signal handler's own, and the failing assertion.

    **Why it matters**: a crash ends every connection, rolls back open transactions and
    restarts the server cold (empty buffer pool); one that repeats is an outage. The first
    frames name the code path (the optimizer, a storage engine, replication), which decides
    between a known bug with a fix and corruption or hardware.

    **Example**: `[ERROR] mysqld got signal 11 ;` then `Thread pointer: 0x7f…` and frames
    such as `/usr/sbin/mariadbd(_ZN4JOIN8optimizeEv+0x…)[0x…]`.

    **Fix**: find the bug for these frames; upgrade within the series; keep core files.
    """
    log = _log(b)
    crashes = []
    for i in log.find(_SIGNAL, ("got signal",)):
        match = _SIGNAL.search(log.lines[i])
        if match:
            crashes.append((i, int(match.group(1))))
    if not crashes:
        return None
    last, signal = crashes[-1]
    frames, assertion = _frames(log, last)
    values: Dict[str, Any] = {"crashes": len(crashes), "last_signal": signal, "last_time": log.stamp(last),
                              "signals": dict(Counter(str(s) for _i, s in crashes))}
    if assertion:
        values["assertion"] = assertion
    name = {11: "segmentation fault", 6: "abort", 7: "bus error", 8: "floating-point error"}.get(signal, "")
    return Hit(f"{len(crashes)} crash(es) in the error log; the last with signal {signal}"
               + (f" ({name})" if name else "")
               + (f" at {values['last_time']}" if values["last_time"] else "")
               + (f", first frame {frames[0][:120]}" if frames else ""),
               evidence=[Evidence(LOG, values, note="backtrace: " + " | ".join(frames) if frames
                                  else "no backtrace frames in the log tail")])


def _is_server(name: Any) -> bool:
    return str(name or "").strip() in _SERVER_NAMES


@rule("LOG-02", "The kernel's OOM killer killed the server",
      group=GROUP, severity="critical", needs=(),
      advice="Size the server's memory to the host or its cgroup limit from measured values: the RSS at "
             "the kill (anon-rss below), the buffer pool and the per-connection buffers times the peak "
             "of connections (see the memory rules); lower innodb_buffer_pool_size or max_connections "
             "to fit, or give the host or container more memory. Do not disable the OOM killer for "
             "mysqld (oom_score_adj -1000) without removing the overcommit.",
      risk="A smaller buffer pool reads more from disk; a restart is needed on servers that cannot "
           "resize the buffer pool online.",
      verify="No new OOM kill of mysqld in the kernel log over a busy period; the RSS's peak stays "
             "under the limit.")
def oom_kill(b: Bundle) -> Optional[Hit]:
    """Checks the kernel log (os/oom_kills.json, os/kernel_log.json) for OOM kills of the
    database server, and whether its error log shows it starting again afterwards.

    **Why it matters**: an OOM kill is a crash without a backtrace: the error log shows only
    the next start-up (often with crash recovery). A server sized past its host's or
    container's memory is killed again at the next peak. A kill inside a memory cgroup means
    the container's limit, not the host's RAM, is the ceiling.

    **Example**: `Out of memory: Killed process 812 (mariadbd) total-vm:…, anon-rss:15.2GB`.

    **Fix**: size memory from the measured RSS against the host or cgroup limit.
    """
    oom, kernel = b.json(OOM), b.json(KERNEL)
    if not isinstance(oom, dict) and not isinstance(kernel, dict):
        raise Insufficient(b.why_missing(OOM))
    readable = [d for d in (oom, kernel) if isinstance(d, dict) and d.get("readable") is not False]
    if not readable:
        raise Insufficient("the kernel log could not be read (root or CAP_SYSLOG needed)")
    kills: List[Dict[str, Any]] = []
    if isinstance(oom, dict) and isinstance(oom.get("events"), list):
        for event in oom["events"]:
            if isinstance(event, dict) and _is_server(event.get("process")):
                kills.append({"time": quote(str(event.get("time") or ""))[:40] or None,
                              "pid": to_number(event.get("pid")),
                              "anon_rss_bytes": to_number(event.get("anon_rss_bytes")),
                              "memory_cgroup_oom": event.get("memory_cgroup_oom") is True,
                              "message": quote(str(event.get("message") or ""))})
    if not kills and isinstance(kernel, dict) and isinstance(kernel.get("events"), list):
        for event in kernel["events"]:
            if isinstance(event, dict) and event.get("kind") == "oom_kill" \
                    and _is_server(event.get("process")):
                kills.append({"time": quote(str(event.get("time") or ""))[:40] or None,
                              "pid": to_number(event.get("pid")),
                              "memory_cgroup_oom": "Memory cgroup" in str(event.get("message") or ""),
                              "message": quote(str(event.get("message") or ""))})
    if not kills:
        return None
    evidence = [Evidence(OOM if isinstance(oom, dict) else KERNEL, {"kills": len(kills)},
                         note="; ".join(k["message"] for k in kills[-QUOTED_LINES:]))]
    starts = None
    if b.has(LOG):
        log = _log(b)
        ready = log.find(_READY, _READY_WORDS)
        starts = len(ready)
        evidence.append(Evidence(LOG, {"start_ups_in_log": starts,
                                       "last_start_up": log.stamp(ready[-1]) if ready else None}))
    cgroup = any(k["memory_cgroup_oom"] for k in kills)
    rss = [k.get("anon_rss_bytes") for k in kills if k.get("anon_rss_bytes")]
    return Hit(f"The kernel killed the server {len(kills)} time(s) for lack of memory"
               + (" (inside a memory cgroup: the container's limit)" if cgroup else "")
               + (f"; anon-rss at the last kill {rss[-1] / (1 << 30):.1f} GiB" if rss else "")
               + (f"; the error log shows {starts} start-up(s)" if starts else ""),
               evidence=evidence)


@rule("LOG-03", "The error log reports corruption",
      group=GROUP, severity="critical", needs=(LOG,),
      advice="Find what is corrupt from the messages (the table or tablespace, the page). Check the "
             "storage first (kernel I/O errors, SMART, the RAID controller's log). Then CHECK TABLE the "
             "named tables; restore them from a backup or rebuild them from a healthy replica. Use "
             "innodb_force_recovery only to dump data, starting at 1, never on a server that must stay "
             "in production.",
      risk="CHECK TABLE reads the whole table (I/O, and on MyISAM/Aria a lock); innodb_force_recovery ≥ 4 "
           "can make things worse and blocks writes.",
      verify="CHECK TABLE reports OK for the named tables and the messages do not come back.")
def corruption(b: Bundle) -> Optional[Hit]:
    """Checks the error log for corruption messages: InnoDB's `Database page corruption`,
    `… is corrupted`, `checksum mismatch`, pages whose log sequence number `is in the
    future`, and MyISAM/Aria tables `marked as crashed` or with an `Incorrect key file`.

    **Why it matters**: corruption spreads — a corrupt page can crash the server when read
    (signal 6 after an assertion), a backup copies it, and a replica built from that backup
    inherits it. It is also the first sign of failing storage.

    **Example**: `[ERROR] InnoDB: Database page corruption on disk or a failed read of file
    './app/orders.ibd' page [page id: space=12, page number=3031]`.

    **Fix**: check the storage, then CHECK TABLE and restore or rebuild the named objects.
    """
    log = _log(b)
    hits = log.find(_CORRUPTION, _CORRUPTION_WORDS)
    if not hits:
        return None
    distinct: List[str] = []
    for i in hits:
        line = quote(log.lines[i])
        if line not in distinct:
            distinct.append(line)
        if len(distinct) >= QUOTED_LINES:
            break
    return Hit(f"{len(hits)} corruption message(s) in the error log, the last at "
               f"{log.stamp(hits[-1]) or '?'}",
               evidence=[Evidence(LOG, {"messages": len(hits), "first": log.stamp(hits[0]),
                                        "last": log.stamp(hits[-1]), "lines": distinct})])


@rule("LOG-04", "Connections were refused: Too many connections",
      group=GROUP, severity="warning", needs=(LOG,),
      advice="Find why connections pile up before raising max_connections: slow queries or lock waits "
             "that keep sessions busy (Threads_running), or an application pool larger than the "
             "server's limit (the sum of the pools' sizes). Keep a few connections for admins "
             "(MariaDB extra_port / MySQL admin_port).",
      risk="A higher max_connections raises the worst-case memory (per-connection buffers × "
           "connections) and lets overload grow instead of being refused.",
      verify="No new \"Too many connections\" in the error log; Connection_errors_max_connections stops "
             "growing over a new window.")
def too_many_connections(b: Bundle) -> Optional[Hit]:
    """Checks the error log for `Too many connections`: clients refused because
    `max_connections` was reached.

    **Why it matters**: each refusal is an application error (error 1040) seen by a user; it
    usually means sessions are stuck (a lock, a slow query) rather than the limit being
    too low.

    **Example**: 37 lines `… Too many connections` within ten minutes, with
    `max_connections=151`.

    **Fix**: find what holds the connections; size the application pools to the limit.
    """
    log = _log(b)
    hits = [i for i, line in enumerate(log.lines) if "too many connections" in line.lower()]
    if not hits:
        return None
    return Hit(f"{len(hits)} \"Too many connections\" message(s) in the error log (max_connections="
               f"{(b.variable('max_connections') or '?')[:12]}), the last at {log.stamp(hits[-1]) or '?'}",
               severity="error" if len(hits) >= 100 else "warning",
               evidence=[Evidence(LOG, {"messages": len(hits), "first": log.stamp(hits[0]),
                                        "last": log.stamp(hits[-1]),
                                        "max_connections": b.number("max_connections")},
                                  note=quote(log.lines[hits[-1]]))])


@rule("LOG-05", "Many connections were aborted",
      group=GROUP, severity="notice", needs=(LOG,),
      advice="Read the reasons: \"Got timeout reading communication packets\" means clients left idle "
             "connections open past wait_timeout (close them in the pool: a max idle time below "
             "wait_timeout); \"Got an error reading communication packets\" means clients vanished "
             "(crashed, killed, a network device cut them); \"Access denied\" is a client with wrong "
             "credentials retrying. Fix the client side before changing server timeouts.",
      risk="Lowering wait_timeout cuts idle connections sooner (more reconnects); raising it keeps more "
           "idle sessions (memory).",
      verify="The counts of the same reasons fall in the next days' error log; Aborted_clients grows "
             "slower.")
def aborted_connections(b: Bundle) -> Optional[Hit]:
    """Counts the error log's `Aborted connection … (reason)` warnings by reason, with the
    failed logins (`Access denied for user`).

    **Why it matters**: aborted connections cost the server a session set-up each, and their
    reason points at the client: pools that outlive `wait_timeout`, clients that crash or are
    cut by a firewall, an application retrying with a wrong password.

    **Example**: `Aborted connection 88 to db: 'app' user: 'web' host: '10.0.0.5' (Got
    timeout reading communication packets)` 420 times.

    **Fix**: by reason, on the client side first (see the advice).
    """
    log = _log(b)
    reasons: Counter = Counter()
    for line in log.lines:
        if "Aborted connection" in line:
            match = _ABORTED.search(line)
            reasons[quote(match.group(1))[:100] if match else "(no reason given)"] += 1
        elif "Access denied for user" in line:
            reasons["Access denied (a failed login)"] += 1
    total = sum(reasons.values())
    if total < 10:
        return None
    top = reasons.most_common(5)
    return Hit(f"{total} aborted connections or failed logins in the error log; most often: "
               + "; ".join(f"{reason} ({count})" for reason, count in top[:3]),
               severity="warning" if total >= 1000 else "notice",
               evidence=[Evidence(LOG, {"total": total, "by_reason": dict(top)})])


@rule("LOG-06", "The server restarted recently or often",
      group=GROUP, severity="notice", needs=(LOG,),
      advice="Find who or what restarted it: the lines before each start-up (a shutdown by a signal or "
             "a user, a crash, an OOM kill in the kernel log), the service manager's journal, package "
             "upgrades. Judge the window's rates knowing the caches were cold.",
      risk="None: this is a reading.",
      verify="Uptime keeps growing; no new start-up lines in the error log.")
def recent_restarts(b: Bundle) -> Optional[Hit]:
    """Checks how long the server has been up (`Uptime` of the first status sample) and how
    many start-ups (`ready for connections`) the error log tail holds, and over what span.

    **Why it matters**: a server up for minutes has a cold buffer pool and counters that
    describe its warm-up, not its normal work; several start-ups within days are an outage
    pattern to explain (crashes, OOM kills, a restart loop).

    **Example**: `Uptime=540` and three `ready for connections` lines within two days.

    **Fix**: find the cause of each restart (see the advice).
    """
    log = _log(b)
    ready = log.find(_READY, _READY_WORDS)
    uptime = b.window.first("Uptime") if len(b.window) else None
    if uptime is None:
        uptime = to_number(b.json("mysql/identity.json", {}).get("uptime")) \
            if isinstance(b.json("mysql/identity.json", {}), dict) else None
    span = _span_hours(log, ready)
    recent = uptime is not None and uptime < 3600
    often = len(ready) >= 3 and span is not None and span < 7 * 24
    if not recent and not often:
        return None
    parts = []
    if recent:
        up = f"{uptime:,.0f} s" if uptime < 120 else f"{uptime / 60:,.0f} min"
        parts.append(f"the server has been up only {up}: the window describes a warm-up")
    if often:
        parts.append(f"{len(ready)} start-ups within {span:,.1f} h in the error log")
    return Hit("; ".join(parts), severity="warning" if often else "notice",
               evidence=[Evidence(LOG, {"start_ups": len(ready),
                                        "span_hours": round(span, 2) if span else None,
                                        "uptime_seconds": uptime,
                                        "start_up_times": [log.stamp(i) for i in ready[-5:]]})])


@rule("LOG-07", "The server went through crash recovery",
      group=GROUP, severity="warning", needs=(LOG,),
      advice="A crash recovery follows a stop that was not a clean shutdown: a crash (LOG-01), an OOM "
             "kill (LOG-02), a kill -9, a power loss or a service manager's stop timeout shorter than "
             "the shutdown (raise TimeoutStopSec for large buffer pools). Find which from the lines "
             "before the start-up and the kernel log.",
      risk="None: this is a reading.",
      verify="The next start-ups show no crash recovery.")
def crash_recovery(b: Bundle) -> Optional[Hit]:
    """Checks the error log for InnoDB crash recovery at start-up (`Starting crash recovery`,
    `Database was not shutdown normally`).

    **Why it matters**: every start-up with crash recovery means the previous stop was not
    clean; recovery takes time (a redo log's worth) and, with relaxed durability settings,
    committed transactions may be gone.

    **Example**: `[Note] InnoDB: Starting crash recovery from checkpoint LSN=1922743`.

    **Fix**: find what stopped the server uncleanly (see the advice).
    """
    log = _log(b)
    hits = log.find(_RECOVERY, ("crash recovery", "not shut"))
    if not hits:
        return None
    times: List[str] = []
    for i in hits:
        moment = log.stamp(i)
        if moment and moment not in times:
            times.append(moment)
    return Hit(f"{len(times) or len(hits)} start-up(s) with crash recovery in the error log, the last at "
               f"{log.stamp(hits[-1]) or '?'}",
               evidence=[Evidence(LOG, {"recoveries": len(times) or len(hits), "times": times[-5:]},
                                  note=quote(log.lines[hits[-1]]))])


@rule("LOG-08", "Deadlocks are frequent (innodb_print_all_deadlocks)",
      group=GROUP, severity="notice", needs=(LOG,),
      advice="Look at the tables below and the two transactions of each report: make them take their "
             "locks in the same order, keep them short, index the columns their WHERE clauses lock by "
             "(a scan locks every row it reads), and retry on error 1213 in the application.",
      risk="None from reading; code changes are the application's.",
      verify="Fewer \"Transactions deadlock detected\" per hour in the log; Innodb_deadlocks grows more "
             "slowly (MariaDB).")
def deadlocks(b: Bundle) -> Optional[Hit]:
    """Counts the deadlock reports that `innodb_print_all_deadlocks=ON` writes to the error
    log (`Transactions deadlock detected`), per hour over their span, and the tables they
    lock most.

    **Why it matters**: each deadlock rolls back a transaction the application must retry;
    frequent ones on the same tables point at lock ordering or a missing index. SHOW ENGINE
    INNODB STATUS keeps only the latest: the log keeps them all.

    **Example**: 240 deadlocks within 3 hours, 90% on `shop`.`stock`.

    **Fix**: same lock order, short transactions, indexed lookups, retries (see the advice).
    """
    log = _log(b)
    hits = log.find(_DEADLOCK, ("deadlock detected",))
    if not hits:
        if b.switch("innodb_print_all_deadlocks") is False:
            raise NotApplicable("innodb_print_all_deadlocks is OFF: deadlocks are not written to the log")
        return None
    if len(hits) < 5:
        return None
    tables: Counter = Counter()
    for start in hits:
        for line in log.lines[start:start + 80]:
            if "WE ROLL BACK TRANSACTION" in line:
                break
            match = _DEADLOCK_TABLE.search(line)
            if match:
                tables[quote(match.group(1))[:130]] += 1
    span = _span_hours(log, hits)
    per_hour = len(hits) / span if span and span >= 1 / 60 else None
    return Hit(f"{len(hits)} deadlocks in the error log"
               + (f" ({per_hour:,.1f} per hour)" if per_hour is not None else "")
               + (f"; most on {tables.most_common(1)[0][0]}" if tables else ""),
               severity="warning" if per_hour is not None and per_hour >= 60 else "notice",
               evidence=[Evidence(LOG, {"deadlocks": len(hits),
                                        "per_hour": round(per_hour, 2) if per_hour else None,
                                        "first": log.stamp(hits[0]), "last": log.stamp(hits[-1]),
                                        "tables": dict(tables.most_common(5))})])
