"""The flavor-specific parts of a collection, on each server of the Docker matrix.

Expected values are written out from each server's documentation, not derived from
collectors.mysql.flavor, so a wrong switch point there fails here.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict

import pymysql
import pytest

from bundle.reader import members
from tests.docker.matrix import ROOT, Service

pytestmark = [pytest.mark.docker, pytest.mark.mysql, pytest.mark.slow]

#: MySQL renamed SHOW SLAVE STATUS in 8.0.22 (and dropped the old name in 8.4); MariaDB
#: has SHOW ALL REPLICAS STATUS from 10.5.1. The `mysql:8.0` image is a late 8.0.x.
REPLICA_STATUS = {
    "mysql80": "SHOW REPLICA STATUS",
    "mysql84": "SHOW REPLICA STATUS",
    "mariadb1011": "SHOW ALL REPLICAS STATUS",
    "mariadb114": "SHOW ALL REPLICAS STATUS",
}
#: SHOW MASTER STATUS became SHOW BINARY LOG STATUS in MySQL 8.2 (removed in 8.4) and
#: SHOW BINLOG STATUS in MariaDB 10.5.2.
BINLOG_STATUS_REMOVED = {"mysql84": "SHOW MASTER STATUS"}
#: MySQL 8.0 dropped information_schema.INNODB_LOCK_WAITS for performance_schema.data_lock_waits.
LOCK_WAIT_COLUMNS = {
    "mysql": {"requesting_trx_id", "blocking_trx_id", "requesting_thread_id", "blocking_thread_id"},
    "mariadb": {"requesting_trx_id", "requested_lock_id", "blocking_trx_id", "blocking_lock_id"},
}
#: mysql.user on MySQL has the lock and password-age columns; MariaDB keeps them in
#: mysql.global_priv's JSON and has roles in the same table.
ACCOUNT_COLUMNS = {
    "mysql": {"account_locked", "password_expired", "password_last_changed", "password_lifetime"},
    "mariadb": {"account_locked", "password_last_changed", "password_lifetime", "is_role"},
}
GRANTS_FLAVOR = {"mysql": "mysql", "mariadb": "mariadb"}

_collected: Dict[str, tuple] = {}


def mydiag(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def read_bundle(path: str) -> Dict[str, bytes]:
    return {info.name: handle.read() for info, handle in members(Path(path)) if handle}


def collect(service: Service, folder: Path, *extra: str) -> tuple:
    """`mydiag collect --json` into folder: (process, summary, files of the bundle)."""
    done = mydiag("collect", "--output", str(folder), "--json", "--yes", "--samples", "2",
                  "--interval", "0.5", *extra)
    try:
        summary = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"{service.flavor.service}: no JSON summary; stderr: {done.stderr.strip()}",
                    pytrace=False)
    assert summary["bundle"], (summary, done.stderr)
    return done, summary, read_bundle(summary["bundle"])


@pytest.fixture()
def standard(service: Service, tmp_path_factory) -> tuple:
    """One standard collection as root per service, shared by the tests below."""
    if service.flavor.service not in _collected:
        folder = tmp_path_factory.mktemp(service.flavor.service)
        cnf = service.defaults_file(folder)
        _collected[service.flavor.service] = collect(service, folder, "--defaults-file", str(cnf))
    return _collected[service.flavor.service]


def test_standard_collection_completes_on_every_flavor(service: Service, standard):
    done, summary, files = standard
    # The OS, config and log collectors read this host, not the container: only the
    # MySQL ones say something about the flavor.
    mysql = [c for c in summary["collectors"] if c["name"].startswith("mysql.")]
    assert done.returncode in (0, 3), done.stderr
    assert {c["status"] for c in mysql} <= {"ok", "skipped"}, [
        c for c in mysql if c["status"] not in ("ok", "skipped")
    ]
    assert summary["mysql"]["flavor"] == service.flavor.family
    major_minor = tuple(int(n) for n in summary["mysql"]["version"].split(".")[:2])
    assert major_minor == service.flavor.version
    assert json.loads(files["manifest.json"])["mysql"]["flavor"] == service.flavor.family


def test_replica_status_uses_the_flavors_statement(service: Service, standard):
    _, _, files = standard
    replica = json.loads(files["mysql/replication/replica_status.json"])
    expected = REPLICA_STATUS[service.flavor.service]
    assert replica["statement"] == expected
    assert replica["channels"] == []
    service.sql(expected)  # the chosen statement is valid on this server


def test_binary_log_status_is_read_with_the_flavors_syntax(service: Service, standard):
    _, _, files = standard
    status = json.loads(files["mysql/replication/binlog_status.json"])
    assert status and status[0].get("File", "").startswith("binlog.")
    removed = BINLOG_STATUS_REMOVED.get(service.flavor.service)
    if removed:
        with pytest.raises(pymysql.err.ProgrammingError):
            service.sql(removed)


def test_lock_waits_come_from_the_flavors_table(service: Service, tmp_path):
    from agent.collect.runner import Options
    from agent.collect.runner import collect as run_collection
    from collectors.mysql.session import ConnectSpec

    service.sql("CREATE DATABASE IF NOT EXISTS matrix_locks",
                "CREATE TABLE IF NOT EXISTS matrix_locks.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
                "INSERT IGNORE INTO matrix_locks.t VALUES (1, 0)")
    holder = service.connect()
    waiter = service.connect()
    blocked = threading.Thread(target=_update_row, args=(waiter,), daemon=True)
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("UPDATE matrix_locks.t SET v = v + 1 WHERE id = 1")
            holder_id = holder.thread_id()
        blocked.start()
        deadline = time.monotonic() + 10
        while not service.sql("SELECT 1 FROM information_schema.INNODB_TRX"
                              " WHERE trx_state = 'LOCK WAIT'"):
            assert time.monotonic() < deadline, "the second UPDATE never waited for the lock"
            time.sleep(0.1)
        holder_trx = service.sql("SELECT trx_id FROM information_schema.INNODB_TRX"
                                 f" WHERE trx_mysql_thread_id = {holder_id}")[0][0]

        spec = ConnectSpec(host=service.host, port=service.port, user="root",
                           password=service.password)
        result = run_collection(spec, Options(output_dir=tmp_path, samples=1,
                                              only=["mysql.innodb_transactions"]))
        assert result.bundle is not None
        files = read_bundle(str(result.bundle))
        waits = json.loads(files["mysql/innodb_lock_waits.json"])
        assert waits, "the lock wait in progress was not collected"
        assert LOCK_WAIT_COLUMNS[service.flavor.family] <= set(waits[0])
        assert str(waits[0]["blocking_trx_id"]) == str(holder_trx)
    finally:
        holder.rollback()
        holder.close()
        if blocked.is_alive():
            blocked.join(35)
        waiter.close()


def _update_row(conn) -> None:
    """Waits for the row lock the holder keeps, until the holder rolls back."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION innodb_lock_wait_timeout = 30")
        # Ends when the holder rolls back, or by the lock wait timeout.
        with contextlib.suppress(pymysql.err.MySQLError):
            cur.execute("UPDATE matrix_locks.t SET v = v + 2 WHERE id = 1")


def test_accounts_columns_follow_the_flavor_and_hold_no_hash(service: Service, standard):
    _, _, files = standard
    accounts = json.loads(files["mysql/accounts.json"])["accounts"]
    root = next(a for a in accounts if a["user"] == "root" and a["host"] == "%")
    assert ACCOUNT_COLUMNS[service.flavor.family] <= set(root)
    if service.flavor.family == "mysql":
        assert "is_role" not in root
    hashed = service.sql("SELECT HEX(authentication_string) FROM mysql.user"
                         " WHERE User = 'root' AND Host = '%'")[0][0]
    everything = b"".join(files.values())
    assert bytes.fromhex(hashed) not in everything
    assert service.password.encode() not in everything
    assert b"authentication_string" not in files["mysql/accounts.json"]


def test_least_privilege_grants_apply_and_suffice(service: Service, tmp_path):
    printed = mydiag("grants", "--flavor", GRANTS_FLAVOR[service.flavor.family],
                     "--user", "mydiag_least", "--host", "%")
    assert printed.returncode == 0, printed.stderr
    password = secrets.token_urlsafe(16)
    statements = [line.rstrip(";").replace("<choose a password>", password)
                  for line in printed.stdout.splitlines()
                  if line.startswith(("CREATE USER", "GRANT"))]
    assert statements
    service.sql("DROP USER IF EXISTS 'mydiag_least'@'%'", *statements)
    cnf = service.defaults_file(tmp_path, "mydiag_least", password)
    done, summary, _ = collect(service, tmp_path, "--defaults-file", str(cnf))
    assert done.returncode in (0, 3), done.stderr
    by_status = {c["name"]: c for c in summary["collectors"] if c["name"].startswith("mysql.")}
    assert not [n for n, c in by_status.items() if c["status"] == "failed"], summary["collectors"]
    for name, entry in by_status.items():
        if entry["status"] == "partial":
            assert "GRANT" in (entry["fix"] or ""), (name, entry)
