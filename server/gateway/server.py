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
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

import paramiko

from recording import asciicast, sessionwire
from recording.sessionwire import CIPHERS, PACKET, WINDOW, Reader, WireError
from server.gateway import records as sessions
from server.storage.state import State

log = logging.getLogger("mydiag.gateway")
#: paramiko logs each client that hangs up before or during the handshake as an ERROR with a
#: traceback, line by line: a flood of idle sockets would become a flood of the log. The
#: gateway logs what it refuses itself; paramiko's own lines for its transports go here.
TRANSPORT_LOG = "mydiag.gateway.ssh"
logging.getLogger(TRANSPORT_LOG).setLevel(logging.CRITICAL)

HOST_KEY = "ssh_host_ed25519_key"
#: A tunnel that sent nothing (its agent pings every 2 s) for this long is dropped.
TUNNEL_SILENCE = 15.0
WATCH_EVERY = 0.1
DB_POLL_EVERY = 0.5
EXPIRY_SWEEP_EVERY = 5.0


def load_host_key(path: Path) -> paramiko.PKey:
    """The gateway's Ed25519 host key, made on first use (mode 0600)."""
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        os.replace(tmp, path)
    return paramiko.Ed25519Key(filename=str(path))


def key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


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
            control.sendall((json.dumps(message) + "\n").encode())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.transport.close()


class Join:
    """One engineer channel relayed to the customer's host."""

    def __init__(self, gateway: Gateway, channel: paramiko.Channel, engineer: str, session_id: str,
                 command: Optional[str], pty: Optional[Dict[str, Any]]) -> None:
        self.gateway = gateway
        self.channel = channel
        self.engineer = engineer
        self.session_id = session_id
        self.command = command
        self.pty = pty
        self.agent: Optional[paramiko.Channel] = None
        self.cut_reason: Optional[str] = None
        self.finished = False
        self._send_lock = threading.Lock()
        self._window_lock = threading.Lock()
        self._window: Optional[tuple] = None
        self._window_sender = False

    def to_agent(self, data: bytes) -> None:
        agent = self.agent
        if agent is None:
            return
        with self._send_lock:
            agent.sendall(data)

    def cut(self, reason: str) -> None:
        """Close both sides now; the relay thread finishes the recording."""
        if self.cut_reason is None:
            self.cut_reason = reason
        with contextlib.suppress(Exception):
            self.channel.sendall_stderr(f"\r\nmydiag gateway: {reason}\r\n".encode())
        with contextlib.suppress(Exception):
            self.channel.send_exit_status(255)
        with contextlib.suppress(Exception):
            self.channel.close()
        if self.agent is not None:
            with contextlib.suppress(Exception):
                self.agent.close()

    # -- the relay ------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - one broken channel never stops the gateway
            log.warning("session %s: channel of %s failed: %s: %s", self.session_id, self.engineer,
                        type(exc).__name__, exc)
            self.cut("internal error in the gateway; the session channel was closed")
        finally:
            self.finished = True
            self.gateway.forget(self)

    def _refuse(self, reason: str) -> None:
        self.gateway.audit_refuse(self.session_id, self.engineer, reason)
        log.info("refused %s for %s: %s", self.engineer, self.session_id, reason)
        with contextlib.suppress(Exception):
            self.channel.sendall_stderr(f"mydiag gateway: {reason}\r\n".encode())
            self.channel.send_exit_status(1)
            self.channel.close()

    def _run(self) -> None:
        gw = self.gateway
        with gw.state.db.tx(write=False) as tx:
            row = sessions.raw(tx, self.session_id)
        reason = sessions.why_not(row, self.engineer, self.session_id)
        if reason is not None:
            self._refuse(reason)
            return
        assert row is not None
        tunnel = gw.tunnel(self.session_id)
        if tunnel is None:
            self._refuse(f"the customer's host is not connected to session {self.session_id} right now "
                         "(try again in a moment)")
            return
        with gw.state.db.tx() as tx:
            part = sessions.next_part(tx, self.session_id)
        try:
            self.agent = tunnel.transport.open_channel(
                "forwarded-tcpip", (self.session_id, 1), (self.engineer, 0), window_size=WINDOW,
                max_packet_size=PACKET, timeout=10)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._refuse(f"the customer's host did not answer ({type(exc).__name__}); try again")
            return
        if not gw.enlist(self):
            self.cut(f"session {self.session_id} has ended")
            return
        self.to_agent(sessionwire.json_frame(sessionwire.OPEN, {
            "session": self.session_id, "engineer": self.engineer, "command": self.command,
            "pty": self.pty, "part": part}))
        # Read all that is buffered at once: paramiko moves the rest of its buffer on a partial read.
        reader = Reader(self.agent.recv, chunk=WINDOW)
        first = reader.next()
        if first is None or first[0] != sessionwire.HEADER:
            # The agent refused (its own checks) and said why on the ERR stream, or vanished.
            self._relay_refusal(first, reader)
            return
        header = first[1]
        base = gw.recordings / self.session_id / str(part)
        if base.with_suffix(asciicast.CAST).exists():
            base = base.with_name(f"{part}-{int(time.time())}")
        recorder = asciicast.Recorder(base, header)
        with gw.state.db.tx() as tx:
            sessions.event(tx, self.session_id, f"engineer:{self.engineer}", "session.join",
                           part=part, command=self.command, pty=self.pty is not None)
        log.info("session %s: %s joined (part %d%s)", self.session_id, self.engineer, part,
                 f", command {self.command!r}" if self.command else ", interactive")
        threading.Thread(target=self._input, name=f"join-in-{self.session_id}", daemon=True).start()
        self._output(reader, recorder, part)

    def _relay_refusal(self, first: Optional[tuple], reader: Reader) -> None:
        frame: Optional[tuple] = first
        status = 1
        while frame is not None:
            kind, payload = frame
            if kind in (sessionwire.OUT, sessionwire.ERR):
                _, data = sessionwire.split_timed(payload)
                with contextlib.suppress(Exception):
                    self.channel.sendall_stderr(data)
            elif kind == sessionwire.EXIT:
                status = int(sessionwire.parse_json(payload).get("status", 1))
                break
            frame = reader.next()
        self.gateway.audit_refuse(self.session_id, self.engineer, "refused by the customer's host")
        with contextlib.suppress(Exception):
            self.channel.send_exit_status(status)
            self.channel.close()
        with contextlib.suppress(Exception):
            self.agent.close()  # type: ignore[union-attr]

    def _input(self) -> None:
        channel = self.channel
        try:
            while True:
                data = channel.recv(65536)
                if not data:
                    break
                self.to_agent(sessionwire.frame(sessionwire.INPUT, data))
            if not channel.closed:
                self.to_agent(sessionwire.frame(sessionwire.EOF))
            while not channel.closed:
                time.sleep(0.1)
            self.to_agent(sessionwire.frame(sessionwire.CLOSE))
        except (OSError, EOFError, paramiko.SSHException):
            pass

    def window(self, cols: int, rows: int) -> None:
        # Called on paramiko's transport thread, which must never block on a send: one sender
        # thread at a time passes on the latest size (a flood of resizes is one thread, not many).
        with self._window_lock:
            self._window = (cols, rows)
            if self._window_sender:
                return
            self._window_sender = True
        threading.Thread(target=self._send_windows, daemon=True, name=f"join-winch-{self.session_id}").start()

    def _send_windows(self) -> None:
        while True:
            with self._window_lock:
                size, self._window = self._window, None
                if size is None:
                    self._window_sender = False
                    return
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                self.to_agent(sessionwire.json_frame(sessionwire.WINCH, {"cols": size[0], "rows": size[1]}))

    def _output(self, reader: Reader, recorder: asciicast.Recorder, part: int) -> None:
        channel = self.channel
        status: Optional[int] = None
        theirs: Dict[str, Any] = {}
        micros = 0
        engineer_gone = False
        try:
            while True:
                try:
                    frame = reader.next()
                except (OSError, EOFError, paramiko.SSHException):
                    frame = None
                if frame is None:
                    break
                kind, payload = frame
                if kind in (sessionwire.OUT, sessionwire.ERR, sessionwire.TYPED):
                    micros, data = sessionwire.split_timed(payload)
                    recorder.event("i" if kind == sessionwire.TYPED else "o", micros, data)
                    if recorder.error is not None:
                        self.cut(f"the support server cannot record this session "
                                 f"({recorder.error.strerror or recorder.error}); it was closed")
                        break
                    if kind == sessionwire.TYPED or engineer_gone:
                        continue
                    try:
                        # A memoryview: paramiko's sendall re-slices what is left after each packet.
                        if kind == sessionwire.OUT:
                            channel.sendall(memoryview(data))
                        else:
                            channel.sendall_stderr(data)
                    except (OSError, EOFError, paramiko.SSHException):
                        engineer_gone = True
                        self._send_quietly(sessionwire.frame(sessionwire.CLOSE))
                elif kind == sessionwire.EXIT:
                    status = int(sessionwire.parse_json(payload).get("status", 255))
                elif kind == sessionwire.END:
                    theirs = sessionwire.parse_json(payload)
                    break
        except WireError as exc:
            log.warning("session %s: the agent sent a bad frame: %s", self.session_id, exc)
        try:
            lines, head = recorder.close(micros)
        except OSError as exc:
            log.error("session %s: recording %s incomplete: %s", self.session_id, recorder.cast_path, exc)
            lines, head = recorder.chain.lines, ""
        matched = theirs.get("head") == head and theirs.get("lines") == lines
        with self.gateway.state.db.tx() as tx:
            sessions.event(tx, self.session_id, f"engineer:{self.engineer}", "session.part",
                           part=part, events=lines, chain_head=head, file=recorder.cast_path.name,
                           agent_head_matches=matched if theirs else None,
                           cut=self.cut_reason or (None if theirs else "the tunnel was lost"))
        if not theirs and self.cut_reason is None:
            self.cut(f"the customer's host disconnected from session {self.session_id}")
            return
        with contextlib.suppress(Exception):
            channel.send_exit_status(255 if status is None else status)
        with contextlib.suppress(Exception):
            channel.close()
        with contextlib.suppress(Exception):
            self.agent.close()  # type: ignore[union-attr]


class Doorman:
    """Connections that have not authenticated yet, counted in all and per source address.

    Before authentication a connection costs two threads (ours and paramiko's) and asks
    nothing of the client, so without a cap idle sockets alone exhaust the process. One
    past either cap is closed at once, never queued.
    """

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total
        self.per_address = per_address
        self._by_address: Dict[str, int] = {}
        self._count = 0
        self._lock = threading.Lock()

    def admit(self, address: str) -> bool:
        with self._lock:
            if self._count >= self.total or self._by_address.get(address, 0) >= self.per_address:
                return False
            self._count += 1
            self._by_address[address] = self._by_address.get(address, 0) + 1
            return True

    def release(self, address: str) -> None:
        with self._lock:
            left = self._by_address.get(address, 0) - 1
            if left < 0:
                return
            self._count -= 1
            if left:
                self._by_address[address] = left
            else:
                del self._by_address[address]

    @property
    def waiting(self) -> int:
        with self._lock:
            return self._count


class Gateway:
    def __init__(self, state: State, host: str, port: int) -> None:
        self.state = state
        self.host = host
        limits = state.config.limits
        self.doorman = Doorman(limits.ssh_max_unauthenticated, limits.ssh_max_unauthenticated_per_address)
        self.auth_deadline = limits.ssh_auth_deadline_seconds
        self.max_channels = limits.ssh_max_channels_per_connection
        self.key = load_host_key(state.data.path / HOST_KEY)
        self.recordings = state.data.path / "sessions"
        self._listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        # Room for a burst: connections past the accept queue wait in SYN_RECV, unseen by the caps.
        self._listener.listen(512)
        self.port = self._listener.getsockname()[1]
        self._tunnels: Dict[str, Tunnel] = {}
        self._joins: Dict[str, Set[Join]] = {}
        self._expires: Dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []

    @property
    def host_key(self) -> str:
        return key_line(self.key)

    @property
    def fingerprint(self) -> str:
        return sessions.fingerprint(self.key.get_base64())

    def start(self) -> None:
        for target, name in ((self._accept, "gateway-accept"), (self._watch, "gateway-watch")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            tunnels = list(self._tunnels.values())
            joins = [j for group in self._joins.values() for j in group]
        for join in joins:
            join.cut("the support server is shutting down")
        for tunnel in tunnels:
            tunnel.close()

    # -- registry ---------------------------------------------------------------------

    def tunnel(self, session_id: str) -> Optional[Tunnel]:
        with self._lock:
            tunnel = self._tunnels.get(session_id)
        return tunnel if tunnel is not None and tunnel.transport.is_active() else None

    def add_tunnel(self, tunnel: Tunnel, expires: float) -> None:
        with self._lock:
            old = self._tunnels.get(tunnel.session_id)
            self._tunnels[tunnel.session_id] = tunnel
            self._expires[tunnel.session_id] = expires
        if old is not None and old.transport is not tunnel.transport:
            old.close()
        with self.state.db.tx() as tx:
            sessions.event(tx, tunnel.session_id, "gateway", "session.tunnel", state="up")
        log.info("session %s: tunnel up", tunnel.session_id)

    def drop_tunnel(self, tunnel: Tunnel, why: str) -> None:
        with self._lock:
            if self._tunnels.get(tunnel.session_id) is not tunnel:
                return
            del self._tunnels[tunnel.session_id]
            joins = list(self._joins.get(tunnel.session_id, ()))
        tunnel.close()
        for join in joins:
            join.cut(f"the customer's host disconnected from session {tunnel.session_id} ({why})")
        with self.state.db.tx() as tx:
            row = sessions.raw(tx, tunnel.session_id)
            if sessions.live(row):
                sessions.event(tx, tunnel.session_id, "gateway", "session.tunnel", state="down", why=why)
        log.info("session %s: tunnel down (%s)", tunnel.session_id, why)

    def enlist(self, join: Join) -> bool:
        with self._lock:
            if join.session_id not in self._tunnels:
                return False
            self._joins.setdefault(join.session_id, set()).add(join)
        return True

    def forget(self, join: Join) -> None:
        with self._lock:
            group = self._joins.get(join.session_id)
            if group is not None:
                group.discard(join)
                if not group:
                    del self._joins[join.session_id]

    def joined(self, session_id: str) -> List[Join]:
        with self._lock:
            return list(self._joins.get(session_id, ()))

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
        if joins or tunnel is not None:
            log.info("session %s: cut (%s)", session_id, reason)

    def audit_refuse(self, session_id: str, engineer: str, reason: str) -> None:
        with self.state.db.tx() as tx:
            sessions.refuse(tx, session_id, engineer, reason)

    # -- threads ----------------------------------------------------------------------

    def _accept(self) -> None:
        refused = 0
        while not self._stop.is_set():
            try:
                sock, peer = self._listener.accept()
            except OSError:
                return
            address = str(peer[0])
            if not self.doorman.admit(address):
                refused += 1
                if refused == 1 or refused % 100 == 0:
                    log.warning("closing new SSH connections from %s and others: too many not yet "
                                "authenticated (%d closed so far)", address, refused)
                _close_at_once(sock)
                continue
            try:
                threading.Thread(target=self._serve, args=(sock, peer, address), name="gateway-conn",
                                 daemon=True).start()
            except RuntimeError:  # no thread to be had: refuse this one, keep the gateway up
                self.doorman.release(address)
                _close_at_once(sock)

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
            _close_at_once(sock)
            return None
        transport.set_log_channel(TRANSPORT_LOG)
        transport.local_version = "SSH-2.0-mydiag_gateway"
        transport.get_security_options().ciphers = CIPHERS
        transport.add_server_key(self.key)
        transport.banner_timeout = transport.handshake_timeout = self.auth_deadline
        transport.auth_timeout = self.auth_deadline
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
        deadline = time.monotonic() + self.auth_deadline
        # A paramiko channel nobody references is closed when collected: keep them.
        held: List[paramiko.Channel] = []
        while transport.is_active() and not self._stop.is_set():
            wait = 1.0 if conn.kind is not None else max(0.05, min(1.0, deadline - time.monotonic()))
            channel = transport.accept(wait)
            held = [c for c in held if not c.closed] + ([channel] if channel is not None else [])
            if conn.kind is None and time.monotonic() >= deadline:
                log.info("closing the SSH connection from %s: not authenticated within %gs",
                         conn.address, self.auth_deadline)
                break
        transport.close()
        if conn.tunnel is not None:
            self.drop_tunnel(conn.tunnel, "the connection closed")

    def _watch(self) -> None:
        polled = swept = 0.0
        while not self._stop.wait(WATCH_EVERY):
            if time.monotonic() - swept >= EXPIRY_SWEEP_EVERY:
                swept = time.monotonic()
                self._sweep_expired()
            now = time.time()
            with self._lock:
                expires = dict(self._expires)
                tunnels = dict(self._tunnels)
                watched = set(expires) | set(self._joins)
            for session_id, deadline in expires.items():
                if now >= deadline:
                    self._expire(session_id)
            for tunnel in tunnels.values():
                if time.monotonic() - tunnel.last_seen > TUNNEL_SILENCE:
                    self.drop_tunnel(tunnel, f"no sign of life for {TUNNEL_SILENCE:g}s")
            if time.monotonic() - polled >= DB_POLL_EVERY and watched:
                polled = time.monotonic()
                self._poll(watched)

    def _sweep_expired(self) -> None:
        """Grants whose host never connected (or left) expire in the record too."""
        try:
            with self.state.db.tx(write=False) as tx:
                due = [r["id"] for r in tx.all(
                    "SELECT id FROM sessions WHERE state = 'live' AND expires <= ?", (time.time(),))]
            for session_id in due:
                self._expire(session_id)
        except Exception as exc:  # noqa: BLE001 - the database may blink; the next sweep retries
            log.warning("cannot sweep expired sessions: %s", exc)

    def _expire(self, session_id: str) -> None:
        with self.state.db.tx() as tx:
            sessions.end(tx, session_id, "expired", "the grant's time ran out", "gateway")
        self.cut(session_id, f"session {session_id} expired")

    def _poll(self, watched: Set[str]) -> None:
        """Revocations made by another process (the CLI, another server) reach us here."""
        try:
            with self.state.db.tx(write=False) as tx:
                rows = {sid: sessions.raw(tx, sid) for sid in watched}
        except Exception as exc:  # noqa: BLE001 - the database may blink; the next poll retries
            log.warning("cannot read sessions: %s", exc)
            return
        for session_id, row in rows.items():
            if row is not None and row["state"] != "live":
                self.cut(session_id, f"session {session_id} has ended ({row['end_reason'] or row['state']})")


def _close_at_once(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


class Connection(paramiko.ServerInterface):
    """One SSH connection: either a customer's tunnel or an engineer."""

    def __init__(self, gateway: Gateway, transport: paramiko.Transport, peer: Any, address: str) -> None:
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
        self.joins: Dict[int, Join] = {}
        self._refused = False

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
            threading.Thread(target=self._control, args=(self.tunnel, channel), daemon=True,
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
        join = Join(self.gateway, channel, self.name, session_id, command, self.ptys.get(channel.get_id()))
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
        self.gateway.add_tunnel(self.tunnel, self.expires)
        return 1

    def cancel_port_forward_request(self, address: str, port: int) -> None:
        if self.tunnel is not None:
            self.gateway.drop_tunnel(self.tunnel, "the customer's host closed it")

    def _control(self, tunnel: Tunnel, channel: paramiko.Channel) -> None:
        """Pings keep the tunnel known alive; `end` says the customer's side closed the session."""
        buffer = b""
        try:
            while True:
                data = channel.recv(4096)
                if not data:
                    break
                tunnel.last_seen = time.monotonic()
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self._control_message(tunnel, line)
                if len(buffer) > 65536:
                    break
        except (OSError, EOFError, paramiko.SSHException):
            pass

    def _control_message(self, tunnel: Tunnel, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        op = message.get("op")
        if op == "ping":
            tunnel.tell({"op": "pong"})
        elif op == "end":
            reason = str(message.get("reason") or "ended by the customer")[:200]
            state = {"revoked": "revoked", "expired": "expired"}.get(str(message.get("state")), "ended")
            with self.gateway.state.db.tx() as tx:
                sessions.end(tx, self.session_id, state, reason, f"customer:{self.session_id}")
            self.gateway.cut(self.session_id, f"session {self.session_id} {reason}")
            tunnel.tell({"op": "ack"})
