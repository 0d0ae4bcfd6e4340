"""The time-shared queue: which task an engineer takes next.

Earliest deadline first, least slack breaking ties, among the tasks the engineer may take:
ready (not waiting), not held by another engineer for their slice, not pinned to someone else
(a work item's owner, a long task's dedicated owner). A task's slack is the usable time until
its due minus the demand that must be done by then; it is the least of three views: all
engineers (the work due by then against everyone's time), the pinned engineer's own work
against their own time, and the task alone against the best single engineer who may do it
(one person writes a reply).

Global EDF on several processors can starve one long job behind many short ones that are each
due a little sooner (Dhall's effect): every engineer is busy with small follow-ups until the
long investigation can no longer be finished by one person. So a long task (effort over
`long_slices` slices) keeps its dedicated owner: the owner takes it first unless another task
is critical (slack under one slice), and an unowned long task whose own slack falls under a
slice becomes critical itself. The caller records the owner when a long task is first taken.
Slack alarms fire before a breach: under a threshold, while the slack is still positive.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from server.planning.model import Task
from server.planning.supply import Supply


@dataclass(frozen=True)
class Pick:
    task: Task
    #: Seconds: usable capacity until due minus the demand that must be done by then.
    slack: float
    #: "earliest deadline" | "least slack" | "dedicated owner" | "slack alarm"
    why: str


def is_long(task: Task, slice_seconds: float, long_slices: int) -> bool:
    return task.effort > long_slices * slice_seconds


def _demand_lines(tasks: Sequence[Task]) -> Dict[Optional[str], Tuple[List[float], List[float]]]:
    """Per group (None: everyone; an engineer: those pinned to them): sorted dues, the work due by each."""
    groups: Dict[Optional[str], List[Task]] = {None: list(tasks)}
    for t in tasks:
        if t.engineer is not None:
            groups.setdefault(t.engineer, []).append(t)
    lines = {}
    for who, group in groups.items():
        dues, cum, total = [], [], 0.0
        for t in sorted(group, key=lambda t: t.due):
            total += t.effort
            dues.append(t.due)
            cum.append(total)
        lines[who] = (dues, cum)
    return lines


def _due_by(line: Tuple[List[float], List[float]], at: float) -> float:
    dues, cum = line
    k = bisect_right(dues, at)
    return cum[k - 1] if k else 0.0


class _Slacks:
    """Slack of many tasks against one set, sharing the sorting and the capacity already used."""

    def __init__(self, tasks: Sequence[Task], supply: Supply, now: float) -> None:
        self.supply, self.now = supply, now
        self.lines = _demand_lines(tasks)
        self.used = {name: supply.capacity(now, name) for name in supply.engineers}
        self.used_all = supply.capacity(now)

    def of(self, t: Task) -> float:
        s = self.supply
        total = s.capacity(t.due) - self.used_all - _due_by(self.lines[None], t.due)
        since = max(self.now, t.ready)
        if t.engineer is not None:
            line = self.lines.get(t.engineer)
            pinned = s.capacity(t.due, t.engineer) - self.used.get(t.engineer, 0.0) - \
                (_due_by(line, t.due) if line else t.effort)
            alone = s.capacity(t.due, t.engineer) - s.capacity(since, t.engineer) - t.effort
            return min(total, pinned, alone)
        return min(total, s.best_room(since, t.due) - t.effort)


def slack(task: Task, tasks: Sequence[Task], supply: Supply, now: float) -> float:
    """`task`'s slack among `tasks` (it is counted once whether or not it is in them)."""
    others = [t for t in tasks if t.id != task.id] + [task]
    return _Slacks(others, supply, now).of(task)


def _ranked(tasks: Sequence[Task], slacks: _Slacks) -> List[Pick]:
    scored = sorted(((t.due, slacks.of(t), t.id, t) for t in tasks), key=lambda x: x[:3])
    picks = []
    for i, (due, sl, _, t) in enumerate(scored):
        tied = (i > 0 and scored[i - 1][0] == due) or (i + 1 < len(scored) and scored[i + 1][0] == due)
        picks.append(Pick(t, sl, "least slack" if tied else "earliest deadline"))
    return picks


def rank(tasks: Sequence[Task], supply: Supply, now: float) -> List[Pick]:
    """Every task, earliest deadline first, least slack breaking ties."""
    return _ranked(tasks, _Slacks(tasks, supply, now))


def pick(engineer: str, tasks: Sequence[Task], supply: Supply, now: float, *,
         held: Mapping[str, str], owners: Mapping[str, str],
         slice_seconds: float, long_slices: int) -> Optional[Pick]:
    """The next task for `engineer` (None: nothing they may take now)."""
    # A dedicated owner pins the task for the slack arithmetic too: only the owner's time counts.
    pinned = [replace(t, engineer=owners[t.id]) if t.engineer is None and t.id in owners else t
              for t in tasks]
    slacks = _Slacks(pinned, supply, now)
    mine = [t for t in pinned if t.ready <= now and held.get(t.id, engineer) == engineer
            and t.engineer in (None, engineer)]
    if not mine:
        return None
    ranked = _ranked(mine, slacks)
    original = {t.id: t for t in tasks}
    critical = [p for p in ranked if p.slack < slice_seconds]
    if critical:
        p = min(critical, key=lambda p: (p.slack, p.task.due, p.task.id))
        return Pick(original[p.task.id], p.slack, "slack alarm")
    for p in ranked:
        if p.task.engineer == engineer and is_long(p.task, slice_seconds, long_slices):
            return Pick(original[p.task.id], p.slack, "dedicated owner")
    p = ranked[0]
    return Pick(original[p.task.id], p.slack, p.why)


def alarms(tasks: Sequence[Task], supply: Supply, now: float, threshold: float) -> List[Pick]:
    """Tasks whose slack is under `threshold` (negative: already too late), least slack first."""
    slacks = _Slacks(tasks, supply, now)
    found = [Pick(t, sl, "slack alarm") for t in tasks for sl in (slacks.of(t),) if sl < threshold]
    return sorted(found, key=lambda p: (p.slack, p.task.due, p.task.id))
