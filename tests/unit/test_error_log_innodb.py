"""The error log's InnoDB deadlock reports (innodb_print_all_deadlocks=ON) lose statements
and record bytes as SHOW ENGINE INNODB STATUS does; every other line of the log stays.

The MariaDB sample is the layout MariaDB 10.11 wrote on this machine (a real run is in
tests/integration/test_error_log_deadlock_redaction.py); the MySQL 8 one is the layout of
its `[MY-012469] [InnoDB]` lines. Values are made per run."""

from __future__ import annotations

import io
import secrets

import pytest

from privacy.lint import lint_bytes
from privacy.redact import Redactor, kind_of

TS = "2026-12-01 21:09:07 5 [Note] InnoDB: "
MY = "2026-12-01T21:09:07.786346Z 0 [Note] [MY-012469] [InnoDB] "


def _values() -> dict:
    return {name: f"{name}-{secrets.token_hex(8)}" for name in ("email", "card", "set_a", "set_b", "note")}


def _field(n: int, value: str) -> str:
    return f" {n}: len {len(value)}; hex {value.encode().hex()}; asc {value};;"


def _mariadb(v: dict) -> str:
    email = v["email"] + "@example.invalid"
    record = "\n".join([
        "Record lock, heap no 2 PHYSICAL RECORD: n_fields 5; compact format; info bits 0",
        " 0: len 4; hex 80000001; asc     ;;", _field(3, email), _field(4, v["card"]), ""])
    locks = ("RECORD LOCKS space id 5 page no 3 n bits 320 index PRIMARY of table `shop`.`c` "
             "trx id 23 lock_mode X locks rec but not gap")
    return "\n".join([
        "2026-12-01 21:09:06 0 [Note] /usr/sbin/mariadbd: ready for connections.",
        "2026-12-01 21:09:07 5 [Note] InnoDB: Transactions deadlock detected, dumping detailed information.",
        TS, "*** (1) TRANSACTION:", "",
        "TRANSACTION 23, ACTIVE 1 sec starting index read",
        "mysql tables in use 1, locked 1",
        "LOCK WAIT 3 lock struct(s), heap size 1128, 2 row lock(s)",
        "MariaDB thread id 5, OS thread handle 140714786105024, query id 15 localhost 127.0.0.1 root "
        "Updating",
        f"UPDATE shop.c SET card='{v['set_a']}' WHERE id=2",
        TS + "*** WAITING FOR THIS LOCK TO BE GRANTED:", "", locks + " waiting", record,
        TS + "*** CONFLICTING WITH:", "", locks, record,
        TS, "*** (2) TRANSACTION:", "",
        "TRANSACTION 24, ACTIVE 1 sec starting index read",
        "MariaDB thread id 6, OS thread handle 140714785797824, query id 14 localhost 127.0.0.1 root "
        "Updating",
        f"UPDATE shop.c SET card='{v['set_b']}'", f" WHERE email='{email}' /* {v['note']}", " */",
        TS + "*** WAITING FOR THIS LOCK TO BE GRANTED:", "", locks + " waiting", record,
        TS + "*** WE ROLL BACK TRANSACTION (1)",
        "2026-12-01 21:09:08 7 [Warning] Aborted connection 7 to db: 'shop' user: 'app' host: 'web1'",
        "",
    ])


def _mysql8(v: dict) -> str:
    email = v["email"] + "@example.invalid"
    return "\n".join([
        "2026-12-01T21:09:07.786277Z 0 [Note] [MY-012468] [InnoDB] Transactions deadlock detected, "
        "dumping detailed information.",
        MY + "*** (1) TRANSACTION:",
        "TRANSACTION 246047, ACTIVE 7 sec starting index read",
        "mysql tables in use 1, locked 1",
        "LOCK WAIT 3 lock struct(s), heap size 1128, 2 row lock(s)",
        "MySQL thread id 8, OS thread handle 140023, query id 50 localhost root updating",
        f"update orders set note = '{v['note']}' where email = '{email}'",
        MY + "*** (1) HOLDS THE LOCK(S):",
        "RECORD LOCKS space id 2 page no 4 n bits 72 index PRIMARY of table `shop`.`orders` trx id "
        "246047 lock_mode X locks rec but not gap",
        "Record lock, heap no 2 PHYSICAL RECORD: n_fields 4; compact format; info bits 0",
        _field(0, email), _field(1, v["card"]),
        MY + "*** (2) TRANSACTION:",
        "TRANSACTION 246048, ACTIVE 5 sec starting index read",
        "MySQL thread id 9, OS thread handle 140024, query id 51 localhost root updating",
        f"INSERT INTO audit VALUES ('{v['set_b']}', 1)",
        MY + "*** WE ROLL BACK TRANSACTION (2)",
        "2026-12-01T21:09:08.000001Z 9 [Warning] [MY-010055] [Server] IP address '10.0.0.9' could "
        "not be resolved",
        "",
    ])


class _Trickle(io.RawIOBase):
    """A source that hands out `size` bytes per read, so blocks end all over the report."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size = data, size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        piece, self.data = self.data[:self.size], self.data[self.size:]
        return piece


def _redact(text: str, block: int = 0) -> tuple:
    redactor = Redactor()
    if not block:
        out = redactor.apply("logs/error.log", text.encode())
    else:
        sink = io.BytesIO()
        redactor.stream("logs/error.log", _Trickle(text.encode(), block), sink)
        out = sink.getvalue()
    return out.decode(), redactor.file_report("logs/error.log")


@pytest.mark.parametrize("layout", [_mariadb, _mysql8])
def test_deadlock_reports_lose_statements_and_records_and_keep_their_structure(layout):
    values = _values()
    text = layout(values)
    assert lint_bytes("logs/error.log", text.encode()), "the lint alone sees the record dumps"
    out, report = _redact(text)
    for value in values.values():
        assert value not in out, value.split("-")[0]
    assert "hex " not in out and "asc " not in out
    assert "Transactions deadlock detected" in out and "WE ROLL BACK TRANSACTION" in out
    assert "RECORD LOCKS space id" in out and "<redacted> row data" in out
    assert report["innodb_row_data"] >= 2 and report["statement_fingerprint"] >= 2
    # Lines outside the report are the log's own, untouched.
    assert out.splitlines()[-1] == text.splitlines()[-1]
    assert not lint_bytes("logs/error.log", out.encode())


def test_the_result_does_not_depend_on_where_blocks_end():
    values = _values()
    text = _mariadb(values)
    whole, _ = _redact(text)
    for block in (40, 97, 300, 1000):
        assert _redact(text, block)[0] == whole, block


def test_a_tail_cut_inside_a_report_is_still_reduced():
    values = _values()
    text = _mariadb(values)
    cut = text[text.index(TS + "*** CONFLICTING WITH:"):]
    out, _ = _redact(cut)
    for value in values.values():
        assert value not in out


def test_lines_that_look_like_innodb_s_own_inside_a_literal_stay_statement_text():
    token = secrets.token_urlsafe(18)
    forged = (f"UPDATE shop.c SET note='x\n*** (2) TRANSACTION: {token}\n{TS}*** CONFLICTING WITH:\n"
              f"2026-12-01 21:09:07 5 [Note] {token}\n------------\nFILE I/O {token}' WHERE id=1")
    text = "\n".join([
        f"{TS}Transactions deadlock detected, dumping detailed information.", TS,
        "*** (1) TRANSACTION:", "TRANSACTION 23, ACTIVE 1 sec starting index read",
        "MariaDB thread id 5, OS thread handle 1407, query id 15 localhost 127.0.0.1 root Updating",
        forged, TS + "*** WE ROLL BACK TRANSACTION (1)", ""])
    out, _ = _redact(text)
    assert token not in out
    assert "UPDATE shop.c SET note=? WHERE id=?" in out


def test_a_statement_cut_inside_its_literal_does_not_swallow_the_rest_of_the_log():
    values = _values()
    thread = "MariaDB thread id 5, OS thread handle 140714786105024, query id 15 localhost 127.0.0.1 root "
    start = f"INSERT INTO big VALUES ('{values['note']}', '"
    cut = start + "y" * (3071 - len(thread + "Updating") - 1 - len(start))  # MariaDB stops printing
    text = _mariadb(values).replace(f"UPDATE shop.c SET card='{values['set_a']}' WHERE id=2", cut)
    out, _ = _redact(text)
    for value in values.values():
        assert value not in out
    assert "INSERT INTO big VALUES (?, ?\n2026-12-01 21:09:07 5 [Note] InnoDB: *** WAITING" in out
    assert out.count("*** WAITING FOR THIS LOCK TO BE GRANTED:") == 2
    assert "Aborted connection 7" in out


def test_record_dumps_outside_deadlock_reports_go_too():
    secret = secrets.token_urlsafe(12)
    text = (f"2026-12-01 21:10:00 0 [ERROR] InnoDB: Record in index `PRIMARY` of table `shop`.`c` was "
            f"not found on update: TUPLE (info_bits=0, 2 fields): {{[4]    (0x80000001)}} at: "
            f"COMPACT RECORD(info_bits=0, 5 fields)\n"
            f" 3: len {len(secret)}; hex {secret.encode().hex()}; asc {secret};;\n"
            f"InnoDB: Page dump: len 16; hex {secret.encode().hex()}; asc {secret};\n")
    out, _ = _redact(text)
    assert secret not in out and secret.encode().hex() not in out


def test_error_logs_by_any_name_are_reduced():
    for path in ("logs/error.log", "logs/mysqld.err", "logs/host1.err", "logs/mariadb-error.log"):
        assert kind_of(path) == "errorlog", path


@pytest.mark.parametrize("hour", range(24))
def test_every_hour_of_the_day_as_each_server_prints_it(hour):
    """MariaDB pads the hour with a space (`2026-12-02  1:02:44`), MySQL with a zero: a
    report written between midnight and ten is reduced like any other."""
    values = _values()
    for text in (_mariadb(values).replace("2026-12-01 21:09:", f"2026-12-01 {hour:2d}:09:"),
                 _mysql8(values).replace("2026-12-01T21:09:", f"2026-12-01T{hour:02d}:09:")):
        out, report = _redact(text)
        for value in values.values():
            assert value not in out, value.split("-")[0]
        assert report["innodb_row_data"] >= 2 and report["statement_fingerprint"] >= 2
