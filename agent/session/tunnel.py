"""Holds one granted session: dials out to the gateway, keeps the tunnel, enforces the end.

The customer's side connects to the gateway (paramiko, as `tunnel:SESSION` with a key
made for this grant, checking the gateway's host key against the one the server
announced), asks for a reverse forward and opens a control channel. Each engineer
channel arrives as a forwarded channel and is served by `channel.Host`.

The end is enforced here, on the customer's host, whatever the server does: at the
deadline, when `mydiag session revoke` leaves its mark (polled every 0.05 s), on Ctrl-C,
or when the server says so. A lost tunnel cuts every channel at once and is dialled
again (with backoff) until the session ends; engineers are refused meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set

from agent.session import state as session_state
from agent.session.channel import Host
from agent.session.grant import Grant
from recording import sessionwire
from recording.sessionwire import CIPHERS, PACKET, WINDOW

#: How often the holder looks for a revocation mark, the deadline and the tunnel (a stat()).
POLL = 0.05
PING_EVERY = 2.0
#: No answer from the gateway for this long: the tunnel is taken for lost.
SILENCE = 8.0
CONNECT_TIMEOUT = 5.0
BACKOFF_MAX = 5.0

Log = Callable[[str], None]


class Ended(Exception):
    """The session must end for good (not a lost tunnel): the message says why."""

    def __init__(self, reason: str, state: str = "ended") -> None:
        super().__init__(reason)
        self.reason = reason
        self.state = state


class Holder:
    def __init__(self, grant: Grant, key: Any, spec: Optional[Dict[str, Any]], log: Log,
                 notify: Optional[Callable[[str], bool]] = None) -> None:
        self.grant = grant
        self.key = key
        self.spec = spec
        self.log = log
        self.notify = notify
        self.folder = session_state.folder(grant.id)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The deadline on this host's clock, from the time left as the server counted it.
        self.deadline = time.monotonic() + max(0.0, grant.expires - time.time())
        self.stop = threading.Event()
        self.stop_reason = "revoked by the customer (Ctrl-C)"
        self.ended: Optional[str] = None
        self.parts: List[Dict[str, Any]] = []
        self._hosts: Set[Host] = set()
        self._lock = threading.Lock()
        self._transport: Any = None
        self._control: Any = None
        self._heard = time.monotonic()
        self._server_end: Optional[str] = None
        self._acked = threading.Event()
        self._save_lock = threading.Lock()
        self._state: Dict[str, Any] = session_state.load(grant.id) or {**grant.to_dict(), "id": grant.id}

    # -- what hosts ask ---------------------------------------------------------------

    def refusal(self, engineer: str) -> Optional[str]:
        if self.ended is not None:
            return f"session {self.grant.id} has ended ({self.ended})"
        if engineer != self.grant.engineer:
            return f"session {self.grant.id} was not granted to {engineer}"
        if time.monotonic() >= self.deadline:
            return f"session {self.grant.id} has expired"
        return None

    def enlist(self, host: Host) -> bool:
        with self._lock:
            if self.ended is not None:
                return False
            self._hosts.add(host)
            return True

    def forget(self, host: Host) -> None:
        with self._lock:
            self._hosts.discard(host)

    def finished(self, host: Host, status: int, lines: int, head: str) -> None:
        entry = {"part": host.part, "engineer": host.engineer, "command": host.command, "status": status,
                 "events": lines, "chain_head": head, "cut": host.cut_reason,
                 "file": host.recorder.cast_path.name if host.recorder else None}
        with self._lock:
            self.parts.append(entry)
        self.log(f"{host.engineer} channel closed (part {host.part}, exit {status}, {lines} events recorded)")
        self._save()

    def _save(self, **changes: Any) -> None:
        """Write session.json from what this holder knows: one writer, whole files, in order."""
        with self._save_lock:
            self._state.update(changes)
            with self._lock:
                self._state["parts"] = list(self.parts)
            with contextlib.suppress(OSError):
                session_state.save(self.grant.id, self._state)

    def cut_all(self, reason: str) -> None:
        with self._lock:
            hosts = list(self._hosts)
        for host in hosts:
            host.cut(reason)

    # -- the loop ---------------------------------------------------------------------

    def _end_reason(self) -> Optional[Ended]:
        if self.stop.is_set():
            return Ended(self.stop_reason, "revoked")
        if session_state.revoked(self.grant.id):
            return Ended("revoked by the customer (mydiag session revoke)", "revoked")
        if time.monotonic() >= self.deadline:
            return Ended("the grant expired", "expired")
        if self._server_end is not None:
            return Ended(self._server_end, "server")
        return None

    def _wait(self, seconds: float) -> Optional[Ended]:
        until = time.monotonic() + seconds
        while True:
            ended = self._end_reason()
            if ended is not None or time.monotonic() >= until:
                return ended
            time.sleep(min(POLL, max(0.0, until - time.monotonic())))

    def run(self) -> str:
        """Hold the session until it ends; return why it ended."""
        self._save(state="live", holder_pid=os.getpid())
        backoff = 0.5
        ended: Optional[Ended] = None
        first = True
        while ended is None:
            ended = self._end_reason()
            if ended is not None:
                break
            try:
                self._connect()
            except Ended as exc:
                ended = exc
                break
            except Exception as exc:  # noqa: BLE001 - any failure to dial is retried until the end
                self.log(f"cannot reach the gateway {self.grant.gateway_host}:{self.grant.gateway_port} "
                         f"({_describe(exc)}); retrying in {backoff:g}s")
                ended = self._wait(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)
                continue
            backoff = 0.5
            self.log("tunnel up: waiting for the engineer" if first else "tunnel restored")
            first = False
            ended, lost = self._hold()
            if ended is None:
                self.log(f"tunnel lost ({lost}); the engineer's channels were closed; reconnecting")
                self.cut_all(f"the tunnel to the support server was lost ({lost})")
                self._close_transport()
        self._finish(ended)
        return ended.reason

    def _connect(self) -> None:
        import paramiko

        grant = self.grant
        sock = socket.create_connection((grant.gateway_host, grant.gateway_port), timeout=CONNECT_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(sock, default_window_size=WINDOW, default_max_packet_size=PACKET)
        transport.get_security_options().ciphers = CIPHERS
        try:
            transport.start_client(timeout=CONNECT_TIMEOUT * 2)
            offered = transport.get_remote_server_key()
            if f"{offered.get_name()} {offered.get_base64()}" != grant.host_key:
                raise Ended("the gateway's host key is not the one the support server announced: "
                            "not connecting (someone may be in the middle)")
            try:
                transport.auth_publickey(f"tunnel:{grant.id}", self.key)
            except paramiko.AuthenticationException:
                raise Ended("the support server no longer admits this session (revoked or expired "
                            "there)", "server") from None
            transport.request_port_forward(grant.id, 1, handler=self._incoming)
            control = transport.open_session(timeout=CONNECT_TIMEOUT)
            control.exec_command("mydiag-control")
        except BaseException:
            transport.close()
            raise
        self._transport, self._control = transport, control
        self._heard = time.monotonic()
        threading.Thread(target=self._listen, args=(control,), daemon=True, name="session-control").start()

    def _incoming(self, channel: Any, origin: Any, server: Any) -> None:
        # Called on paramiko's transport thread: serve the channel on a thread of its own.
        threading.Thread(target=Host(self, channel).run, daemon=True, name="session-channel").start()

    def _listen(self, control: Any) -> None:
        try:
            for message in sessionwire.control_messages(control.recv, heard=self._hear):
                self._message(message)
        except (OSError, EOFError):
            return

    def _hear(self) -> None:
        self._heard = time.monotonic()

    def _message(self, message: Dict[str, Any]) -> None:
        op = message.get("op")
        if op == "end":
            self._server_end = str(message.get("reason") or "ended by the support server")[:300]
            self._acked.set()
        elif op == "ack":
            self._acked.set()

    def _tell(self, message: Dict[str, Any]) -> bool:
        control = self._control
        if control is None:
            return False
        try:
            control.sendall(sessionwire.control_line(message))
            return True
        except Exception:  # noqa: BLE001 - a dead tunnel: the caller decides what next
            return False

    def _hold(self) -> tuple:
        """(Ended, None) when the session ends, (None, why) when the tunnel is lost."""
        pinged = 0.0
        while True:
            ended = self._end_reason()
            if ended is not None:
                return ended, None
            transport = self._transport
            if transport is None or not transport.is_active():
                return None, "the connection closed"
            now = time.monotonic()
            if now - self._heard > SILENCE:
                return None, f"no answer for {SILENCE:g}s"
            if now - pinged >= PING_EVERY:
                pinged = now
                if not self._tell({"op": "ping"}):
                    return None, "the connection broke"
            time.sleep(POLL)

    def _finish(self, ended: Ended) -> None:
        with self._lock:
            self.ended = ended.reason
        self.cut_all(ended.reason)
        told = ended.state == "server"
        tunnel_up = self._transport is not None and self._transport.is_active()
        if tunnel_up and not told:
            self._acked.clear()
            self._tell({"op": "end", "state": ended.state, "reason": ended.reason})
        # Everything is cut on this host already: say so now, then try to tell the server.
        self._save(state="ended", end_reason=ended.reason, ended=time.time(), server_told=told or None)
        if tunnel_up and not told:
            told = self._acked.wait(1.0)
        self._close_transport()
        if not told and ended.state == "revoked" and self.notify is not None:
            told = self.notify(ended.reason)
        if not told and ended.state == "revoked":
            self.log("the support server could not be told of the revocation; the tunnel is closed, "
                     "so nobody can join, and the server ends the session at its deadline")
        self._save(server_told=told)
        with contextlib.suppress(OSError):
            (self.folder / session_state.HOLD).unlink()

    def _close_transport(self) -> None:
        transport, self._transport, self._control = self._transport, None, None
        if transport is not None:
            with contextlib.suppress(Exception):
                transport.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return "cannot resolve the name"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def new_key() -> Any:
    """A key made for one grant: the gateway admits it only while the grant is live."""
    import paramiko

    return paramiko.ECDSAKey.generate()


def key_pem(key: Any) -> str:
    import io

    buffer = io.StringIO()
    key.write_private_key(buffer)
    return buffer.getvalue()


def key_from_pem(text: str) -> Any:
    import io

    import paramiko

    return paramiko.ECDSAKey.from_private_key(io.StringIO(text))


def public_line(key: Any) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def hold_path(session_id: str) -> Path:
    return session_state.folder(session_id) / session_state.HOLD
