"""The SSH gateway: customers' hosts dial in and hold a tunnel; engineers join with `ssh`.

Nothing listens on the customer's host. Its agent connects here as `tunnel:SESSION`
with the key it registered in the grant, asks for a reverse forward (paramiko's
`request_port_forward`) and opens a control channel (JSON lines: ping, end). An
engineer connects with stock OpenSSH as `NAME@gateway SESSION [-- COMMAND…]`, with the
key registered for NAME. The gateway checks the grant (that engineer, live, before its
deadline, tunnel up), opens a `forwarded-tcpip` channel back to the agent and relays
(recording/sessionwire.py), writing its own copy of the recording from the agent's
timestamped events as they pass. Revocation, expiry and a lost tunnel close every
engineer channel of the session at once; each step is in the audit log.

This module is the listener and wires the parts: doorman.py (caps on connections not yet
authenticated, and their deadline), connection.py (one SSH connection, its auth and
channels), tunnels.py (live tunnels and joined channels), relay.py (one engineer channel
and its recording), watch.py (expiry, revocation elsewhere, silent tunnels), hostkey.py,
holders.py (which process holds which tunnel, in the database) and peers.py (an engineer
relayed to the process that holds the tunnel, over a connection only server processes can
open).

`address` is where the other server processes reach this gateway: the listening address,
or this machine's name when it listens on every interface.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any, List, Optional

import paramiko

from recording.sessionwire import CIPHERS, PACKET, WINDOW
from server.gateway import records as sessions
from server.gateway.connection import Connection
from server.gateway.doorman import Doorman, close_at_once
from server.gateway.hostkey import HOST_KEY, key_line, load_host_key
from server.gateway.peers import load_peer_key
from server.gateway.tunnels import Registry
from server.gateway.watch import Watcher
from server.storage.state import State

log = logging.getLogger("mydiag.gateway")
#: paramiko logs each client that hangs up before or during the handshake as an ERROR with a
#: traceback, line by line: a flood of idle sockets would become a flood of the log. The
#: gateway logs what it refuses itself; paramiko's own lines for its transports go here.
TRANSPORT_LOG = "mydiag.gateway.ssh"
logging.getLogger(TRANSPORT_LOG).setLevel(logging.CRITICAL)


class Gateway:
    def __init__(self, state: State, host: str, port: int, address: str = "") -> None:
        self.state = state
        self.host = host
        limits = state.config.limits
        self.doorman = Doorman(limits.ssh_max_unauthenticated, limits.ssh_max_unauthenticated_per_address,
                               limits.ssh_auth_deadline_seconds)
        self.max_channels = limits.ssh_max_channels_per_connection
        self.key = load_host_key(state.data.path / HOST_KEY)
        self.peer_key = load_peer_key(state.data.path)
        self.peer_line = key_line(self.peer_key)
        self.recordings = state.data.path / "sessions"
        self.registry = Registry(state)
        self._watcher = Watcher(state, self.registry)
        self._listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        # Room for a burst: connections past the accept queue wait in SYN_RECV, unseen by the caps.
        self._listener.listen(512)
        self.port = self._listener.getsockname()[1]
        inner = host if host not in ("", "0.0.0.0", "::") else socket.gethostname()
        self.registry.address = address or (f"[{inner}]:{self.port}" if ":" in inner
                                            else f"{inner}:{self.port}")
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []

    def advertise(self, host: str, port: int) -> None:
        """Name another address in grants (`host`, `port`): a balancer in front of several processes."""
        self.host, self.port = host, port

    @property
    def host_key(self) -> str:
        return key_line(self.key)

    @property
    def fingerprint(self) -> str:
        return sessions.fingerprint(self.key.get_base64())

    def start(self) -> None:
        for target, args, name in ((self._accept, (), "gateway-accept"),
                                   (self._watcher.run, (self._stop,), "gateway-watch")):
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        tunnels, joins = self.registry.everything()
        for join in joins:
            join.cut("the support server is shutting down")
        for tunnel in tunnels:
            tunnel.close()

    def cut(self, session_id: str, reason: str) -> None:
        """Close the session's engineer channels and tell its host it ended, now."""
        self.registry.cut(session_id, reason)

    # -- threads ----------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, peer = self._listener.accept()
            except OSError:
                return
            address = str(peer[0])
            if not self.doorman.admit(address):
                self.doorman.turn_away(sock, address)
                continue
            try:
                threading.Thread(target=self._serve, args=(sock, peer, address), name="gateway-conn",
                                 daemon=True).start()
            except RuntimeError:  # no thread to be had: refuse this one, keep the gateway up
                self.doorman.release(address)
                close_at_once(sock)

    def _serve(self, sock: socket.socket, peer: Any, address: str) -> None:
        conn: Optional[Connection] = None
        try:
            conn = self._handshake(sock, peer, address)
            if conn is not None:
                self._hold(conn)
        finally:
            if conn is None:
                self.doorman.release(address)
            else:
                conn.admitted()

    def _handshake(self, sock: socket.socket, peer: Any, address: str) -> Optional[Connection]:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport = paramiko.Transport(sock, default_window_size=WINDOW, default_max_packet_size=PACKET)
        except (OSError, paramiko.SSHException):
            close_at_once(sock)
            return None
        transport.set_log_channel(TRANSPORT_LOG)
        transport.local_version = "SSH-2.0-mydiag_gateway"
        transport.get_security_options().ciphers = CIPHERS
        transport.add_server_key(self.key)
        transport.banner_timeout = transport.handshake_timeout = self.doorman.deadline
        transport.auth_timeout = self.doorman.deadline
        conn = Connection(self, transport, peer, address)
        try:
            # With an event, start_server returns at once: the deadline below covers the banner,
            # key exchange and authentication alike.
            transport.start_server(event=threading.Event(), server=conn)
        except (paramiko.SSHException, EOFError, OSError):
            transport.close()
            return None
        return conn

    def _hold(self, conn: Connection) -> None:
        transport = conn.transport
        deadline = time.monotonic() + self.doorman.deadline
        # A paramiko channel nobody references is closed when collected: keep them.
        held: List[paramiko.Channel] = []
        while transport.is_active() and not self._stop.is_set():
            wait = 1.0 if conn.kind is not None else max(0.05, min(1.0, deadline - time.monotonic()))
            channel = transport.accept(wait)
            held = [c for c in held if not c.closed] + ([channel] if channel is not None else [])
            if conn.kind is None and time.monotonic() >= deadline:
                log.info("closing the SSH connection from %s: not authenticated within %gs",
                         conn.address, self.doorman.deadline)
                break
        transport.close()
        if conn.tunnel is not None:
            self.registry.drop(conn.tunnel, "the connection closed")
