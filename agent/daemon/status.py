"""The agent's status file, `<spool>/state.json`: written atomically, read back at start.

`mydiag agent status` reads it; the agent reads it back when it starts, so a restart
neither repeats a capture nor forgets a trigger's cooldown or daily cap. The last
KEEP_ERRORS errors are kept in it. A full disk never stops the agent for its status: the
write is skipped and tried again. What the status says is built by the agent (loop.py).
"""

from __future__ import annotations

import errno
import json
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from agent.daemon.spool import write_atomic

STATE = "state.json"
#: How often the volatile part of the status (streaks, last values) reaches the disk.
STATE_EVERY = 5.0
KEEP_ERRORS = 20


def stamp(epoch: Optional[float] = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if epoch is None else epoch))


class StatusFile:
    def __init__(self, spool_dir: Path) -> None:
        self.path = Path(spool_dir) / STATE
        self.errors: List[Dict[str, str]] = []
        #: When the file was last written (time.monotonic()).
        self.written = 0.0
        self._lock = threading.Lock()

    def load(self) -> Dict[str, Any]:
        """What the last run left (its errors are kept on), or {}."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if isinstance(data, dict):
            self.errors = [e for e in data.get("errors", []) if isinstance(e, dict)][-KEEP_ERRORS:]
            return data
        return {}

    def error(self, message: str) -> None:
        with self._lock:
            self.errors.append({"at": stamp(), "what": message})
            del self.errors[:-KEEP_ERRORS]

    def write(self, build: Callable[[], Dict[str, Any]], durable: bool) -> None:
        """Write what `build` returns (called under the lock, so the errors do not move)."""
        with self._lock:
            body = json.dumps(build(), indent=1, default=str).encode() + b"\n"
            try:
                write_atomic(self.path, body, durable=durable)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
            self.written = time.monotonic()
