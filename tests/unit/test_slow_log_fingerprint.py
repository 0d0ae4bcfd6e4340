"""The slow log keeps its headers and loses every literal."""

from __future__ import annotations

import secrets

from collectors.logs.slow_log import fingerprint_slow_log


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
