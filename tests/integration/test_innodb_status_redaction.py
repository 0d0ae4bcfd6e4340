"""SHOW ENGINE INNODB STATUS quotes customer data: the statements of open, deadlocked and
foreign-key-failing transactions, and the records they lock, byte for byte. A real
deadlock, a real lock wait and a real foreign-key error on a private server; the bundle
keeps the monitor's structure and none of the values (generated at test time)."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time

import pymysql
import pytest

from tests import secretkit
from tests.helpers import bundle_files, collect_json, cross_deadlock


def _values() -> dict:
    return {name: f"{name}-{secrets.token_hex(8)}" for name in (
        "row_email", "row_card", "deadlock_a", "deadlock_b", "waiting", "fk_note", "comment")}


def _make_trouble(target, values) -> tuple:
    """Leave a deadlock and a foreign-key error in the monitor, and one transaction
    waiting for a lock; returns what must be closed afterwards."""
    target.sql(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.customer (id INT PRIMARY KEY, email VARCHAR(100), card VARCHAR(60))",
        f"INSERT INTO shop.customer VALUES (1, '{values['row_email']}', '{values['row_card']}'),"
        " (2, 'second@example.invalid', 'none')",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, cust INT, note VARCHAR(60),"
        " FOREIGN KEY (cust) REFERENCES shop.customer (id))",
    )
    first, second = target.connect(), target.connect()
    a, b = first.cursor(), second.cursor()
    a.execute("BEGIN")
    b.execute("BEGIN")
    a.execute("UPDATE shop.customer SET email = email WHERE id = 1")
    b.execute("UPDATE shop.customer SET email = email WHERE id = 2")
    errors = cross_deadlock(a, b, f"UPDATE shop.customer SET card = '{values['deadlock_b']}'\n"
                                  f"  WHERE id = 1 /* {values['comment']}\n */",
                            f"UPDATE shop.customer SET card = '{values['deadlock_a']}' WHERE id = 2")
    assert any(e.args[0] == 1213 for e in errors), errors  # ER_LOCK_DEADLOCK: a real one
    first.rollback()
    second.rollback()
    with pytest.raises(pymysql.IntegrityError):
        target.sql(f"INSERT INTO shop.orders VALUES (7, 99, '{values['fk_note']}')")
    # A lock wait that is still going on while mydiag collects.
    a.execute("BEGIN")
    a.execute("SELECT * FROM shop.customer WHERE id = 1 FOR UPDATE")
    waiter = threading.Thread(target=lambda: _quietly(
        b.execute, f"UPDATE shop.customer SET email = '{values['waiting']}' WHERE id = 1"))
    waiter.start()
    time.sleep(0.3)
    return first, second, waiter


def _quietly(call, *args) -> None:
    with contextlib.suppress(pymysql.MySQLError):
        call(*args)


def test_innodb_status_keeps_its_structure_and_loses_statements_and_records(private_server, tmp_path):
    values = _values()
    first, second, waiter = _make_trouble(private_server, values)
    try:
        raw = private_server.sql("SHOW ENGINE INNODB STATUS")[0][2]
        # The monitor itself quotes every planted value: this is what must not leak.
        assert values["row_email"] in raw and values["deadlock_b"] in raw and values["fk_note"] in raw
        assert values["waiting"] in raw
        defaults = private_server.defaults_file(tmp_path)
        done, summary = collect_json("--defaults-file", str(defaults), "--output", str(tmp_path / "out"),
                                     "--profile", "quick")
    finally:
        first.rollback()
        waiter.join(timeout=60)
        first.close()
        second.close()
    assert summary is not None, done.stderr
    files = bundle_files(summary["bundle"])
    status = files["mysql/innodb_status.txt"].decode()
    for value in values.values():
        for form in secretkit.forms(value):
            assert all(form not in blob for blob in files.values()), value
        assert value not in done.stdout + done.stderr
    # The structure an engineer reads is all there.
    for landmark in ("LATEST DETECTED DEADLOCK", "LATEST FOREIGN KEY ERROR", "TRANSACTIONS",
                     "*** WE ROLL BACK TRANSACTION", "RECORD LOCKS space id", "PHYSICAL RECORD",
                     "TRX HAS BEEN WAITING", "END OF INNODB MONITOR OUTPUT"):
        assert landmark in status, landmark
    # Statements as fingerprints, records as lengths.
    assert "SET card = ? WHERE id = ?" in status
    assert "INSERT INTO shop.orders VALUES (?+)" in status
    # The locked row's e-mail column (field 3 after id and InnoDB's two system columns).
    assert f" 3: len {len(values['row_email'])}; <redacted> row data" in status
    assert "hex " not in status and "asc " not in status
    report = json.loads(files["manifest.json"])["redaction"]
    assert report["innodb_row_data"] > 0 and report["statement_fingerprint"] > 0
