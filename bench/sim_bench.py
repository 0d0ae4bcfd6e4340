"""The simulation at the issue's parameters: the figures per policy, the time and memory it takes.

Runs `mydiag-server simulate` with the defaults (1,000 tickets, 30 days, load 0.85, 8 engineers
in 3 time zones, estimate error 0.5, seed 1) as a user would (wall and CPU time of the whole
command; goal: under 10 s), then each policy in this process: its own wall and CPU time, and
the peak Python memory of its run (tracemalloc, a second pass, since tracing slows it down).

    .venv/bin/python bench/sim_bench.py [--seed S] [--tickets N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.sim import engine, policies, results, workload  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tickets", type=int, default=1000)
    args = ap.parse_args()

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    command = [sys.executable, "-m", "server.cli.main", "simulate", "--tickets", str(args.tickets),
               "--seed", str(args.seed), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = json.loads(done.stdout)
    print(f"mydiag-server simulate --tickets {args.tickets} --seed {args.seed}: {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU, peak RSS {after.ru_maxrss / 1024:.0f} MiB (goal: under 10 s)")

    work = workload.generate(args.tickets, 30, 0.85, 8, 0.5, args.seed, 3)
    print(f"{report['messages']} messages, {report['engineer_hours']:g} engineer hours, "
          f"reserve {report['reserve']:g}")
    print()
    print("| policy | messages | on time | policy on time | renegotiated | refused | reply p50 / p95 h "
          "| max late h | wall s | CPU s | run's peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in report["policies"]:
        name = row["policy"]
        t0, c0 = time.perf_counter(), time.process_time()
        mine = results.figures(name, engine.Engine(work, policies.by_name(name)).run(), work.horizon)
        t1, c1 = time.perf_counter(), time.process_time()
        assert mine == row, f"{name}: the in-process run differs from the command's"
        tracemalloc.start()
        engine.Engine(work, policies.by_name(name)).run()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"| {name} | {row['messages']:,} | {100 * row['on_time_rate']:.2f}% "
              f"| {100 * row['policy_on_time_rate']:.2f}% "
              f"| {row['renegotiated']} ({100 * row['renegotiated_rate']:.1f}%) | {row['refused']} "
              f"| {row['reply_p50_hours']:.2f} / {row['reply_p95_hours']:.2f} "
              f"| {row['max_lateness_hours']:.2f} "
              f"| {t1 - t0:.2f} | {c1 - c0:.2f} | {peak / 2**20:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
