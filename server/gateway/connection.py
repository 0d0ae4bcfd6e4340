"""One SSH connection to the gateway: a customer's tunnel or an engineer, its auth and channels.

A customer's agent logs in as `tunnel:SESSION` with the key registered in the grant, asks
for the reverse forward (which registers its tunnel) and opens the control channel
(`exec mydiag-control`). An engineer logs in as NAME with a key registered for NAME; each
`exec SESSION [-- COMMAND…]` becomes a relayed channel (relay.py), a bare shell gets the
list of their live sessions. A connection holds at most `max_channels` such channels at
once; an unknown engineer or key is audited once per connection.

Another server process logs in as `peer:ENGINEER` with the peer key (peers.py) when one
of its engineers joins a session whose tunnel this process holds: that connection is the
engineer's, already authenticated there, and its channels are joined only to a tunnel
held here (never relayed on, so two processes cannot bounce a channel between them). An
engineer whose session's tunnel another process holds is relayed there (peers.PeerJoin).

`gateway` is the server.Gateway that accepted the connection (not imported: it imports
this module); this reads its state, doorman, registry, recordings, max_channels and port.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Dict, Optional

import paramiko

from server.gateway import holders
from server.gateway import records as sessions
from server.gateway.peers import PEER_USER, PeerJoin
from server.gateway.relay import Join
from server.gateway.tunnels import Tunnel

log = logging.getLogger("mydiag.gateway")


class Connection(paramiko.ServerInterface):
    """One SSH connection: either a customer's tunnel or an engineer."""

    def __init__(self, gateway: Any, transport: paramiko.Transport, peer: Any, address: str) -> None:
        self.gateway = gateway
        self.transport = transport
        self.peer = peer
        self.address = address
        self._waiting = True
        self._lock = threading.Lock()
        self._listings = 0
        self.kind: Optional[str] = None
        self.name = ""
        self.session_id = ""
        self.expires = 0.0
        self.tunnel: Optional[Tunnel] = None
        self.ptys: Dict[int, Dict[str, Any]] = {}
        self.joins: Dict[int, Any] = {}
        self._refused = False
        #: A connection from another server process on behalf of one of its engineers.
        self.relayed = False

    def admitted(self) -> None:
        """The connection no longer counts as waiting for authentication (once)."""
        with self._lock:
            waiting, self._waiting = self._waiting, False
        if waiting:
            self.gateway.doorman.release(self.address)

    def busy(self) -> int:
        """Channels of this connection that hold a thread now (joins, a session listing)."""
        for chanid in [c for c, j in self.joins.items() if j.finished]:
            del self.joins[chanid]
        return len(self.joins) + self._listings

    # -- authentication ---------------------------------------------------------------

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        kind, blob = key.get_name(), key.get_base64()
        db = self.gateway.state.db
        if username.startswith("tunnel:"):
            session_id = username[len("tunnel:"):]
            with db.tx(write=False) as tx:
                row = sessions.raw(tx, session_id)
            if sessions.live(row) and row is not None and row["tunnel_key"] == f"{kind} {blob}":
                self.kind, self.session_id, self.expires = "tunnel", session_id, row["expires"]
                self.admitted()
                return paramiko.AUTH_SUCCESSFUL
            return paramiko.AUTH_FAILED
        if username.startswith(PEER_USER):
            return self._check_peer(username[len(PEER_USER):], f"{kind} {blob}", blob)
        with db.tx(write=False) as tx:
            known = sessions.engineer_for_key(tx, username, kind, blob)
        if known:
            self.kind, self.name = "engineer", username
            self.admitted()
            return paramiko.AUTH_SUCCESSFUL
        if not self._refused:
            self._refused = True
            with db.tx() as tx:
                sessions.event(tx, "", f"ssh:{username[:64]}", "session.refuse",
                               reason="unknown engineer, or not their registered key",
                               key=sessions.fingerprint(blob))
        return paramiko.AUTH_FAILED

    def _check_peer(self, engineer: str, line: str, blob: str) -> int:
        """Only the server processes' own peer key opens a peer connection."""
        if line == self.gateway.peer_line and engineer and len(engineer) <= 64:
            self.kind, self.name, self.relayed = "engineer", engineer, True
            self.admitted()
            return paramiko.AUTH_SUCCESSFUL
        if not self._refused:
            self._refused = True
            with self.gateway.state.db.tx() as tx:
                sessions.event(tx, "", f"ssh:peer:{engineer[:64]}", "session.refuse",
                               reason="a peer connection without the server processes' peer key",
                               key=sessions.fingerprint(blob))
        return paramiko.AUTH_FAILED

    # -- channels ---------------------------------------------------------------------

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind != "session" or self.kind is None:
            return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        if not self._room():
            return paramiko.OPEN_FAILED_RESOURCE_SHORTAGE
        return paramiko.OPEN_SUCCEEDED

    def _room(self) -> bool:
        """Whether one more channel may take a thread on this connection."""
        if self.busy() < self.gateway.max_channels:
            return True
        log.info("refused a channel to %s: %d already busy on one connection",
                 self.name or self.session_id, self.gateway.max_channels)
        return False

    def check_channel_pty_request(self, channel: paramiko.Channel, term: bytes, width: int, height: int,
                                  pixelwidth: int, pixelheight: int, modes: bytes) -> bool:
        if self.kind != "engineer":
            return False
        term_text = term.decode("ascii", "replace") if isinstance(term, bytes) else str(term)
        self.ptys[channel.get_id()] = {"term": term_text[:64], "cols": width, "rows": height}
        return True

    def check_channel_window_change_request(self, channel: paramiko.Channel, width: int, height: int,
                                            pixelwidth: int, pixelheight: int) -> bool:
        join = self.joins.get(channel.get_id())
        if join is not None:
            join.window(width, height)
        return True

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        text = command.decode("utf-8", "replace") if isinstance(command, bytes) else str(command)
        if self.kind == "tunnel":
            if text != "mydiag-control" or self.tunnel is None or self.tunnel.control is not None:
                return False
            self.tunnel.control = channel
            threading.Thread(target=self.tunnel.listen, args=(channel, self._customer_ended), daemon=True,
                             name=f"control-{self.session_id}").start()
            return True
        if self.kind != "engineer" or not self._room():
            return False
        words = text.strip().split(None, 1)
        session_id = words[0] if words else ""
        rest = words[1].strip() if len(words) > 1 else ""
        if rest == "--":
            rest = ""
        elif rest.startswith("-- "):
            rest = rest[3:].strip()
        self._join(channel, session_id, rest or None)
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        if self.kind != "engineer" or not self._room():
            return False
        with self._lock:
            self._listings += 1
        threading.Thread(target=self._which_session, args=(channel,), daemon=True).start()
        return True

    def _join(self, channel: paramiko.Channel, session_id: str, command: Optional[str]) -> None:
        gw = self.gateway
        pty = self.ptys.get(channel.get_id())
        join: Any = None
        if not self.relayed and gw.registry.tunnel(session_id) is None and sessions.session_id_ok(session_id):
            with gw.state.db.tx(write=False) as tx:
                address = holders.holder(tx, session_id, gw.state.owner)
            if address is not None:
                join = PeerJoin(gw.state, gw.registry, channel, self.name, session_id, command, pty, address,
                                gw.peer_key, gw.key)
        if join is None:
            join = Join(gw.state, gw.registry, gw.recordings, channel, self.name, session_id, command, pty,
                        via=f"peer {self.address}" if self.relayed else None)
        self.joins[channel.get_id()] = join
        threading.Thread(target=join.run, name=f"join-{session_id}", daemon=True).start()

    def _which_session(self, channel: paramiko.Channel) -> None:
        try:
            with self.gateway.state.db.tx(write=False) as tx:
                rows = [r for r in sessions.list_for_ticket(tx, None)
                        if r["engineer"] == self.name and r["state"] == "live"]
            listed = ", ".join(r["id"] for r in rows) or "none right now"
            with contextlib.suppress(Exception):
                channel.sendall_stderr(
                    f"mydiag gateway: say which session: ssh -p {self.gateway.port} {self.name}@HOST "
                    f"SESSION_ID [-- COMMAND] (your live sessions: {listed})\r\n".encode())
                channel.send_exit_status(2)
                channel.close()
        finally:
            with self._lock:
                self._listings -= 1

    def check_port_forward_request(self, address: str, port: int) -> Any:
        if self.kind != "tunnel" or address != self.session_id:
            return False
        self.tunnel = Tunnel(self.session_id, self.transport)
        self.gateway.registry.add(self.tunnel, self.expires)
        return 1

    def cancel_port_forward_request(self, address: str, port: int) -> None:
        if self.tunnel is not None:
            self.gateway.registry.drop(self.tunnel, "the customer's host closed it")

    def _customer_ended(self, state: str, reason: str) -> None:
        """The customer's side ended the session (its control channel said `end`)."""
        with self.gateway.state.db.tx() as tx:
            sessions.end(tx, self.session_id, state, reason, f"customer:{self.session_id}")
        self.gateway.registry.cut(self.session_id, f"session {self.session_id} {reason}")
