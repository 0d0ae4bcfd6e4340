"""Remote sessions for tests: a support server with its SSH gateway, engineers with keys
made by ssh-keygen at test time, grants held by real `mydiag session grant` processes,
and the stock OpenSSH client joining them."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from tests.serverkit import ROOT, Server, make_server, wait_ready
from tests.servers import free_port

SSH = "/usr/bin/ssh"


@dataclass
class Gateway:
    """A `mydiag-server run --ssh-listen` process and what tests need to talk to it."""

    server: Server
    ssh_port: int
    base: Path
    keys: Dict[str, Path] = field(default_factory=dict)
    process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        server = self.server
        server.port = server.port or free_port()
        self.ssh_port = self.ssh_port or free_port()
        with open(server.data / f"server-{server.port}-gw.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "run", "--data", str(server.data), "--listen",
                 f"127.0.0.1:{server.port}", "--ssh-listen", f"127.0.0.1:{self.ssh_port}",
                 "--log-level", "warning", *(["--database", server.database] if server.database else [])],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        server.processes.append(self.process)
        wait_ready(server.url, self.process)

    def engineer(self, name: str) -> Path:
        """Register `name` with a fresh Ed25519 key; return the private key's path."""
        key = self.base / "keys" / name
        key.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(key)],
                       check=True, capture_output=True)
        done = self.server.cli("engineer", "add", name, "--ssh-key", f"{key}.pub", "--json")
        assert json.loads(done.stdout)["ssh_key"].startswith("SHA256:")
        self.keys[name] = key
        return key

    def ssh_args(self, engineer: str, session_id: str, *command: str, key: Optional[Path] = None,
                 tty: bool = False) -> List[str]:
        return [SSH, "-p", str(self.ssh_port), "-i", str(key or self.keys[engineer]), "-o", "BatchMode=yes",
                "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
                "-o", f"UserKnownHostsFile={self.base / 'known_hosts'}", "-o", "LogLevel=ERROR",
                *(["-tt"] if tty else []), f"{engineer}@127.0.0.1", session_id,
                *(["--", *command] if command else [])]

    def ssh(self, engineer: str, session_id: str, *command: str, stdin: str = "", timeout: float = 30,
            key: Optional[Path] = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.ssh_args(engineer, session_id, *command, key=key), input=stdin,
                              capture_output=True, text=True, timeout=timeout)

    def ssh_popen(self, engineer: str, session_id: str, *command: str, tty: bool = False) -> subprocess.Popen:
        return subprocess.Popen(self.ssh_args(engineer, session_id, *command, tty=tty), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def audit(self, ticket: str) -> List[Dict]:
        return json.loads(self.server.api("GET", f"/api/v1/audit?ticket={ticket}"))

    def session(self, ticket: str, session_id: str) -> Dict:
        return json.loads(self.server.api("GET", f"/api/v1/tickets/{ticket}/sessions/{session_id}"))

    def recordings(self, session_id: str) -> Path:
        return self.server.data / "sessions" / session_id


def make_gateway(base: Path, database: Optional[str] = None) -> Gateway:
    server = make_server(base, database)
    gateway = Gateway(server, 0, base)
    gateway.start()
    return gateway


class Grant:
    """`mydiag session grant … --json --yes` running in the foreground, as a customer runs it."""

    def __init__(self, gateway: Gateway, ticket: Dict, home: Path, engineer: str = "alice",
                 duration: str = "60s", mode: str = "shell", purpose: str = "check replication lag",
                 extra: Optional[List[str]] = None) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "MYDIAG_HOME": str(home), "MYDIAG_TOKEN": ticket["upload_token"]}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "session", "grant", "--server", gateway.url, "--ticket",
             ticket["id"], "--engineer", engineer, "--for", duration, "--mode", mode, "--purpose", purpose,
             "--yes", "--json", *(extra or [])],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        self.lines: queue.Queue = queue.Queue()
        self.events: List[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        first = self.lines.get(timeout=30)
        if first is None:
            raise AssertionError(f"grant failed: {self.process.wait(10)} {self.process.stderr.read()}")
        self.info = json.loads(first)
        self.id: str = self.info["id"]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        """The first event (after those already seen) containing `text`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            event = json.loads(line)["event"]
            self.events.append(event)
            if text in event:
                return event
        raise AssertionError(f"no event with {text!r} within {timeout}s; saw {self.events}")

    def ready(self) -> Grant:
        self.wait_for("tunnel up")
        return self

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    @property
    def folder(self) -> Path:
        return self.home / "sessions" / self.id

    def state(self) -> Dict:
        return json.loads((self.folder / "session.json").read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def wait_until(check, timeout: float = 10.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")
