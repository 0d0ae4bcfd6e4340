"""Which server process holds a session's tunnel: one row per session in `session_holders`.

With several server processes behind a balancer, the customer's host dials one of them
and an engineer may reach another. The process whose gateway admits a tunnel writes
itself here (its lease owner name and the internal address of its gateway); it renews
`beat` every second while it holds tunnels and deletes its row when the tunnel goes down.
A row whose beat is older than `STALE` seconds, or whose owner is a dead process of this
machine (state.owner_dead), is nobody's: a process that was SIGKILLed leaves such a row,
and the next process the host redials overwrites it.
"""

from __future__ import annotations

import time
from typing import Iterable, Optional

from server.storage.db import Tx
from server.storage.state import owner_dead

#: A holder that has not renewed its beat (every BEAT_EVERY s) for this long is taken for dead.
STALE = 5.0
BEAT_EVERY = 1.0
#: Rows of dead holders are deleted after this long (they are ignored well before).
FORGET_AFTER = 600.0


def hold(tx: Tx, session_id: str, owner: str, address: str) -> None:
    """This process holds the session's tunnel now (whoever held it before)."""
    now = time.time()
    tx.run("INSERT INTO session_holders (session_id, owner, address, since, beat) VALUES (?, ?, ?, ?, ?)"
           " ON CONFLICT (session_id) DO UPDATE SET owner = excluded.owner, address = excluded.address,"
           " since = excluded.since, beat = excluded.beat", (session_id, owner, address, now, now))


def let_go(tx: Tx, session_id: str, owner: str) -> None:
    """The tunnel went down here; a row another process wrote since is left alone."""
    tx.run("DELETE FROM session_holders WHERE session_id = ? AND owner = ?", (session_id, owner))


def beat(tx: Tx, owner: str, session_ids: Iterable[str]) -> None:
    """Renew this process's rows for the tunnels it holds (one statement for all)."""
    ids = list(session_ids)
    if ids:
        marks = ", ".join("?" for _ in ids)
        tx.run(f"UPDATE session_holders SET beat = ? WHERE owner = ? AND session_id IN ({marks})",
               (time.time(), owner, *ids))


def forget_dead(tx: Tx) -> None:
    tx.run("DELETE FROM session_holders WHERE beat < ?", (time.time() - FORGET_AFTER,))


def holder(tx: Tx, session_id: str, me: str) -> Optional[str]:
    """The internal gateway address of the live process (not this one) holding the tunnel, if any."""
    row = tx.one("SELECT owner, address, beat FROM session_holders WHERE session_id = ?", (session_id,))
    if row is None or row["owner"] == me or row["beat"] < time.time() - STALE:
        return None
    if owner_dead(row["owner"], me):
        return None
    return str(row["address"])
