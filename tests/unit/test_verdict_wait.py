"""`Prefer: wait=N` as the tus HEAD reads it (server/api/verdicts.py), and the waiters'
wake-up from another thread."""

from __future__ import annotations

import asyncio
import threading
import time

from server.api.verdicts import MAX_WAIT, Verdicts, requested_wait


def test_the_wait_is_read_from_the_prefer_header_and_clamped():
    assert requested_wait(None) == 0 and requested_wait("") == 0
    assert requested_wait("wait=10") == 10
    assert requested_wait("respond-async, wait=7") == 7
    assert requested_wait("WAIT = 3") == 3
    assert requested_wait("wait=9999") == MAX_WAIT
    for crafted in ("wait=-1", "wait=abc", "wait=", "nowait=5", "wait=5x", "wait=12345", "wait=1.5",
                    "return=minimal", "wait=1" + "0" * 5000, "\uff11wait=\uff13"):
        assert requested_wait(crafted) in (0, MAX_WAIT) and requested_wait(crafted) <= MAX_WAIT, crafted
    assert requested_wait("wait=12345") == 0, "more than four digits is not a wait"


def test_a_verdict_fired_from_a_thread_wakes_only_that_bundles_waiters():
    verdicts = Verdicts()

    async def scenario() -> tuple:
        started = time.monotonic()
        threading.Timer(0.2, verdicts.fire, args=("b1",)).start()
        first = asyncio.ensure_future(verdicts.wait("b1", 10))
        other = asyncio.ensure_future(verdicts.wait("b2", 1.0))
        await first
        woke = time.monotonic() - started
        assert not other.done(), "another bundle's waiter sleeps on"
        await other
        return woke, time.monotonic() - started

    # A loop of its own in a thread of its own: another test of this worker may have left one
    # running in this thread (asyncio.run() refuses to start inside it).
    outcome: list = []
    runner = threading.Thread(target=lambda: outcome.append(asyncio.run(scenario())))
    runner.start()
    runner.join(30)
    woke, timed_out = outcome[0]
    assert 0.15 < woke < 0.9 and timed_out >= 0.95
    assert not verdicts._waiting, "no waiter is left behind"
