"""The gateway's watcher: sessions that end without anyone at the gateway ending them.

A grant's time runs out (checked against the tunnel's deadline every tick, and swept from
the records for grants whose host never connected), another process revokes a session
(the CLI, another server: seen by polling the records), or a tunnel falls silent (its
agent pings every 2 s). Each ends the session in the record where it must, and cuts it.
Channels relayed to the process holding a tunnel are polled here as well, so revocation
and expiry cut them on this process even if the holder does not. Every second the watcher
renews this process's rows in `session_holders` (holders.py) for the tunnels it holds.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Set

from server.gateway import holders
from server.gateway import records as sessions
from server.gateway.tunnels import Registry
from server.storage.state import State

log = logging.getLogger("mydiag.gateway")

#: A tunnel that sent nothing (its agent pings every 2 s) for this long is dropped.
TUNNEL_SILENCE = 15.0
WATCH_EVERY = 0.1
DB_POLL_EVERY = 0.5
EXPIRY_SWEEP_EVERY = 5.0


class Watcher:
    def __init__(self, state: State, registry: Registry) -> None:
        self.state = state
        self.registry = registry

    def run(self, stop: threading.Event) -> None:
        polled = swept = beaten = 0.0
        while not stop.wait(WATCH_EVERY):
            if time.monotonic() - swept >= EXPIRY_SWEEP_EVERY:
                swept = time.monotonic()
                self._sweep_expired()
            now = time.time()
            expires, tunnels, watched = self.registry.watched()
            if time.monotonic() - beaten >= holders.BEAT_EVERY and tunnels:
                beaten = time.monotonic()
                self._beat(list(tunnels))
            for session_id, deadline in expires.items():
                if now >= deadline:
                    self._expire(session_id)
            for tunnel in tunnels.values():
                if time.monotonic() - tunnel.last_seen > TUNNEL_SILENCE:
                    self.registry.drop(tunnel, f"no sign of life for {TUNNEL_SILENCE:g}s")
            if time.monotonic() - polled >= DB_POLL_EVERY and watched:
                polled = time.monotonic()
                self._poll(watched)

    def _beat(self, session_ids: list) -> None:
        try:
            with self.state.db.tx() as tx:
                holders.beat(tx, self.state.owner, session_ids)
        except Exception as exc:  # noqa: BLE001 - the database may blink; the next beat retries
            log.warning("cannot renew the tunnels' holder rows: %s", exc)

    def _sweep_expired(self) -> None:
        """Grants whose host never connected (or left) expire in the record too."""
        try:
            with self.state.db.tx(write=False) as tx:
                due = [r["id"] for r in tx.all(
                    "SELECT id FROM sessions WHERE state = 'live' AND expires <= ?", (time.time(),))]
            for session_id in due:
                self._expire(session_id)
            with self.state.db.tx() as tx:
                holders.forget_dead(tx)
        except Exception as exc:  # noqa: BLE001 - the database may blink; the next sweep retries
            log.warning("cannot sweep expired sessions: %s", exc)

    def _expire(self, session_id: str) -> None:
        with self.state.db.tx() as tx:
            sessions.end(tx, session_id, "expired", "the grant's time ran out", "gateway")
        self.registry.cut(session_id, f"session {session_id} expired")

    def _poll(self, watched: Set[str]) -> None:
        """Revocations made by another process (the CLI, another server) reach us here."""
        try:
            with self.state.db.tx(write=False) as tx:
                rows = {sid: sessions.raw(tx, sid) for sid in watched}
        except Exception as exc:  # noqa: BLE001 - the database may blink; the next poll retries
            log.warning("cannot read sessions: %s", exc)
            return
        for session_id, row in rows.items():
            if row is not None and row["state"] == "live" and row["expires"] <= time.time():
                self._expire(session_id)  # a relayed channel's session: its deadline is not ours
            elif row is not None and row["state"] != "live":
                why = row["end_reason"] or row["state"]
                self.registry.cut(session_id, f"session {session_id} has ended ({why})")
