"""`mydiag share` and `mydiag report --public` as a user runs them, on a bundle collected
with --for-share from a private MariaDB (names and values made at test time), and on
hostile copies of it: a digest that matches nothing or several, a --query file that is not
one SELECT, a bundle without share data, malformed share.json shapes (wrong types, huge
strings, deep nesting), an output folder that exists or cannot be made, a bad or
unreachable DSN, a --security description that names the customer. Each is one line and
a documented exit code; nothing is written when the package is refused."""

from __future__ import annotations

import io
import json
import os
import secrets
import stat
import tarfile
from pathlib import Path
from typing import Dict, Optional

import pytest
import zstandard

from agent import exitcodes
from tests import servers
from tests.helpers import bundle_files, by_name, collect_json, mydiag

TAG = secrets.token_hex(3)
SCHEMA = f"acme_shop_{TAG}"
TABLE = f"acme_clients_{TAG}"
EMAIL = f"mail_addr_{TAG}"
PS_ARGS = ["--performance-schema=ON",
           "--performance-schema-consumer-events-statements-current=ON",
           "--performance-schema-consumer-events-statements-history=ON",
           "--performance-schema-consumer-events-statements-history-long=ON"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    try:
        instance = servers.create(tmp_path_factory.mktemp("share-cli"), PS_ARGS)
    except servers.ServerUnavailable as exc:
        if os.environ.get("MYDIAG_REQUIRE_SERVER") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        instance.sql(
            f"CREATE DATABASE {SCHEMA}", f"USE {SCHEMA}",
            f"CREATE TABLE {SCHEMA}.{TABLE} (id INT PRIMARY KEY, {EMAIL} VARCHAR(64) NOT NULL,"
            f" KEY ix_mail_{TAG} ({EMAIL})) ENGINE=InnoDB",
            f"INSERT INTO {SCHEMA}.{TABLE} SELECT seq, CONCAT('who', seq, '@corp-{TAG}.example')"
            " FROM seq_1_to_500",
            f"ANALYZE TABLE {SCHEMA}.{TABLE} PERSISTENT FOR ALL",
        )
        conn = instance.connect(database=SCHEMA)
        with conn, conn.cursor() as cur:
            cur.execute(f"SELECT id FROM {TABLE} WHERE {EMAIL} > 'who4@corp-{TAG}.example'")
            cur.fetchall()
        out = tmp_path_factory.mktemp("share-cli-bundle")
        done, summary = collect_json("--host", "127.0.0.1", "--port", str(instance.port), "--user", "root",
                                     "--output", str(out), "--samples", "1", "--interval", "0",
                                     "--profile", "quick", "--for-share")
        assert summary is not None, done.stderr
        assert by_name(summary)["mysql.share"]["status"] == "ok", by_name(summary)["mysql.share"]
        path = Path(summary["bundle"])
        member = json.loads(bundle_files(path)["mysql/share.json"])
        yield path, member
    finally:
        instance.stop()


def _digest(member) -> str:
    found = [s for s in member["statements"] if TABLE in (s.get("sample_sql") or "")]
    assert found, [s.get("sample_sql") for s in member["statements"]]
    return found[0]["digest"]


def _rebundle(original: Path, target: Path, share: Optional[bytes]) -> Path:
    """A copy of the bundle with mysql/share.json replaced (or left out when None)."""
    files: Dict[str, bytes] = bundle_files(original)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            if name == "mysql/share.json":
                if share is None:
                    continue
                data = share
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    target.write_bytes(zstandard.ZstdCompressor().compress(out.getvalue()))
    return target


def _share(*args: str, home: Path) -> tuple:
    done = mydiag("share", *args, env={**os.environ, "MYDIAG_HOME": str(home)})
    return done.returncode, done.stdout, done.stderr


def _one_line(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mydiag: ") and "Traceback" not in stderr, stderr


def test_share_builds_a_clean_package_and_keeps_the_map_private(bundle, tmp_path):
    path, member = bundle
    out, private = tmp_path / "pkg", tmp_path / "private" / "map.json"
    code, stdout, stderr = _share(str(path), "--digest", _digest(member)[:12], "--output", str(out),
                                  "--map", str(private), home=tmp_path / "home")
    assert code == exitcodes.OK, stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["README.md", "expected_explain.json", "query.sql", "repro.sql", "repro.test", "settings.json"])
    everything = b"".join(p.read_bytes() for p in out.iterdir()).lower()
    for original in (SCHEMA, TABLE, EMAIL, f"ix_mail_{TAG}", f"corp-{TAG}"):
        assert original.lower().encode() not in everything, original
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert {e["original"] for e in json.loads(private.read_text())["names"]} >= {SCHEMA, TABLE, EMAIL}
    assert (tmp_path / "home" / "share.key").exists()
    assert "leak scan: clean" in stdout


def test_a_digest_that_matches_nothing_or_several_is_refused(bundle, tmp_path):
    path, member = bundle
    code, _, stderr = _share(str(path), "--digest", "ffffffffffffffff", home=tmp_path)
    assert code == exitcodes.USAGE and "no statement" in stderr
    _one_line(stderr)
    twins = dict(member)
    first = dict(member["statements"][0])
    twins["statements"] = [dict(first, digest="ab" + "1" * 30), dict(first, digest="ab" + "2" * 30)]
    copy = _rebundle(path, tmp_path / "twins.tar.zst", json.dumps(twins).encode())
    code, _, stderr = _share(str(copy), "--digest", "ab", home=tmp_path)
    assert code == exitcodes.USAGE and "matches 2" in stderr
    _one_line(stderr)


@pytest.mark.parametrize("text", ["DELETE FROM t", "SELECT 1; SELECT 2", "SELECT 1 INTO @x", "\xff"])
def test_a_query_file_that_is_not_one_select_is_refused(bundle, tmp_path, text):
    path, _ = bundle
    query = tmp_path / "q.sql"
    query.write_bytes(text.encode("latin-1"))
    code, _, stderr = _share(str(path), "--query", str(query), "--output", str(tmp_path / "o"), home=tmp_path)
    assert code == exitcodes.USAGE, stderr
    _one_line(stderr)
    assert not (tmp_path / "o").exists()


def test_a_bundle_without_share_data_says_how_to_collect_it(bundle, tmp_path):
    copy = _rebundle(bundle[0], tmp_path / "none.tar.zst", None)
    code, _, stderr = _share(str(copy), "--digest", "ab", home=tmp_path)
    assert code == exitcodes.NO_SHARE_DATA and "--for-share" in stderr
    _one_line(stderr)


@pytest.mark.parametrize("share", [
    b'{"format": 1, "flavor": "mariadb", "version": "10.11", "statements": "all"}',
    b'{"format": 1, "flavor": "mariadb", "version": "10.11", "statements": [{"digest": ["x"]}]}',
    b'{"format": 1, "flavor": "mariadb", "version": "' + b"9" * 300_000 + b'"}',
    b'{"format": 1, "flavor": "mariadb", "version": "1", "statements": [{"digest": "ab", "explain": '
    + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}]}",
    b"[1, 2, 3]",
    b"not json at all",
    b'{"format": 1, "flavor": "mariadb", "version": "1", "objects": [{"schema": "s", "name": "t",'
    b' "kind": "table", "create": 7}]}',
], ids=["statements-not-a-list", "digest-not-a-string", "huge-version", "deep-explain", "not-an-object",
        "not-json", "create-not-a-string"])  # short ids: pytest puts the id in each child's environment
def test_malformed_share_data_is_one_line_and_exit_7(bundle, tmp_path, share):
    copy = _rebundle(bundle[0], tmp_path / "bad.tar.zst", share)
    code, _, stderr = _share(str(copy), "--digest", "ab", home=tmp_path)
    assert code == exitcodes.BAD_BUNDLE, stderr
    _one_line(stderr)


def test_an_output_folder_that_exists_or_cannot_be_made_is_refused(bundle, tmp_path):
    path, member = bundle
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    code, _, stderr = _share(str(path), "--digest", _digest(member), "--output", str(full), home=tmp_path)
    assert code == exitcodes.OUTPUT_ERROR and "not empty" in stderr
    assert sorted(p.name for p in full.iterdir()) == ["keep.txt"]
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    code, _, stderr = _share(str(path), "--digest", _digest(member), "--output", str(a_file / "sub"),
                             "--map", str(tmp_path / "m.json"), home=tmp_path)
    assert code == exitcodes.OUTPUT_ERROR, stderr
    _one_line(stderr)
    code, _, stderr = _share(str(path), "--digest", _digest(member), "--output", str(tmp_path / "p"),
                             "--map", str(tmp_path / "p" / "map.json"), home=tmp_path)
    assert code == exitcodes.USAGE and "--map" in stderr


@pytest.mark.parametrize("dsn", ["postgres://u@h:1", "mysql://@127.0.0.1:1", "mysql://u@127.0.0.1:port",
                                 "mysql://u:pw@127.0.0.1:1/db"])
def test_a_bad_dsn_is_refused_without_echoing_the_password(bundle, tmp_path, dsn):
    code, _, stderr = _share(str(bundle[0]), "--digest", "ab", "--verify-on", dsn, home=tmp_path)
    assert code == exitcodes.USAGE and "pw" not in stderr
    _one_line(stderr)


def test_an_unreachable_verify_server_is_exit_4_and_writes_nothing(bundle, tmp_path):
    path, member = bundle
    port = servers.free_port()
    code, _, stderr = _share(str(path), "--digest", _digest(member), "--output", str(tmp_path / "o"),
                             "--map", str(tmp_path / "m.json"),
                             "--verify-on", f"mysql://root:s3cret@127.0.0.1:{port}", home=tmp_path)
    assert code == exitcodes.CANNOT_CONNECT, stderr
    assert "s3cret" not in stderr
    _one_line(stderr)
    assert not (tmp_path / "o").exists()


def test_security_keeps_the_repro_private_and_refuses_a_description_that_names_the_customer(bundle, tmp_path):
    path, member = bundle
    out, private = tmp_path / "public", tmp_path / "priv" / "map.json"
    code, _, stderr = _share(str(path), "--digest", _digest(member), "--output", str(out), "--map",
                             str(private), "--security", "--component", "optimizer",
                             "--description", f"the server crashes reading {TABLE}", home=tmp_path)
    assert code == exitcodes.LEAK_FOUND and "README.md" in stderr and TABLE not in stderr
    assert not out.exists() and not private.exists()
    code, _, stderr = _share(str(path), "--digest", _digest(member), "--output", str(out), "--map",
                             str(private), "--security", "--component", "optimizer",
                             "--description", "the server crashes in range analysis", home=tmp_path)
    assert code == exitcodes.OK, stderr
    assert [p.name for p in out.iterdir()] == ["README.md"]
    assert "10.11" in (out / "README.md").read_text()
    assert (private.parent / "map-repro" / "repro.sql").exists()
    code, _, stderr = _share(str(path), "--digest", "ab", "--security", home=tmp_path)
    assert code == exitcodes.USAGE


def test_report_public_names_no_schema_table_host_or_user(bundle, tmp_path):
    path, _ = bundle
    env = {**os.environ, "MYDIAG_HOME": str(tmp_path)}
    for extra in ((), ("--json",)):
        done = mydiag("report", str(path), "--public", *extra, env=env)
        assert done.returncode == exitcodes.OK, done.stderr
        text = done.stdout.lower()
        assert SCHEMA.lower() not in text and TABLE.lower() not in text
    done = mydiag("report", str(path), "--public", "--html", str(tmp_path / "r.html"), env=env)
    assert done.returncode == exitcodes.USAGE
