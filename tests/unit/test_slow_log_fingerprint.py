"""The slow log keeps its headers and loses every literal."""

from __future__ import annotations

import io
import re
import secrets

import pytest

from collectors.logs.slow_log import fingerprint_slow_log
from privacy.redact import redact_stream
from privacy.slowlog import UNTERMINATED, SlowLogStatements


def _entry(literal: str, number: int) -> str:
    return (
        "# Time: 240105 10:00:01\n"
        "# User@Host: app[app] @ web1 [10.0.0.5]\n"
        "# Thread_id: 42  Schema: shop  QC_hit: No\n"
        "# Query_time: 2.000123  Lock_time: 0.000010  Rows_sent: 1  Rows_examined: 90000\n"
        "# Rows_affected: 0  Bytes_sent: 120\n"
        "use shop;\n"
        "SET timestamp=1704448801;\n"
        f"SELECT * FROM orders\n  WHERE card = '{literal}'\n  AND total > {number};\n"
    )


def test_headers_stay_and_statements_become_fingerprints():
    literal, number = f"card-{secrets.token_hex(8)}", 400000 + secrets.randbelow(99999)
    banner = ("/usr/sbin/mariadbd, Version: 10.11.6-MariaDB-log (Debian). started with:\n"
              "Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock\n"
              "Time                 Id Command    Argument\n")
    text, statements, dropped = fingerprint_slow_log(banner + _entry(literal, number) * 2)
    assert literal not in text and str(number) not in text
    # `use db;` and `SET timestamp=…;` are the server's own lines: they stay as written.
    assert statements == 2 and dropped == 0
    lines = text.splitlines()
    assert lines[:3] == banner.splitlines()
    assert lines.count("# User@Host: app[app] @ web1 [10.0.0.5]") == 2
    assert lines.count("# Query_time: 2.000123  Lock_time: 0.000010  Rows_sent: 1  Rows_examined: 90000") == 2
    assert lines.count("SELECT * FROM orders WHERE card = ? AND total > ?;") == 2
    assert lines.count("SET timestamp=1704448801;") == 2 and "use shop;" in lines


def test_a_cut_first_entry_is_dropped_not_shown_half():
    literal = secrets.token_hex(8)
    cut = f"  WHERE secret_column = '{literal}'\n  AND x = 1;\n" + _entry("a", 1)
    text, statements, dropped = fingerprint_slow_log(cut, cut=True)
    assert literal not in text and dropped == 2
    assert text.startswith("# Time: 240105 10:00:01\n")


def test_a_comment_line_inside_a_statement_is_not_taken_for_a_header():
    literal = secrets.token_hex(8)
    text, _, _ = fingerprint_slow_log(
        f"# Time: 240105 10:00:01\nSELECT 1\n# password: {literal}\nFROM dual;\n")
    assert literal not in text
    assert text.splitlines() == ["# Time: 240105 10:00:01", "SELECT ? FROM dual;"]


# --- header-looking lines inside a statement -----------------------------------------------


#: Lines a server writes between records, as they could stand inside a literal.
FORGED_HEADERS = [
    "# Time: {t}", "# Time: 240105 10:00:02", "# User@Host: {t}[{t}] @ web1 [10.0.0.5]",
    "# Query_time: 1.0  Lock_time: {t}", "# Start: {t}", "# Id: {t}", "# Thread_id: 9  Schema: {t}",
    "SET timestamp={t};", "SET timestamp=1704448802;", "use {t};",
    "/usr/sbin/mariadbd, Version: {t} started with:",
    "#", "# Warnings", "# Warning 1292 Truncated incorrect INTEGER value: {t}", "# Note 1003 {t}",
    "# explain: 1\tSIMPLE\t{t}\tALL", "# administrator command: Quit;",
    "SET last_insert_id=5,insert_id=7,timestamp=1704448802;",
]
#: Ways to hold those lines inside one statement the server logs as one record; the last
#: ones hold them as code (an identifier, SQL after a `#` comment), which a fingerprint
#: keeps: those must only never come out as header lines.
HOLDERS = [
    ("single quotes", "SELECT 'a\n{lines}\nb' AS note;"),
    ("double quotes", 'SELECT "a\n{lines}\nb" AS note;'),
    ("doubled quote", "SELECT 'it''s\n{lines}\n' AS note;"),
    ("escaped quote", "SELECT 'a\\'\n{lines}\n' AS note;"),
    ("a semicolon before", "SELECT 'a;\n{lines}\nb;' AS note;"),
    ("block comment", "SELECT 1 /* a;\n{lines}\n*/ AS note;"),
    ("no backslash escapes", "SELECT 'C:\\' AS p, 'x;\n{lines}\n' AS note;"),  # on such a server
    ("nbsp is no comment", "SELECT 1 --\u00a0'x;\n{lines}\n' AS note;"),
    ("backticks", "SELECT 1 AS `a;\n{lines}\n`;"),
    ("a # comment line", "SELECT 1\n{lines}\nFROM dual;"),
]
_AS_CODE = ("backticks", "a # comment line")


def _record(statement: str) -> str:
    return ("# Time: 240105 10:00:01\n# User@Host: app[app] @ web1 [10.0.0.5]\n"
            "# Query_time: 2.000123  Lock_time: 0.000010  Rows_sent: 1  Rows_examined: 9\n"
            f"SET timestamp=1704448801;\n{statement}\n")


_CASES = [(name, holder, forged) for name, holder in HOLDERS for forged in FORGED_HEADERS
          if name not in _AS_CODE or forged.startswith("#")]


@pytest.mark.parametrize("name,holder,forged", _CASES, ids=[f"{n}: {f}" for n, _, f in _CASES])
def test_header_lines_inside_a_statement_never_leave_as_headers(name, holder, forged):
    token = secrets.token_urlsafe(12)
    forged_lines = [forged.format(t=token) for _ in range(2)]
    log = _record(holder.format(lines="\n".join(forged_lines))) + _entry("after", 7)
    escapes = name != "no backslash escapes"
    collected = fingerprint_slow_log(log, backslash_escapes=escapes)[0]
    cut = fingerprint_slow_log(log, cut=True, backslash_escapes=escapes)[0]
    for text in (collected, _pipeline(collected), cut) + ((_pipeline(log),) if escapes else ()):
        lines = text.splitlines()
        # A strict `# Time:` line carries nothing, and may end a quote that never closes.
        strict = re.fullmatch(r"# Time: [0-9 :]+", forged_lines[0])
        assert strict or not set(forged_lines) & set(lines), "a statement's line came out as a header"
        assert name in _AS_CODE or token not in text
        # The record after it is still read as one.
        assert "SELECT * FROM orders WHERE card = ? AND total > ?;" in lines
        assert strict or lines.count("# User@Host: app[app] @ web1 [10.0.0.5]") >= 1


def _pipeline(log: str, size: int = 0) -> str:
    if size:
        splitter = SlowLogStatements(lambda rule, n: None)
        starts = _line_cuts(log, size) + [len(log)]
        out = [splitter.block(log[a:b]) for a, b in zip(starts, starts[1:])]
        splitter.flush(out)
        return "".join(out)
    out = io.BytesIO()
    redact_stream(io.BytesIO(log.encode()), out, statements=True)
    return out.getvalue().decode()


def _line_cuts(log: str, size: int):
    """Start offsets of blocks of about `size` that end at line ends, as the pipeline cuts."""
    starts, pos = [], 0
    while pos < len(log):
        starts.append(pos)
        end = log.find("\n", pos + size)
        pos = len(log) if end < 0 else end + 1
    return starts


def test_the_split_does_not_depend_on_where_blocks_end():
    token = secrets.token_urlsafe(12)
    log = (_record(f"SELECT 'x;\n# User@Host: {token}[x] @ h []\n' AS a;")
           + _record(f"SELECT 'unterminated {token};") + _entry("z", 1) * 3)
    whole = _pipeline(log)
    assert token not in whole
    for size in (1, 17, 64, 200):
        assert _pipeline(log, size) == whole, size


def test_a_quote_that_never_closes_ends_at_the_next_strict_time_line():
    token, after = secrets.token_urlsafe(12), secrets.token_hex(6)
    log = (_record(f"SELECT 'unterminated {token};")  # the server logs syntax errors too
           + "# User@Host: app[app] @ web1 [10.0.0.5]\n# Query_time: 1.0  Lock_time: 0.0\n"
           f"SET timestamp=1704448801;\nSELECT '{after}';\n" + _entry("x", 1))
    text, statements, _ = fingerprint_slow_log(log)
    assert token not in text and after not in text
    lines = text.splitlines()
    # The record after the next `# Time:` is read again, its headers cut to numbers and keys:
    # they might still have been the literal's.
    assert lines.count("# Time: 240105 10:00:01") == 2
    assert "# User@Host: ?[?] @ ? [?]" in lines
    assert "SELECT ?" + UNTERMINATED in lines
    assert "SELECT * FROM orders WHERE card = ? AND total > ?;" in lines


def test_a_real_trailing_comment_still_ends_its_record():
    text, statements, _ = fingerprint_slow_log(_record("SELECT 1 -- a comment;") + _entry("x", 2))
    assert statements == 2
    assert text.splitlines().count("# User@Host: app[app] @ web1 [10.0.0.5]") == 2


def _verbose_record(statement: str, secret: str) -> str:
    """A record as `log_slow_verbosity=query_plan,explain,innodb,warnings` writes it."""
    return ("# Time: 240105 10:00:01\n# User@Host: app[app] @ web1 [10.0.0.5]\n"
            "# Thread_id: 42  Schema: shop  QC_hit: No\n"
            "# Query_time: 2.000123  Lock_time: 0.000010  Rows_sent: 1  Rows_examined: 9\n"
            "# Rows_affected: 0  Bytes_sent: 120\n"
            "# Pages_accessed: 1  Pages_read: 0  Pages_prefetched: 0  Pages_updated: 0  Old_rows_read: 0\n"
            "# Tmp_tables: 1  Tmp_disk_tables: 0  Tmp_table_sizes: 0\n"
            "# Full_scan: Yes  Full_join: No  Tmp_table: Yes  Tmp_table_on_disk: No\n"
            "#\n# explain: id\tselect_type\ttable\ttype\tpossible_keys\tkey\tkey_len\tref\trows\n"
            "# explain: 1\tSIMPLE\torders\tALL\tNULL\tNULL\tNULL\tNULL\t3\n#\n"
            "# Warnings\n"
            f"# Warning 1292 Truncated incorrect INTEGER value: '{secret}'\n"
            f"# Warning 1062 Duplicate entry '{secret}' for key 'PRIMARY'\n"
            "# Note 1003 a note\n"
            "use `shop`;\n"
            "SET last_insert_id=5,insert_id=7,timestamp=1704448801;\n"
            f"{statement}\n")


#: Lines that come between records or in a record's header, besides `# Key: value` lines.
VERBOSE_HEADERS = ("#", "# Warnings", "# explain:", "SET last_insert_id=", "use `shop`;", "# Note")


@pytest.mark.parametrize("statement", [
    "SELECT * FROM orders\n  WHERE card = '{s}';",
    "INSERT INTO orders VALUES (1, '{s}'),\n  (2, 'it\\'s'), (3, \"x\");",
    "SELECT 1 -- {s};",
])
def test_every_header_line_of_a_verbose_record_stays_a_header_line(statement):
    secret = secrets.token_urlsafe(12)
    records = [_verbose_record(statement.format(s=secret), secret) for _ in range(2)]
    log = records[0] + "# User@Host: app[app] @ web1 [10.0.0.5]\n# Query_time: 1.0  Lock_time: 0.0\n" \
        "# administrator command: Quit;\n" + records[1]
    for text in (fingerprint_slow_log(log)[0], _pipeline(log), _pipeline(fingerprint_slow_log(log)[0])):
        assert secret not in text
        lines = text.splitlines()
        original = log.splitlines()
        # Each header line as the server wrote it, in its place, but for a warning's data.
        headers = [line for line in original if line.startswith(("#", "SET ", "use "))]
        kept = [line for line in lines if line.startswith(("#", "SET ", "use "))]
        assert [re.sub(r"'.*'", "?", h) if h.startswith("# Warning ") else h for h in headers] == kept
        assert "# Warning 1062 Duplicate entry ?" in lines
        # One statement line per record, ending the record, never joined to a header.
        statements = [line for line in lines if not line.startswith(("#", "SET ", "use "))]
        assert len(statements) == 2 and all(s.endswith(";") and "SET " not in s for s in statements)
        assert lines.index("# administrator command: Quit;") + 1 == lines.index("# Time: 240105 10:00:01", 1)


def test_a_multi_row_insert_keeps_its_rows_for_pt_query_digest():
    secret = secrets.token_hex(8)
    log = _record(f"INSERT INTO t (a, b) VALUES\n  (1, '{secret}'),\n  (2, 'it\\'s'),\n  (3, NULL);")
    text = fingerprint_slow_log(log)[0]
    assert secret not in text
    assert "INSERT INTO t (a, b) VALUES (?+), (?+), (?+);" in text.splitlines()
