"""Helpers for the agent's tests: its config, the agent as a real process, its spool, and a
real `mydiag-server` on loopback to upload to."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import zstandard

from tests.helpers import ROOT, mydiag
from tests.servers import free_port


def write_config(folder: Path, mysql, *, schedule: Optional[str] = None, profile: str = "quick",
                 triggers: Optional[List[Dict[str, Any]]] = None, server: Optional[Dict[str, str]] = None,
                 spool: Optional[Path] = None, max_bytes: str = "100MiB", min_free_pct: float = 0,
                 samples: int = 1, interval: str = "0.2s") -> Path:
    """An agent config for `mysql` (a tests.conftest.Target); the password only in an option file."""
    folder.mkdir(parents=True, exist_ok=True)
    defaults = mysql.defaults_file(folder)
    lines = [
        "[mysql]", f'defaults_file = "{defaults}"', "",
        "[spool]", f'dir = "{spool or folder / "spool"}"', f'max_bytes = "{max_bytes}"',
        f"min_free_pct = {min_free_pct}", "",
        "[agent]", f"samples = {samples}", f'interval = "{interval}"', 'max_time = "30s"', "",
    ]
    if schedule:
        lines += ["[schedule]", f'every = "{schedule}"', f'profile = "{profile}"', ""]
    if server:
        token = folder / "token"
        token.write_text(server["token"])
        token.chmod(0o600)
        lines += ["[server]", f'url = "{server["url"]}"', f'ticket = "{server["ticket"]}"',
                  f'token_file = "{token}"', f'backoff_max = "{server.get("backoff_max", "1s")}"', ""]
    for trigger in triggers or []:
        lines.append("[[trigger]]")
        for key, value in trigger.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    path = folder / "agent.toml"
    path.write_text("\n".join(lines))
    path.chmod(0o600)
    return path


@dataclass
class AgentProcess:
    """`mydiag agent run` as a separate process, its log in a file."""

    config: Path
    home: Path
    log_path: Path
    process: Optional[subprocess.Popen] = None
    started: float = 0.0

    def start(self) -> AgentProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent.cli", "agent", "run", "--config", str(self.config)],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "MYDIAG_HOME": str(self.home)},
            )
        self.started = time.monotonic()
        return self

    def stop(self, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def agent(config: Path, folder: Path) -> AgentProcess:
    return AgentProcess(config, folder / "home", folder / "agent.log")


def wait_for(what: Callable[[], Any], timeout: float, step: float = 0.05, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(step)
    raise AssertionError(f"not within {timeout}s: {message}")


def journal(spool: Path) -> List[Dict[str, Any]]:
    try:
        return json.loads((spool / "journal.json").read_text())["entries"]
    except FileNotFoundError:
        return []


def status(config: Path, home: Path) -> Dict[str, Any]:
    done = mydiag("agent", "status", "--config", str(config), "--json", timeout=30,
                  env={**os.environ, "MYDIAG_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def read_bundle(path: Path, identities: Optional[List[str]] = None) -> Dict[str, Any]:
    """Open a spool bundle completely (a sealed one with `identities`) and return its manifest.

    Raises when anything is wrong: a truncated age stream, zstd frame or tar archive.
    """
    from bundle import age

    data = path.read_bytes()
    if age.is_age_file(data):
        assert identities, f"{path} is sealed and no identity was given"
        out = io.BytesIO()
        age.decrypt(io.BytesIO(data), out, identities)
        data = out.getvalue()
    plain = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    members = {}
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:") as tar:
        for info in tar:
            handle = tar.extractfile(info)
            members[info.name] = handle.read() if handle else b""
    manifest = json.loads(members["manifest.json"])
    for entry in manifest["files"]:
        assert len(members[entry["path"]]) == entry["bytes"], entry["path"]
    return manifest


@dataclass
class SupportServer:
    """A real `mydiag-server` (SQLite, blobs in a temp folder) on a fixed loopback port."""

    data: Path
    port: int
    identity: List[str]
    processes: List[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def create(cls, folder: Path) -> SupportServer:
        data = folder / "server-data"
        cli(["init", "--data", str(data), "--json"])
        from server.config import DataDir

        text = DataDir(data).identity_path.read_text()
        identity = [line for line in text.splitlines() if line.startswith("AGE-SECRET-KEY-")]
        return cls(data, free_port(), identity)

    def ticket(self) -> Dict[str, Any]:
        return json.loads(cli(["ticket", "create", "--data", str(self.data), "--customer", "acme",
                               "--title", "agent test", "--json"]).stdout)

    def bundles(self, ticket: str) -> List[Dict[str, Any]]:
        return json.loads(cli(["bundle", "list", "--data", str(self.data), "--ticket", ticket,
                               "--json"]).stdout)

    def limit_uploads(self, max_bytes: int) -> None:
        """Set the largest single upload (as `init --max-upload-bytes` does); applies at start."""
        from server.config import DataDir

        data = DataDir(self.data)
        config = data.load()
        config.limits.max_upload_bytes = max_bytes
        data.save(config)

    def start(self) -> None:
        with open(self.data.parent / "server.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "run", "--data", str(self.data), "--listen",
                 f"127.0.0.1:{self.port}", "--log-level", "warning"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        import urllib.request

        def ready() -> bool:
            assert process.poll() is None, "mydiag-server exited at start-up"
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=1) as reply:
                    return reply.status == 200
            except OSError:
                return False

        wait_for(ready, 30, message="mydiag-server ready")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        self.processes.clear()


def cli(args: List[str]) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, f"mydiag-server {args[0]}: {done.stderr}"
    return done
