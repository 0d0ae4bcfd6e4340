"""The tail of the slow query log, its statements reduced to fingerprints.

Header lines (`# Time`, `# User@Host`, `# Query_time`, MariaDB's and Percona's extra
`# Key: value` lines) stay as written; every statement becomes its fingerprint, so no
literal (a customer's data, a password in a statement) leaves the host. Where a record
really starts (never inside a statement's literal) is `privacy.slowlog`'s to decide.
"""

from __future__ import annotations

from typing import Iterator

from collectors.config.settings import UnknownSettings, resolve, setting
from collectors.config.values import TRUE
from collectors.logs.tail import NotRegularFile, read_tail
from collectors.registry import Artifact, CollectorError, Context, Skip, collector
from privacy.slowlog import fingerprint_slow_log

__all__ = ["fingerprint_slow_log", "slow_log"]

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
    sql_mode, _ = setting(ctx, "sql_mode")
    text, statements, dropped = fingerprint_slow_log(
        tail.data.decode("utf-8", "replace"), cut=tail.truncated,
        backslash_escapes="NO_BACKSLASH_ESCAPES" not in (sql_mode or "").upper())
    ctx.notes.add(f"{tail.describe()}; {statements} statements fingerprinted"
                  + (f", {dropped} lines of a cut first entry dropped" if dropped else ""))
    yield Artifact.text("logs/slow.log", text)
