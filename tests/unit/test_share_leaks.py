"""The share leak scan: each original is found in every encoding it can take in a file (as
written, any case, SQL-escaped, JSON-escaped, hex either way, base64 at every alignment,
URL-encoded); names are whole tokens in SQL (`stat_name` is not the column `name`, a
pseudonym's hex is not a name) and substrings elsewhere; the message names the file and the
kind, never the value; the statement splitter never ends a statement inside a string, a
name or a comment; and the bundle's hosts, addresses and users are needles."""

from __future__ import annotations

import base64
import json
import secrets
import urllib.parse

import pytest

from report.model import Bundle
from report.share import leaks

SECRET = f"Zoë.O'Brien\\{secrets.token_hex(3)}@acme-{secrets.token_hex(2)}.example"
TABLE = f"acme_customers_{secrets.token_hex(3)}"


VALUE = leaks.Needle(SECRET, "value", identifier=False)


def _found(files):
    return leaks.scan(files, [VALUE]).leaks


@pytest.mark.parametrize("form, encoded", [
    ("as written", SECRET),
    ("as written", SECRET.upper()),
    ("SQL-escaped", SECRET.replace("\\", "\\\\").replace("'", "''")),
    ("SQL-escaped", SECRET.replace("\\", "\\\\").replace("'", "\\'")),
    ("JSON-escaped", json.dumps(SECRET)[1:-1]),
    ("hex", "0x" + SECRET.encode().hex().upper()),
    ("hex", "X'" + SECRET.encode().hex() + "'"),
    ("URL-encoded", urllib.parse.quote(SECRET, safe="")),
    ("URL-encoded", urllib.parse.quote_plus(SECRET.lower(), safe="")),
], ids=["written", "upper", "sql-doubled", "sql-backslash", "json", "hex-0x", "hex-x", "url",
        "url-plus-lower"])
def test_every_encoding_of_a_value_is_found(form, encoded):
    for name in ("notes.md", "repro.sql", "plan.json"):
        found = _found({name: f"before {encoded} after".encode()})
        assert found, (form, name)
        assert found[0].file == name
        assert SECRET not in str(found[0]) and SECRET.lower() not in str(found[0]).lower()


@pytest.mark.parametrize("shift", [0, 1, 2])
def test_base64_inside_a_longer_blob_is_found_at_every_alignment(shift):
    blob = base64.b64encode(b"x" * shift + SECRET.encode() + b"tail").decode()
    assert any(leak.form == "base64" for leak in _found({"repro.sql": f"SELECT '{blob}'".encode()}))


def test_the_clean_file_has_no_finding():
    assert _found({"repro.sql": b"SELECT `t_0123456789` FROM `s_abcdefabcd`", "README.md": b"nothing"}) == []


def test_names_are_whole_tokens_in_sql_and_substrings_elsewhere():
    name = leaks.Needle("name", "column name")
    sql = b"REPLACE INTO mysql.innodb_index_stats (stat_name, index_name) VALUES ('a', 'b')"
    assert leaks.scan({"repro.sql": sql}, [name]).leaks == []
    found = leaks.scan({"repro.sql": b"SELECT `Name` FROM t_0123456789"}, [name]).leaks
    assert found and found[0].form == "a whole SQL name"
    # inside a string or a comment of SQL, and anywhere in other files, a substring
    assert leaks.scan({"repro.sql": b"SELECT 'the_name_here'"}, [name]).leaks
    assert leaks.scan({"repro.sql": b"SELECT 1 -- surname\n"}, [name]).leaks
    assert leaks.scan({"README.md": b"surnames"}, [name]).leaks


def test_short_names_are_whole_words_and_pseudonym_hex_is_not_a_name():
    short = leaks.Needle("cu", "alias name")
    assert leaks.scan({"README.md": b"a cucumber"}, [short]).leaks == []
    assert leaks.scan({"README.md": b"alias cu here"}, [short]).leaks
    hexy = leaks.Needle("cafe", "table name")
    assert leaks.scan({"plan.json": b'{"table_name": "t_1cafe00a3b"}'}, [hexy]).leaks == []
    assert leaks.scan({"plan.json": b'{"table_name": "cafe_t"}'}, [hexy]).leaks


def test_quoted_names_with_doubled_backquotes_and_unicode_are_tokens():
    odd = leaks.Needle("we`ird Ünïcode", "table name")
    assert leaks.scan({"repro.sql": "SELECT * FROM `WE``IRD ÜNÏCODE`".encode()}, [odd]).leaks


def test_what_cannot_identify_a_customer_is_not_a_needle():
    scanner = leaks.Scanner([leaks.Needle("x", "alias name"), leaks.Needle("2000", "value", False),
                             leaks.Needle("select", "column name"),
                             leaks.Needle("12345678901", "value", False)])
    assert scanner.unscanned == 3
    assert scanner.scan({"README.md": b"call 12345678901"}).leaks


def test_the_summary_names_files_and_kinds_only():
    scan = leaks.scan({"a.sql": f"SELECT `{TABLE}`".encode(), "b.md": TABLE.encode()},
                      [leaks.Needle(TABLE, "table name")])
    assert not scan.clean
    assert "a.sql: a table name" in scan.summary() and "b.md: a table name" in scan.summary()
    assert TABLE not in scan.summary()


def test_statements_are_split_outside_strings_names_and_comments():
    text = "SET a = 'x;y';\n-- c; d\nSELECT `a;b` FROM t /* ; */;\nSELECT \"q\\\";\" ; # e;\nSELECT 1"
    assert leaks.statements(text) == ["SET a = 'x;y'", "SELECT `a;b` FROM t", 'SELECT "q\\";"', "SELECT 1"]


def test_the_bundles_hosts_addresses_and_users_are_needles():
    host = f"db-{secrets.token_hex(3)}.corp.example"
    manifest = {"host": host}
    accounts = {"accounts": [{"user": f"app_{secrets.token_hex(2)}", "host": "10.1.2.3"},
                             {"user": "root", "host": "localhost"}]}
    bundle = Bundle({"manifest.json": json.dumps(manifest).encode(),
                     "mysql/accounts.json": json.dumps(accounts).encode(),
                     "os/host.json": json.dumps({"hostname": host, "addresses": ["192.0.2.7", "127.0.0.1"]}
                                                ).encode()}, manifest)
    needles = leaks.bundle_needles(bundle)
    texts = {n.text: n.kind for n in needles}
    assert texts[host] == "host name" and texts[host.split(".")[0]] == "host name"
    assert texts[accounts["accounts"][0]["user"]] == "user name"
    assert texts["10.1.2.3"] == "IP address" and texts["192.0.2.7"] == "IP address"
    assert "root" not in texts and "127.0.0.1" not in texts
