"""Private MariaDB/MySQL instances from the local server binaries, for tests, demo and bench.

Each instance lives in its own temporary data directory on a free loopback port and is
never the machine's own server. `python -m tests.servers start DIR` starts one for the
demo and prints its connection; `stop DIR` stops it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional

import pymysql

SERVER_BINARIES = ("mariadbd", "mysqld")
INSTALL_DB = ("mariadb-install-db", "mysql_install_db")
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")


class ServerUnavailable(RuntimeError):
    """No local server binaries: install mariadb-server (make test does, as root)."""


def _which(names: tuple) -> Optional[str]:
    for name in names:
        found = shutil.which(name) or next(
            (f"{d}/{name}" for d in _SBIN if os.access(f"{d}/{name}", os.X_OK)), None
        )
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]



def run_sql(conn: pymysql.Connection, statements: Iterable[str]) -> list:
    """Run statements one after another on `conn`; the rows of the last one."""
    rows: list = []
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
            rows = list(cur.fetchall())
    return rows

@dataclass
class Instance:
    base: Path
    port: int
    extra_args: List[str] = field(default_factory=list)
    process: Optional[subprocess.Popen] = None
    #: Start with `--defaults-file=` this file instead of `--no-defaults` (option-file tests).
    defaults_file: Optional[Path] = None

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def socket(self) -> str:
        return str(self.base / "mysqld.sock")

    @property
    def error_log(self) -> Path:
        return self.base / "error.log"

    @property
    def pid_file(self) -> Path:
        return self.base / "mysqld.pid"

    def connect(self, user: str = "root", password: str = "", **kwargs) -> pymysql.Connection:
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user=user, password=password,
            autocommit=True, ssl_disabled=True, **kwargs,
        )

    def sql(self, *statements: str) -> list:
        """Run statements as root; return the rows of the last one."""
        with self.connect() as conn:
            return run_sql(conn, statements)

    def init(self) -> None:
        install = _which(INSTALL_DB)
        if not install or not _which(SERVER_BINARIES):
            raise ServerUnavailable(
                "no MariaDB/MySQL server binaries found (mariadbd or mysqld); "
                "install them: apt-get install -y mariadb-server"
            )
        self.base.mkdir(parents=True, exist_ok=True)
        command = [install, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                   "--auth-root-authentication-method=normal", "--skip-test-db"]
        for _attempt in (1, 2):
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
            if done.returncode == 0:
                return
            # A loaded machine occasionally fails the bootstrap; a fresh directory helps.
            shutil.rmtree(self.datadir, ignore_errors=True)
        raise RuntimeError(f"{install} failed twice:\n{done.stdout[-2000:]}")

    def start(self, timeout: float = 30.0) -> None:
        server = _which(SERVER_BINARIES)
        assert server
        args = [
            server,
            f"--defaults-file={self.defaults_file}" if self.defaults_file else "--no-defaults",
            f"--datadir={self.datadir}", f"--socket={self.socket}",
            f"--port={self.port}", "--bind-address=127.0.0.1", "--user=root",
            f"--pid-file={self.pid_file}", f"--log-error={self.error_log}",
            "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited at start-up; log {self.error_log}:\n{self._log_tail()}"
                )
            try:
                self.connect().close()
                return
            except pymysql.err.OperationalError:
                time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout}s; log {self.error_log}")

    def _log_tail(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the server dies as in a crash."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.stop()
        self.start()


def create(base: Path, extra_args: Optional[List[str]] = None) -> Instance:
    instance = Instance(Path(base), free_port(), list(extra_args or []))
    instance.init()
    instance.start()
    return instance


def make_replica(primary: Instance, replica: Instance, password: str) -> None:
    """Configure `replica` as a GTID replica of `primary` (both MariaDB)."""
    primary.sql(
        f"CREATE USER IF NOT EXISTS 'repl'@'127.0.0.1' IDENTIFIED BY '{password}'",
        "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'",
    )
    replica.sql(
        f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port},"
        f" MASTER_USER='repl', MASTER_PASSWORD='{password}', MASTER_USE_GTID=slave_pos",
        "START SLAVE",
    )


def _main(argv: List[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m tests.servers start|stop DIR", file=sys.stderr)
        return 2
    base = Path(argv[1]).resolve()
    if argv[0] == "stop":
        pid_file = base / "mysqld.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        return 0
    try:
        instance = create(base, ["--log-bin=binlog", "--server-id=1"])
    except ServerUnavailable as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    print(f"{instance.port} {instance.socket}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
