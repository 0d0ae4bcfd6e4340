"""Least privilege, clear connection errors, and replication in the flavor's own syntax."""

from __future__ import annotations

import os
import re
import secrets
import time

import pytest

from tests.helpers import bundle_files, bundle_json, by_name, collect_json, mydiag
from tests.servers import free_port


def _grants_sql(user: str, password: str) -> list:
    printed = mydiag("grants", "--flavor", "mariadb", "--user", user, "--host", "127.0.0.1")
    assert printed.returncode == 0
    lines = [line for line in printed.stdout.splitlines() if line and not line.startswith("--")]
    return [line.replace("<choose a password>", password).rstrip(";") for line in lines]


def test_grants_prints_least_privilege_sql_per_flavor():
    done = mydiag("grants")
    assert done.returncode == 0
    text = done.stdout
    assert "GRANT PROCESS, SLAVE MONITOR, BINLOG MONITOR ON *.* TO 'mydiag'@'localhost';" in text
    assert "GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'mydiag'@'localhost';" in text
    assert "GRANT SELECT ON performance_schema.* TO" in text
    assert "authentication_string" not in text and "Password" not in text
    assert "SELECT (User, Host, plugin" in text


def test_least_privilege_user_from_grants_collects_everything(server, tmp_path):
    password = secrets.token_urlsafe(16)
    server.sql(*_grants_sql("diag_least", password))
    server.sql("CREATE DATABASE IF NOT EXISTS hidden_app",
               "CREATE TABLE IF NOT EXISTS hidden_app.big (id INT PRIMARY KEY)")
    defaults = server.defaults_file(tmp_path, "diag_least", password)
    done, summary = collect_json("--defaults-file", str(defaults), "--output", str(tmp_path))
    assert summary is not None, done.stderr
    statuses = {c["name"]: c["status"] for c in summary["collectors"]}
    assert all(s in ("ok", "skipped") for s in statuses.values()), summary["collectors"]
    accounts = by_name(summary)["mysql.accounts"]
    assert any("global_priv" in note for note in accounts["notes"])
    assert done.returncode == 0
    # information_schema hides tables from this account; the overview still sees them.
    overview = bundle_json(bundle_files(summary["bundle"]), "mysql/schema_overview.json")
    assert overview["source"] == "mysql.innodb_table_stats"
    assert "hidden_app" in {s["schema"] for s in overview["schemas"]}
    assert any("this account sees 0 of at least" in n
               for n in by_name(summary)["mysql.schema"]["notes"])


def test_user_without_grants_gets_partial_parts_naming_the_grant(server, tmp_path):
    password = secrets.token_urlsafe(16)
    server.sql(f"CREATE USER IF NOT EXISTS 'diag_none'@'127.0.0.1' IDENTIFIED BY '{password}'")
    defaults = server.defaults_file(tmp_path, "diag_none", password)
    done, summary = collect_json("--defaults-file", str(defaults), "--output", str(tmp_path))
    assert done.returncode == 3, done.stderr
    collectors = by_name(summary)
    assert collectors["mysql.identity"]["status"] == "ok"
    assert collectors["mysql.status"]["status"] == "ok"
    innodb = collectors["mysql.innodb_status"]
    assert innodb["status"] == "failed"
    assert innodb["fix"] == "GRANT PROCESS ON *.* TO 'diag_none'@'<host>';"
    replication = collectors["mysql.replication"]
    assert replication["status"] == "partial"
    assert any("GRANT SLAVE MONITOR ON *.*" in n for n in replication["notes"])
    assert any("GRANT BINLOG MONITOR ON *.*" in n for n in replication["notes"])
    ps = collectors["mysql.performance_schema"]
    assert ps["status"] == "partial"
    assert any("GRANT SELECT ON performance_schema.*" in n for n in ps["notes"])
    # The summary table names the fix too.
    wide = dict(os.environ, COLUMNS="250")
    table = mydiag("collect", "--defaults-file", str(defaults), "--output", str(tmp_path),
                   "--profile", "quick", env=wide)
    assert "fix: GRANT PROCESS ON *.* TO 'diag_none'@'<host>';" in table.stdout


def test_access_denied_is_one_clear_line_and_exit_5(server, tmp_path):
    wrong = secrets.token_urlsafe(16)
    defaults = server.defaults_file(tmp_path, "root", wrong)
    done = mydiag("collect", "--defaults-file", str(defaults), "--output", str(tmp_path))
    assert done.returncode == 5
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mydiag: access denied for 'root'")
    assert "Traceback" not in done.stdout + done.stderr
    assert wrong not in done.stdout + done.stderr


def test_server_down_is_one_clear_line_and_exit_4(tmp_path):
    port = free_port()
    started = time.monotonic()
    done = mydiag("collect", "--host", "127.0.0.1", "--port", str(port), "--user", "root",
                  "--output", str(tmp_path))
    assert done.returncode == 4
    lines = done.stderr.strip().splitlines()
    assert lines == [f"mydiag: cannot connect to 'root' at 127.0.0.1:{port}: server not reachable "
                     "(Connection refused)"]
    assert time.monotonic() - started < 10
    json_done, summary = collect_json("--host", "127.0.0.1", "--port", str(port),
                                      "--output", str(tmp_path))
    assert json_done.returncode == 4
    assert "server not reachable" in summary["connect_error"]
    mysql_parts = [c for c in summary["collectors"] if c["name"].startswith("mysql.")]
    assert mysql_parts and all(c["status"] == "failed" for c in mysql_parts)
    assert all("server not reachable" in c["error"] for c in mysql_parts)


def test_bad_arguments_exit_2_with_one_line():
    done = mydiag("collect", "--profile", "huge")
    assert done.returncode == 2
    assert "invalid choice: 'huge'" in done.stderr and "Traceback" not in done.stderr
    missing = mydiag("collect", "--defaults-file", "/nonexistent/my.cnf")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "mydiag: --defaults-file /nonexistent/my.cnf: no such file"


def test_socket_connection_and_socket_option(server, tmp_path):
    if server.instance is None:
        pytest.skip("MYDIAG_TEST_DSN names a TCP server; the socket test needs the private one")
    done, summary = collect_json("--socket", server.instance.socket, "--user", "root",
                                 "--output", str(tmp_path), "--profile", "quick")
    assert done.returncode == 0, done.stderr
    assert summary["mysql"]["connection"] == f"'root' via socket {server.instance.socket}"


def test_replica_status_in_the_flavors_syntax(replica_pair, tmp_path):
    primary, replica = replica_pair
    primary.sql("CREATE DATABASE IF NOT EXISTS repl_check", "CREATE TABLE IF NOT EXISTS "
                "repl_check.t (id INT PRIMARY KEY)", "INSERT IGNORE INTO repl_check.t VALUES (1)")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = replica.sql("SELECT COUNT(*) FROM information_schema.TABLES "
                           "WHERE TABLE_SCHEMA='repl_check'")
        if rows[0][0] == 1:
            break
        time.sleep(0.2)
    done, summary = collect_json("--host", "127.0.0.1", "--port", str(replica.port),
                                 "--user", "root", "--output", str(tmp_path),
                                 "--profile", "quick")
    assert done.returncode == 0, done.stderr
    files = bundle_files(summary["bundle"])
    status = bundle_json(files, "mysql/replication/replica_status.json")
    version = replica.sql("SELECT @@version")[0][0]
    major, minor, patch = map(int, re.match(r"(\d+)\.(\d+)\.(\d+)", version).groups())
    expected = "SHOW ALL REPLICAS STATUS" if (major, minor, patch) >= (10, 5, 1) else \
        "SHOW ALL SLAVES STATUS"
    assert status["statement"] == expected
    channel = status["channels"][0]
    assert channel["Slave_IO_Running"] == "Yes" and channel["Slave_SQL_Running"] == "Yes"
    assert int(channel["Master_Port"]) == primary.port
    gtid = bundle_json(files, "mysql/replication/gtid.json")
    assert gtid["gtid_slave_pos"] == replica.sql("SELECT @@gtid_slave_pos")[0][0]
    primary_done, primary_summary = collect_json(
        "--host", "127.0.0.1", "--port", str(primary.port), "--user", "root",
        "--output", str(tmp_path), "--profile", "quick")
    primary_files = bundle_files(primary_summary["bundle"])
    assert bundle_json(primary_files, "mysql/replication/replica_status.json")["channels"] == []
    notes = by_name(primary_summary)["mysql.replication"]["notes"]
    assert "not a replica (no replication channel configured)" in notes
