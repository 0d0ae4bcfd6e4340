"""pt-query-digest reads the bundle's slow log as it reads the server's: same classes, counts, times.

A private server logs a varied workload (statements over several lines, literals with
quotes, newlines and secrets, several schemas, prepared statements of both kinds,
comments, warnings, multi-row inserts); `mydiag collect` takes its slow log; the engineer's
own tool must find in the bundle's copy the classes, counts and total times it finds in
the server's, while no planted secret is left in the bundle.

Two shapes of pt-query-digest's own fingerprint are left out of the workload because they
cannot survive any replacement of literals by `?`: a sign glued to a name (`n=n+1`, which
it reads as `n=n?`) and a doubled quote in a string (`'it''s'`, which it reads as two).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from privacy.lint import lint_bytes
from tests.conftest import _start
from tests.helpers import bundle_files, by_name, collect_json

#: log_slow_verbosity values that change what a record's header holds.
VERBOSITY = {
    "default": (),
    "everything": ("--log-slow-verbosity=query_plan,explain,innodb,engine,warnings",
                   "--log-slow-admin-statements=ON"),
}


@pytest.fixture(params=sorted(VERBOSITY))
def slow_server(request, tmp_path_factory):
    instance = _start(tmp_path_factory, "slowsrv", "--slow-query-log=ON", "--long-query-time=0",
                      "--slow-query-log-file=slow.log", *VERBOSITY[request.param])
    yield instance
    instance.kill()


def _pt_digest(log: Path) -> dict:
    """class checksum → (count, total Query_time, total Lock_time, Rows_examined) by pt-query-digest."""
    tool = shutil.which("pt-query-digest")
    assert tool, "pt-query-digest is missing: apt-get install percona-toolkit (make test does)"
    done = subprocess.run([tool, "--output", "json", "--limit", "100%:100000", str(log)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    classes = {}
    for entry in report["classes"]:
        metrics = entry["metrics"]
        classes[entry["checksum"]] = (
            entry["query_count"], metrics["Query_time"]["sum"], metrics["Lock_time"]["sum"],
            metrics.get("Rows_examined", {}).get("sum"), entry["fingerprint"])
    return classes


def _binary_prepared(connection, statement: str, value: str) -> None:
    """COM_STMT_PREPARE and COM_STMT_EXECUTE with one string parameter, as a connector does:
    the server logs the statement with the value written in."""
    connection._execute_command(0x16, statement)
    head = connection._read_packet().get_all_data()
    statement_id, columns, params = struct.unpack("<IHH", head[1:9])
    for _ in range(params + bool(params) + columns + bool(columns)):
        connection._read_packet()
    raw = value.encode()
    payload = (struct.pack("<IBI", statement_id, 0, 1) + b"\x00\x01" + struct.pack("<BB", 0xFE, 0)
               + bytes([len(raw)]) + raw)
    connection._execute_command(0x17, payload)
    if not connection._read_packet().is_ok_packet():
        while not connection._read_packet().is_eof_packet():  # column definitions
            pass
        while not connection._read_packet().is_eof_packet():  # rows
            pass
    connection._execute_command(0x19, struct.pack("<I", statement_id))  # close: no answer


def _workload(instance) -> list:
    """Runs the statements; returns the secrets they carried."""
    planted = [f"pw-{secrets.token_urlsafe(12)}" for _ in range(8)]
    card = str(4_000_000_000_000_000 + secrets.randbelow(10 ** 15))
    connection = instance.connect()
    with connection.cursor() as cur:
        for statement in (
            "CREATE DATABASE shop", "CREATE DATABASE hr",
            "CREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, card VARCHAR(40),"
            " note TEXT, total INT)",
            "CREATE TABLE hr.staff (id INT PRIMARY KEY, name VARCHAR(40), secret TEXT)",
        ):
            cur.execute(statement)
        cur.execute("USE shop")
        for n in range(3):  # one class, three events
            cur.execute("INSERT INTO orders (card, note, total)"
                        f" VALUES ('{card}', 'password={planted[0]}', {n})")
        cur.execute(
            "INSERT INTO orders (card, note, total) VALUES\n"
            f"  ('{planted[1]}', 'it\\'s\nover two lines', 1),\n"
            f"  (\"{planted[2]}\", \"she said 'no'\", 2),\n  ('x', NULL, 3)")
        cur.execute("SELECT LAST_INSERT_ID()")  # the next record's SET line says last_insert_id
        for n in (7, 8):
            cur.execute(
                "SELECT o.id, o.total  -- which orders\n"
                "  FROM orders AS o\n"
                f"  WHERE o.card = '{card}' /* the card; {planted[3]} */\n"
                f"    AND o.total > {n} AND o.id IN (1, 2, 3)\n"
                "  ORDER BY o.id DESC LIMIT 10")
        cur.execute(f"SELECT CAST('{planted[4]}' AS UNSIGNED) AS n, 1/0 AS z")  # warnings quote it
        cur.execute(f"SET @secret = '{planted[5]}'")
        cur.execute("PREPARE find FROM 'SELECT COUNT(*) FROM orders WHERE note = ?'")
        cur.execute("EXECUTE find USING @secret")
        cur.execute("DEALLOCATE PREPARE find")
        cur.execute("SELECT SLEEP(0.2)")
        cur.execute("ANALYZE TABLE orders")
        cur.execute("USE hr")
        cur.execute(f"INSERT INTO staff VALUES (1, 'ann', 'IDENTIFIED BY \\'{planted[6]}\\'')")
        cur.execute("UPDATE staff SET name = 'bob'\nWHERE id = 1")
        cur.execute("SELECT s.name FROM staff s JOIN shop.orders o ON o.id = s.id")
    _binary_prepared(connection, "SELECT id FROM shop.orders WHERE note = ?", planted[7])
    connection.close()
    # What the collector itself runs stays out of the log, so both sides hold the same.
    instance.sql("SET GLOBAL long_query_time = 1000")
    return planted + [card]


def _header_lines(text: str) -> list:
    return [line for line in text.splitlines()
            if line.startswith(("#", "use ", "SET timestamp=", "SET insert_id=", "SET last_insert_id="))]


def test_pt_query_digest_reads_the_bundles_slow_log_as_the_servers(slow_server, tmp_path):
    planted = _workload(slow_server)
    done, summary = collect_json("--host", "127.0.0.1", "--port", str(slow_server.port),
                                 "--user", "root", "--output", str(tmp_path), "--samples", "1")
    assert summary is not None, done.stderr
    entry = by_name(summary)["logs.slow_log"]
    assert entry["status"] == "ok", entry
    original = slow_server.datadir / "slow.log"
    written = original.read_text()
    assert all(secret in written for secret in planted)  # the workload did log them
    files = bundle_files(Path(summary["bundle"]))
    copy = tmp_path / "bundle-slow.log"
    copy.write_bytes(files["logs/slow.log"])
    text = copy.read_text()

    for member, data in files.items():
        for secret in planted:
            assert secret.encode() not in data, f"a planted secret is in {member}"
    assert lint_bytes("logs/slow.log", files["logs/slow.log"]) == []

    # Still a slow log: the server's header lines as written (a warning's quoted data
    # aside), then one statement line per record.
    expected = [re.sub(r"'.*'", "?", line) if re.match(r"# (Note|Warning|Error) [0-9]+ ", line)
                else line for line in _header_lines(written)]
    assert _header_lines(text) == expected
    records = sum(line.startswith("# User@Host: ") for line in text.splitlines())
    statements = [line for line in text.splitlines() if line not in _header_lines(text)][3:]
    assert len(statements) == records and all(s.endswith(";") for s in statements)

    theirs, ours = _pt_digest(original), _pt_digest(copy)
    assert "D41D8CD98F00B204E9800998ECF8427E" not in ours, "pt-query-digest found records without a query"
    assert ours == theirs
    assert sum(c[0] for c in ours.values()) == records
