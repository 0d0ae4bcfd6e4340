"""The one value every planning function works on: a task that engineer time must be spent on.

A task is a reply owed (an obligation), a work item or a call: seconds of work (`effort`,
already inflated by the estimator's overrun factor) to be done before `due`, not before
`ready`, by anyone or only by `engineer`. Times are UTC epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Task:
    id: str
    #: The deadline in force: the accepted promise, else the policy due.
    due: float
    #: Seconds of engineer work still needed, already inflated.
    effort: float
    #: Only this engineer may do it (a work item's owner, a dedicated owner).
    engineer: Optional[str] = None
    #: Not workable before this moment (waiting on the customer, say).
    ready: float = 0.0
    ticket: str = ""
    kind: str = "reply"
