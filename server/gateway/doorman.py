"""Who may start an SSH handshake with the gateway, and for how long.

Before authentication a connection costs two threads (ours and paramiko's) and asks
nothing of the client, so without a cap idle sockets alone exhaust the process. The
doorman counts the connections that have not authenticated yet, in all and per source
address; one past either cap is closed at once, never queued. `deadline` is how long a
connection has to authenticate: the banner, key exchange and authentication alike.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import Dict

log = logging.getLogger("mydiag.gateway")


def close_at_once(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


class Doorman:
    """Connections that have not authenticated yet, counted in all and per source address."""

    def __init__(self, total: int, per_address: int, deadline: float) -> None:
        self.total = total
        self.per_address = per_address
        self.deadline = deadline
        self._by_address: Dict[str, int] = {}
        self._count = 0
        self._refused = 0
        self._lock = threading.Lock()

    def admit(self, address: str) -> bool:
        with self._lock:
            if self._count >= self.total or self._by_address.get(address, 0) >= self.per_address:
                return False
            self._count += 1
            self._by_address[address] = self._by_address.get(address, 0) + 1
            return True

    def turn_away(self, sock: socket.socket, address: str) -> None:
        """Close a connection `admit` refused; say so the first time and every hundredth."""
        self._refused += 1
        if self._refused == 1 or self._refused % 100 == 0:
            log.warning("closing new SSH connections from %s and others: too many not yet "
                        "authenticated (%d closed so far)", address, self._refused)
        close_at_once(sock)

    def release(self, address: str) -> None:
        with self._lock:
            left = self._by_address.get(address, 0) - 1
            if left < 0:
                return
            self._count -= 1
            if left:
                self._by_address[address] = left
            else:
                del self._by_address[address]

    @property
    def waiting(self) -> int:
        with self._lock:
            return self._count
