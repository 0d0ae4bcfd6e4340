"""The one clock of the conversation records: every message time, deadline and breach reads it.

`now()` is the wall clock (epoch seconds, UTC). Tests move it in two ways, neither of which a
production server can meet by accident:

- in-process, `set_now(epoch)` / `advance(seconds)` / `reset()` (a module-level override);
- in a server process started by a test, `MYDIAG_FAKE_NOW=<epoch>` is the time at start-up,
  from which the clock runs on in real time; it is honoured only together with
  `MYDIAG_TEST_CLOCK=1`, and the server logs a warning when it is.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Optional

_override: Optional[float] = None
_offset = 0.0

if os.environ.get("MYDIAG_TEST_CLOCK") == "1" and os.environ.get("MYDIAG_FAKE_NOW"):
    try:
        _offset = float(os.environ["MYDIAG_FAKE_NOW"]) - time.time()
        logging.getLogger("mydiag.clock").warning("test clock: now() runs from MYDIAG_FAKE_NOW")
    except ValueError:
        _offset = 0.0


def now() -> float:
    """Epoch seconds: the override when a test set one, else the (possibly shifted) wall clock."""
    return _override if _override is not None else time.time() + _offset


def set_now(epoch: float) -> None:
    global _override
    _override = float(epoch)


def advance(seconds: float) -> float:
    """Move a set clock on by `seconds` (sets it from the wall clock first when unset)."""
    set_now(now() + seconds)
    return now()


def reset() -> None:
    global _override
    _override = None
