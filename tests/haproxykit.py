"""Debian's HAProxy in front of several `mydiag-server run` processes, for tests.

One HTTP frontend balances the API and pages round-robin over the processes' HTTP ports
(health-checked on /api/v1/health, so a killed process is taken out within a second), and
one TCP frontend does the same for their SSH gateways. Started on free loopback ports with
its configuration in a temp folder; a missing haproxy fails the test (CI must not pass by
skipping the balancer).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import pytest

from tests.servers import free_port


@dataclass
class Balancer:
    folder: Path
    http_backends: Sequence[int]
    ssh_backends: Sequence[int] = ()
    http_port: int = 0
    ssh_port: int = 0
    process: Optional[subprocess.Popen] = None
    _log: List[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def config(self) -> str:
        lines = [
            "global", "    maxconn 4096",
            "defaults", "    timeout connect 2s", "    timeout client 120s", "    timeout server 120s",
            "    timeout tunnel 1h", "    retries 3", "    option redispatch",
            "frontend api", "    mode http", f"    bind 127.0.0.1:{self.http_port}",
            "    default_backend servers",
            "backend servers", "    mode http", "    balance roundrobin",
            "    option httpchk GET /api/v1/health", "    default-server inter 300ms fall 2 rise 1",
        ]
        lines += [f"    server s{i} 127.0.0.1:{port} check" for i, port in enumerate(self.http_backends)]
        if self.ssh_backends:
            lines += ["frontend ssh", "    mode tcp", f"    bind 127.0.0.1:{self.ssh_port}",
                      "    default_backend gateways",
                      "backend gateways", "    mode tcp", "    balance roundrobin",
                      "    default-server inter 300ms fall 2 rise 1"]
            lines += [f"    server g{i} 127.0.0.1:{port} check" for i, port in enumerate(self.ssh_backends)]
        return "\n".join(lines) + "\n"

    def start(self) -> Balancer:
        binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
        if binary is None:
            pytest.fail("haproxy is missing (scripts/system-deps.sh installs it): "
                        "the scale-out tests need it")
        self.http_port = self.http_port or free_port()
        if self.ssh_backends:
            self.ssh_port = self.ssh_port or free_port()
        path = self.folder / "haproxy.cfg"
        path.write_text(self.config())
        check = subprocess.run([binary, "-c", "-q", "-f", str(path)], capture_output=True, text=True)
        if check.returncode != 0:
            raise AssertionError(f"haproxy refused its configuration: {check.stderr or check.stdout}")
        with open(self.folder / "haproxy.log", "wb") as log:
            self.process = subprocess.Popen([binary, "-db", "-f", str(path)], stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self._wait(self.http_port)
        if self.ssh_backends:
            self._wait(self.ssh_port)
        return self

    def _wait(self, port: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"haproxy exited: {(self.folder / 'haproxy.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"haproxy did not listen on {port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def balancer(folder: Path, http_backends: Sequence[int], ssh_backends: Sequence[int] = ()) -> Balancer:
    """A started balancer over those ports (stop it when done)."""
    return Balancer(folder, list(http_backends), list(ssh_backends)).start()
