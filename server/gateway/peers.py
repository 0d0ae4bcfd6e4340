"""An engineer channel whose session's tunnel another server process holds: piped to that process.

With several server processes, the customer's host holds its tunnel to one gateway and an
engineer may reach another. The engineer's process checks the grant, finds the holder in
the database (holders.py) and opens an SSH connection to the holder's gateway as
`peer:ENGINEER`, authenticated with the peer key: an Ed25519 key in the data directory
(`DIR/gateway_peer_ed25519_key`, mode 0600) that only the server processes have, checked
against the same host key the processes share. The holder treats that connection as the
engineer's own (it checks the grant again, relays to the tunnel, records and audits as
for a direct join); this side only pipes bytes: the exec command and pty, window changes,
input and its end, output and errors, the exit status. A holder that dies ends the
engineer's channel with a line saying to join again once the customer's host has redialled.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from pathlib import Path
from typing import Any, Dict, Optional

import paramiko

from recording.sessionwire import CIPHERS, PACKET, WINDOW
from server.gateway import records as sessions
from server.gateway.hostkey import PEER_KEY, key_line, load_key
from server.gateway.latest import Latest
from server.gateway.tunnels import Registry
from server.storage.state import State

log = logging.getLogger("mydiag.gateway")

PEER_USER = "peer:"
CONNECT_TIMEOUT = 5.0


def load_peer_key(data: Path) -> paramiko.Ed25519Key:
    """The key server processes present to each other's gateways (made on first use, 0600)."""
    return load_key(data / PEER_KEY)


class PeerJoin:
    """One engineer channel relayed through the process that holds the session's tunnel."""

    def __init__(self, state: State, registry: Registry, channel: paramiko.Channel, engineer: str,
                 session_id: str, command: Optional[str], pty: Optional[Dict[str, Any]], address: str,
                 peer_key: paramiko.PKey, host_key: paramiko.PKey) -> None:
        self.state = state
        self.registry = registry
        self.channel = channel
        self.engineer = engineer
        self.session_id = session_id
        self.command = command
        self.pty = pty
        self.address = address
        self.peer_key = peer_key
        self.host_key = host_key
        self.transport: Optional[paramiko.Transport] = None
        self.peer: Optional[paramiko.Channel] = None
        self.cut_reason: Optional[str] = None
        self.finished = False
        self._windows = Latest(self._send_window, f"peer-winch-{self.session_id}")

    def cut(self, reason: str) -> None:
        """Close the engineer's channel and the peer connection now."""
        if self.cut_reason is None:
            self.cut_reason = reason
        with contextlib.suppress(Exception):
            self.channel.sendall_stderr(f"\r\nmydiag gateway: {reason}\r\n".encode())
        with contextlib.suppress(Exception):
            self.channel.send_exit_status(255)
        with contextlib.suppress(Exception):
            self.channel.close()
        self._close_peer()

    def _close_peer(self) -> None:
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - one broken channel never stops the gateway
            log.warning("session %s: relayed channel of %s failed: %s: %s", self.session_id, self.engineer,
                        type(exc).__name__, exc)
            self.cut("internal error in the gateway; the session channel was closed")
        finally:
            self.finished = True
            self.registry.forget(self)
            self._close_peer()

    def _refuse(self, reason: str) -> None:
        with self.state.db.tx() as tx:
            sessions.refuse(tx, self.session_id, self.engineer, reason)
        log.info("refused %s for %s: %s", self.engineer, self.session_id, reason)
        with contextlib.suppress(Exception):
            self.channel.sendall_stderr(f"mydiag gateway: {reason}\r\n".encode())
            self.channel.send_exit_status(1)
            self.channel.close()

    def _run(self) -> None:
        with self.state.db.tx(write=False) as tx:
            row = sessions.raw(tx, self.session_id)
        reason = sessions.why_not(row, self.engineer, self.session_id)
        if reason is not None:
            self._refuse(reason)
            return
        try:
            self.peer = self._connect()
        except (OSError, EOFError, paramiko.SSHException, ValueError) as exc:
            log.warning("session %s: cannot reach the holding process %s: %s", self.session_id,
                        self.address, exc)
            self._refuse(f"the server process holding session {self.session_id} did not answer "
                         f"({type(exc).__name__}); try again in a moment")
            return
        if not self.registry.enlist_relayed(self):
            self.cut(f"session {self.session_id} has ended")
            return
        log.info("session %s: %s relayed to the holding process %s", self.session_id, self.engineer,
                 self.address)
        threading.Thread(target=self._input, name=f"peer-in-{self.session_id}", daemon=True).start()
        errors = threading.Thread(target=self._errors, name=f"peer-err-{self.session_id}", daemon=True)
        errors.start()
        self._output()
        errors.join(5)
        peer = self.peer
        peer.status_event.wait(5)
        if self.cut_reason is not None:
            return
        if peer.exit_status < 0:
            self.cut(f"the server process holding session {self.session_id} stopped; the customer's host "
                     "reconnects within seconds: join again then")
            return
        with contextlib.suppress(Exception):
            self.channel.send_exit_status(peer.exit_status)
        with contextlib.suppress(Exception):
            self.channel.close()

    def _connect(self) -> paramiko.Channel:
        host, _, port = self.address.rpartition(":")
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = self.transport = paramiko.Transport(sock, default_window_size=WINDOW,
                                                        default_max_packet_size=PACKET)
        transport.get_security_options().ciphers = CIPHERS
        transport.start_client(timeout=CONNECT_TIMEOUT * 2)
        offered = transport.get_remote_server_key()
        if key_line(offered) != key_line(self.host_key):
            raise paramiko.SSHException(f"{self.address} presents another host key than this data "
                                        "directory's")
        transport.auth_publickey(f"{PEER_USER}{self.engineer}", self.peer_key)
        peer = transport.open_session(window_size=WINDOW, max_packet_size=PACKET, timeout=CONNECT_TIMEOUT)
        if self.pty is not None:
            peer.get_pty(self.pty.get("term") or "xterm", int(self.pty.get("cols") or 80),
                         int(self.pty.get("rows") or 24))
        peer.exec_command(f"{self.session_id} -- {self.command}" if self.command else self.session_id)
        return peer

    def _input(self) -> None:
        channel, peer = self.channel, self.peer
        assert peer is not None
        try:
            while True:
                data = channel.recv(65536)
                if not data:
                    break
                peer.sendall(data)
            if not channel.closed:
                peer.shutdown_write()
            while not channel.closed and not peer.closed:
                channel.status_event.wait(0.1)
            # The engineer left: the holder ends the part (and the customer's side its command).
            if not peer.closed:
                peer.close()
        except (OSError, EOFError, paramiko.SSHException):
            pass

    def _errors(self) -> None:
        peer = self.peer
        assert peer is not None
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            while True:
                data = peer.recv_stderr(65536)
                if not data:
                    return
                self.channel.sendall_stderr(data)

    def _output(self) -> None:
        peer = self.peer
        assert peer is not None
        try:
            while True:
                data = peer.recv(65536)
                if not data:
                    return
                self.channel.sendall(data)
        except (OSError, EOFError, paramiko.SSHException):
            # The engineer is gone: closing the peer channel ends the part on the holder.
            with contextlib.suppress(Exception):
                peer.close()

    def window(self, cols: int, rows: int) -> None:
        # Called on paramiko's transport thread: the latest size goes out from a thread of its own.
        self._windows.offer((cols, rows))

    def _send_window(self, size: tuple) -> None:
        peer = self.peer
        if peer is None:
            if self.pty is not None:  # not connected yet: the pty is asked for at this size
                self.pty.update(cols=size[0], rows=size[1])
            return
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            peer.resize_pty(size[0], size[1])
