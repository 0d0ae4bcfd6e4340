"""InnoDB monitor output: statements and record bytes go, InnoDB's own lines stay.

The MySQL 8.0 sample below is in the layout MySQL prints (a deadlock with its
`HOLDS THE LOCK(S)` part, a waiting transaction); MariaDB's is exercised against a real
server in tests/integration/test_innodb_status_redaction.py. Values are made per run."""

from __future__ import annotations

import random
import secrets
from collections import Counter

import pytest

from privacy.innodb_status import InnodbStatus
from privacy.redact import Redactor, kind_of

LOCKS = ("RECORD LOCKS space id 2 page no 4 n bits 72 index PRIMARY of table `bank`.`accounts` "
         "trx id 1801 lock_mode X locks rec but not gap")


def _sample(v: dict) -> str:
    hexed = v["email"].encode().hex()
    return f"""
=====================================
2026-11-27 10:00:00 139872 INNODB MONITOR OUTPUT
=====================================
----------
SEMAPHORES
----------
OS WAIT ARRAY INFO: reservation count 9
------------------------
LATEST DETECTED DEADLOCK
------------------------
2026-11-27 09:59:58 139871
*** (1) TRANSACTION:
TRANSACTION 1801, ACTIVE 4 sec starting index read
mysql tables in use 1, locked 1
LOCK WAIT 3 lock struct(s), heap size 1128, 2 row lock(s), undo log entries 1
MySQL thread id 12, OS thread handle 139870, query id 88 localhost app updating
update accounts set balance = balance - {v['amount']}
 where email = '{v['email']}'
*** (1) HOLDS THE LOCK(S):
{LOCKS}
Record lock, heap no 2 PHYSICAL RECORD: n_fields 4; compact format; info bits 0
 0: len {len(v['email'])}; hex {hexed}; asc {v['email']};;
 1: len 6; hex 000000000709; asc       ;;
 2: SQL NULL;
 3: len 4; hex 80000001; asc     ;;

*** (1) WAITING FOR THIS LOCK TO BE GRANTED:
{LOCKS} waiting
Record lock, heap no 3 PHYSICAL RECORD: n_fields 4; compact format; info bits 0
 0: len 8; hex {v['other'].encode().hex()}; asc {v['other']};;

*** (2) TRANSACTION:
TRANSACTION 1802, ACTIVE 3 sec starting index read
mysql tables in use 1, locked 1
LOCK WAIT 3 lock struct(s), heap size 1128, 2 row lock(s), undo log entries 1
MySQL thread id 13, OS thread handle 139869, query id 89 localhost app updating
INSERT INTO audit VALUES ('{v['note']}', 1), ('{v['note']}', 2)
*** WE ROLL BACK TRANSACTION (2)
------------
TRANSACTIONS
------------
Trx id counter 1810
Purge done for trx's n:o < 1800 undo n:o < 0 state: running but idle
History list length 3
LIST OF TRANSACTIONS FOR EACH SESSION:
---TRANSACTION 421, not started
0 lock struct(s), heap size 1128, 0 row lock(s)
---TRANSACTION 1805, ACTIVE 9 sec fetching rows
mysql tables in use 1, locked 1
MySQL thread id 14, OS thread handle 139868, query id 95 localhost app Sending data
SELECT * FROM accounts WHERE token = '{v['token']}' FOR UPDATE
Trx read view will not see trx with id >= 1806, sees < 1801
--------
FILE I/O
--------
I/O thread 0 state: waiting for completed aio requests (insert buffer thread)
----------------------------
END OF INNODB MONITOR OUTPUT
============================
"""


def _values() -> dict:
    return {"email": f"{secrets.token_hex(5)}@example.invalid", "amount": str(random.randint(10**6, 10**7)),
            "other": secrets.token_hex(4), "note": secrets.token_hex(9), "token": secrets.token_urlsafe(12)}


def _reduce(text: str, cuts=()) -> tuple:
    counts: Counter = Counter()
    status = InnodbStatus(lambda rule, n: counts.update({rule: n}))
    lines = text.splitlines(keepends=True)
    out, start = [], 0
    for cut in sorted(set(cuts)) + [len(lines)]:
        out.append(status.block("".join(lines[start:cut])))
        start = cut
    tail: list = []
    status.flush(tail)
    return "".join(out + tail), counts


def test_mysql8_deadlock_and_transactions_lose_values_and_keep_structure():
    values = _values()
    text = _sample(values)
    out, counts = _reduce(text)
    for value in values.values():
        assert value not in out
    assert values["email"].encode().hex() not in out
    kept = [line for line in text.splitlines()
            if not line.startswith((" 0: len", " 1: len", " 3: len"))
            and not any(v in line for v in values.values())
            and not line.startswith(" where")]
    assert all(line in out.splitlines() for line in kept)
    assert "update accounts set balance = balance - ? where email = ?" in out
    assert "INSERT INTO audit VALUES (?+)" in out
    assert "SELECT * FROM accounts WHERE token = ? FOR UPDATE" in out
    assert f" 0: len {len(values['email'])}; <redacted> row data" in out
    assert " 2: SQL NULL;" in out
    assert counts == {"innodb_row_data": 4, "statement_fingerprint": 3}
    # Outside the three sections nothing changes.
    assert "OS WAIT ARRAY INFO: reservation count 9" in out
    assert "I/O thread 0 state: waiting for completed aio requests (insert buffer thread)" in out


def test_the_result_does_not_depend_on_where_blocks_end():
    text = _sample(_values())
    whole, _ = _reduce(text)
    count = len(text.splitlines())
    rng = random.Random(7)
    for _ in range(30):
        cuts = rng.sample(range(1, count), rng.randint(1, 8))
        assert _reduce(text, cuts)[0] == whole


def test_an_unknown_line_in_those_sections_is_treated_as_statement_text():
    secret = secrets.token_hex(8)
    text = ("------------\nTRANSACTIONS\n------------\n"
            f"Some new InnoDB line with '{secret}'\n--------\nFILE I/O\n--------\n")
    out, _ = _reduce(text)
    assert secret not in out and "Some new InnoDB line with ?" in out


def test_the_pipeline_applies_it_to_the_innodb_status_member_only():
    values = _values()
    text = _sample(values).encode()
    assert kind_of("mysql/innodb_status.txt") == "innodb"
    assert kind_of("logs/error.log") == "errorlog"  # its deadlock reports: test_error_log_innodb
    redactor = Redactor()
    assert values["email"].encode() not in redactor.apply("mysql/innodb_status.txt", text)
    assert values["email"].encode() in redactor.apply("notes/innodb.txt", text)


@pytest.mark.parametrize("forged", [
    "*** (2) TRANSACTION: {t}",
    "------------\nFILE I/O\n------------\nI/O thread {t}",
    "RECORD LOCKS space id 1 page no 2 n bits 8 index {t}",
    "---TRANSACTION 9, ACTIVE 1 sec {t}",
    " 3: len 4; hex 41; asc {t};;",
])
def test_lines_that_look_like_innodb_s_own_inside_a_literal_stay_statement_text(forged):
    token, values = secrets.token_urlsafe(18), _values()
    statement = f"SELECT * FROM accounts WHERE token = '{values['token']}' FOR UPDATE"
    literal = "SELECT * FROM accounts WHERE note = 'x\n" + forged.format(t=token) + "\n' FOR UPDATE"
    out, _ = _reduce(_sample(values).replace(statement, literal))
    assert token not in out
    assert "SELECT * FROM accounts WHERE note = ? FOR UPDATE" in out
    assert "END OF INNODB MONITOR OUTPUT" in out


@pytest.mark.parametrize("flavor,printed", [("MySQL", 1023), ("MariaDB", 3071)])
def test_a_statement_cut_inside_its_literal_ends_where_innodb_stops_printing(flavor, printed):
    values = _values()
    thread = "MySQL thread id 14, OS thread handle 139868, query id 95 localhost app Sending data"
    statement = f"SELECT * FROM accounts WHERE token = '{values['token']}' FOR UPDATE"
    start = f"INSERT INTO big VALUES ('{values['note']}', '"
    cut = start + "y" * (printed - len(thread) - 1 - len(start))  # where InnoDB stops printing
    text = _sample(values).replace(statement, cut).replace(thread, thread.replace("MySQL", flavor))
    out, _ = _reduce(text)
    for value in values.values():
        assert value not in out
    assert "INSERT INTO big VALUES (?, ?\nTrx read view will not see" in out
    assert "FILE I/O" in out and "END OF INNODB MONITOR OUTPUT" in out
