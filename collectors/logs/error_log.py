"""The tail of the server's error log, bounded by --log-bytes, and where it was found.

The path comes from @@log_error (connected), else the server's command line or option
files (collectors/config/settings.py). When nothing names it (a server started with
`--no-defaults` and no `--log-error`, or one that is down), it is looked for where
servers put it: the datadir's `<hostname>.err` (the default datadir when none is
known), the packages' /var/log files, and the unit's journal. A log found there is only
taken when it cannot be another server's: its last start-up line must not name another
port, and must name the asked port when the host's option files describe another server.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Iterator, List, Optional, Tuple

from collectors.config.settings import UnknownSettings, datadir, resolve, setting
from collectors.logs.journal import NoJournal, last_port, server_journal, server_lines
from collectors.logs.tail import NotRegularFile, Tail, read_tail
from collectors.os.mysqld import server_port
from collectors.registry import PROFILES, Artifact, CollectorError, Context, Skip, collector

#: A line that starts an entry (MariaDB, MySQL 5.7+, and the older `yymmdd hh:mm:ss`). MariaDB
#: pads the hour with a space (`2026-12-02  1:02:44`), MySQL with a zero.
_ENTRY = re.compile(rb"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}[ T]|[0-9]{6} )[ 0-9][0-9]:[0-9]{2}:[0-9]{2}", re.M)

#: The compiled-in datadir of the packages (MySQL, MariaDB, Percona Server).
DEFAULT_DATADIR = "/var/lib/mysql"
#: Where packages put the error log when nothing says otherwise (server down, no options).
DEFAULT_PATHS = ("/var/log/mysql/error.log", "/var/log/mysqld.log", "/var/log/mariadb/mariadb.log",
                 "/var/log/mysql/mysqld.log")


@collector("logs.error_log", profiles=PROFILES, timeout=10)
def error_log(ctx: Context) -> Iterator[Artifact]:
    """The last --log-bytes of the error log, as the server wrote it (redacted on the way)."""
    try:
        value, source = setting(ctx, "log_error")
    except UnknownSettings as exc:
        yield from _searched(ctx, _default_places(), proof=True, unknown=exc)
        return
    if value == "ON" and source != "server variables":
        value = None  # a bare `log-error` option: the default name in the datadir
    if value is not None and value.strip() in ("", "stderr"):
        try:
            found = server_journal(ctx)
        except NoJournal as exc:
            raise Skip("the server writes its error log to stderr (log_error is empty or "
                       f"stderr), and its journal cannot be read: {exc}") from None
        yield _from_journal(ctx, found.unit, found.how, found.text)
        return
    if value:
        path = resolve(ctx, value.strip())
        # Without an extension the server adds ".err".
        paths = [path, path + ".err"] if not os.path.splitext(path)[1] else [path]
        for path in paths:
            tail = _read(ctx, path, explicit=True)
            if tail is not None:
                yield _artifact(ctx, tail, f"path from {source}")
                return
        raise CollectorError(f"no error log found (log_error={value!r}, from {source})",
                             "check the server's log_error setting")
    folder = datadir(ctx)
    if folder:
        own = os.path.join(folder, f"{socket.gethostname()}.err")
        tail = _read(ctx, own, explicit=True)
        if tail is not None:
            yield _artifact(ctx, tail, f"the datadir's <hostname>.err (datadir from {source})")
            return
    yield from _searched(ctx, _default_places(skip=folder), proof=False, unknown=None)


def _default_places(skip: Optional[str] = None) -> List[Tuple[str, str]]:
    places = []
    if skip is None or os.path.realpath(skip) != os.path.realpath(DEFAULT_DATADIR):
        places.append((os.path.join(DEFAULT_DATADIR, f"{socket.gethostname()}.err"),
                       "the default datadir's <hostname>.err"))
    return places + [(path, "a package's default location") for path in DEFAULT_PATHS]


def _searched(ctx: Context, places: List[Tuple[str, str]], *, proof: bool,
              unknown: Optional[UnknownSettings]) -> Iterator[Artifact]:
    """The first log at the usual places that is this server's; else its journal."""
    port = server_port(ctx)
    refused: List[str] = []
    for path, what in places:
        tail = _read(ctx, path, explicit=False)
        if tail is None:
            continue
        named = last_port(tail.data.decode("utf-8", "replace"))
        if port and named is not None and named != port:
            refused.append(f"{path} (its last start-up names port {named})")
            continue
        if port and proof and named is None:
            refused.append(f"{path} (no start-up line naming port {port})")
            continue
        yield _artifact(ctx, tail, what + (f", whose last start-up names port {named}"
                                           if named else ""))
        _refused_note(ctx, refused)
        return
    try:
        found = server_journal(ctx, proof)
    except NoJournal as exc:
        _refused_note(ctx, refused)
        searched = ", ".join(p for p, _ in places)
        if unknown is not None:
            raise CollectorError(
                f"{unknown.reason}; no error log at the usual places names port {port} "
                f"(searched {searched}; journal: {exc})",
                "if that server is down, add its error log with --config-file PATH "
                "(where its --log-error or datadir points)") from None
        raise CollectorError(
            f"no error log found: nothing names it, and none is at the usual places "
            f"(searched {searched}; journal: {exc})",
            "add the error log with --config-file PATH, or collect while the server runs "
            "so that it names its log_error") from None
    _refused_note(ctx, refused)
    yield _from_journal(ctx, found.unit, found.how, found.text)


def _refused_note(ctx: Context, refused: List[str]) -> None:
    if refused:
        ctx.notes.add("not used, another server's error log: " + "; ".join(refused))


def _read(ctx: Context, path: str, *, explicit: bool) -> Optional[Tail]:
    """The tail, None when absent; a log the server names that cannot be read is a failure,
    a guessed one only a note."""
    try:
        return read_tail(path, ctx.log_bytes)
    except FileNotFoundError:
        return None
    except PermissionError:
        if not explicit:
            ctx.notes.add(f"{path}: permission denied (run as root to search it)", partial=True)
            return None
        raise CollectorError(f"error log {path}: permission denied",
                             "run as root, or as a member of the group that owns it (adm, mysql)"
                             ) from None
    except NotRegularFile:
        if not explicit:
            return None
        raise Skip(f"error log {path} is not a regular file (a pipe or a device)") from None
    except OSError as exc:
        if not explicit:
            return None
        raise CollectorError(f"error log {path}: cannot read ({exc.strerror})") from None


def _artifact(ctx: Context, tail: Tail, where: str) -> Artifact:
    data, dropped = _from_first_entry(tail.data) if tail.truncated else (tail.data, 0)
    ctx.notes.add(f"{tail.describe()} ({where})"
                  + (f"; {dropped} lines of a cut first entry dropped" if dropped else ""))
    return Artifact.text("logs/error.log", data.decode("utf-8", "replace"))


def _from_journal(ctx: Context, unit: str, how: str, text: str) -> Artifact:
    """The server's own lines of its unit's journal, as its error log would hold them."""
    lines = server_lines(text)
    data = lines.encode()
    cut = len(data) > ctx.log_bytes
    if cut:
        data = data[-ctx.log_bytes:]
        data = data[data.find(b"\n") + 1:]
        data = _from_first_entry(data)[0]
    ctx.notes.add(f"from the journal of {unit} ({how}): the server's own lines, "
                  f"{lines.count(chr(10))} of them" + (", only the last --log-bytes" if cut else ""))
    return Artifact.text("logs/error.log", data.decode("utf-8", "replace"))


def _from_first_entry(data: bytes) -> Tuple[bytes, int]:
    """A cut tail from its first timestamped line: the lines before belong to an entry whose
    head is missing (the middle of an InnoDB deadlock report: statements, record dumps),
    which the redaction could not tell from the server's own lines."""
    first = _ENTRY.search(data)
    cut = first.start() if first else len(data)
    return data[cut:], data[:cut].count(b"\n")
