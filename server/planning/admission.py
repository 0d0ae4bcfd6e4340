"""Admission control: never promise what cannot be kept (an earliest-deadline-first demand test).

The work due by each deadline must fit the usable time up to it: at every deadline d, the
effort of all tasks due by d is at most `supply.capacity(d)`; for each engineer, the tasks
pinned to them due by d fit their own capacity; and every task fits one engineer alone
(a reply is written by one person: eight engineers cannot share a two-hour answer due in an
hour). The test ignores `ready`: a task waiting on the customer still needs its time.

`check` puts a new task (a wanted date) into the set. A set that already fails without it
(estimates overran) must not lock admission: the new task is then admitted when it adds to
no deadline's overload. Feasibility is monotone in the new task's due (a later due counts it
at fewer deadlines, against more capacity), so the earliest feasible due is found by
bisection, to the minute; `must_move` names the commitments that would have to move (the
latest-due ones competing before the failing deadline, taken out one by one until the wanted
date passes): they move only with their own customers' agreement.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

from server.planning.model import Task
from server.planning.supply import Supply

#: Seconds of slack tolerated for float rounding.
_EPS = 1e-6
#: How precisely the earliest feasible due is searched (seconds).
_STEP = 60.0
#: The most commitments `must_move` names before it gives up.
_MAX_MOVES = 50


@dataclass(frozen=True)
class Verdict:
    ok: bool
    wanted_at: float
    #: The new task's earliest due that passes (== wanted_at when ok); None: nothing in the horizon.
    earliest_feasible_at: Optional[float]
    #: The first deadline whose demand exceeds supply (new task at wanted_at).
    failing_at: Optional[float]
    #: Seconds missing there (0 when ok).
    shortfall: float
    #: Ids of commitments that would have to move for wanted_at to fit.
    must_move: Tuple[str, ...]
    #: One line for people.
    reason: str


@dataclass(frozen=True)
class Overload:
    """Where a set of tasks first fails the demand test."""

    at: float
    shortfall: float
    #: None: everyone's time; an engineer: their pinned work; "": task `task` alone fits nobody.
    engineer: Optional[str]
    task: str = ""


def _fits_alone(task: Task, supply: Supply) -> float:
    """The best allowed engineer's time for `task` alone between its ready and its due, minus its effort."""
    since = max(task.ready, supply.start)
    if task.engineer is None:
        return supply.best_room(since, task.due) - task.effort
    return supply.capacity(task.due, task.engineer) - supply.capacity(since, task.engineer) - task.effort


def _overloads(tasks: Sequence[Task], supply: Supply) -> List[Overload]:
    """Every deadline (total and per engineer) where the demand due by it exceeds the supply up to it."""
    out: List[Overload] = []
    ordered = sorted(tasks, key=lambda t: t.due)
    groups: Dict[Optional[str], List[Task]] = {None: ordered}
    for t in ordered:
        if t.engineer is not None:
            groups.setdefault(t.engineer, []).append(t)
    for who, group in groups.items():
        demand = 0.0
        for i, t in enumerate(group):
            demand += t.effort
            if i + 1 < len(group) and group[i + 1].due == t.due:
                continue
            over = demand - supply.capacity(t.due, who)
            if over > _EPS:
                out.append(Overload(t.due, over, who))
    return out


def _first(failures: Sequence[Overload]) -> Optional[Overload]:
    return min(failures, key=lambda f: (f.at, f.engineer is not None)) if failures else None


def first_overload(tasks: Sequence[Task], supply: Supply) -> Optional[Overload]:
    """The first deadline the set fails at: `.at`, `.shortfall`, `.engineer` (None: everyone's time;
    a name: their pinned work; "": task `.task` fits no engineer alone). None: it passes."""
    failures = _overloads(tasks, supply)
    for t in tasks:
        left = _fits_alone(t, supply)
        if left < -_EPS:
            failures.append(Overload(t.due, -left, "", t.id))
    return _first(failures)


def demand_test(tasks: Sequence[Task], supply: Supply) -> Tuple[bool, Optional[float], float]:
    """(passes, the first failing deadline, the seconds missing there)."""
    first = first_overload(tasks, supply)
    if first is None:
        return True, None, 0.0
    return False, first.at, first.shortfall


class _Base:
    """The other commitments, sorted once, with their overload at any moment."""

    def __init__(self, tasks: Sequence[Task], supply: Supply) -> None:
        self.supply = supply
        self.tasks = sorted(tasks, key=lambda t: t.due)
        self.lines: Dict[Optional[str], Tuple[List[float], List[float]]] = {}
        groups: Dict[Optional[str], List[Task]] = {None: self.tasks}
        for t in self.tasks:
            if t.engineer is not None:
                groups.setdefault(t.engineer, []).append(t)
        for who, group in groups.items():
            dues, cum, demand = [], [], 0.0
            for t in group:
                demand += t.effort
                dues.append(t.due)
                cum.append(demand)
            self.lines[who] = (dues, cum)

    def demand(self, who: Optional[str], at: float) -> float:
        dues, cum = self.lines.get(who, ([], []))
        k = bisect_right(dues, at)
        return cum[k - 1] if k else 0.0

    def first_failure(self, new: Task) -> Optional[Overload]:
        """The first deadline the new task (at new.due) overloads, or adds to an overload of."""
        left = _fits_alone(new, self.supply)
        if left < -_EPS:
            return Overload(new.due, -left, "", new.id)
        found: List[Overload] = []
        for who in (None, new.engineer) if new.engineer is not None else (None,):
            dues, _ = self.lines.get(who, ([], []))
            for d in [new.due] + dues[bisect_left(dues, new.due):]:
                base = self.demand(who, d) - self.supply.capacity(d, who)
                if base + new.effort > max(0.0, base) + _EPS:
                    found.append(Overload(d, base + new.effort - max(0.0, base), who))
                    break
        return _first(found)


def _earliest(base: _Base, new: Task) -> Optional[float]:
    """The earliest due (to the minute) at which `new` passes; None when nothing in the horizon does."""
    lo = new.due
    hi = max(base.supply.horizon, lo)
    if base.first_failure(replace(new, due=hi)) is not None:
        return None
    # Invariant: lo fails, hi passes.
    while hi - lo > _STEP:
        mid = lo + (hi - lo) / 2
        if base.first_failure(replace(new, due=mid)) is None:
            hi = mid
        else:
            lo = mid
    return hi


def _must_move(tasks: Sequence[Task], new: Task, supply: Supply, failure: Overload) -> Tuple[str, ...]:
    """Greedily, the latest-due commitments competing before the failing deadline, until `new` fits."""
    if failure.engineer == "":
        return ()
    kept = list(tasks)
    moved: List[str] = []
    while len(moved) < _MAX_MOVES:
        competing = [t for t in kept if t.due <= failure.at
                     and (failure.engineer is None or t.engineer == failure.engineer)]
        if not competing:
            return ()
        latest = max(competing, key=lambda t: (t.due, t.effort))
        kept.remove(latest)
        moved.append(latest.id)
        found = _Base(kept, supply).first_failure(new)
        if found is None:
            return tuple(moved)
        if found.engineer == "":
            return ()
        failure = found
    return ()


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check(tasks: Sequence[Task], new: Task, supply: Supply) -> Verdict:
    """May `new` be promised for new.due, next to the other commitments `tasks`?"""
    others = [t for t in tasks if t.id != new.id]
    base = _Base(others, supply)
    failure = base.first_failure(new)
    if failure is None:
        return Verdict(True, new.due, new.due, None, 0.0, (), f"fits: {_iso(new.due)} can be kept")
    earliest = _earliest(base, new)
    moves = _must_move(others, new, supply, failure)
    hours = failure.shortfall / 3600.0
    if failure.engineer == "":
        what = f"the work ({new.effort / 3600.0:.1f} h) does not fit one engineer before {_iso(new.due)}"
    elif failure.engineer is None:
        what = f"the work due by {_iso(failure.at)} exceeds the engineers' time by {hours:.1f} h"
    else:
        what = f"{failure.engineer}'s work due by {_iso(failure.at)} exceeds their time by {hours:.1f} h"
    offer = f"; the earliest date that can be kept is {_iso(earliest)}" if earliest is not None \
        else "; no date within the planning horizon can be kept"
    return Verdict(False, new.due, earliest, failure.at, failure.shortfall, moves, what + offer)
