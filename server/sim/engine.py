"""The discrete-event replay: one policy, one workload, a simulated clock.

Events are arrivals, the end of an engineer's work segment, a customer's answer, the start of
an engineer's shift, and (edf+admission) the periodic promise check. An idle engineer on
shift takes the task the policy chooses and holds it for one segment: a slice, or less when
the work is done, the engineer asks the customer a question (the task leaves the queue until
the answer; the obligation's clock stops meanwhile), the shift ends (a dedicated owner lets go
of long tasks then, so the next zone carries them on), or the promise must be checked before
it can pass. Nobody knows the true efforts but the engine: planning sees the estimate times
the overrun factor estimates.overrun learned from the deliveries so far, minus the time spent
(at least `floor_share` of it once exceeded).

The planning calls are the server's own: admission.check on every arrival (edf+admission),
queue.pick for every choice (edf, edf+admission), admission.first_overload and check for the
renegotiation of a promise whose slack went negative (edf+admission; it is renegotiated,
counted, while its date has not passed).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Tuple

from server.planning import admission, estimates, queue
from server.planning.model import Task
from server.planning.supply import Supply
from server.sim import workload as wl
from server.sim.policies import Policy

ARRIVE, FREE, ANSWER, OPEN, CHECK = range(5)


@dataclass(frozen=True)
class Settings:
    #: Share of engineer time admission control keeps for work that has not arrived yet.
    reserve: float = 0.15
    slice_seconds: float = 1800.0
    long_slices: int = 4
    #: How often edf+admission checks its promises against the supply (seconds).
    check_every: float = 600.0
    #: Once the time spent passes the inflated estimate, this share of it is still planned.
    floor_share: float = 0.25
    #: A promise is checked this long before its planned work would no longer fit.
    margin: float = 300.0
    #: Added to the earliest feasible date when a promise is renegotiated.
    renegotiation_buffer: float = 1800.0
    #: The overrun factors are learned from the last `history` deliveries, every `relearn` ones.
    history: int = 400
    relearn: int = 20


class Open:
    """A customer message being answered, as the engine tracks it."""

    __slots__ = ("msg", "ticket", "clock", "id", "arrival", "policy_due", "due", "spent", "ready",
                 "asked", "paused", "delivered", "renegotiated", "refused", "worker")

    def __init__(self, msg: wl.Message, ticket: wl.Ticket, clock: Optional[Supply], now: float) -> None:
        self.msg, self.ticket, self.clock, self.id = msg, ticket, clock, msg.id
        self.arrival = now
        self.policy_due = wl.add(clock, now, wl.target(ticket, msg))
        self.due = self.policy_due
        self.spent = 0.0
        self.ready = now
        self.asked = False
        self.paused = 0.0
        self.delivered: Optional[float] = None
        self.renegotiated = 0
        self.refused = False
        self.worker: Optional[str] = None


class Engine:
    def __init__(self, work: wl.Workload, policy: Policy, settings: Settings = Settings()) -> None:
        self.work, self.policy, self.s = work, policy, settings
        self.supply = Supply(work.start, work.engineers, reserve=settings.reserve)
        self.raw = Supply(work.start, work.engineers)
        self.engineers = self.supply.engineers
        self.heap: List[Tuple[float, int, int, object]] = []
        self.seq = 0
        self.open: Dict[str, Open] = {}
        self.done: List[Open] = []
        self.busy: Dict[str, Tuple[Open, float, str]] = {}
        self.owners: Dict[str, str] = {}
        self.history: Dict[Optional[str], List[Tuple[float, float]]] = {None: []}
        self.factors: Dict[Optional[str], float] = {}
        self.total = sum(len(t.messages) for t in work.tickets)
        self.renegotiations = 0
        self.refusals = 0
        self.picks = 0

    # --- the clock -------------------------------------------------------------------
    def push(self, at: float, kind: int, what: object) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, what))

    def run(self) -> List[Open]:
        for ticket in self.work.tickets:
            self.push(ticket.opened, ARRIVE, (ticket, 0))
        for name, spans in self.work.engineers.items():
            for a, _ in spans:
                self.push(a, OPEN, name)
        if self.policy.admission:
            self.push(self.work.start, CHECK, None)
        while self.heap and len(self.done) < self.total:
            now, _, kind, what = heapq.heappop(self.heap)
            if now > self.work.horizon:
                break
            if kind == ARRIVE:
                self.arrive(now, *what)  # type: ignore[misc]
            elif kind == FREE:
                self.free(now, what)  # type: ignore[arg-type]
            elif kind == CHECK:
                self.renegotiate(now)
                self.push(self.next_check(now), CHECK, None)
                continue
            self.dispatch(now)
        return self.done + sorted(self.open.values(), key=lambda m: m.id)

    # --- planning's view -----------------------------------------------------------------
    def factor(self, engineer: Optional[str]) -> float:
        """The engineer's overrun factor (the team's until they have a history of their own)."""
        if engineer not in self.factors:
            pairs = self.history.get(engineer) or self.history[None]
            self.factors[engineer] = estimates.overrun(pairs[-self.s.history:])
        return self.factors[engineer]

    def planned(self, m: Open, engineer: Optional[str] = None) -> float:
        base = m.msg.estimate * self.factor(engineer or m.worker)
        return max(base - m.spent, self.s.floor_share * base)

    def task(self, m: Open, due: Optional[float] = None) -> Task:
        return Task(m.id, m.due if due is None else due, self.planned(m), self.owners.get(m.id),
                    m.ready, str(m.ticket.id), "first" if m.msg.index == 0 else "next")

    def commitments(self, now: float) -> List[Task]:
        """The open promises planning can still act on (a late one is past renegotiating). A
        dedicated owner is the queue's preference for this shift, not a pin for the promise: the
        owner lets go at the shift's end and the next zone carries the task on."""
        return [replace(self.task(m), engineer=None) for m in self.open.values() if m.due > now]

    # --- events ------------------------------------------------------------------------
    def arrive(self, now: float, ticket: wl.Ticket, index: int) -> None:
        m = Open(ticket.messages[index], ticket, wl.business_clock(self.work, ticket), now)
        if self.policy.admission:
            verdict = admission.check(self.commitments(now), self.task(m), self.supply.since(now))
            if not verdict.ok:
                m.due = verdict.earliest_feasible_at or self.work.horizon
                m.refused = True
                self.refusals += 1
        self.open[m.id] = m

    def free(self, now: float, engineer: str) -> None:
        m, since, why = self.busy.pop(engineer)
        m.spent += now - since
        if m.spent >= m.msg.effort - 1e-6:
            self.deliver(now, m, engineer)
        elif m.msg.wait_at is not None and not m.asked and m.spent >= m.msg.wait_at - 1e-6:
            self.ask(now, m)
        if why == "shift":
            for task_id in [t for t, owner in self.owners.items() if owner == engineer]:
                del self.owners[task_id]
        if why == "check":
            self.renegotiate(now)

    def deliver(self, now: float, m: Open, engineer: str) -> None:
        m.delivered = now
        del self.open[m.id]
        self.owners.pop(m.id, None)
        self.done.append(m)
        pair = (m.msg.estimate, m.msg.effort)
        self.history[None].append(pair)
        self.history.setdefault(engineer, []).append(pair)
        # Relearned every `relearn` deliveries: the factor moves slowly, and the median is not free.
        if len(self.history[None]) % self.s.relearn == 0:
            self.factors.clear()
        ticket = m.ticket
        if m.msg.index + 1 < len(ticket.messages):
            nxt = ticket.messages[m.msg.index + 1]
            at = now + nxt.think
            if nxt.in_hours:
                at = self.work.offices[ticket.zone].next_open("office", at) or at
            self.push(at, ARRIVE, (ticket, nxt.index))

    def ask(self, now: float, m: Open) -> None:
        """A question to the customer: out of the queue until the answer, the clock stopped."""
        m.asked = True
        answer = now + m.msg.wait_for
        # The policy clock stops (its business time left runs on from the answer); a date agreed
        # with the customer moves by the time they took.
        agreed = m.due != m.policy_due
        if m.policy_due > now:
            m.policy_due = wl.add(m.clock, answer, wl.between(m.clock, now, m.policy_due))
        if m.due > now:
            m.due = m.due + (answer - now) if agreed else m.policy_due
        m.paused += answer - now
        m.ready = answer
        self.owners.pop(m.id, None)
        self.push(answer, ANSWER, m.id)

    # --- promises --------------------------------------------------------------------------
    def renegotiate(self, now: float) -> None:
        """Move the promises the supply can no longer carry, before they pass (edf+admission)."""
        supply = self.supply.since(now)
        for _ in range(20):
            tasks = self.commitments(now)
            failure = admission.first_overload(tasks, supply)
            if failure is None:
                return
            if failure.engineer == "":
                victim = next(t for t in tasks if t.id == failure.task)
            else:
                competing = [t for t in tasks if t.due <= failure.at
                             and (failure.engineer is None or t.engineer == failure.engineer)]
                victim = max(competing, key=lambda t: (t.due, t.effort))
            verdict = admission.check(tasks, victim, supply)
            if verdict.ok or verdict.earliest_feasible_at is None:
                return
            # Ask once for enough: the earliest feasible date is tight to the minute, and a task
            # that overran once tends to overrun on; a slice more (or a quarter of the task, when
            # that is more) spares the customer a second call.
            m = self.open[victim.id]
            buffer = max(self.s.renegotiation_buffer,
                         self.s.floor_share * m.msg.estimate * self.factor(m.worker))
            moved = min(self.work.horizon, verdict.earliest_feasible_at + buffer)
            m.due = moved
            m.renegotiated += 1
            self.renegotiations += 1

    def next_check(self, now: float) -> float:
        """Every `check_every`, and just before a waiting promise's planned work stops fitting
        (its latest start, on shift; the periodic check sees shift ends coming in time)."""
        soonest = now + self.s.check_every
        working = {m.id for m, _, _ in self.busy.values()}
        rate = 1.0 - self.s.reserve
        for m in self.open.values():
            if m.due > now and m.id not in working:
                soonest = min(soonest, m.due - self.planned(m) / rate - self.s.margin)
        return max(now + 60.0, soonest)

    # --- engineers -------------------------------------------------------------------------
    def dispatch(self, now: float) -> None:
        idle = [e for e in self.engineers if e not in self.busy and self.raw.working(e, now)]
        if not idle:
            return
        candidates = list(self.open.values())
        if not candidates:
            return
        held = {m.id: e for e, (m, _, _) in self.busy.items()}
        tasks = [self.task(m) for m in candidates] if self.policy.owners else []
        supply = self.supply.since(now) if self.policy.owners else self.supply
        for engineer in idle:
            self.picks += 1
            chosen = self.policy.choose(engineer, candidates, tasks, supply, now, held, self.owners,
                                        self.s.slice_seconds, self.s.long_slices)
            if chosen is None:
                continue
            held[chosen] = engineer
            self.start(now, engineer, self.open[chosen])

    def start(self, now: float, engineer: str, m: Open) -> None:
        s = self.s
        m.worker = engineer
        if self.policy.owners and queue.is_long(self.task(m), s.slice_seconds, s.long_slices):
            self.owners.setdefault(m.id, engineer)
        closes = self.raw.closes(engineer, now) or now
        ends = [(now + s.slice_seconds, "slice"), (now + m.msg.effort - m.spent, "done"), (closes, "shift")]
        if m.msg.wait_at is not None and not m.asked:
            ends.append((now + max(0.0, m.msg.wait_at - m.spent), "wait"))
        if self.policy.admission and m.due > now:
            # Stop to check the promise while it can still be moved: when only the floor is left
            # of the planned work and the floor no longer fits before the due.
            planned = self.planned(m, engineer)
            floor = s.floor_share * m.msg.estimate * self.factor(engineer)
            if m.due - now - planned > s.margin:
                ends.append((m.due - floor - s.margin, "check"))
            else:
                ends.append((now + max(60.0, (m.due - now) / 2), "check"))
        at, why = min(ends)
        self.busy[engineer] = (m, now, why)
        self.push(max(at, now + 1.0), FREE, engineer)
