"""`mysqld-auto.cnf`: variables persisted with SET PERSIST (MySQL 8+), from the datadir.

It is the only file mydiag reads from the datadir: the others (master.info,
relay-log.info, keyring and key files) hold passwords and keys.
"""

from __future__ import annotations

import os
import stat
from typing import Iterator, Optional

from collectors.config.settings import UnknownSettings, datadir
from collectors.mysql.optionfile import looks_binary
from collectors.os.mysqld import connected
from collectors.registry import PROFILES, Artifact, CollectorError, Context, Skip, collector

PERSISTED_FILE = "mysqld-auto.cnf"
_LIMIT = 1 << 20


@collector("config.persisted", profiles=PROFILES, timeout=5)
def persisted(ctx: Context) -> Iterator[Artifact]:
    """Persisted global variables (SET PERSIST), copied as text."""
    datadir = _datadir(ctx)
    if not datadir:
        raise Skip("the datadir is unknown (no server connection and no local server process)")
    path = os.path.join(datadir, PERSISTED_FILE)
    mariadb = connected(ctx) and ctx.session.flavor.is_mariadb
    try:
        # O_NOFOLLOW: a symlink planted in the datadir must not lead anywhere else.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise Skip("no persisted variables (no mysqld-auto.cnf in the datadir)"
                   + ("; MariaDB has no SET PERSIST" if mariadb else "")) from None
    except PermissionError:
        if mariadb:
            raise Skip("MariaDB has no SET PERSIST (datadir not readable as this user)") from None
        raise CollectorError(f"{path}: permission denied",
                             "run as root or as the server's user to include persisted variables"
                             ) from None
    except OSError as exc:
        raise CollectorError(f"{path}: cannot read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise CollectorError(f"{path}: not a regular file, not read")
        raw = handle.read(_LIMIT + 1)
    if len(raw) > _LIMIT:
        ctx.notes.add(f"{path}: larger than 1 MiB, only the first MiB included", partial=True)
        raw = raw[:_LIMIT]
    if looks_binary(raw):
        raise CollectorError(f"{path}: binary content, not included")
    yield Artifact.text(f"config/{PERSISTED_FILE}", raw.decode("utf-8", "replace"))


def _datadir(ctx: Context) -> Optional[str]:
    try:
        return datadir(ctx)
    except UnknownSettings as exc:
        raise Skip(f"the datadir is unknown: {exc.reason}") from None
