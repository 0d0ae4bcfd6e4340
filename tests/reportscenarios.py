"""Real MariaDB servers configured to show known problems, and one configured the way the
docs recommend for this host, for the report's end-to-end tests and bench/report_bench.py.

`troubled(base)` starts a primary with a tiny buffer pool, the query cache on, no thread
cache, an unsafe binary log, tiny caches and temporary tables, risky accounts and tables
without primary keys, plus a replica whose SQL thread breaks on the first event that names a schema it lacks
(it starts from the primary's position after the set-up); `Load`
then drives the matching workload (connection churn, refused and failed connections, disk
temporary tables, sorts, full joins, buffer pool misses, large transactions) while
`mydiag collect` samples it. `well_configured(base)` starts a server sized for the host with
durable settings and a password on every account, under a light, healthy workload.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pymysql

from tests import servers

ROOT = Path(__file__).resolve().parent.parent

#: The problems `troubled` configures, by name (a bench column; tests map them to rule ids).
PROBLEMS = (
    "tiny buffer pool under load", "query cache on", "thread cache 0 with connection churn",
    "binlog sync off", "binlog format not ROW", "redo log too small", "flush at commit off",
    "broken replica", "account without password", "anonymous account", "root from any host",
    "tables without primary key", "MyISAM tables", "temp tables to disk", "tiny table cache",
    "max_connections reached", "aborted connects", "join buffer too large", "sort merge passes",
    "full joins", "binlog cache to disk", "doublewrite off", "local_infile on",
)

TROUBLED_ARGS = [
    "--innodb-buffer-pool-size=6M", "--innodb-log-file-size=4M", "--innodb-log-buffer-size=1M",
    "--query-cache-type=1", "--query-cache-size=1M", "--thread-cache-size=0",
    "--log-bin=binlog", "--server-id=1", "--sync-binlog=0", "--binlog-format=STATEMENT",
    "--binlog-cache-size=4096", "--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0",
    "--table-open-cache=10", "--table-definition-cache=400", "--max-connections=20",
    "--tmp-table-size=16384", "--max-heap-table-size=16384", "--sort-buffer-size=32768",
    "--join-buffer-size=64M", "--local-infile=1", "--performance-schema=ON",
    "--slow-query-log=ON", "--long-query-time=0.2",
]


@dataclass
class Scenario:
    primary: servers.Instance
    password: str
    replica: Optional[servers.Instance] = None
    defaults: Optional[Path] = None
    extra: Dict[str, str] = field(default_factory=dict)
    #: Who the workload connects as: not an admin on the troubled server, so that its bursts
    #: reach max_connections while mydiag's admin account keeps the one connection the
    #: server reserves for it.
    load_user: str = "root"

    def stop(self) -> None:
        for instance in (self.replica, self.primary):
            if instance is not None:
                instance.stop()


def _defaults(base: Path, port: int, password: str) -> Path:
    path = base / "my-root.cnf"
    path.write_text(f"[client]\nhost = 127.0.0.1\nport = {port}\nuser = root\npassword = \"{password}\"\n")
    path.chmod(0o600)
    return path


def troubled(base: Path, extra_args: Optional[List[str]] = None) -> Scenario:
    """`extra_args` go to both servers (the bench gives MySQLTuner what it needs to run)."""
    base.mkdir(parents=True, exist_ok=True)
    primary = servers.create(base / "primary", TROUBLED_ARGS + list(extra_args or []))
    password = secrets.token_urlsafe(12)
    primary.sql(
        f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{password}'",
        f"CREATE USER 'root'@'%' IDENTIFIED BY '{password}'",
        "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION",
        "CREATE USER 'app'@'%' IDENTIFIED BY ''",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON shop.* TO 'app'@'%'",
        # The workload's own login: over loopback the anonymous ''@'localhost' would take
        # 'app'@'%''s logins (the more specific host wins).
        "CREATE USER 'app'@'localhost' IDENTIFIED BY ''",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON shop.* TO 'app'@'localhost'",
        "CREATE USER ''@'localhost'",
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, customer INT, note TEXT,"
        " total DECIMAL(10,2), pad CHAR(200)) ENGINE=InnoDB",
        "CREATE TABLE shop.events (at DATETIME, kind VARCHAR(20), detail TEXT) ENGINE=InnoDB",
        "CREATE TABLE shop.legacy (id INT, name VARCHAR(40)) ENGINE=MyISAM",
        "CREATE TABLE shop.customers (id INT, name VARCHAR(40), city VARCHAR(40)) ENGINE=InnoDB",
    )
    root = _root(primary, password)
    with contextlib.closing(root) as conn, conn.cursor() as cur:
        for table in range(40):
            cur.execute(f"CREATE TABLE shop.t{table} (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
            cur.execute(f"INSERT INTO shop.t{table} VALUES (1, 1), (2, 2)")
        cur.execute("INSERT INTO shop.customers SELECT seq, CONCAT('c', seq), CONCAT('city', seq % 50)"
                    " FROM shop.seq_1_to_3000")
        cur.execute("INSERT INTO shop.orders (customer, note, total, pad)"
                    " SELECT seq % 3000, REPEAT('n', 300), seq % 1000, 'x' FROM shop.seq_1_to_60000")
        cur.execute("INSERT INTO shop.legacy SELECT seq, CONCAT('l', seq) FROM shop.seq_1_to_500")
    replica = servers.create(base / "replica", ["--server-id=2", "--log-bin=binlog", "--relay-log=relay",
                                                 "--innodb-buffer-pool-size=16M",
                                                 *(extra_args or [])])
    repl_password = secrets.token_urlsafe(12)
    with contextlib.closing(_root(primary, password)) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY '{repl_password}'")
        cur.execute("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'")
        # The replica starts from the primary's current position.
        cur.execute("SELECT @@gtid_binlog_pos")
        pos = cur.fetchone()[0]
    # It starts after the primary's set-up, so it lacks the shop schema that later events name.
    replica.sql(f"SET GLOBAL gtid_slave_pos = '{pos}'",
                f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port},"
                f" MASTER_USER='repl', MASTER_PASSWORD='{repl_password}', MASTER_USE_GTID=slave_pos",
                "START SLAVE")
    with contextlib.closing(_root(primary, password)) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE shop.clash (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO shop.clash VALUES (1)")
    _wait_broken(replica)
    return Scenario(primary, password, replica, _defaults(base, primary.port, password), load_user="app")


def well_configured(base: Path, extra_args: Optional[List[str]] = None) -> Scenario:
    """Sized for this host the way the docs recommend: a buffer pool that fits the data and
    the RAM, a redo log for an hour of writes, durable binary log, performance_schema on."""
    base.mkdir(parents=True, exist_ok=True)
    files = base / "files"  # secure_file_priv: FILE operations only here
    files.mkdir(exist_ok=True)
    args = ["--innodb-buffer-pool-size=512M", "--innodb-log-file-size=256M", "--log-bin=binlog",
            "--binlog-expire-logs-seconds=604800", "--server-id=1", "--sync-binlog=1", "--binlog-format=ROW",
            "--innodb-flush-log-at-trx-commit=1",
            "--performance-schema=ON", "--skip-name-resolve=ON", "--local-infile=0",
            "--query-cache-type=0", "--query-cache-size=0", "--innodb-flush-method=O_DIRECT",
            "--max-connections=200", "--table-open-cache=4000", "--thread-cache-size=64",
            f"--secure-file-priv={files}"]
    primary = servers.create(base / "primary", args + list(extra_args or []))
    password = secrets.token_urlsafe(12)
    # mariadb-install-db also makes root@<host name> and root@::1 without a password: the
    # docs' post-install step (mariadb-secure-installation) removes them.
    others = primary.sql("SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.user"
                         " WHERE User = 'root' AND Host NOT IN ('localhost', '127.0.0.1')")
    primary.sql(*[f"DROP USER {name}" for (name,) in others])
    primary.sql(
        # skip_name_resolve: loopback clients are 127.0.0.1, not localhost.
        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'",
        f"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{password}'",
        "GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
        f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{password}'",
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, customer INT, total DECIMAL(10,2),"
        " KEY (customer)) ENGINE=InnoDB",
    )
    with contextlib.closing(_root(primary, password)) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO shop.orders (customer, total)"
                    " SELECT seq % 500, seq % 100 FROM shop.seq_1_to_20000")
    return Scenario(primary, password, None, _defaults(base, primary.port, password))


def _root(instance: servers.Instance, password: str) -> pymysql.Connection:
    return instance.connect(password=password)


def _wait_broken(replica: servers.Instance, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.closing(replica.connect()) as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SHOW SLAVE STATUS")
            row = cur.fetchone() or {}
        if row.get("Slave_SQL_Running") == "No" and row.get("Last_SQL_Errno"):
            return
        time.sleep(0.2)
    raise RuntimeError("the replica did not break as planned")


class Load:
    """A workload on threads until stopped; `healthy` keeps to indexed, pooled work."""

    def __init__(self, scenario: Scenario, healthy: bool = False) -> None:
        self.scenario = scenario
        self.healthy = healthy
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self.errors: List[str] = []

    def __enter__(self) -> Load:
        jobs = [self._indexed] if self.healthy else [
            self._churn, self._refused, self._bad_password, self._disk_temp, self._sorts,
            self._full_joins, self._misses, self._big_transactions, self._many_tables,
            self._query_cache]
        for job in jobs:
            thread = threading.Thread(target=self._loop, args=(job,), daemon=True)
            thread.start()
            self._threads.append(thread)
        time.sleep(1.0)  # the workload is running before the first sample
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def _connect(self, **kwargs) -> pymysql.Connection:
        user = self.scenario.load_user
        password = self.scenario.password if user == "root" else ""
        return self.scenario.primary.connect(user=user, password=password, **kwargs)

    def _loop(self, job) -> None:
        while not self._stop.is_set():
            try:
                job()
            except pymysql.err.MySQLError as exc:
                if len(self.errors) < 50:
                    self.errors.append(f"{job.__name__}: {exc}")
                time.sleep(0.05)

    def _run(self, *statements: str) -> None:
        with contextlib.closing(self._connect()) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
                cur.fetchall()

    def _indexed(self) -> None:
        with contextlib.closing(self._connect()) as conn, conn.cursor() as cur:
            for n in range(200):
                if self._stop.is_set():
                    return
                cur.execute("SELECT SUM(total) FROM shop.orders WHERE customer = %s", (n % 500,))
                cur.fetchall()
                cur.execute("INSERT INTO shop.orders (customer, total) VALUES (%s, 1)", (n % 500,))
                time.sleep(0.01)

    def _churn(self) -> None:
        # A new connection for each statement: with thread_cache_size=0 each is a new thread.
        self._run("SELECT 1")
        time.sleep(0.005)

    def _refused(self) -> None:
        # A short burst past max_connections (20) once a second: refused connections during the
        # window, while the other jobs keep their connections most of the time.
        held = []
        try:
            for _ in range(25):
                held.append(self._connect())
        finally:
            for conn in held:
                conn.close()
            self._stop.wait(1.0)

    def _bad_password(self) -> None:
        with contextlib.suppress(pymysql.err.OperationalError):
            self.scenario.primary.connect(user="root", password="not-" + self.scenario.password).close()
        time.sleep(0.05)

    # SQL_NO_CACHE throughout: the query cache would answer the repeated statements without
    # running them (no temporary table, sort, join or table open would happen).

    def _repeat(self, statement: str, times: int, pause: float = 0.0) -> None:
        with contextlib.closing(self._connect()) as conn, conn.cursor() as cur:
            for _ in range(times):
                if self._stop.is_set():
                    return
                cur.execute(statement)
                cur.fetchall()
                if pause:
                    time.sleep(pause)

    def _disk_temp(self) -> None:
        # GROUP BY a TEXT column: the temporary table holds a BLOB and goes to disk (Aria).
        self._repeat("SELECT SQL_NO_CACHE note, COUNT(*) FROM shop.orders WHERE id < 200 GROUP BY note", 50)

    def _sorts(self) -> None:
        # 15,000 sorted rows of 200 bytes through a 32 KiB sort buffer: merge passes (a small
        # LIMIT would sort in a priority queue, without merging).
        self._repeat("SELECT SQL_NO_CACHE id, pad FROM shop.orders WHERE id < 20000"
                     " ORDER BY pad, total DESC LIMIT 15000, 1", 5)

    def _full_joins(self) -> None:
        # No index on city: each row of a scans b (Select_full_join).
        self._repeat("SELECT SQL_NO_CACHE COUNT(*) FROM shop.customers a JOIN shop.customers b"
                     " ON a.city = b.city WHERE a.id < 300", 5, 0.1)

    def _misses(self) -> None:
        with contextlib.closing(self._connect()) as conn, conn.cursor() as cur:
            cur.execute("SELECT SQL_NO_CACHE id, total FROM shop.orders WHERE id = %s",
                        (secrets.randbelow(60000) + 1,))
            cur.fetchall()
            low = secrets.randbelow(50000)
            cur.execute("SELECT SQL_NO_CACHE SUM(total) FROM shop.orders WHERE id BETWEEN %s AND %s",
                        (low, low + 2000))
            cur.fetchall()

    def _big_transactions(self) -> None:
        # binlog_format=STATEMENT logs the statement's text: a 2,000-character literal (not
        # REPEAT()) makes each transaction's events about 8 KB, past binlog_cache_size (4 KiB).
        # Several short transactions per connection: BIN-03 needs 50 in the window, and on a
        # loaded host (the suite on three workers) one long one per connection gave 44.
        detail = "e" * 2000
        with contextlib.closing(self._connect()) as conn, conn.cursor() as cur:
            for _ in range(5):
                cur.execute("BEGIN")
                for _ in range(4):
                    cur.execute("INSERT INTO shop.events VALUES (NOW(), 'load', %s)", (detail,))
                cur.execute("COMMIT")
        time.sleep(0.05)

    def _many_tables(self) -> None:
        with contextlib.closing(self._connect()) as conn, conn.cursor() as cur:
            for table in range(40):
                cur.execute(f"SELECT SQL_NO_CACHE v FROM shop.t{table} WHERE id = 1")
                cur.fetchall()

    def _query_cache(self) -> None:
        # Distinct results of about 10 KB each fill the 1 MiB query cache within a second:
        # it evicts (Qcache_lowmem_prunes); the MyISAM write invalidates what it cached.
        with contextlib.closing(self._connect()) as conn, conn.cursor() as cur:
            for _ in range(50):
                if self._stop.is_set():
                    return
                low = secrets.randbelow(59000) + 1
                cur.execute(f"SELECT id, note FROM shop.orders WHERE id BETWEEN {low} AND {low + 30}")
                cur.fetchall()
            cur.execute("INSERT INTO shop.legacy VALUES (1, 'x')")


#: 5 samples 2.6 s apart: a window of about 10.4 s, just over the 10 s the redo rate rule
#: (REDO-03) needs (2.5 s apart made it 9.99 s now and then: "insufficient").
SAMPLES, INTERVAL = 5, 2.6

#: `mydiag collect`'s exit codes: something still looked like a secret after redaction;
#: the server could not be reached (the troubled server's workload fills max_connections in
#: bursts, and a connect that lands in one is refused, as a DBA's would be).
SECRET_LEFT, CANNOT_CONNECT = 17, 4


def collect(scenario: Scenario, out: Path, samples: int = SAMPLES, interval: float = INTERVAL,
            extra: Optional[List[str]] = None) -> Path:
    """`mydiag collect` against the scenario's primary; the bundle's path."""
    return _collect(["--defaults-file", str(scenario.defaults)], out, samples, interval, extra)


def collect_replica(scenario: Scenario, out: Path, samples: int = 3, interval: float = 1.0) -> Path:
    """`mydiag collect` against the scenario's replica (root without a password); the bundle."""
    assert scenario.replica is not None, "this scenario has no replica"
    return _collect(["--host", "127.0.0.1", "--port", str(scenario.replica.port), "--user", "root"],
                    out, samples, interval, None)


def _collect(connection: List[str], out: Path, samples: int, interval: float,
             extra: Optional[List[str]]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "agent.cli", "collect", *connection, "--output", str(out),
               "--samples", str(samples), "--interval", str(interval), *(extra or [])]
    for _attempt in range(3):
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "MYDIAG_HOME": str(out / "home")})
        # The machine is shared: another process's command line with a password in it
        # (os/processes.jsonl) makes the privacy check refuse the bundle. That process is
        # gone a moment later; the check itself is never turned off here.
        secret_of_another = done.returncode == SECRET_LEFT and "os/processes.jsonl" in done.stderr
        refused = done.returncode == CANNOT_CONNECT and "Too many connections" in done.stderr
        if not (secret_of_another or refused):
            break
        time.sleep(1.0)
    if done.returncode not in (0, 3):
        raise RuntimeError(f"mydiag collect failed ({done.returncode}): {done.stderr[-2000:]}")
    bundles = sorted(out.glob("*.tar.zst"))
    if not bundles:
        raise RuntimeError(f"no bundle in {out}: {done.stderr[-2000:]}")
    return bundles[-1]


@contextlib.contextmanager
def started(kind: str, base: Path, extra_args: Optional[List[str]] = None) -> Iterator[Scenario]:
    scenario = troubled(base, extra_args) if kind == "troubled" else well_configured(base, extra_args)
    try:
        yield scenario
    finally:
        scenario.stop()
