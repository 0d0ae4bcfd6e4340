"""The customers' tunnels that are up, and which engineer channels are joined to each.

A `Tunnel` is one customer's host connected as `tunnel:SESSION`: its SSH transport (the
reverse forward engineers' channels are opened on) and its control channel (JSON lines
from recording/sessionwire.py: the agent pings, says `end` when the customer ends the
session; the gateway answers `pong`, `ack`, and says `end` when the support side cuts).
The `Registry` holds the live tunnels, their grants' deadlines and the joined engineer
channels (also those relayed to another process that holds the tunnel: peers.py), and cuts
a session's channels all at once. It writes which process holds each tunnel into the
database (holders.py), so that the other processes can relay their engineers here.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Protocol, Set, Tuple

import paramiko

from recording import sessionwire
from server.gateway import holders
from server.gateway import records as sessions
from server.storage.state import State

log = logging.getLogger("mydiag.gateway")
#: A control line longer than this (no line end yet) ends the control channel.
CONTROL_LINE_MAX = 65536


class Member(Protocol):
    """An engineer channel joined to a session (relay.Join), as the registry sees it."""

    session_id: str

    def cut(self, reason: str) -> None: ...


class Tunnel:
    def __init__(self, session_id: str, transport: paramiko.Transport) -> None:
        self.session_id = session_id
        self.transport = transport
        self.control: Optional[paramiko.Channel] = None
        self.last_seen = time.monotonic()
        self._send_lock = threading.Lock()

    def tell(self, message: Dict[str, Any]) -> None:
        control = self.control
        if control is None:
            return
        with self._send_lock, contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            control.sendall(sessionwire.control_line(message))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.transport.close()

    def listen(self, channel: paramiko.Channel, ended: Callable[[str, str], None]) -> None:
        """Pings keep the tunnel known alive; `end` says the customer's side closed the session:
        `ended(state, reason)` records it, then the agent is told `ack`."""
        try:
            for message in sessionwire.control_messages(channel.recv, heard=self._heard,
                                                        limit=CONTROL_LINE_MAX):
                op = message.get("op")
                if op == "ping":
                    self.tell({"op": "pong"})
                elif op == "end":
                    reason = str(message.get("reason") or "ended by the customer")[:200]
                    state = {"revoked": "revoked", "expired": "expired"}.get(
                        str(message.get("state")), "ended")
                    ended(state, reason)
                    self.tell({"op": "ack"})
        except (OSError, EOFError, paramiko.SSHException):
            pass

    def _heard(self) -> None:
        self.last_seen = time.monotonic()


class Registry:
    """Live tunnels by session, their deadlines, and the engineer channels joined to them."""

    def __init__(self, state: State, address: str = "") -> None:
        self.state = state
        #: This process's gateway as the other server processes reach it (host:port).
        self.address = address
        self._tunnels: Dict[str, Tunnel] = {}
        self._joins: Dict[str, Set[Member]] = {}
        self._expires: Dict[str, float] = {}
        self._lock = threading.Lock()

    def tunnel(self, session_id: str) -> Optional[Tunnel]:
        with self._lock:
            tunnel = self._tunnels.get(session_id)
        return tunnel if tunnel is not None and tunnel.transport.is_active() else None

    def add(self, tunnel: Tunnel, expires: float) -> None:
        with self._lock:
            old = self._tunnels.get(tunnel.session_id)
            self._tunnels[tunnel.session_id] = tunnel
            self._expires[tunnel.session_id] = expires
        if old is not None and old.transport is not tunnel.transport:
            old.close()
        with self.state.db.tx() as tx:
            holders.hold(tx, tunnel.session_id, self.state.owner, self.address)
            sessions.event(tx, tunnel.session_id, "gateway", "session.tunnel", state="up",
                           gateway=self.address)
        log.info("session %s: tunnel up", tunnel.session_id)

    def drop(self, tunnel: Tunnel, why: str) -> None:
        with self._lock:
            if self._tunnels.get(tunnel.session_id) is not tunnel:
                return
            del self._tunnels[tunnel.session_id]
            joins = list(self._joins.get(tunnel.session_id, ()))
        tunnel.close()
        for join in joins:
            join.cut(f"the customer's host disconnected from session {tunnel.session_id} ({why})")
        with self.state.db.tx() as tx:
            holders.let_go(tx, tunnel.session_id, self.state.owner)
            row = sessions.raw(tx, tunnel.session_id)
            if sessions.live(row):
                sessions.event(tx, tunnel.session_id, "gateway", "session.tunnel", state="down", why=why,
                               gateway=self.address)
        log.info("session %s: tunnel down (%s)", tunnel.session_id, why)

    def enlist(self, join: Member) -> bool:
        with self._lock:
            if join.session_id not in self._tunnels:
                return False
            self._joins.setdefault(join.session_id, set()).add(join)
        return True

    def enlist_relayed(self, join: Member) -> bool:
        """A channel relayed to the process holding the tunnel: watched here too (revocation)."""
        with self._lock:
            self._joins.setdefault(join.session_id, set()).add(join)
        return True

    def forget(self, join: Member) -> None:
        with self._lock:
            group = self._joins.get(join.session_id)
            if group is not None:
                group.discard(join)
                if not group:
                    del self._joins[join.session_id]

    def cut(self, session_id: str, reason: str) -> None:
        """Close the session's engineer channels and tell its host it ended, now."""
        with self._lock:
            joins = list(self._joins.get(session_id, ()))
            tunnel = self._tunnels.pop(session_id, None)
            self._expires.pop(session_id, None)
        for join in joins:
            join.cut(reason)
        if tunnel is not None:
            tunnel.tell({"op": "end", "reason": reason})
            threading.Timer(1.0, tunnel.close).start()
            try:
                with self.state.db.tx() as tx:
                    holders.let_go(tx, session_id, self.state.owner)
            except Exception as exc:  # noqa: BLE001 - a stale row is ignored after holders.STALE
                log.warning("session %s: cannot clear its holder row: %s", session_id, exc)
        if joins or tunnel is not None:
            log.info("session %s: cut (%s)", session_id, reason)

    def watched(self) -> Tuple[Dict[str, float], Dict[str, Tunnel], Set[str]]:
        """(deadlines, tunnels, every session with a tunnel deadline or a joined channel), at one moment."""
        with self._lock:
            expires = dict(self._expires)
            return expires, dict(self._tunnels), set(expires) | set(self._joins)

    def everything(self) -> Tuple[List[Tunnel], List[Member]]:
        """Every tunnel and every joined channel, at one moment."""
        with self._lock:
            return list(self._tunnels.values()), [j for group in self._joins.values() for j in group]
