"""One agent per spool: the lock file in the spool folder, and which process holds it.

The lock is an flock on `<spool>/agent.lock`, which also holds the holder's pid; the
kernel drops it when that process ends, however it ends, so a crash never leaves a
stale lock. `mydiag agent status` asks `running_pid` without taking it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Optional

LOCK = "agent.lock"


class AlreadyRunning(Exception):
    pass


def take(spool_dir: Path) -> int:
    """Hold the spool's lock for this process (the open descriptor), or raise AlreadyRunning."""
    fd = os.open(Path(spool_dir) / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise AlreadyRunning(f"another agent is running with the spool {spool_dir} "
                             f"(pid {running_pid(spool_dir) or '?'})") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def running_pid(spool_dir: Path) -> Optional[int]:
    """The pid of the agent holding the spool's lock, or None when none runs."""
    path = Path(spool_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = Path(path).read_text().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
