"""One-shot collection benchmark: `mydiag collect` next to pt-mysql-summary and pt-stalk.

    .venv/bin/python bench/collect_bench.py [--tables 20000] [--keep DIR]

Prepares a private MariaDB (tests.servers) holding `--tables` InnoDB tables in 20
schemas plus a sysbench schema, starts a sysbench oltp_read_write load (4 threads), and
runs, one after another under that load: `mydiag collect --profile standard` twice (as a
user with ALL, like the peers, and as the least-privilege user `mydiag grants` prints),
`pt-mysql-summary` and `pt-stalk --no-stalk --iterations=1 --run-time=5`. Exits 1 when
a tool failed to run (mydiag's exit 3, a bundle with partial collectors, counts as run).

How each number is measured (bench/README.md says more):
- statements: every tool connects as its own MySQL user; the count is the growth of
  SUM(COUNT_STAR) for that user in
  performance_schema.events_statements_summary_by_user_by_event_name. SQL statements
  (statement/sql/*) and protocol commands (statement/com/*: Quit, Ping...) are shown
  apart. performance_schema.setup_actors instruments only the tool users and sysbench
  (without history), so the monitoring connection (root) counts nothing and the load is
  never attributed to a tool. Connections come from performance_schema.users.
- slowest statement: MAX(MAX_TIMER_WAIT) for that user in the same summary table; its
  text from events_statements_history_long, emptied before each tool (only the tools
  keep history, so it holds that tool's statements alone).
- peak RSS: the whole process tree of the tool, polled from /proc every 50 ms (sum of
  VmRSS of all its processes at the same instant), and the largest single process as
  GNU time -v reports it (ru_maxrss of the children, exact but per process).
- server disturbance: FLUSH TABLES before each tool, then the growth of Opened_tables and
  Opened_table_definitions, Open_tables before and after against table_open_cache, and
  mysqld's VmRSS growth, read by the monitoring connection around the tool's run; and
  which tables the cache holds afterwards that it did not before (SHOW OPEN TABLES): the
  customer's or the server's own (performance_schema, mysql.*).
- wall: from start to exit of the tool's command. output: bytes written (mydiag: the
  bundle file; pt-mysql-summary: its stdout; pt-stalk: every file under --dest).

The prepared data directory is cached in /tmp/mydiag-bench-cache, keyed by server
version and table count, so a rerun copies it instead of building it. Passwords are
generated per run, written only to 0600 option files in the run directory, and deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402
from pymysql.constants import CLIENT  # noqa: E402

from tests import servers  # noqa: E402

CACHE = Path("/tmp/mydiag-bench-cache")
SCHEMAS = 20
SB_TABLES = 4
SB_ROWS = 10_000
SB_THREADS = 4
PT_STALK_RUN_TIME = 5
MYDIAG_SAMPLES = 5
MYDIAG_INTERVAL = 1.0
#: Each tool's MySQL user. bench_mydiag has the same privileges as the peers (ALL);
#: bench_mydiag_lp has only what `mydiag grants` recommends, as a customer would set it up.
TOOL_USERS = ("bench_mydiag", "bench_mydiag_lp", "bench_ptsummary", "bench_ptstalk")
GNU_TIME = "/usr/bin/time"

#: Goals from issues 2 and 12.
MAX_STATEMENT_SECONDS = 1.0
MAX_RSS_MIB = 60
WALL_SLACK_SECONDS = 2.0
STATEMENTS_PER_SAMPLE = 12
OTHER_STATEMENTS = 30
#: At 3,000 tables a collection may open at most this many (issue 12; it was 6,000).
MAX_OPENED_TABLES = 10


class BenchError(Exception):
    """Something the bench cannot go on without: one line, what to do."""


@dataclass
class Measurement:
    tool: str
    command: str
    exit_code: int = 0
    wall: float = 0.0
    sql_statements: int = 0
    com_statements: int = 0
    connections: int = 0
    slowest_seconds: float = 0.0
    slowest_event: str = ""
    slowest_text: str = ""
    history: List[Dict[str, object]] = field(default_factory=list)
    tree_rss_kib: int = 0
    max_process_rss_kib: int = 0
    output_bytes: int = 0
    #: What the tool did to the server: counter growth and the table cache after it.
    disturbance: Dict[str, int] = field(default_factory=dict)
    error: str = ""
    details: Dict[str, object] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        # mydiag's 3 means "bundle written, some collectors partial": a finished run.
        return self.exit_code not in ((0, 3) if self.tool.startswith("mydiag") else (0,))

    @property
    def statements(self) -> int:
        return self.sql_statements + self.com_statements


# -- preparing the server ------------------------------------------------------------


def _server_version() -> str:
    server = servers._which(servers.SERVER_BINARIES)
    if not server:
        raise BenchError("no MariaDB server binaries: run scripts/system-deps.sh --bench as root")
    out = subprocess.run([server, "--version"], capture_output=True, text=True).stdout
    for word in out.split():
        if word[:1].isdigit():
            return word.split("-")[0]
    return "unknown"


def _create_tables(instance: servers.Instance, tables: int, workers: int = 4) -> None:
    """20 schemas of InnoDB tables, 100 CREATE TABLE per round trip, `workers` connections."""
    per_schema = max(1, -(-tables // SCHEMAS))
    names = [(f"bench_s{s:02d}", f"t{t:04d}") for s in range(SCHEMAS) for t in range(per_schema)]
    names = names[:tables]
    instance.sql(*(f"CREATE DATABASE IF NOT EXISTS bench_s{s:02d}" for s in range(SCHEMAS)))
    errors: List[BaseException] = []

    def work(share: List[tuple]) -> None:
        try:
            conn = pymysql.connect(unix_socket=instance.socket, user="root", autocommit=True,
                                   client_flag=CLIENT.MULTI_STATEMENTS)
            with conn, conn.cursor() as cur:
                for start in range(0, len(share), 100):
                    cur.execute(";".join(
                        f"CREATE TABLE {schema}.{table} (id INT UNSIGNED NOT NULL PRIMARY KEY,"
                        " k INT NOT NULL DEFAULT 0, c CHAR(60) NOT NULL DEFAULT '', KEY (k))"
                        " ENGINE=InnoDB"
                        for schema, table in share[start:start + 100]
                    ))
                    while cur.nextset():
                        pass
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(names[k::workers],)) for k in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise BenchError(f"creating tables failed: {errors[0]}")


def _sysbench(*args: str) -> List[str]:
    return ["sysbench", "oltp_read_write", "--db-driver=mysql", f"--tables={SB_TABLES}",
            f"--table-size={SB_ROWS}", "--mysql-db=sbtest", *args]


def prepared_datadir(tables: int) -> Path:
    """A stopped data directory with the tables and the sysbench schema, built once."""
    key = f"mariadb-{_server_version()}-tables{tables}-sb{SB_TABLES}x{SB_ROWS}"
    ready = CACHE / key
    if (ready / "READY").exists():
        print(f"prepared datadir: cached in {ready}", flush=True)
        return ready / "data"
    building = CACHE / f"{key}.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    # Durability is not needed while building: the result is only kept after a clean stop.
    instance = servers.Instance(building, servers.free_port(), [
        "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
    ])
    instance.init()
    instance.start()
    try:
        begun = time.monotonic()
        print(f"preparing {tables} tables (once; cached afterwards) ...", flush=True)
        _create_tables(instance, tables)
        print(f"  {tables} tables in {time.monotonic() - begun:.0f}s", flush=True)
        instance.sql("CREATE DATABASE sbtest")
        subprocess.run(_sysbench(f"--mysql-socket={instance.socket}", "--mysql-user=root",
                                 "prepare"), check=True, stdout=subprocess.DEVNULL)
    finally:
        instance.stop()
    shutil.rmtree(ready, ignore_errors=True)
    for name in ("mysqld.sock", "mysqld.pid"):
        (building / name).unlink(missing_ok=True)
    building.rename(ready)
    (ready / "READY").write_text(key + "\n")
    return ready / "data"


def start_server(run_dir: Path, tables: int) -> servers.Instance:
    source = prepared_datadir(tables)
    base = run_dir / "server"
    base.mkdir()
    begun = time.monotonic()
    subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(base / "data")], check=True)
    print(f"copied the datadir in {time.monotonic() - begun:.1f}s", flush=True)
    instance = servers.Instance(base, servers.free_port(), [
        "--performance-schema=ON",
        "--performance-schema-consumer-events-statements-current=ON",
        "--performance-schema-consumer-events-statements-history-long=ON",
        "--performance-schema-events-statements-history-long-size=10000",
        "--log-bin=binlog", "--server-id=1", "--max-connections=300",
    ])
    instance.start(timeout=120)
    return instance


def _least_privilege_grants(user: str, password: str) -> List[str]:
    """What `mydiag grants` recommends for this flavor: mydiag runs as a customer would."""
    out = subprocess.run(
        [str(ROOT / ".venv/bin/mydiag"), "grants", "--flavor", "mariadb", "--user", user,
         "--host", "127.0.0.1"], capture_output=True, text=True, check=True,
    ).stdout
    statements = []
    for line in out.splitlines():
        if line.startswith("--") and statements:
            break
        if line.startswith(("CREATE USER", "GRANT")):
            statements.append(line.rstrip(";").replace("<choose a password>", password))
    if not statements:
        raise BenchError("`mydiag grants --flavor mariadb` printed no statements")
    return statements


def create_users(instance: servers.Instance, run_dir: Path) -> Dict[str, Path]:
    """One MySQL user per tool (its own counters), and an option file holding its password."""
    files = {}
    statements = [
        # Only the tools and the load are instrumented, so the monitor (root) counts nothing.
        # The load is instrumented (digests, table I/O: what mydiag reads is realistic) but
        # keeps no history, so events_statements_history_long holds the tools' alone.
        "TRUNCATE TABLE performance_schema.setup_actors",
        "INSERT INTO performance_schema.setup_actors (HOST, USER, ROLE, ENABLED, HISTORY)"
        " VALUES ('%', 'bench_sysbench', '%', 'YES', 'NO')",
        "CREATE USER 'bench_sysbench'@'localhost'",
        "GRANT ALL ON sbtest.* TO 'bench_sysbench'@'localhost'",
    ]
    for user in TOOL_USERS:
        password = secrets.token_urlsafe(18)
        if user == "bench_mydiag_lp":
            statements += _least_privilege_grants(user, password)
        else:
            statements += [
                f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'",
                f"GRANT ALL ON *.* TO '{user}'@'127.0.0.1'",
            ]
        statements.append(
            "INSERT INTO performance_schema.setup_actors (HOST, USER, ROLE, ENABLED, HISTORY)"
            f" VALUES ('%', '{user}', '%', 'YES', 'YES')"
        )
        path = run_dir / f"{user}.cnf"
        path.touch(mode=0o600)
        path.write_text(f"[client]\npassword = \"{password}\"\n")
        files[user] = path
    instance.sql(*statements)
    return files


# -- measuring -----------------------------------------------------------------------


def _children_map() -> Dict[int, List[int]]:
    tree: Dict[int, List[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree_rss_kib(root: int) -> int:
    """Sum of VmRSS over the descendants of `root` (GNU time's child and its children)."""
    tree = _children_map()
    total, stack = 0, list(tree.get(root, []))
    while stack:
        pid = stack.pop()
        total += _rss_kib(pid)
        stack.extend(tree.get(pid, []))
    return total


class Monitor:
    """A root connection over the socket; root is not instrumented, so it counts nothing."""

    def __init__(self, instance: servers.Instance) -> None:
        self.conn = pymysql.connect(unix_socket=instance.socket, user="root", autocommit=True)
        assert instance.process is not None
        self.pid = instance.process.pid

    def rows(self, sql: str, args: tuple = ()) -> list:
        with self.conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def counters(self, user: str) -> Dict[str, float]:
        row = self.rows(
            "SELECT IFNULL(SUM(IF(EVENT_NAME LIKE 'statement/sql/%%', COUNT_STAR, 0)), 0) AS sql_n,"
            " IFNULL(SUM(IF(EVENT_NAME LIKE 'statement/sql/%%', 0, COUNT_STAR)), 0) AS com_n,"
            " IFNULL(MAX(MAX_TIMER_WAIT), 0) AS max_wait"
            " FROM performance_schema.events_statements_summary_by_user_by_event_name"
            " WHERE USER = %s", (user,))[0]
        slowest = self.rows(
            "SELECT EVENT_NAME FROM performance_schema.events_statements_summary_by_user_by_event_name"
            " WHERE USER = %s ORDER BY MAX_TIMER_WAIT DESC LIMIT 1", (user,))
        conns = self.rows("SELECT TOTAL_CONNECTIONS FROM performance_schema.users WHERE USER = %s",
                          (user,))
        return {
            "sql": int(row["sql_n"]), "com": int(row["com_n"]),
            "max_seconds": int(row["max_wait"]) / 1e12,
            "slowest_event": slowest[0]["EVENT_NAME"] if slowest else "",
            "connections": int(conns[0]["TOTAL_CONNECTIONS"]) if conns else 0,
        }

    def slowest_statements(self, limit: int = 5) -> List[Dict[str, object]]:
        rows = self.rows(
            "SELECT EVENT_NAME, TIMER_WAIT, SQL_TEXT FROM"
            " performance_schema.events_statements_history_long"
            " ORDER BY TIMER_WAIT DESC LIMIT %s", (limit,))
        return [{"seconds": round(int(r["TIMER_WAIT"] or 0) / 1e12, 4), "event": r["EVENT_NAME"],
                 "text": " ".join(str(r["SQL_TEXT"] or "").split())[:160]} for r in rows]

    def cache_state(self) -> Dict[str, int]:
        """The table caches and mysqld's RSS, to see what a tool disturbed."""
        status = {r["Variable_name"]: int(r["Value"]) for r in self.rows(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('Opened_tables', 'Open_tables',"
            " 'Opened_table_definitions', 'Open_table_definitions')")}
        size = self.rows("SELECT @@table_open_cache AS toc, @@table_definition_cache AS tdc")[0]
        status["table_open_cache"] = int(size["toc"])
        status["table_definition_cache"] = int(size["tdc"])
        status["rss_kib"] = _rss_kib(self.pid)
        return status

    def cached_tables(self) -> set:
        """The tables in the table cache (SHOW OPEN TABLES lists the cache, opens nothing)."""
        return {(r["Database"], r["Table"]) for r in self.rows("SHOW OPEN TABLES")}

    def history_count(self) -> int:
        return int(self.rows("SELECT COUNT(*) AS n FROM"
                             " performance_schema.events_statements_history_long")[0]["n"])

    def close(self) -> None:
        self.conn.close()


def measure(monitor: Monitor, tool: str, user: str, argv: List[str], work: Path,
            stdout_name: str) -> Measurement:
    # Every tool starts from the same empty table cache (the load's own tables reopen at once).
    monitor.rows("FLUSH TABLES")
    time.sleep(0.5)
    cache_before = monitor.cache_state()
    cached_before = monitor.cached_tables()
    before = monitor.counters(user)
    monitor.rows("TRUNCATE TABLE performance_schema.events_statements_history_long")
    result = Measurement(tool, " ".join(argv))
    time_file = work / f"{tool}.time"
    peak = [0]
    with open(work / stdout_name, "wb") as out, open(work / f"{tool}.stderr", "wb") as err:
        begun = time.monotonic()
        proc = subprocess.Popen([GNU_TIME, "-v", "-o", str(time_file), *argv], stdout=out,
                                stderr=err, cwd=work, start_new_session=True)
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_kib(proc.pid))
            time.sleep(0.05)
        result.wall = time.monotonic() - begun
    result.exit_code = proc.returncode
    if result.failed:
        said = (work / f"{tool}.stderr").read_text(errors="replace").strip().splitlines()
        result.error = said[-1][:300] if said else f"exit code {proc.returncode}"
    # The server aggregates a closed connection's statements a moment after it ends.
    time.sleep(0.5)
    after = monitor.counters(user)
    cache_after = monitor.cache_state()
    system = ("mysql", "performance_schema", "sys", "information_schema")
    fresh = monitor.cached_tables() - cached_before
    result.disturbance = {
        "opened_tables": cache_after["Opened_tables"] - cache_before["Opened_tables"],
        "opened_table_definitions": (cache_after["Opened_table_definitions"]
                                     - cache_before["Opened_table_definitions"]),
        "open_tables_before": cache_before["Open_tables"],
        "open_tables_after": cache_after["Open_tables"],
        "table_open_cache": cache_after["table_open_cache"],
        "rss_growth_kib": cache_after["rss_kib"] - cache_before["rss_kib"],
        # What the growth is made of: the server's own tables (performance_schema, mysql.*)
        # or the customer's, as the table cache holds them after the run.
        "cached_system_tables": sum(1 for db, _ in fresh if db in system),
        "cached_user_tables": sum(1 for db, _ in fresh if db not in system),
    }
    result.sql_statements = int(after["sql"] - before["sql"])
    result.com_statements = int(after["com"] - before["com"])
    result.connections = int(after["connections"] - before["connections"])
    result.slowest_seconds = float(after["max_seconds"])
    result.slowest_event = str(after["slowest_event"])
    result.history = monitor.slowest_statements()
    result.details["history_rows"] = monitor.history_count()
    if result.history:
        result.slowest_text = str(result.history[0]["text"])
    result.tree_rss_kib = peak[0]
    for line in time_file.read_text(errors="replace").splitlines():
        if "Maximum resident set size" in line:
            result.max_process_rss_kib = int(line.rsplit(":", 1)[1])
    return result


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_mydiag(monitor: Monitor, instance: servers.Instance, cnf: Path, work: Path,
               user: str = "bench_mydiag", tool: str = "mydiag") -> Measurement:
    out = work / tool
    out.mkdir()
    argv = [str(ROOT / ".venv/bin/mydiag"), "collect", "--profile", "standard",
            "--defaults-file", str(cnf), "--host", "127.0.0.1", "--port", str(instance.port),
            "--user", user, "--output", str(out), "--json", "--yes"]
    result = measure(monitor, tool, user, argv, work, f"{tool}.json")
    bundles = list(out.glob("*.tar.zst"))
    result.output_bytes = sum(b.stat().st_size for b in bundles)
    try:
        summary = json.loads((work / f"{tool}.json").read_text())
    except ValueError:
        summary = {}
    result.details["own_statement_count"] = summary.get("statements")
    result.details["collectors"] = {
        c["name"]: {"status": c["status"], "duration": c["duration"], "error": c["error"]}
        for c in summary.get("collectors", [])
    }
    if bundles:
        from bundle.reader import read_manifest, read_member

        manifest = read_manifest(bundles[0])
        result.details["files"] = len(manifest.files)
        result.details["uncompressed_bytes"] = sum(f.bytes for f in manifest.files)
        overview = json.loads(read_member(bundles[0], "mysql/schema_overview.json"))
        result.details["schema_overview"] = {
            k: overview.get(k) for k in ("total_tables", "table_guard", "source")
        }
    return result


def run_mydiag_least_privilege(monitor: Monitor, instance: servers.Instance, cnf: Path,
                               work: Path) -> Measurement:
    return run_mydiag(monitor, instance, cnf, work, "bench_mydiag_lp", "mydiag-least-priv")


def run_pt_mysql_summary(monitor: Monitor, instance: servers.Instance, cnf: Path,
                         work: Path) -> Measurement:
    argv = ["pt-mysql-summary", "--defaults-file", str(cnf), "--host", "127.0.0.1",
            "--port", str(instance.port), "--user", "bench_ptsummary"]
    result = measure(monitor, "pt-mysql-summary", "bench_ptsummary", argv, work,
                     "pt-mysql-summary.txt")
    result.output_bytes = (work / "pt-mysql-summary.txt").stat().st_size
    return result


def run_pt_stalk(monitor: Monitor, instance: servers.Instance, cnf: Path, work: Path) -> Measurement:
    dest = work / "pt-stalk"
    dest.mkdir()
    argv = ["pt-stalk", "--no-stalk", "--iterations=1", f"--run-time={PT_STALK_RUN_TIME}",
            "--dest", str(dest), "--pid", str(work / "pt-stalk.pid"),
            "--log", str(work / "pt-stalk.log"), "--defaults-file", str(cnf),
            "--host", "127.0.0.1", "--port", str(instance.port), "--user", "bench_ptstalk"]
    result = measure(monitor, "pt-stalk", "bench_ptstalk", argv, work, "pt-stalk.out")
    result.output_bytes = _dir_bytes(dest)
    result.details["files"] = sum(1 for p in dest.rglob("*") if p.is_file())
    return result


# -- the load ------------------------------------------------------------------------


class Load:
    """sysbench oltp_read_write as bench_sysbench over the socket (no password anywhere)."""

    def __init__(self, instance: servers.Instance, work: Path) -> None:
        self.log = work / "sysbench.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                _sysbench(f"--mysql-socket={instance.socket}", "--mysql-user=bench_sysbench",
                          f"--threads={SB_THREADS}", "--time=0", "--events=0",
                          "--report-interval=2", "run"),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
            raise BenchError(f"sysbench stopped: {' '.join(tail)}")

    def tps(self) -> Optional[float]:
        values = [float(line.split("tps:")[1].split()[0])
                  for line in self.log.read_text(errors="replace").splitlines() if "tps:" in line]
        return sum(values) / len(values) if values else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- report --------------------------------------------------------------------------


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def report(results: List[Measurement], tables: int, tps: Optional[float]) -> str:
    header = ("| tool | wall s | statements (sql + com) | connections | slowest statement s |"
              " peak RSS MiB (tree) | max process RSS MiB | output bytes | server disturbance:"
              " Opened_tables, table cache fill, mysqld RSS growth MiB | exit |")
    lines = [header, "|" + "---|" * 10]
    for r in results:
        d = r.disturbance
        fill = (f"{d['open_tables_before']}→{d['open_tables_after']} of {d['table_open_cache']}"
                if d else "?")
        lines.append(
            f"| {r.tool} | {r.wall:.1f} | {r.statements} ({r.sql_statements} + {r.com_statements})"
            f" | {r.connections} | {r.slowest_seconds:.3f} | {_mib(r.tree_rss_kib)}"
            f" | {_mib(r.max_process_rss_kib)} | {r.output_bytes:,}"
            f" | +{d.get('opened_tables', '?')} ({d.get('cached_user_tables', '?')} user,"
            f" {d.get('cached_system_tables', '?')} system), {fill},"
            f" {d.get('rss_growth_kib', 0) / 1024:+.1f}"
            f" | {r.exit_code} |"
        )
    lines.append("")
    lines.append(f"{tables} tables; sysbench oltp_read_write, {SB_THREADS} threads, "
                 f"{tps:.0f} tps on average during the run" if tps else f"{tables} tables")
    by = {r.tool: r for r in results}
    for r in results:
        if r.failed:
            lines.append(f"{r.tool} FAILED (exit {r.exit_code}): {r.error}")
    mine = by.get("mydiag")
    if mine and not mine.failed:
        lines.append("")
        for peer in ("pt-mysql-summary", "pt-stalk"):
            other = by.get(peer)
            if other and mine.statements and mine.wall and mine.tree_rss_kib:
                lines.append(
                    f"ratios {peer} / mydiag: wall {other.wall / mine.wall:.2f}, statements "
                    f"{other.statements / mine.statements:.2f}, connections "
                    f"{other.connections / max(mine.connections, 1):.1f}, peak RSS (tree) "
                    f"{other.tree_rss_kib / mine.tree_rss_kib:.2f}, output bytes "
                    f"{other.output_bytes / max(mine.output_bytes, 1):.2f}"
                )
    for r in results:
        if r.tool.startswith("mydiag"):
            lines.append("")
            lines += goals(r, by.get("pt-stalk"), tables)
    lines.append("")
    lines.append("slowest statements seen (events_statements_history_long):")
    for r in results:
        for row in r.history[:3]:
            lines.append(f"  {r.tool:<17} {row['seconds']:>8.4f}s  {row['event']}: {row['text'][:90]}")
    return "\n".join(lines)


def goals(mine: Measurement, stalk: Optional[Measurement], tables: int) -> List[str]:
    window = (MYDIAG_SAMPLES - 1) * MYDIAG_INTERVAL
    rss = max(mine.tree_rss_kib, mine.max_process_rss_kib) / 1024

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    if mine.failed:
        return [f"{mine.tool}: every goal MISSED, it wrote no bundle (exit {mine.exit_code})"]
    out = [
        f"{mine.tool} ({mine.details.get('files')} files,"
        f" {mine.details.get('uncompressed_bytes')} bytes unpacked;"
        f" schema overview: {mine.details.get('schema_overview')})",
        f"goal: no statement over {MAX_STATEMENT_SECONDS:g}s: "
        f"{verdict(mine.slowest_seconds <= MAX_STATEMENT_SECONDS)} "
        f"(slowest {mine.slowest_seconds:.3f}s, {mine.slowest_event})",
        f"goal: peak RSS <= {MAX_RSS_MIB} MiB: {verdict(rss <= MAX_RSS_MIB)} ({rss:.1f} MiB)",
        f"goal: wall <= sampling window ({window:g}s: {MYDIAG_SAMPLES} samples "
        f"{MYDIAG_INTERVAL:g}s apart) + {WALL_SLACK_SECONDS:g}s: "
        f"{verdict(mine.wall <= window + WALL_SLACK_SECONDS)} ({mine.wall:.1f}s)",
    ]
    budget = STATEMENTS_PER_SAMPLE * MYDIAG_SAMPLES + OTHER_STATEMENTS
    out.append(f"goal: <= {STATEMENTS_PER_SAMPLE} statements per sample + {OTHER_STATEMENTS} others"
               f" ({budget}): {verdict(mine.statements <= budget)} ({mine.statements})")
    opened = mine.disturbance.get("opened_tables", -1)
    user = mine.disturbance.get("cached_user_tables", -1)
    out.append(f"goal: the customer's tables are left out of the table cache (at most "
               f"{MAX_OPENED_TABLES} opened): {verdict(0 <= user <= MAX_OPENED_TABLES)} ({user})")
    out.append(f"goal: Opened_tables grows by <= {MAX_OPENED_TABLES} (set at 3,000 tables; here "
               f"{tables}): {verdict(0 <= opened <= MAX_OPENED_TABLES)} (+{opened}, table definitions "
               f"+{mine.disturbance.get('opened_table_definitions', '?')}; in the cache after it: "
               f"{mine.disturbance.get('cached_user_tables', '?')} of the customer's tables, "
               f"{mine.disturbance.get('cached_system_tables', '?')} of the server's own)")
    if stalk:
        out.append(f"goal: fewer statements than pt-stalk: "
                   f"{verdict(mine.statements < stalk.statements)} "
                   f"({mine.statements} vs {stalk.statements}; SQL only "
                   f"{mine.sql_statements} vs {stalk.sql_statements})")
    collectors = mine.details.get("collectors") or {}
    not_ok = {k: v for k, v in collectors.items() if v["status"] != "ok"}  # type: ignore[union-attr]
    if not_ok:
        out.append("collectors not ok: " + "; ".join(
            f"{k} {v['status']}: {v['error']}" for k, v in not_ok.items()))
    slow = sorted(collectors.items(), key=lambda kv: -kv[1]["duration"])[:4]  # type: ignore[index]
    if slow:
        out.append("slowest collectors: " + ", ".join(
            f"{k} {v['duration']:.2f}s" for k, v in slow))
    return out


# -- main ----------------------------------------------------------------------------


def _require_tools() -> None:
    missing = [t for t in ("sysbench", "pt-stalk", "pt-mysql-summary", "mysql")
               if not shutil.which(t)]
    if not os.access(GNU_TIME, os.X_OK):
        missing.append("time")
    if not (ROOT / ".venv/bin/mydiag").exists():
        raise BenchError("no .venv/bin/mydiag: run `make` or .venv/bin/pip install -e '.[dev]'")
    if missing:
        raise BenchError(f"missing {', '.join(missing)}: run scripts/system-deps.sh --bench "
                         "as root (apt-get install -y sysbench percona-toolkit time)")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=20_000, help="InnoDB tables (default 20000)")
    parser.add_argument("--keep", metavar="DIR", help="keep outputs, logs and results.json in DIR")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before the first tool")
    args = parser.parse_args(argv)

    instance: Optional[servers.Instance] = None
    load: Optional[Load] = None
    run_dir = Path(tempfile.mkdtemp(prefix="mydiag-bench-"))
    try:
        _require_tools()
        instance = start_server(run_dir, args.tables)
        work = run_dir / "work"
        work.mkdir()
        files = create_users(instance, run_dir)
        monitor = Monitor(instance)
        load = Load(instance, work)
        time.sleep(args.warmup)
        load.check()
        results = []
        for runner, user in ((run_mydiag, "bench_mydiag"),
                             (run_mydiag_least_privilege, "bench_mydiag_lp"),
                             (run_pt_mysql_summary, "bench_ptsummary"),
                             (run_pt_stalk, "bench_ptstalk")):
            print(f"running {runner.__name__[4:].replace('_', '-')} ...", flush=True)
            results.append(runner(monitor, instance, files[user], work))
            load.check()
            time.sleep(1)
        tps = load.tps()
        load.stop()
        monitor.close()
        for path in files.values():
            path.unlink()
        loadavg = os.getloadavg()
        text = report(results, args.tables, tps)
        text += f"\nload average after the run: {loadavg[0]:.2f} {loadavg[1]:.2f} {loadavg[2]:.2f}"
        print()
        print(text)
        if args.keep:
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copytree(work, keep / "outputs", dirs_exist_ok=True)
            (keep / "results.json").write_text(json.dumps(
                {"tables": args.tables, "tps": tps, "loadavg": loadavg,
                 "results": [r.__dict__ for r in results]}, indent=2, default=str))
            (keep / "report.txt").write_text(text + "\n")
            print(f"\nkept in {keep}")
        return 1 if any(r.failed for r in results) else 0
    except (BenchError, servers.ServerUnavailable) as exc:
        print(f"collect_bench: {exc}", file=sys.stderr)
        return 1
    except (subprocess.CalledProcessError, pymysql.err.MySQLError, OSError, RuntimeError) as exc:
        print(f"collect_bench: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("collect_bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if load is not None:
            load.stop()
        if instance is not None:
            instance.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
