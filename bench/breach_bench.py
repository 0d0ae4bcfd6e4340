"""The breach sweeper with 100,000 open obligations, on SQLite and PostgreSQL.

100,000 obligations are open; 20,000 of them fall due within the next 30 seconds (their
warnings at 50/80/95% too), the rest tomorrow. The server's own sweeper loop
(server/support/breaches.run) runs in a thread; the bench prints how long after its due
time each breach was recorded (every one must be within 5 s), what one round costs
(idle, with nothing due, and while breaches fall due), and the rows it wrote.

    .venv/bin/python bench/breach_bench.py [--pg postgresql://root@127.0.0.1:5432] [--only sqlite]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.storage.db import Database, open_database  # noqa: E402
from server.support import breaches  # noqa: E402

OPEN = 100_000
DUE_SOON = 20_000
WINDOW = 30.0
TARGET = 10.0
#: The bench's clock starts this far ahead, so that no event is due while the rows are written.
LEAD = 12.0
TICKETS = 1_000


def populate(db: Database, start: float) -> None:
    with db.tx() as tx:
        for i in range(0, TICKETS, 500):
            numbers = range(i, min(TICKETS, i + 500))
            values = ", ".join("(?, 'bench', 't', '[]', ?, 'engineer:bench')" for _ in numbers)
            params: List[object] = [v for n in numbers for v in (f"tk-bench{n:06d}", start)]
            tx.run("INSERT INTO tickets (id, customer, title, recipients, created, created_by) "
                   f"VALUES {values}", params)
    rows = []
    for n in range(OPEN):
        due = start + 5.0 + WINDOW * (n / DUE_SOON) if n < DUE_SOON else start + 86400 + n
        since = due - TARGET
        warn = [since + share * TARGET for share in (0.5, 0.8, 0.95)]
        rows.append((f"ob-{n:08d}", f"tk-bench{n % TICKETS:06d}", since, *warn, due, warn[0]))
    with db.tx() as tx:
        for i in range(0, len(rows), 1000):
            chunk = rows[i:i + 1000]
            marks = ", ".join("(?, ?, 'first', 'bench', '24x7', 10, 'msg', ?, 'open', 0, NULL, "
                              "?, ?, ?, ?, 0, ?)" for _ in chunk)
            tx.run("INSERT INTO obligations (id, ticket_id, kind, policy, calendar, target, opened_by, "
                   "started, state, used, active_since, warn50, warn80, warn95, due_at, fired, next_check) "
                   f"VALUES {marks}", [v for row in chunk for v in row])
    with db.tx() as tx:  # active_since = started
        tx.run("UPDATE obligations SET active_since = started")


def quantiles(values: List[float]) -> Dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99), "max": ordered[-1]}


def run(name: str, db: Database) -> bool:
    start = time.time() + LEAD
    t0 = time.perf_counter()
    populate(db, start)
    print(f"\n{name}: {OPEN:,} open obligations written in {time.perf_counter() - t0:.1f} s")
    idle = []
    for _ in range(5):
        t0 = time.perf_counter()
        breaches.sweep(db)
        idle.append(time.perf_counter() - t0)
    print(f"  an idle round with {OPEN:,} open: median {statistics.median(idle) * 1000:.2f} ms")
    stop = threading.Event()
    rounds: List[float] = []
    original = breaches.sweep

    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            rounds.append(time.perf_counter() - t)

    breaches.sweep = timed  # type: ignore[assignment]
    worker = threading.Thread(target=breaches.run, args=(db, stop, "bench"), daemon=True)
    worker.start()
    deadline = start + 5.0 + WINDOW + 6.0
    while time.time() < deadline:
        time.sleep(0.5)
    stop.set()
    worker.join(10)
    breaches.sweep = original  # type: ignore[assignment]
    with db.tx(write=False) as tx:
        events = tx.all("SELECT kind, due, recorded_at FROM clock_events")
        open_left = tx.one("SELECT COUNT(*) AS n FROM obligations WHERE next_check IS NOT NULL")["n"]
    found = [e for e in events if e["kind"] == "breach"]
    delays = [e["recorded_at"] - e["due"] for e in found]
    q = quantiles(delays)
    ok = len(found) == DUE_SOON and q["max"] < 5.0 and min(delays) >= 0
    catch_up = catch_up_cost(db)
    print(f"  breaches recorded: {len(found):,} of {DUE_SOON:,} due (events in all {len(events):,}); "
          f"obligations still timed: {open_left:,}")
    print("  detection delay (s): " + ", ".join(f"{k} {v:.3f}" for k, v in q.items())
          + f", min {min(delays):.3f}")
    print(f"  rounds: {len(rounds)}, median {statistics.median(rounds) * 1000:.1f} ms, "
          f"p95 {quantiles(rounds)['p95'] * 1000:.1f} ms, max {max(rounds) * 1000:.1f} ms "
          f"(about {DUE_SOON / WINDOW:.0f} breaches and {3 * DUE_SOON / WINDOW:.0f} warnings a second)")
    print(f"  catch-up after an outage (every timed obligation due at once): {catch_up[0]:,} events "
          f"in {catch_up[1]:.2f} s")
    print(f"  every breach within 5 s of its time: {'yes' if ok else 'NO'}")
    return ok


def catch_up_cost(db: Database) -> tuple:
    """What a sweeper meets after the servers were down for a day: every event of the 80,000
    obligations still timed falls due at once."""
    t0 = time.perf_counter()
    written = breaches.sweep(db, "catch-up", now=time.time() + 2 * 86400 + OPEN)
    return written, time.perf_counter() - t0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://root@127.0.0.1:5432",
                        help="a PostgreSQL server to create a scratch database on")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args(argv)
    results = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            db = open_database(f"sqlite:///{tmp}/bench.db")
            try:
                results.append(run("SQLite", db))
            finally:
                db.close()
    if args.only in (None, "postgresql"):
        import psycopg

        name = f"mydiag_bench_{secrets.token_hex(4)}"
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        try:
            db = open_database(f"{args.pg}/{name}")
            try:
                results.append(run("PostgreSQL", db))
            finally:
                db.close()
        finally:
            with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
