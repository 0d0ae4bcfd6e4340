"""`mydiag-server simulate`: replay a synthetic month through the real planning code (server/sim).

No data directory: everything is generated from the seed, in memory. The same arguments give
the same figures. Bad arguments exit 2 with one line; docs/scheduling.md explains the model.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List

from server import exitcodes
from server.cli.common import Failure

_COLUMNS = ("policy", "messages", "on time", "policy on time", "renegotiated", "refused",
            "reply p50 h", "reply p95 h", "max late h")


def _check(args: argparse.Namespace) -> List[str]:
    from server.sim.policies import NAMES
    from server.sim.workload import ENGINEER_ZONES

    limits = [("--tickets", args.tickets, 1, 100_000), ("--days", args.days, 1, 366),
              ("--engineers", args.engineers, 1, 1000),
              ("--timezones", args.timezones, 1, len(ENGINEER_ZONES))]
    for option, value, low, high in limits:
        if not low <= value <= high:
            raise Failure(exitcodes.USAGE, f"{option} must be from {low} to {high}, not {value}")
    reals = [("--load", args.load, 0.0, 2.0, False),
             ("--estimate-error", args.estimate_error, 0.0, 3.0, True),
             ("--reserve", args.reserve, 0.0, 0.9, True)]
    for option, value, low, high, closed in reals:
        if not (value == value and (low <= value if closed else low < value) and value <= high):
            raise Failure(exitcodes.USAGE, f"{option} must be {'from' if closed else 'above'} {low:g} "
                                           f"{'to' if closed else 'and at most'} {high:g}, not {value:g}")
    chosen = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in NAMES]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        raise Failure(exitcodes.USAGE, f"--policies must be a comma-separated list of {', '.join(NAMES)} "
                                       f"(each once), not {args.policies!r}")
    return chosen


def _table(report: Dict[str, Any]) -> List[str]:
    p = report["parameters"]
    lines = [f"simulated {p['tickets']} tickets ({p['messages']} messages) over {p['days']} days: "
             f"load {p['load']:g}, {p['engineers']} engineers in {p['timezones']} time zones "
             f"({p['engineer_hours']:g} working hours), estimate error {p['estimate_error']:g}, "
             f"reserve {p['reserve']:g}, seed {p['seed']}"]
    rows = [list(_COLUMNS)]
    for r in report["policies"]:
        rows.append([r["policy"], str(r["messages"]), f"{100 * r['on_time_rate']:.2f}%",
                     f"{100 * r['policy_on_time_rate']:.2f}%",
                     f"{r['renegotiated']} ({100 * r['renegotiated_rate']:.1f}%)", str(r["refused"]),
                     f"{r['reply_p50_hours']:.2f}", f"{r['reply_p95_hours']:.2f}",
                     f"{r['max_lateness_hours']:.2f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))).rstrip())
    return lines


def cmd_simulate(args: argparse.Namespace) -> int:
    from server.sim.results import simulate

    chosen = _check(args)
    report = simulate(tickets=args.tickets, days=args.days, load=args.load, engineers=args.engineers,
                      estimate_error=args.estimate_error, seed=args.seed, timezones=args.timezones,
                      policies=chosen, reserve=args.reserve)
    if args.json:
        print(json.dumps(dict(report["parameters"], policies=report["policies"]), indent=2))
    else:
        print("\n".join(_table(report)))
    return exitcodes.OK


def register(sub: Any) -> None:
    from server.sim.policies import NAMES

    p = sub.add_parser("simulate", help="replay a synthetic month through admission control and the queue",
                       description="Replays a synthetic month of tickets through the real admission control "
                                   "and queue code under a simulated clock and compares the queue policies.")
    p.add_argument("--tickets", type=int, default=1000, metavar="N", help="tickets opened (default 1000)")
    p.add_argument("--days", type=int, default=30, metavar="D", help="days of arrivals (default 30)")
    p.add_argument("--load", type=float, default=0.85, metavar="L",
                   help="total true effort / engineers' working time in the period (default 0.85)")
    p.add_argument("--engineers", type=int, default=8, metavar="E", help="engineers (default 8)")
    p.add_argument("--timezones", type=int, default=3, metavar="Z",
                   help="engineers' time zones, round robin (default 3: Tokyo, Berlin, Chicago)")
    p.add_argument("--estimate-error", type=float, default=0.5, metavar="SIGMA",
                   help="true effort = estimate x exp(N(0, SIGMA)) (default 0.5)")
    p.add_argument("--reserve", type=float, default=0.15, metavar="R",
                   help="share of engineer time admission control keeps free (default 0.15, the server's)")
    p.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default 1)")
    p.add_argument("--policies", default=",".join(NAMES), metavar="LIST",
                   help=f"comma-separated, from {', '.join(NAMES)} (default all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_simulate)
