"""The latest value, passed on from a thread of its own (an engineer's window sizes).

Called on paramiko's transport thread, which must never block on a send: one sender thread
at a time passes on the latest value, so a flood of resizes is one thread, not many, and a
size superseded before it went out is never sent.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional


class Latest:
    def __init__(self, send: Callable[[Any], None], name: str) -> None:
        self._send = send
        self._name = name
        self._lock = threading.Lock()
        self._value: Optional[Any] = None
        self._sending = False

    def offer(self, value: Any) -> None:
        with self._lock:
            self._value = value
            if self._sending:
                return
            self._sending = True
        threading.Thread(target=self._run, daemon=True, name=self._name).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                value, self._value = self._value, None
                if value is None:
                    self._sending = False
                    return
            self._send(value)
