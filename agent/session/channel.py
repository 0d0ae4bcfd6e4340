"""One engineer channel on the customer's host: the program it runs, relayed and recorded.

The gateway opens a channel through the tunnel for each engineer channel and sends
OPEN (who, the command if any, the terminal if any). The host starts, in a session of
its own, the diag console (`diag`) or the granting user's login shell (`shell`), in a
pseudo-terminal when the engineer has one or works interactively, with pipes for a
one-command channel. Every byte either way is recorded here (recording/asciicast.py) and
sent to the gateway with its time, which writes the same recording on the server.

The shell gets a fresh environment (HOME, USER, SHELL, PATH, LANG, TERM): nothing of
the grant process's own environment, such as a token, reaches it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import signal
import struct
import subprocess
import termios
import threading
import time
import weakref
from typing import Any, Dict, List, Optional

from agent import selfexec
from agent.session.grant import SessionHolder
from recording import asciicast, sessionwire
from recording.sessionwire import Reader, WireError

READ = 1 << 20
#: fcntl.F_SETPIPE_SZ (Linux), named in the fcntl module only from Python 3.10.
F_SETPIPE_SZ = 1031
#: Diag consoles one session may run at once: each may keep a server core busy for its
#: statement time, so an engineer cannot saturate the customer's server by opening more.
MAX_DIAG_CHANNELS = 2
_diag_slots: weakref.WeakKeyDictionary[Any, threading.BoundedSemaphore] = weakref.WeakKeyDictionary()
_diag_slots_lock = threading.Lock()


def _diag_slot(holder: Any) -> threading.BoundedSemaphore:
    with _diag_slots_lock:
        slot = _diag_slots.get(holder)
        if slot is None:
            slot = _diag_slots[holder] = threading.BoundedSemaphore(MAX_DIAG_CHANNELS)
        return slot


def _controlling_tty() -> None:
    # Runs in the child between fork and exec: make the pty its controlling terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _winsize(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", max(1, rows), max(1, cols), 0, 0))


class Host:
    def __init__(self, holder: SessionHolder, channel: Any) -> None:
        self.holder = holder
        self.channel = channel
        self.grant = holder.grant
        self.engineer = ""
        self.part = 0
        self.command: Optional[str] = None
        self.recorder: Optional[asciicast.Recorder] = None
        self._unrecordable = False
        self.proc: Optional[subprocess.Popen] = None
        self.master: Optional[int] = None
        self.began = time.monotonic()
        self.micros = 0
        self.cut_reason: Optional[str] = None
        self.typing = asciicast.Typing()
        self._lock = threading.Lock()
        self._readers = 0
        self._finished = threading.Event()
        self._closing = False
        self._slot: Optional[threading.BoundedSemaphore] = None

    # -- sending --------------------------------------------------------------------------

    def _now(self) -> int:
        self.micros = max(self.micros, int((time.monotonic() - self.began) * 1_000_000))
        return self.micros

    def _emit(self, kind: bytes, data: bytes, last: bool = False) -> None:
        """Record and send one event, in one order for both copies of the recording.
        `last`: the channel's closing word, sent even when it can no longer be recorded."""
        recorder = self.recorder
        with self._lock:
            if recorder is not None and recorder.error is not None and not last:
                # A session that cannot be recorded here does not go on, and nothing read
                # after the recording failed is sent: what reached the engineer unrecorded
                # is at most what the recorder had queued (Recorder.QUEUE events).
                if not self._unrecordable:
                    self._unrecordable = True
                    threading.Thread(target=self.cut, daemon=True, args=(
                        "the recording on the customer's host failed "
                        f"({recorder.error.strerror or recorder.error})",)).start()
                return
            micros = self._now()
            if recorder is not None:
                recorder.event("i" if kind == sessionwire.TYPED else "o", micros, data)
            with contextlib.suppress(Exception):
                # A memoryview: paramiko's sendall re-slices what is left after each packet.
                self.channel.sendall(memoryview(sessionwire.timed(kind, micros, data)))

    def _send(self, data: bytes) -> None:
        with self._lock, contextlib.suppress(Exception):
            self.channel.sendall(data)

    # -- the channel ----------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - one broken channel never ends the session
            self.holder.log(f"a session channel failed: {type(exc).__name__}: {exc}")
            self.cut("internal error on the customer's host")
        finally:
            if self._slot is not None:
                self._slot.release()
            self.holder.forget(self)

    def _run(self) -> None:
        reader = Reader(self.channel.recv)
        first = reader.next()
        if first is None or first[0] != sessionwire.OPEN:
            self.channel.close()
            return
        opened = sessionwire.parse_json(first[1])
        self.engineer = str(opened.get("engineer") or "")
        self.command = opened.get("command") if isinstance(opened.get("command"), str) else None
        pty = opened.get("pty") if isinstance(opened.get("pty"), dict) else None
        part = opened.get("part")
        self.part = part if isinstance(part, int) and 0 < part < 1_000_000 else 0
        refusal = self.holder.refusal(self.engineer)
        if refusal is not None or not self.part:
            self._refuse(refusal or "a malformed request from the gateway")
            return
        if self.grant.mode != "shell":
            slot = _diag_slot(self.holder)
            if not slot.acquire(blocking=False):
                self._refuse(f"this session already runs {MAX_DIAG_CHANNELS} diag consoles (the most at "
                             "once); close one first")
                return
            self._slot = slot
        if not self.holder.enlist(self):
            self._refuse("the session has ended")
            return
        self._start(pty)
        try:
            self._input(reader)
        except WireError as exc:
            self.cut(f"the gateway sent a bad frame ({exc})")
        self._finished.wait(5)

    def _refuse(self, reason: str) -> None:
        self.holder.log(f"refused {self.engineer or 'a channel'}: {reason}")
        with contextlib.suppress(Exception):
            self.channel.sendall(sessionwire.timed(sessionwire.ERR, 0, f"mydiag: {reason}\r\n".encode()))
            self.channel.sendall(sessionwire.json_frame(sessionwire.EXIT, {"status": 1, "reason": reason}))
            self.channel.close()

    def _start(self, pty: Optional[Dict[str, Any]]) -> None:
        grant = self.grant
        cols = int(pty.get("cols") or 80) if pty else 80
        rows = int(pty.get("rows") or 24) if pty else 24
        term = str(pty.get("term") or "xterm")[:64] if pty else "dumb"
        user = pwd.getpwuid(os.getuid())
        shell = user.pw_shell or "/bin/sh"
        folder = self.holder.folder
        base = folder / str(self.part)
        if base.with_suffix(asciicast.CAST).exists():
            base = folder / f"{self.part}-{int(time.time())}"
        header = asciicast.header_line(
            cols, rows, time.time(),
            f"mydiag {grant.id} part {self.part}: {self.engineer} ({grant.mode}) - {grant.purpose}",
            {"TERM": term, "SHELL": shell if grant.mode == "shell" else "mydiag-console"},
            {"session": grant.id, "part": self.part, "engineer": self.engineer, "mode": grant.mode,
             "purpose": grant.purpose, "ticket": grant.ticket, "host": grant.host, "command": self.command,
             "pty": pty is not None, "file": base.with_suffix(asciicast.CAST).name})
        self.recorder = asciicast.Recorder(base, header)
        self._send(sessionwire.frame(sessionwire.HEADER, header))
        what = f"ran: {self.command}" if self.command else "joined, interactive" + (
            " with a terminal" if pty else "")
        self.holder.log(f"{self.engineer} {what} (part {self.part})")

        env = {"HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name, "SHELL": shell,
               "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "TERM": term,
               "MYDIAG_SESSION": grant.id}
        if os.environ.get("LANG"):
            env["LANG"] = os.environ["LANG"]
        pass_fds: List[int] = []
        if grant.mode == "shell":
            argv = [shell, "-c", self.command] if self.command else [shell, "-l"]
            cwd = user.pw_dir if os.path.isdir(user.pw_dir) else "/"
        else:
            spec_read, spec_write = os.pipe()
            os.write(spec_write, json.dumps(self.holder.spec).encode())
            os.close(spec_write)
            pass_fds.append(spec_read)
            argv, extra = selfexec.module_command("agent.session.console")
            env.update(extra)
            argv += ["--session", grant.id, "--engineer", self.engineer, "--purpose", grant.purpose,
                     "--spec-fd", str(spec_read)]
            if self.command is not None:
                argv += ["--command", self.command]
            cwd = str(folder)
        use_pty = pty is not None or self.command is None
        try:
            if use_pty:
                self._spawn_pty(argv, env, cwd, pass_fds, cols, rows, echo=pty is not None)
            else:
                self._spawn_pipes(argv, env, cwd, pass_fds)
        finally:
            for fd in pass_fds:
                os.close(fd)

    def _spawn_pty(self, argv: List[str], env: Dict[str, str], cwd: str, pass_fds: List[int], cols: int,
                   rows: int, echo: bool) -> None:
        master, slave = os.openpty()
        _winsize(slave, cols, rows)
        if not echo:
            # The engineer's own terminal echoes (ssh without -t): a second echo would double it.
            attrs = termios.tcgetattr(slave)
            attrs[3] &= ~termios.ECHO
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
        try:
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                         start_new_session=True, preexec_fn=_controlling_tty,
                                         pass_fds=pass_fds, close_fds=True)
        finally:
            os.close(slave)
        self.master = master
        self._readers = 1
        self._reader(master, sessionwire.OUT)

    def _spawn_pipes(self, argv: List[str], env: Dict[str, str], cwd: str, pass_fds: List[int]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=cwd, start_new_session=True,
                                     pass_fds=pass_fds, close_fds=True, bufsize=0)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        with contextlib.suppress(OSError):
            # A larger pipe means fewer, larger events: less per-event work on both sides.
            fcntl.fcntl(self.proc.stdout.fileno(), F_SETPIPE_SZ, READ)
        self._readers = 2
        self._reader(self.proc.stdout.fileno(), sessionwire.OUT)
        self._reader(self.proc.stderr.fileno(), sessionwire.ERR)

    def _reader(self, fd: int, kind: bytes) -> None:
        threading.Thread(target=self._pump, args=(fd, kind), daemon=True,
                         name=f"session-out-{self.part}").start()

    def _pump(self, fd: int, kind: bytes) -> None:
        try:
            while True:
                try:
                    data = os.read(fd, READ)
                except OSError:
                    break  # EIO: the terminal's last user is gone
                if not data:
                    break
                self._emit(kind, data)
        finally:
            with self._lock:
                self._readers -= 1
                last = self._readers == 0
            if last:
                self._finish()

    def _input(self, reader: Reader) -> None:
        while True:
            try:
                frame = reader.next()
            except (OSError, EOFError):
                frame = None
            if frame is None:
                if not self._finished.is_set():
                    self.cut("the gateway closed the channel")
                return
            kind, payload = frame
            if kind == sessionwire.INPUT:
                self._emit(sessionwire.TYPED, payload)
                for line in self.typing.feed(payload.decode("utf-8", "replace")):
                    if line.strip():
                        self.holder.log(f"{self.engineer} typed: {line}")
                self._write(payload)
            elif kind == sessionwire.WINCH and self.master is not None:
                size = sessionwire.parse_json(payload)
                with contextlib.suppress(OSError, ValueError, TypeError):
                    _winsize(self.master, int(size["cols"]), int(size["rows"]))
            elif kind == sessionwire.EOF:
                if self.master is not None:
                    self._write(b"\x04")
                elif self.proc is not None and self.proc.stdin is not None:
                    with contextlib.suppress(OSError):
                        self.proc.stdin.close()
            elif kind == sessionwire.CLOSE:
                self.holder.log(f"{self.engineer} left (part {self.part})")
                self._kill()
                return

    def _write(self, data: bytes) -> None:
        try:
            if self.master is not None:
                os.write(self.master, data)
            elif self.proc is not None and self.proc.stdin is not None:
                self.proc.stdin.write(data)
        except OSError:
            pass

    # -- ending ---------------------------------------------------------------------------

    def _kill(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        for sig in (signal.SIGHUP, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(0.2)
                return
            except subprocess.TimeoutExpired:
                continue

    def cut(self, reason: str) -> None:
        """End this channel now: say why (recorded), kill the program, close."""
        if self.cut_reason is not None or self._finished.is_set():
            return
        self.cut_reason = reason
        self._emit(sessionwire.ERR, f"\r\nmydiag: session ended: {reason}\r\n".encode(), last=True)
        self._kill()
        self._finish(status=255)

    def _finish(self, status: Optional[int] = None) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
        proc = self.proc
        if status is None and proc is not None:
            try:
                code = proc.wait(5)
            except subprocess.TimeoutExpired:
                self._kill()
                code = proc.wait()
            status = code if code >= 0 else 128 - code
        status = 255 if status is None or self.cut_reason is not None else status
        lines, head = 0, ""
        with self._lock:
            if self.recorder is not None:
                try:
                    lines, head = self.recorder.close(self._now())
                except OSError as exc:
                    self.holder.log(f"the recording {self.recorder.cast_path} is incomplete: "
                                    f"{exc.strerror or exc}")
                    lines, head = self.recorder.chain.lines, ""
        self._send(sessionwire.json_frame(sessionwire.EXIT, {"status": status, "reason": self.cut_reason}))
        self._send(sessionwire.json_frame(sessionwire.END, {"lines": lines, "head": head}))
        with contextlib.suppress(Exception):
            self.channel.close()
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.close(self.master)
        self.holder.finished(self, status, lines, head)
        self._finished.set()
