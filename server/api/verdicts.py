"""A bundle's verdict awaited without polling: a tus HEAD with `Prefer: wait=N` (RFC 7240).

An agent that has sent the last byte asks for the verdict. Polling costs each waiting agent
a request (and its token lookup) every few hundred milliseconds, which under many uploads at
once is most of the server's requests. With `Prefer: wait=N` the HEAD is answered when the
bundle's verdict is in, or after N seconds (at most MAX_WAIT) with what is known then.

The verifier of this process wakes the waiters of that bundle (`Verdicts.fire`, from its own
thread); a verdict reached by another process is seen by reading the row again every
RECHECK seconds. Waiting holds no worker thread: the waiters are futures on the event loop.
"""

from __future__ import annotations

import asyncio
import re
from typing import Dict, Optional, Set

#: The longest wait a client may ask for: well under the agents' and proxies' read timeouts.
MAX_WAIT = 20.0
#: A waiter reads the row again this often, for a verdict another process reached.
RECHECK = 2.0
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*([0-9]{1,4})(?:$|[,;\s])", re.IGNORECASE)


def requested_wait(prefer: Optional[str]) -> float:
    """Seconds asked for by a Prefer header (`wait=10`), clamped to MAX_WAIT; 0 if none."""
    if not prefer:
        return 0.0
    found = _WAIT.search(prefer)
    return min(float(found.group(1)), MAX_WAIT) if found else 0.0


class Verdicts:
    def __init__(self) -> None:
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._waiting: Dict[str, Set[asyncio.Future]] = {}

    def fire(self, bundle_id: str) -> None:
        """A verdict on bundle_id is committed (called from any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake, bundle_id)

    def _wake(self, bundle_id: str) -> None:
        for future in self._waiting.pop(bundle_id, ()):
            if not future.done():
                future.set_result(None)

    async def wait(self, bundle_id: str, timeout: float) -> None:
        """Until bundle_id's verdict is fired here, or timeout seconds (the caller re-reads)."""
        self._loop = asyncio.get_running_loop()
        future = self._loop.create_future()
        self._waiting.setdefault(bundle_id, set()).add(future)
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            waiters = self._waiting.get(bundle_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiting[bundle_id]
