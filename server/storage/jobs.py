"""Background jobs done once across server processes: a lease row per job.

Every `mydiag-server run` process runs the same background loops on one database. Work that
lives on a row of its own is claimed on that row (uploads and bundles: state.py; outbox and
inbound mail: a conditional UPDATE of their state; clock events: their key and `FOR UPDATE
SKIP LOCKED`). A job that has no row until it is done — a bundle's report, rendered after
its verification released the bundle, or on first view of its page — is claimed here: one
row in `job_leases` (job, owner, until), taken with an INSERT that only one process wins
or a conditional UPDATE of a lease that ran out or whose owner died, renewed while the job
runs, deleted when it ends. Whoever does not get it waits for the holder's result.
"""

from __future__ import annotations

import secrets
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from server.storage.db import Database
from server.storage.state import LEASE_SECONDS, owner_dead

_TABLE = ("CREATE TABLE IF NOT EXISTS job_leases (job TEXT PRIMARY KEY, owner TEXT NOT NULL,"
          " until DOUBLE PRECISION NOT NULL)")
_ready = set()
_guard = threading.Lock()


def _ensure(db: Database) -> None:
    """The table exists (made here on first use: one statement, only when it is missing)."""
    if id(db) in _ready:
        return
    with _guard:
        try:
            with db.tx(write=False) as tx:
                tx.one("SELECT job FROM job_leases LIMIT 1")
        except Exception:  # noqa: BLE001 - missing: create it (two processes may race: IF NOT EXISTS)
            with db.tx() as tx:
                if db.dialect == "postgresql":
                    tx.run("SELECT pg_advisory_xact_lock(7201907)")
                tx.run(_TABLE)
        _ready.add(id(db))


def claim(db: Database, job: str, owner: str, seconds: float = LEASE_SECONDS) -> bool:
    """Take the lease on `job` if nobody holds it (or its holder's lapsed or died)."""
    _ensure(db)
    now = time.time()
    # Most jobs have no lease row yet: one autocommitted INSERT that only one process wins.
    if db.once("INSERT INTO job_leases (job, owner, until) VALUES (?, ?, ?) ON CONFLICT (job) DO NOTHING",
               (job, owner, now + seconds)) == 1:
        return True
    with db.tx() as tx:
        row = tx.one("SELECT owner, until FROM job_leases WHERE job = ?", (job,))
        if row is None:
            return tx.run("INSERT INTO job_leases (job, owner, until) VALUES (?, ?, ?)"
                          " ON CONFLICT (job) DO NOTHING", (job, owner, now + seconds)) == 1
        if row["until"] >= now and not _dead(row["owner"], owner):
            return False
        # Conditional on the holder we saw: of two processes taking over, one wins.
        return tx.run("UPDATE job_leases SET owner = ?, until = ? WHERE job = ? AND owner = ? AND until = ?",
                      (owner, now + seconds, job, row["owner"], row["until"])) == 1


def _dead(held: str, me: str) -> bool:
    """Whether the holder `held` is a process of this machine that no longer runs. A holder
    of this very process (another thread: the same owner before the last `:`) is alive."""
    if held.rsplit(":", 1)[0] == me.rsplit(":", 1)[0]:
        return False
    return owner_dead(held.rsplit(":", 1)[0], me.rsplit(":", 1)[0])


def release(db: Database, job: str, owner: str) -> None:
    db.once("DELETE FROM job_leases WHERE job = ? AND owner = ?", (job, owner))


def holder(db: Database, job: str) -> Optional[str]:
    """Who holds `job` now (None when nobody does, or their lease ran out)."""
    _ensure(db)
    with db.tx(write=False) as tx:
        row = tx.one("SELECT owner, until FROM job_leases WHERE job = ?", (job,))
    return row["owner"] if row and row["until"] >= time.time() else None


def wait(db: Database, job: str, owner: str, timeout: float = 2 * LEASE_SECONDS) -> None:
    """Until nobody holds `job` (its holder finished, or died and its lease lapsed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = holder(db, job)
        if held is None or _dead(held, f"{owner}:-"):
            return
        time.sleep(0.05)


@contextmanager
def lease(db: Database, job: str, owner: str) -> Iterator[bool]:
    """True inside when this call holds `job` (renewed meanwhile, released at the end);
    False when another holds it: another process, or another thread of this one (each
    call is a holder of its own: `owner` plus a random part)."""
    owner = f"{owner}:{secrets.token_hex(4)}"
    if not claim(db, job, owner):
        yield False
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(LEASE_SECONDS / 3):
            with db.tx() as tx:
                tx.run("UPDATE job_leases SET until = ? WHERE job = ? AND owner = ?",
                       (time.time() + LEASE_SECONDS, job, owner))

    thread = threading.Thread(target=beat, daemon=True, name=f"job-{job}")
    thread.start()
    try:
        yield True
    finally:
        stop.set()
        thread.join()
        release(db, job, owner)
