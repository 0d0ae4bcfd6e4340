"""Real support servers for tests: `mydiag-server` processes on loopback, on SQLite or on a
PostgreSQL database of their own, and a TCP proxy that cuts or stalls connections.

The `backend` fixture runs a test once per database. PostgreSQL is the machine's
server on 127.0.0.1:5432 (or MYDIAG_TEST_PG=postgresql://user@host:port); each test
gets a fresh database with a random name, dropped afterwards. With
MYDIAG_REQUIRE_SERVER=1 (CI) an unreachable PostgreSQL fails the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
#: Where the PostgreSQL tests create their databases: MYDIAG_TEST_PG, else the first of
#: these roles that the server on 127.0.0.1:5432 lets in.
PG_CANDIDATES = ([os.environ["MYDIAG_TEST_PG"]] if os.environ.get("MYDIAG_TEST_PG") else
                 ["postgresql://root@127.0.0.1:5432", "postgresql://postgres@127.0.0.1:5432"])
REQUIRE = os.environ.get("MYDIAG_REQUIRE_SERVER") == "1"


def server_cli(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"mydiag-server {args[0]} failed ({done.returncode}): {done.stderr}")
    return done


def agent_cli(*args: str, env: Optional[Dict[str, str]] = None,
              timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@dataclass
class Server:
    """One data directory, and the `mydiag-server run` processes serving it."""

    data: Path
    database: Optional[str]
    admin_token: str
    recipient: str
    port: int = 0
    processes: List[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: Optional[int] = None) -> subprocess.Popen:
        port = port or self.port or free_port()
        if not self.port:
            self.port = port
        args = [sys.executable, "-m", "server.cli", "run", "--data", str(self.data),
                "--listen", f"127.0.0.1:{port}", "--log-level", "warning"]
        if self.database:
            args += ["--database", self.database]
        with open(self.data / f"server-{port}-{len(self.processes)}.log", "wb") as log:
            process = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.processes.append(process)
        wait_ready(f"http://127.0.0.1:{port}", process)
        return process

    def kill(self, process: Optional[subprocess.Popen] = None) -> None:
        for proc in [process] if process else list(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.data.glob("server-*.log")))

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        extra = ["--database", self.database] if self.database else []
        return server_cli(*args, "--data", str(self.data), *extra, check=check)

    def ticket(self, customer: str = "acme", title: str = "replication lag", **options: str) -> Dict:
        """A new ticket through the CLI when options are given, else through the API (faster)."""
        if options:
            extra = [x for k, v in options.items() for x in (f"--{k.replace('_', '-')}", v)]
            return json.loads(self.cli("ticket", "create", "--customer", customer, "--title", title,
                                       "--json", *extra).stdout)
        return json.loads(self.api("POST", "/api/v1/tickets", {"customer": customer, "title": title}))

    def bundles(self, ticket: str) -> List[Dict]:
        return json.loads(self.api("GET", f"/api/v1/tickets/{ticket}/bundles"))

    def settled(self, ticket: str, timeout: float = 60.0) -> List[Dict]:
        """The ticket's bundles once none is still `received` (verification runs in the
        background after the last PATCH)."""
        deadline = time.monotonic() + timeout
        while True:
            listed = self.bundles(ticket)
            if all(b["status"] != "received" for b in listed) or time.monotonic() > deadline:
                return listed
            time.sleep(0.05)

    def api(self, method: str, path: str, data: Optional[Dict] = None) -> bytes:
        request = urllib.request.Request(
            self.url + path, method=method, data=json.dumps(data).encode() if data else None,
            headers={"Authorization": f"Bearer {self.admin_token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.read()

    def blobs(self) -> List[Path]:
        return sorted(p for p in (self.data / "blobs" / "sha256").glob("*/*") if p.is_file())


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mydiag-server exited at start-up with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"mydiag-server not ready at {url} after {timeout}s")


def _pg_admin(base: str):
    import psycopg

    return psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=3)


def _pg_base() -> str:
    """The first PostgreSQL URL that connects; raises the last error otherwise."""
    error: Exception = RuntimeError("no PostgreSQL URL to try")
    for base in PG_CANDIDATES:
        try:
            _pg_admin(base).close()
            return base
        except Exception as exc:  # noqa: BLE001 - try the next role
            error = exc
    raise error


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def backend(request) -> Iterator[Optional[str]]:
    """None for the embedded SQLite, or the URL of a fresh PostgreSQL database (per module)."""
    yield from _database(request.param)


@pytest.fixture(params=["sqlite", "postgresql"])
def own_backend(request) -> Iterator[Optional[str]]:
    """Like `backend`, for a test that initializes a server of its own."""
    yield from _database(request.param)


def _database(kind: str) -> Iterator[Optional[str]]:
    if kind == "sqlite":
        yield None
        return
    try:
        base = _pg_base()
        admin = _pg_admin(base)
    except Exception as exc:  # noqa: BLE001 - any failure means: no PostgreSQL here
        message = f"PostgreSQL not reachable ({type(exc).__name__}: {exc})"
        if REQUIRE:
            pytest.fail(f"real server required (MYDIAG_REQUIRE_SERVER=1): {message}")
        pytest.skip(message)
    name = f"mydiag_test_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{base}/{name}"
    finally:
        with _pg_admin(base) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def make_server(base: Path, database: Optional[str], *init_args: str) -> Server:
    data = base / "data"
    extra = ["--database", database] if database else []
    init = json.loads(server_cli("init", "--data", str(data), "--json", *extra, *init_args).stdout)
    return Server(data, database, init["admin_token"], init["recipients"][0])


@pytest.fixture(scope="module")
def support(tmp_path_factory, backend) -> Iterator[Server]:
    """An initialized and running server on the backend under test, shared by a module's
    tests (each works on tickets of its own)."""
    srv = make_server(tmp_path_factory.mktemp("support"), backend)
    srv.start()
    yield srv
    srv.stop()


class Proxy:
    """A TCP proxy on 127.0.0.1 that counts client-to-server bytes and can misbehave.

    `cut_after(n)`: the next connection is cut (both sides closed) once n more bytes
    went up. `stall_after(n)`: stop forwarding after n bytes, holding the connection.
    `rate`: bytes per second upstream (0: unlimited).
    """

    def __init__(self, upstream_port: int, rate: int = 0) -> None:
        self.upstream_port = upstream_port
        self.rate = rate
        self.sent = 0
        self._cut: Optional[int] = None
        self._stall: Optional[int] = None
        self.stalled = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._socks: List[socket.socket] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut_after(self, n: int) -> None:
        with self._lock:
            self._cut = self.sent + n

    def stall_after(self, n: int) -> None:
        with self._lock:
            self._stall = self.sent + n
            self.stalled.clear()
            self._release.clear()

    def cut_all(self) -> None:
        """Close every connection now (what a stalled one sees when the network comes back)."""
        with self._lock:
            self._stall = None
            socks, self._socks = self._socks, []
        self._release.set()
        for sock in socks:
            _close(sock)

    def close(self) -> None:
        self._closed = True
        _close(self._listener)
        self.cut_all()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._socks += [client, upstream]
            threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client), daemon=True).start()

    def _up(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while data:
                    with self._lock:
                        limit = min(x for x in (self._cut, self._stall, float("inf")) if x is not None)
                        room = int(max(0, limit - self.sent)) if limit != float("inf") else len(data)
                        part, data = data[:room], data[room:]
                        self.sent += len(part)
                        hit_cut = self._cut is not None and self.sent >= self._cut
                        hit_stall = self._stall is not None and self.sent >= self._stall
                    if part:
                        dst.sendall(part)
                        if self.rate:
                            time.sleep(len(part) / self.rate)
                    if hit_cut:
                        with self._lock:
                            self._cut = None
                        _close(src)
                        _close(dst)
                        return
                    if hit_stall:
                        self.stalled.set()
                        self._release.wait()
                        return
        except OSError:
            pass
        finally:
            _close(dst)

    def _down(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(dst)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def proxy_to(request) -> Iterator:
    made: List[Proxy] = []

    def make(port: int, rate: int = 0) -> Proxy:
        made.append(Proxy(port, rate))
        return made[-1]

    yield make
    for p in made:
        p.close()


def make_bundle(folder: Path, host: str = "db1", payload: int = 1 << 20, signing_key=None) -> Path:
    """A real plain bundle: a manifest, a small JSON member and `payload` random bytes."""
    from bundle.manifest import Manifest, iso, utc_now
    from bundle.writer import BundleWriter

    writer = BundleWriter(folder)
    writer.add("mysql/status.json", json.dumps({"Threads_running": 3}).encode())
    writer.add("os/random.bin", os.urandom(payload))
    now = iso(utc_now())
    manifest = Manifest(host=host, profile="standard", started=now, finished=now)
    name = f"mydiag-{host}-{secrets.token_hex(4)}.tar.zst"
    return writer.finish(manifest, name, signing_key=signing_key)


def seal(plain: Path, recipient: str) -> Path:
    from bundle import age

    return age.seal_file(plain, plain.with_name(plain.name + ".age"), [recipient])
