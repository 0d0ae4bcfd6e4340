"""The queue policies the simulation compares; each answers "what does this engineer take next".

- `edf+admission`: the server's own policy. A message's deadline is its policy target when
  admission control (planning.admission.check) passes it, else the earliest feasible date,
  offered and accepted; the queue is planning.queue.pick (EDF, least slack, dedicated owners
  for long tasks); a promise whose slack goes negative is renegotiated before it passes.
- `edf`: the same queue on the policy deadlines, without admission or renegotiation.
- `fifo`: tickets in the order they were opened.
- `nrt`: the oldest unanswered message first (Zendesk's "next reply time" ordering).

All of them time-share the engineers in slices the same way (the engine does that); they
differ only in the order and, for the first, in the dates promised.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from server.planning import queue
from server.planning.model import Task
from server.planning.supply import Supply

NAMES = ("edf+admission", "edf", "fifo", "nrt")


class Policy:
    name = ""
    admission = False
    owners = False

    def choose(self, engineer: str, candidates: List[Any], tasks: List[Task], supply: Supply, now: float,
               held: Dict[str, str], owners: Dict[str, str], slice_seconds: float,
               long_slices: int) -> Optional[str]:
        raise NotImplementedError


class Edf(Policy):
    name = "edf"
    owners = True

    def choose(self, engineer, candidates, tasks, supply, now, held, owners, slice_seconds, long_slices):
        found = queue.pick(engineer, tasks, supply, now, held=held, owners=owners,
                           slice_seconds=slice_seconds, long_slices=long_slices)
        return found.task.id if found else None


class EdfAdmission(Edf):
    name = "edf+admission"
    admission = True


class Fifo(Policy):
    name = "fifo"

    def key(self, m: Any) -> tuple:
        return (m.ticket.opened, m.ticket.id)

    def choose(self, engineer, candidates, tasks, supply, now, held, owners, slice_seconds, long_slices):
        free = [m for m in candidates if m.ready <= now and m.id not in held]
        return min(free, key=self.key).id if free else None


class NextReplyTime(Fifo):
    name = "nrt"

    def key(self, m: Any) -> tuple:
        return (m.arrival, m.ticket.id)


def by_name(name: str) -> Policy:
    for cls in (EdfAdmission, Edf, Fifo, NextReplyTime):
        if cls.name == name:
            return cls()
    raise ValueError(f"unknown policy {name!r} (known: {', '.join(NAMES)})")
