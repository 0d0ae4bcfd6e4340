"""The tail of the slow query log, its statements reduced to fingerprints.

Header lines (`# Time`, `# User@Host`, `# Query_time`, MariaDB's and Percona's extra
`# Key: value` lines) stay as written; every statement becomes its fingerprint, so no
literal (a customer's data, a password in a statement) leaves the host.
"""

from __future__ import annotations

import re
from typing import Iterator, List, Tuple

from collectors.config.settings import UnknownSettings, resolve, setting
from collectors.config.values import TRUE
from collectors.logs.tail import NotRegularFile, read_tail
from collectors.registry import Artifact, CollectorError, Context, Skip, collector
from privacy.fingerprint import fingerprint

_HEADER_KEYS = (
    "Time", "User@Host", "Thread_id", "Schema", "QC_hit", "QC_Hit", "Query_time", "Lock_time",
    "Rows_sent", "Rows_examined", "Rows_affected", "Bytes_sent", "Tmp_tables", "Tmp_disk_tables",
    "Tmp_table_sizes", "Full_scan", "Full_join", "Filesort", "Filesort_on_disk", "Merge_passes",
    "Priority_queue", "Pages_accessed", "Pages_read", "Pages_updated", "Pages_prefetched",
    "Old_rows_read", "Engine_time", "InnoDB_trx_id", "InnoDB_IO_r_ops", "InnoDB_IO_r_bytes",
    "InnoDB_IO_r_wait", "InnoDB_rec_lock_wait", "InnoDB_queue_wait", "InnoDB_pages_distinct",
    "Log_slow_rate_type", "Log_slow_rate_limit", "Stored_routine", "explain", "Id", "Killed",
    "Errno", "Start", "End", "No InnoDB statistics available for this query",
)
_HEADER = re.compile(r"^# (?:" + "|".join(re.escape(k) for k in _HEADER_KEYS) + r")\b")
#: The lines a server writes when it opens the log: its binary, version, port and socket.
_BANNER = re.compile(r"^(?:\S.*, Version: .* started with:|Tcp port: .*|Time\s+Id\s+Command\s+Argument)$")


@collector("logs.slow_log", profiles=("standard", "full"), timeout=20)
def slow_log(ctx: Context) -> Iterator[Artifact]:
    """The last --log-bytes of the slow query log, statements fingerprinted."""
    try:
        enabled, source = setting(ctx, "slow_query_log", "log_slow_query", "log_slow_queries")
    except UnknownSettings as exc:
        raise Skip(f"whether a slow log is on is unknown: {exc.reason}") from None
    if (enabled or "").strip().lower() not in TRUE:
        raise Skip(f"the slow query log is off (slow_query_log={enabled or 'OFF'}, from {source})")
    output, _ = setting(ctx, "log_output")
    if output and "FILE" not in output.upper():
        raise Skip(f"the slow query log goes to a table, not a file (log_output={output})")
    name, _ = setting(ctx, "slow_query_log_file", "log_slow_query_file")
    if not name:
        raise CollectorError("slow_query_log is on but slow_query_log_file is unknown")
    path = resolve(ctx, name)
    try:
        tail = read_tail(path, ctx.log_bytes)
    except FileNotFoundError:
        raise Skip(f"slow log {path} does not exist yet (nothing logged)") from None
    except PermissionError:
        raise CollectorError(f"slow log {path}: permission denied",
                             "run as root, or as the user or group that owns it") from None
    except NotRegularFile:
        raise Skip(f"slow log {path} is not a regular file (a pipe or a device)") from None
    except OSError as exc:
        raise CollectorError(f"slow log {path}: cannot read ({exc.strerror})") from None
    text, statements, dropped = fingerprint_slow_log(
        tail.data.decode("utf-8", "replace"), cut=tail.truncated)
    ctx.notes.add(f"{tail.describe()}; {statements} statements fingerprinted"
                  + (f", {dropped} lines of a cut first entry dropped" if dropped else ""))
    yield Artifact.text("logs/slow.log", text)


def fingerprint_slow_log(text: str, *, cut: bool = False) -> Tuple[str, int, int]:
    """(log with statements fingerprinted, statements, lines dropped before the first entry).

    `cut` says the text starts somewhere inside the file: lines before the first header
    belong to an entry whose header is missing, and are dropped.
    """
    out: List[str] = []
    pending: List[str] = []
    statements = dropped = 0
    started = not cut

    def flush() -> None:
        nonlocal statements
        if pending:
            shape = fingerprint("\n".join(pending))
            if shape:
                out.append(shape)
                statements += 1
            pending.clear()

    for line in text.splitlines():
        if _HEADER.match(line) or _BANNER.match(line):
            flush()
            out.append(line)
            started = True
        elif not started:
            dropped += 1
        elif line.strip():
            pending.append(line)
            if line.rstrip().endswith(";"):
                flush()
    flush()
    return "\n".join(out) + ("\n" if out else ""), statements, dropped
