"""What one server process holds: settings, database, blob store, and its lease owner name.

Leases make work on one upload or bundle exclusive across processes: a row is claimed
with a conditional UPDATE (owner, until); the holder renews it while it works; a lease
that ran out, or whose owner is a dead process on this machine, may be taken over.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from server.config import Config, DataDir
from server.storage.blobs import BlobStore
from server.storage.db import Database, open_database
from server.storage.stores import open_store

#: Seconds a lease lasts without renewal; renewed every third of it while work goes on.
LEASE_SECONDS = 20.0


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_dead(owner: Optional[str], me: str) -> bool:
    """True when the lease holder is a process of this machine that no longer runs."""
    if not owner or owner == me:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # an earlier incarnation of this pid number: it cannot be us
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass
class State:
    data: DataDir
    config: Config
    db: Database
    store: BlobStore
    owner: str
    #: Set when there is background work (a finished upload to verify): the sweeper wakes.
    wakeup: threading.Event = field(default_factory=threading.Event)
    #: Set by a running server (api/app.py), whose report worker renders accepted bundles'
    #: reports apart from verification; None where nothing does (a command): render inline.
    reports_due: Optional[threading.Event] = None
    #: Called with a bundle's id once its verdict is committed (api/verdicts.py: a HEAD that
    #: waits for it is answered); None where nothing waits (a command).
    on_verdict: Optional[Callable[[str], None]] = None

    @classmethod
    def open(cls, path: Path, database: Optional[str] = None) -> State:
        data = DataDir(path)
        config = data.load()
        db = open_database(data.database_url(config, database))
        data.tmp.mkdir(exist_ok=True)
        return cls(data, config, db, open_store(data.blobs, config.blobs, data.tmp), new_owner())

    def close(self) -> None:
        self.db.close()

    def wake(self) -> None:
        """Have the background sweeper run now instead of at its next round."""
        self.wakeup.set()

    def claim(self, table: str, key: str, where: str = "1 = 1", params: tuple = ()) -> bool:
        """Take the lease on one row of `uploads` or `bundles` if it is free (and `where` holds)."""
        owner_col, until_col = _LEASE_COLUMNS[table]
        now = time.time()
        # Most claims find the row free or its lease lapsed: one autocommitted statement takes
        # it. Only a row held by a live lease (to be taken over if its owner died) needs a look.
        if self.db.once(f"UPDATE {table} SET {owner_col} = ?, {until_col} = ? "
                        f"WHERE id = ? AND {where} AND ({owner_col} IS NULL OR {until_col} < ?)",
                        (self.owner, now + LEASE_SECONDS, key, *params, now)) == 1:
            return True
        with self.db.tx() as tx:
            row = tx.one(f"SELECT {owner_col} AS owner, {until_col} AS until FROM {table} "
                         f"WHERE id = ? AND {where}", (key, *params))
            if row is None:
                return False
            free = row["owner"] is None or (row["until"] or 0) < now or owner_dead(row["owner"], self.owner)
            if not free:
                return False
            # Conditional on the holder we saw: of two processes racing here, one wins.
            held, held_params = ((f"{owner_col} IS NULL", ()) if row["owner"] is None
                                 else (f"{owner_col} = ?", (row["owner"],)))
            return tx.run(
                f"UPDATE {table} SET {owner_col} = ?, {until_col} = ? "
                f"WHERE id = ? AND {where} AND {held}",
                (self.owner, now + LEASE_SECONDS, key, *params, *held_params),
            ) == 1

    def release(self, table: str, key: str) -> None:
        owner_col, until_col = _LEASE_COLUMNS[table]
        with self.db.tx() as tx:
            tx.run(f"UPDATE {table} SET {owner_col} = NULL, {until_col} = NULL "
                   f"WHERE id = ? AND {owner_col} = ?", (key, self.owner))

    def renew(self, table: str, key: str) -> None:
        owner_col, until_col = _LEASE_COLUMNS[table]
        with self.db.tx() as tx:
            tx.run(f"UPDATE {table} SET {until_col} = ? WHERE id = ? AND {owner_col} = ?",
                   (time.time() + LEASE_SECONDS, key, self.owner))

    @contextmanager
    def keep_renewed(self, table: str, key: str) -> Iterator[None]:
        """Renew a held lease in the background while a long step (hash, verify) runs."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(LEASE_SECONDS / 3):
                self.renew(table, key)

        thread = threading.Thread(target=beat, daemon=True, name=f"lease-{key}")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


_LEASE_COLUMNS = {"uploads": ("lease_owner", "lease_until"), "bundles": ("claim_owner", "claim_until")}
