"""The figures of one simulated policy, from its messages as the engine left them.

- `messages`: customer messages owed a reply; `on_time_rate`: the share answered by the date
  in force when the reply went out (the accepted promise; the policy target for the policies
  without admission); `policy_on_time_rate`: the same against the policy targets, for all;
- `renegotiated`: promises moved, with the customer's agreement, before they passed (a count;
  `renegotiated_rate` is its share of promises); `refused`: policy dates admission refused
  (the earliest feasible one was offered and accepted instead);
- `reply_p50_hours`, `reply_p95_hours`: from the message to the reply, less the time the
  customer took to answer a question; `max_lateness_hours`: the latest reply past its date in
  force (0 when none was late). A message still open when the simulation ends counts as late.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from server.sim.workload import percentile


def figures(policy: str, messages: List[Any], end: float) -> Dict[str, Any]:
    n = len(messages)
    replies, late, on_time, policy_on_time = [], 0.0, 0, 0
    for m in messages:
        delivered = m.delivered if m.delivered is not None else end
        replies.append(max(0.0, delivered - m.arrival - m.paused) / 3600.0)
        if m.delivered is not None and delivered <= m.due + 1e-6:
            on_time += 1
        if m.delivered is not None and delivered <= m.policy_due + 1e-6:
            policy_on_time += 1
        late = max(late, (delivered - m.due) / 3600.0)
    renegotiated = sum(m.renegotiated for m in messages)
    return {
        "policy": policy,
        "messages": n,
        "on_time_rate": round(on_time / n, 4) if n else 1.0,
        "policy_on_time_rate": round(policy_on_time / n, 4) if n else 1.0,
        "renegotiated": renegotiated,
        "renegotiated_rate": round(renegotiated / n, 4) if n else 0.0,
        "refused": sum(1 for m in messages if m.refused),
        "reply_p50_hours": round(percentile(replies, 0.5), 2),
        "reply_p95_hours": round(percentile(replies, 0.95), 2),
        "max_lateness_hours": round(max(0.0, late), 2),
        "unanswered": sum(1 for m in messages if m.delivered is None),
    }


def simulate(*, tickets: int, days: int, load: float, engineers: int, estimate_error: float, seed: int,
             timezones: int, policies: Sequence[str], reserve: float = 0.15) -> Dict[str, Any]:
    """One workload, every policy asked for: {"parameters": {...}, "policies": [figures, ...]}."""
    from server.sim import engine, workload
    from server.sim.policies import by_name

    work = workload.generate(tickets, days, load, engineers, estimate_error, seed, timezones)
    settings = engine.Settings(reserve=reserve)
    rows = []
    for name in policies:
        run = engine.Engine(work, by_name(name), settings)
        rows.append(figures(name, run.run(), work.horizon))
    params = dict(work.params, reserve=reserve, engineer_hours=round(work.working_seconds / 3600.0, 1),
                  messages=rows[0]["messages"] if rows else sum(len(t.messages) for t in work.tickets))
    return {"parameters": params, "policies": rows}
