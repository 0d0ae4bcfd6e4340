"""One engineer channel relayed to the customer's host, and the gateway's copy of its recording.

The engineer's grant is checked again (that engineer, live, before its deadline), a
`forwarded-tcpip` channel is opened back to the agent over its tunnel, and frames
(recording/sessionwire.py) pass both ways: the engineer's input, window sizes and end to
the agent; the agent's timestamped output, typed input, exit status and final chain head
back. Each part of a session is recorded here too, from the agent's own timestamps, so
both copies hash alike; the record says whether they did. A refusal by the agent's own
checks reaches the engineer as it said it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional

import paramiko

from recording import asciicast, sessionwire
from recording.sessionwire import PACKET, WINDOW, Reader, WireError
from server.gateway import records as sessions
from server.gateway.latest import Latest
from server.gateway.tunnels import Registry
from server.storage import recordings
from server.storage.state import State

log = logging.getLogger("mydiag.gateway")


class Join:
    """One engineer channel relayed to the customer's host."""

    def __init__(self, state: State, registry: Registry, recordings: Path, channel: paramiko.Channel,
                 engineer: str, session_id: str, command: Optional[str],
                 pty: Optional[Dict[str, Any]], via: Optional[str] = None) -> None:
        self.state = state
        #: Set when another server process relays the engineer here (its address, for the audit).
        self.via = via
        self.registry = registry
        self.recordings = recordings
        self.channel = channel
        self.engineer = engineer
        self.session_id = session_id
        self.command = command
        self.pty = pty
        self.agent: Optional[paramiko.Channel] = None
        self.cut_reason: Optional[str] = None
        self.finished = False
        self._send_lock = threading.Lock()
        self._windows = Latest(self._send_window, f"join-winch-{self.session_id}")

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
            self.registry.forget(self)

    def _audit_refuse(self, reason: str) -> None:
        with self.state.db.tx() as tx:
            sessions.refuse(tx, self.session_id, self.engineer, reason)

    def _refuse(self, reason: str) -> None:
        self._audit_refuse(reason)
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
        assert row is not None
        tunnel = self.registry.tunnel(self.session_id)
        if tunnel is None:
            self._refuse(f"the customer's host is not connected to session {self.session_id} right now "
                         "(try again in a moment)")
            return
        with self.state.db.tx() as tx:
            part = sessions.next_part(tx, self.session_id)
        try:
            self.agent = tunnel.transport.open_channel(
                "forwarded-tcpip", (self.session_id, 1), (self.engineer, 0), window_size=WINDOW,
                max_packet_size=PACKET, timeout=10)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._refuse(f"the customer's host did not answer ({type(exc).__name__}); try again")
            return
        if not self.registry.enlist(self):
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
        base = self.recordings / self.session_id / str(part)
        if base.with_suffix(asciicast.CAST).exists():
            base = base.with_name(f"{part}-{int(time.time())}")
        recorder = asciicast.Recorder(base, header)
        with recordings.writing(recorder.cast_path):
            self._recorded(reader, recorder, part)
        # Finished (either end, a cut, shutdown): into the blob store, off this channel's thread.
        archiver = recordings.archiver_for(self.state.db, self.state.store, self.recordings, self.state.owner)
        if archiver is not None:
            archiver.soon(recorder.cast_path)

    def _recorded(self, reader: Reader, recorder: asciicast.Recorder, part: int) -> None:
        with self.state.db.tx() as tx:
            sessions.event(tx, self.session_id, f"engineer:{self.engineer}", "session.join",
                           part=part, command=self.command, pty=self.pty is not None,
                           **({"via": self.via} if self.via else {}))
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
        self._audit_refuse("refused by the customer's host")
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
        # Called on paramiko's transport thread, which must never block on a send (latest.py).
        self._windows.offer((cols, rows))

    def _send_window(self, size: tuple) -> None:
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
        with self.state.db.tx() as tx:
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
