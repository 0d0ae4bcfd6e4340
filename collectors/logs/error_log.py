"""The tail of the server's error log (path from @@log_error), bounded by --log-bytes."""

from __future__ import annotations

import os
import re
import socket
from typing import Iterator, List, Tuple

from collectors.config.settings import datadir, resolve, setting
from collectors.logs.tail import NotRegularFile, read_tail
from collectors.registry import PROFILES, Artifact, CollectorError, Context, Skip, collector

#: A line that starts an entry (MariaDB, MySQL 5.7+, and the older `yymmdd hh:mm:ss`). MariaDB
#: pads the hour with a space (`2026-12-02  1:02:44`), MySQL with a zero.
_ENTRY = re.compile(rb"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}[ T]|[0-9]{6} )[ 0-9][0-9]:[0-9]{2}:[0-9]{2}", re.M)

#: Where packages put the error log when nothing says otherwise (server down, no options).
DEFAULT_PATHS = ("/var/log/mysql/error.log", "/var/log/mysqld.log", "/var/log/mariadb/mariadb.log",
                 "/var/log/mysql/mysqld.log")


@collector("logs.error_log", profiles=PROFILES, timeout=10)
def error_log(ctx: Context) -> Iterator[Artifact]:
    """The last --log-bytes of the error log, as the server wrote it (redacted on the way)."""
    value, source = setting(ctx, "log_error")
    if value == "ON" and source != "server variables":
        value = None  # a bare `log-error` option: the default name in the datadir
    if value is not None and value.strip() in ("", "stderr"):
        raise Skip("the server writes its error log to stderr (log_error is empty or stderr): "
                   "see `journalctl -u mariadb` or `journalctl -u mysql`")
    for path in _candidates(ctx, value):
        try:
            tail = read_tail(path, ctx.log_bytes)
        except FileNotFoundError:
            continue
        except PermissionError:
            raise CollectorError(f"error log {path}: permission denied",
                                 "run as root, or as a member of the group that owns it (adm, mysql)"
                                 ) from None
        except NotRegularFile:
            raise Skip(f"error log {path} is not a regular file (a pipe or a device)") from None
        except OSError as exc:
            raise CollectorError(f"error log {path}: cannot read ({exc.strerror})") from None
        data, dropped = _from_first_entry(tail.data) if tail.truncated else (tail.data, 0)
        ctx.notes.add(f"{tail.describe()} (path from {source if value else 'a default location'})"
                      + (f"; {dropped} lines of a cut first entry dropped" if dropped else ""))
        yield Artifact.text("logs/error.log", data.decode("utf-8", "replace"))
        return
    raise CollectorError(f"no error log found (log_error={value!r}, from {source})",
                         "check the server's log_error setting")


def _from_first_entry(data: bytes) -> Tuple[bytes, int]:
    """A cut tail from its first timestamped line: the lines before belong to an entry whose
    head is missing (the middle of an InnoDB deadlock report: statements, record dumps),
    which the redaction could not tell from the server's own lines."""
    first = _ENTRY.search(data)
    cut = first.start() if first else len(data)
    return data[cut:], data[:cut].count(b"\n")


def _candidates(ctx: Context, value: str) -> List[str]:
    if value:
        path = resolve(ctx, value.strip())
        # Without an extension the server adds ".err".
        return [path, path + ".err"] if not os.path.splitext(path)[1] else [path]
    folder = datadir(ctx)
    local = [os.path.join(folder, f"{socket.gethostname()}.err")] if folder else []
    return local + list(DEFAULT_PATHS)
