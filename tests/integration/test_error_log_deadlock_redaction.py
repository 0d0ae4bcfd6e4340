"""With innodb_print_all_deadlocks=ON the server writes every deadlock into its error log:
both statements with their literals and the locked records byte for byte. A real
deadlock between two connections on a private MariaDB, whose rows and statements hold
tokens and an e-mail made for the run (one statement's literal also holds lines shaped
like the report's own and like log lines); collected with the real collector, the
bundle keeps the report's structure and none of the values."""

from __future__ import annotations

import json
import secrets

import pytest

from tests import secretkit
from tests.conftest import Target, _start
from tests.helpers import bundle_files, by_name, collect_json, cross_deadlock


@pytest.fixture()
def deadlock_server(tmp_path_factory):
    """A server of this test's own that prints every deadlock into its error log (the
    folder name is neutral: the log quotes its paths, and the lint reads them)."""
    instance = _start(tmp_path_factory, "dlsrv", "--innodb-print-all-deadlocks=ON")
    yield Target("127.0.0.1", instance.port, "root", "", instance)
    instance.kill()


def _values() -> dict:
    return {
        "email": f"{secrets.token_hex(6)}@example.invalid",
        "row_token": "mdu_" + secrets.token_urlsafe(32),
        "card": secrets.token_hex(10),
        "set_a": secrets.token_urlsafe(15),
        "set_b": secrets.token_urlsafe(15),
        "forged": secrets.token_urlsafe(15),
    }


def _deadlock(target: Target, v: dict) -> None:
    target.sql(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.customer (id INT PRIMARY KEY, email VARCHAR(100), token VARCHAR(80),"
        " card VARCHAR(60), note TEXT)",
        f"INSERT INTO shop.customer VALUES (1, '{v['email']}', '{v['row_token']}', '{v['card']}', ''),"
        " (2, 'second@example.invalid', 'none', 'none', '')",
    )
    first, second = target.connect(), target.connect()
    a, b = first.cursor(), second.cursor()
    errors: list = []
    try:
        a.execute("BEGIN")
        b.execute("BEGIN")
        a.execute("UPDATE shop.customer SET note = note WHERE id = 1")
        b.execute("UPDATE shop.customer SET note = note WHERE id = 2")
        # Lines shaped like the report's own and like the log's, inside a literal.
        forged = (f"x\n*** (2) TRANSACTION: {v['forged']}\n"
                  f"2026-12-01 21:09:07 5 [Note] InnoDB: *** CONFLICTING WITH: {v['forged']}\n"
                  f" 3: len 4; hex 41; asc {v['forged']};;\nRECORD LOCKS space id 1 {v['forged']}")
        errors += cross_deadlock(a, b, f"UPDATE shop.customer SET note = '{forged}',\n card = '{v['set_b']}'"
                                       f" WHERE email = '{v['email']}'",
                                 f"UPDATE shop.customer SET card = '{v['set_a']}' WHERE id = 2")
    finally:
        first.rollback()
        second.rollback()
        first.close()
        second.close()
    assert any(e.args[0] == 1213 for e in errors), errors  # ER_LOCK_DEADLOCK: a real one


def test_deadlock_reports_in_the_error_log_keep_their_structure_and_lose_the_data(deadlock_server, tmp_path):
    values = _values()
    _deadlock(deadlock_server, values)
    written = deadlock_server.instance.error_log.read_text()
    # The server quotes every planted value: this is what must not leak.
    assert "Transactions deadlock detected" in written
    for name in ("email", "row_token", "card", "set_b", "forged"):
        # InnoDB prints the first 30 bytes of a long field.
        assert values[name][:30] in written, name
    defaults = deadlock_server.defaults_file(tmp_path)
    done, summary = collect_json("--defaults-file", str(defaults), "--output", str(tmp_path / "out"),
                                 "--profile", "quick")
    assert summary is not None, done.stderr
    assert by_name(summary)["logs.error_log"]["status"] == "ok"
    files = bundle_files(summary["bundle"])
    log = files["logs/error.log"].decode()
    for value in values.values():
        for form in secretkit.forms(value[:30]):
            assert all(form not in blob for blob in files.values()), "a planted value survived"
        assert value[:30] not in done.stdout + done.stderr
    for landmark in ("InnoDB: Transactions deadlock detected, dumping detailed information.",
                     "*** (1) TRANSACTION:", "*** (2) TRANSACTION:",
                     "*** WAITING FOR THIS LOCK TO BE GRANTED:",
                     "*** WE ROLL BACK TRANSACTION", "RECORD LOCKS space id", "PHYSICAL RECORD",
                     "MariaDB thread id", "ready for connections"):
        assert landmark in log, landmark
    assert f" 3: len {len(values['email'])}; <redacted> row data" in log  # id, trx id, roll ptr, email
    assert "UPDATE shop.customer SET card = ? WHERE id = ?" in log
    assert "UPDATE shop.customer SET note = ?, card = ? WHERE email = ?" in log
    assert "hex " not in log and "asc " not in log
    entry = next(f for f in json.loads(files["manifest.json"])["files"] if f["path"] == "logs/error.log")
    assert entry["redactions"]["innodb_row_data"] > 0
    assert entry["redactions"]["statement_fingerprint"] >= 2
