"""The writer's guarantees: per-file counts, a clean manifest, pseudonyms, the lint, nothing left on "no"."""

from __future__ import annotations

import io
import json
import secrets

import pytest

from bundle.manifest import CollectorEntry, Manifest
from bundle.reader import members
from bundle.writer import BundleWriter
from privacy.lint import SecretFindings, lint_line, random_looking
from privacy.pseudonym import Pseudonymizer, PseudonymStore, parse_kinds
from privacy.redact import Redactor


def _manifest(**kwargs) -> Manifest:
    manifest = Manifest(host="db-primary-07", profile="standard", started="2026-01-01T00:00:00Z",
                        finished="2026-01-01T00:00:05Z", **kwargs)
    return manifest


def _bundle(path) -> dict:
    return {info.name: handle.read() for info, handle in members(path) if handle is not None}


def _hidden(secret: str, blob: bytes) -> bool:
    return secret.encode() not in blob


def test_per_file_counts_and_the_report_never_hold_values(tmp_path):
    secret = secrets.token_urlsafe(16)
    writer = BundleWriter(tmp_path)
    writer.add("config/files/etc/my.cnf", f"[client]\npassword = {secret}\n".encode())
    writer.add("mysql/identity.json", json.dumps({"hostname": "x"}).encode())
    manifest = _manifest()
    entries = {e.path: e for e in writer.prepare(manifest)}
    assert entries["config/files/etc/my.cnf"].redactions == {"option_file_secret": 1}
    assert entries["mysql/identity.json"].redactions == {}
    bundle = writer.finish(manifest, "b.tar.zst")
    files = _bundle(bundle)
    manifest_doc = json.loads(files["manifest.json"])
    assert manifest_doc["redaction"] == {"option_file_secret": 1}
    assert all(_hidden(secret, blob) for blob in files.values())


def test_error_text_in_the_manifest_is_redacted_too(tmp_path):
    secret = secrets.token_urlsafe(16)
    writer = BundleWriter(tmp_path)
    writer.add("mysql/a.json", b"{}")
    manifest = _manifest(collectors=[CollectorEntry(
        "mysql.x", "failed", 0.1,
        error=f"internal error: ProgrammingError: near 'IDENTIFIED BY '{secret}''",
        notes=[f"password={secret}"])])
    bundle = writer.finish(manifest, "b.tar.zst")
    assert _hidden(secret, _bundle(bundle)["manifest.json"])


def test_lint_refuses_an_unredactable_secret_and_names_file_and_line(tmp_path):
    planted = "k" + secrets.token_urlsafe(24) + "9Zq"
    writer = BundleWriter(tmp_path)
    writer.add("logs/error.log", f"line one\nthe service key was {planted} today\n".encode())
    with pytest.raises(SecretFindings) as caught:
        writer.finish(_manifest(), "b.tar.zst")
    message = str(caught.value)
    assert "logs/error.log:2" in message and planted not in message
    assert list(tmp_path.iterdir()) == []


def test_allow_findings_finishes_and_counts_them(tmp_path):
    planted = "k" + secrets.token_urlsafe(24) + "9Zq"
    writer = BundleWriter(tmp_path, allow_findings=True)
    writer.add("logs/error.log", f"the service key was {planted} today\n".encode())
    bundle = writer.finish(_manifest(), "b.tar.zst")
    doc = json.loads(_bundle(bundle)["manifest.json"])
    assert doc["redaction"]["lint_finding_allowed"] == 1


def test_lint_shapes_and_what_it_leaves_alone():
    assert lint_line("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert lint_line("id AKIA" + "ABCDEFGHIJKLMNOP")
    assert lint_line("  \"token\": \"k" + secrets.token_urlsafe(20) + "9Zq\",")
    for line in ('  "sha256": "' + secrets.token_hex(32) + '",',
                 '  "innodb_buffer_pool_size": "134217728",',
                 '  "plugin_dir": "/usr/lib/x86_64-linux-gnu/mariadb19/plugin/",',
                 '  "Handler_read_key": "123456",',
                 '  "server_uuid": "3e11fa47-71ca-11e1-9e33-c80aa9429562", "key": 1',
                 '  "password": "<redacted>",',
                 "# User@Host: user-3f2a9c1b7d[user-3f2a9c1b7d] @ host-0a1b2c3d4e key"):
        assert not lint_line(line), line
    assert random_looking("k" + secrets.token_urlsafe(16) + "9Zq")
    assert not random_looking("performance_schema_max_digest_length")


def test_stream_into_a_member(tmp_path):
    secret = secrets.token_urlsafe(16)
    writer = BundleWriter(tmp_path)
    entry = writer.add_stream("logs/error.log", io.BytesIO(
        ("ok\n" * 1000 + f"MYSQL_PWD={secret}\n").encode()))
    assert entry.bytes > 0
    bundle = writer.finish(_manifest(), "b.tar.zst")
    assert _hidden(secret, _bundle(bundle)["logs/error.log"])


def test_pseudonyms_are_consistent_across_files_keys_values_paths_and_the_manifest(tmp_path):
    store = PseudonymStore(tmp_path / "home")
    pseudo = Pseudonymizer(store.key(), parse_kinds("hosts,ips,users,schemas"))
    pseudo.learn("hosts", "db-primary-07")
    writer = BundleWriter(tmp_path / "out", Redactor(pseudo))
    writer.add("mysql/processlist.json", json.dumps([
        {"user": "shopapp", "host": "10.20.30.40:5512", "db": "shopdb", "info": None},
        {"user": "root", "host": "localhost", "db": None, "info": None}]).encode())
    writer.add("mysql/schema/sizes.json", json.dumps({"shopdb": {"tables": 3}}).encode())
    writer.add("logs/slow.log", (
        b"# User@Host: shopapp[shopapp] @ web-3.example.net [10.20.30.40]\n"
        b"# Thread_id: 5  Schema: shopdb  QC_hit: No\nuse shopdb;\nSELECT 1;\n"))
    writer.add("logs/db-primary-07.err", b"starting on db-primary-07, peer 10.20.30.40, lo 127.0.0.1\n")
    manifest = _manifest()
    manifest.mysql = {"connection": "'shopapp' at 10.20.30.40:3306"}
    writer.prepare(manifest)
    bundle = writer.finish(manifest, "b.tar.zst")
    files = _bundle(bundle)
    blob = "\n".join(list(files) + [v.decode() for v in files.values()])
    for name in ("shopapp", "shopdb", "10.20.30.40", "db-primary-07", "web-3.example.net"):
        assert name not in blob, name
    assert "127.0.0.1" in blob and "root" in blob and "localhost" in blob
    user, schema = pseudo.token("users", "shopapp"), pseudo.token("schemas", "shopdb")
    host, ip = pseudo.token("hosts", "db-primary-07"), pseudo.token("ips", "10.20.30.40")
    processlist = json.loads(files["mysql/processlist.json"])
    assert processlist[0]["user"] == user and processlist[0]["db"] == schema
    assert processlist[0]["host"] == f"{ip}:5512"
    assert schema in json.loads(files["mysql/schema/sizes.json"])
    slow = files["logs/slow.log"].decode()
    assert f"{user}[{user}]" in slow and f"use {schema};" in slow and f"[{ip}]" in slow
    assert f"logs/{host}.err" in files
    doc = json.loads(files["manifest.json"])
    assert doc["host"] == host and user in doc["mysql"]["connection"]
    assert doc["redaction"]["pseudonym_user"] >= 3
    store.save(pseudo.mapping)
    assert store.lookup(user) == {"kind": "users", "name": "shopapp"}
    again = Pseudonymizer(PseudonymStore(tmp_path / "home").key(), ["users"])
    assert again.token("users", "shopapp") == user
    assert oct((tmp_path / "home" / PseudonymStore.KEY_NAME).stat().st_mode & 0o777) == "0o600"


def test_unknown_pseudonym_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown: tables"):
        parse_kinds("hosts,tables")


def test_lint_passes_a_server_version_next_to_a_secret_word():
    """The error log's start-up banner, in a data directory whose path says 'private'."""
    from privacy.lint import lint_line

    line = ("Version: '10.11.19-MariaDB-0+deb12u1'  socket: '/srv/private5/mysqld.sock'"
            "  port: 53705  Debian 12")
    assert lint_line(line) == []


def test_pseudonyms_lookup_says_which_token_is_unknown(tmp_path, monkeypatch, capsys):
    from agent import exitcodes
    from agent.cli import main

    monkeypatch.setenv("MYDIAG_HOME", str(tmp_path))
    store = PseudonymStore(tmp_path / "pseudonyms")
    pseudo = Pseudonymizer(store.key(), ["schemas"])
    token = pseudo.token("schemas", "shopdb")
    store.save(pseudo.mapping)
    assert main(["pseudonyms", "lookup", token]) == exitcodes.OK
    assert capsys.readouterr().out == f"{token}\tschemas\tshopdb\n"
    assert main(["pseudonyms", "lookup", token, "user-0000000000"]) == exitcodes.UNKNOWN_TOKEN
    assert "user-0000000000\tunknown on this host" in capsys.readouterr().out
