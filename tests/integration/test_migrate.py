"""`mydiag-server migrate`: an SQLite + local-folder installation made by real use (tickets,
`mydiag upload` of sealed bundles, messages through the API, an upload left half-way) moved
to a private PostgreSQL database and s3rver; the server started on the new configuration
finds every bundle (opened and compared byte for byte), message, report and upload; a
migrate SIGKILLed mid-copy finishes on the second run without duplicates; a database that
is not empty, and a running server, are refused."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from tests.s3kit import S3rver, s3rver_at
from tests.serverkit import ROOT, Server, _database, agent_cli, make_bundle, make_server, seal, server_cli

pytestmark = pytest.mark.server

PREFIX = "moved/"


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[S3rver]:
    yield from s3rver_at(tmp_path_factory.mktemp("s3"))


@pytest.fixture
def pg() -> Iterator[str]:
    yield from _database("postgresql")  # type: ignore[misc]


def _raw(url: str, method: str, path: str, token: str, body: bytes = b"", **headers: str):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request(method, path, body=body or None,
                 headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0",
                          "Content-Type": "application/json",
                          **{k.replace("_", "-"): v for k, v in headers.items()}})
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply.status, {k.lower(): v for k, v in reply.getheaders()}, data


def _upload(srv: Server, ticket: Dict, path: Path, home: Path) -> Dict:
    home.mkdir(parents=True, exist_ok=True)
    (home / "token").write_text(ticket["upload_token"])
    done = agent_cli("upload", str(path), "--server", srv.url, "--ticket", ticket["id"], "--token-file",
                     str(home / "token"), "--json", env={"MYDIAG_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _say(srv: Server, ticket: Dict, token: str, kind: str, body: str) -> None:
    status, _, data = _raw(srv.url, "POST", f"/api/v1/tickets/{ticket['id']}/messages", token,
                           json.dumps({"body": body, "kind": kind}).encode())
    assert status == 201, data


def _messages(srv: Server, ticket_id: str) -> List[Dict]:
    return json.loads(srv.api("GET", f"/api/v1/tickets/{ticket_id}/messages"))


def _populate(base: Path, bundles_per_ticket: int) -> Dict:
    """A running SQLite installation used for real; stopped when it returns."""
    srv = make_server(base, None)
    srv.start()
    made: Dict = {"server": srv, "plain": {}, "tickets": []}
    try:
        for number, customer in enumerate(("acme", "globex")):
            ticket = srv.ticket(customer=customer, title=f"lag {number}")
            made["tickets"].append(ticket)
            for i in range(bundles_per_ticket):
                plain = make_bundle(base / f"b{number}{i}", host=f"db{number}{i}", payload=200_000)
                result = _upload(srv, ticket, seal(plain, srv.recipient), base / f"home{number}{i}")
                assert result["status"] == "accepted", result
                made["plain"][result["sha256"]] = plain.read_bytes()
            _say(srv, ticket, ticket["upload_token"], "needs_reply", f"replica of {customer} lags 2 h")
            _say(srv, ticket, srv.admin_token, "internal", "customer runs 10.3")
            _say(srv, ticket, srv.admin_token, "reply", "check sync_binlog")
        # An upload left half-way: its committed bytes must survive the move.
        sealed = seal(make_bundle(base / "half", host="half", payload=300_000), srv.recipient)
        data = sealed.read_bytes()
        ticket = made["tickets"][0]
        status, headers, body = _raw(srv.url, "POST", f"/api/v1/tickets/{ticket['id']}/uploads",
                                     ticket["upload_token"], Upload_Length=str(len(data)))
        assert status == 201, body
        location = urllib.parse.urlsplit(headers["location"]).path
        half = len(data) // 2
        status, _, body = _raw(srv.url, "PATCH", location, ticket["upload_token"], data[:half],
                               Upload_Offset="0", Content_Type="application/offset+octet-stream")
        assert status == 204, body
        made["half"] = (location, data, half)
        for ticket in made["tickets"]:
            assert all(b["status"] == "accepted" for b in srv.settled(ticket["id"]))
        made["messages"] = {t["id"]: _messages(srv, t["id"]) for t in made["tickets"]}
        made["bundles"] = {t["id"]: srv.bundles(t["id"]) for t in made["tickets"]}
    finally:
        srv.stop()
    return made


def _migrate_args(srv: Server, pg: str, s3: S3rver, base: Path) -> List[str]:
    return ["migrate", "--data", str(srv.data), "--to-database", pg, "--to-blob-store", "s3",
            "--s3-endpoint", s3.endpoint, "--s3-bucket", s3.bucket, "--s3-prefix", PREFIX,
            "--s3-credentials-file", str(s3.credentials_file(base))]


def _sqlite_counts(data: Path) -> Dict[str, int]:
    conn = sqlite3.connect(f"file:{data / 'server.db'}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name"
                                            " NOT LIKE 'sqlite_%' AND name NOT IN ('meta', 'job_leases')")]
        return {n: conn.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0] for n in names}
    finally:
        conn.close()


def _pg_counts(url: str, tables) -> Dict[str, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}


def _tree(folder: Path) -> Dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_migrate_to_postgresql_and_s3_keeps_every_bundle_message_report_and_upload(tmp_path, pg, s3):
    made = _populate(tmp_path, bundles_per_ticket=2)
    srv: Server = made["server"]
    before = _sqlite_counts(srv.data)
    assert before["bundles"] == 4 and before["messages"] >= 6 and before["audit"] > 10, before
    old_db, old_blobs = _tree(srv.data)["server.db"], _tree(srv.data / "blobs")
    old_config = (srv.data / "config.json").read_text()

    # While a server runs on the data directory, migrate refuses and changes nothing.
    running = srv.start()
    refused = server_cli(*_migrate_args(srv, pg, s3, tmp_path), check=False)
    assert refused.returncode == 3 and f"process {running.pid}" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    srv.stop()
    srv.processes.clear()
    assert (srv.data / "config.json").read_text() == old_config

    done = server_cli(*_migrate_args(srv, pg, s3, tmp_path), timeout=300)
    assert "rows:" in done.stdout and "blobs: " in done.stdout and "uploads in progress: 1" in done.stdout
    assert s3.secret_key not in done.stdout + done.stderr + (srv.data / "config.json").read_text()
    # Counts equal, table by table, and the old installation is left as it was (the backup).
    assert _pg_counts(pg, before) == before
    assert _tree(srv.data)["server.db"] == old_db and _tree(srv.data / "blobs") == old_blobs
    assert (srv.data / "config.json.pre-migrate").read_text() == old_config
    config = json.loads((srv.data / "config.json").read_text())
    assert config["database"] == pg and config["blobs"]["kind"] == "s3"
    assert config["blobs"]["bucket"] == s3.bucket and config["blobs"]["prefix"] == PREFIX
    keys = s3.keys(PREFIX)
    for name in old_blobs:
        if name.startswith("sha256/"):
            assert f"{PREFIX}{name}" in keys
    # A second run has nothing left to do.
    again = server_cli(*_migrate_args(srv, pg, s3, tmp_path))
    assert "nothing to do" in again.stdout

    # The server on the new configuration: PostgreSQL + S3 (no --database: config.json names it).
    moved = Server(srv.data, None, srv.admin_token, srv.recipient)
    (srv.data / "server.db").rename(srv.data / "server.db.moved-away")  # proves nothing reads it
    try:
        moved.start()
        assert "blobs s3://" in moved.logs() and "postgresql://" in moved.logs()
        for ticket in made["tickets"]:
            assert moved.bundles(ticket["id"]) == made["bundles"][ticket["id"]]
            assert _messages(moved, ticket["id"]) == made["messages"][ticket["id"]]
            for bundle in made["bundles"][ticket["id"]]:
                out = tmp_path / "opened" / bundle["id"]
                opened = moved.cli("bundle", "open", bundle["id"], "--output", str(out))
                unsealed = Path(opened.stdout.split("unsealed: ", 1)[1].splitlines()[0])
                assert unsealed.read_bytes() == made["plain"][bundle["sha256"]]
                status, _, sealed = _raw(moved.url, "GET", f"/api/v1/tickets/{ticket['id']}/bundles/"
                                         f"{bundle['id']}/sealed", moved.admin_token)
                assert status == 200 and hashlib.sha256(sealed).hexdigest() == bundle["sha256"]
                assert bundle["report"] == "rendered", bundle
        import psycopg

        with psycopg.connect(pg) as conn:
            reports = conn.execute("SELECT html_key FROM reports WHERE state = 'rendered'").fetchall()
        assert len(reports) == 4
        for (key,) in reports:
            assert f"{PREFIX}sha256/{key[:2]}/{key}" in keys
        # The upload left half-way resumes through the new server, onto the new store.
        location, data, half = made["half"]
        ticket = made["tickets"][0]
        status, headers, _ = _raw(moved.url, "HEAD", location, ticket["upload_token"])
        assert status == 200 and headers["upload-offset"] == str(half)
        status, _, body = _raw(moved.url, "PATCH", location, ticket["upload_token"], data[half:],
                               Upload_Offset=str(half), Content_Type="application/offset+octet-stream")
        assert status == 204, body
        settled = moved.settled(ticket["id"])
        sha = hashlib.sha256(data).hexdigest()
        assert [b["status"] for b in settled if b["sha256"] == sha] == ["accepted"]
    finally:
        moved.stop()
        (srv.data / "server.db.moved-away").rename(srv.data / "server.db")


def test_a_migrate_killed_mid_copy_finishes_on_the_next_run_without_duplicates(tmp_path, pg, s3):
    made = _populate(tmp_path, bundles_per_ticket=1)
    srv: Server = made["server"]
    # More blobs, so that there is a middle to be killed in (content-addressed, like raw mail).
    from server.storage.blobs import LocalStore

    store = LocalStore(srv.data / "blobs")
    for i in range(40):
        extra = tmp_path / f"extra-{i}"
        extra.write_bytes(os.urandom(256 << 10))
        store.put_file(extra, hashlib.sha256(extra.read_bytes()).hexdigest())
    before = _sqlite_counts(srv.data)
    old_config = (srv.data / "config.json").read_text()
    total = len(list((srv.data / "blobs" / "sha256").glob("*/*")))
    args = [sys.executable, "-m", "server.cli", *_migrate_args(srv, pg, s3, tmp_path)]
    first = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert first.stdout is not None
    for line in first.stdout:
        if line.startswith("blob 5/"):
            first.send_signal(signal.SIGKILL)
            break
    first.wait(30)
    assert first.returncode == -signal.SIGKILL, "migrate finished before it could be killed"
    assert (srv.data / "config.json").read_text() == old_config, "config switched before the end"
    copied = [k for k in s3.keys(PREFIX) if "/sha256/" in f"/{k}"]
    assert 5 <= len(copied) < total, (len(copied), total)

    done = server_cli(*_migrate_args(srv, pg, s3, tmp_path), timeout=300)
    assert "resumed an interrupted run" in done.stdout, done.stdout
    assert f"blobs: {total} verified" in done.stdout, done.stdout
    assert _pg_counts(pg, before) == before  # no row twice, none missing (the audit log included)
    import psycopg

    with psycopg.connect(pg) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM audit ORDER BY seq")]
    source = sqlite3.connect(f"file:{srv.data / 'server.db'}?mode=ro", uri=True)
    assert seqs == [r[0] for r in source.execute("SELECT seq FROM audit ORDER BY seq")]
    source.close()
    assert json.loads((srv.data / "config.json").read_text())["database"] == pg
    moved = Server(srv.data, None, srv.admin_token, srv.recipient)
    try:
        moved.start()
        ticket = made["tickets"][0]
        assert moved.bundles(ticket["id"]) == made["bundles"][ticket["id"]]
        # New audit rows continue after the copied ones (the sequence was set past them).
        moved.ticket(customer="initech", title="after the move")
        with psycopg.connect(pg) as conn:
            assert conn.execute("SELECT MAX(seq) FROM audit").fetchone()[0] > seqs[-1]
    finally:
        moved.stop()


def test_a_target_database_that_is_not_empty_is_refused(tmp_path, pg):
    other = make_server(tmp_path / "other", pg)  # a database another installation uses
    mine = make_server(tmp_path / "mine", None)
    config = (mine.data / "config.json").read_text()
    done = server_cli("migrate", "--data", str(mine.data), "--to-database", pg, check=False)
    assert done.returncode == 4 and "not empty" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert (mine.data / "config.json").read_text() == config
    nothing = server_cli("migrate", "--data", str(mine.data), check=False)
    assert nothing.returncode == 2 and "nothing to move" in nothing.stderr
    wrong = server_cli("migrate", "--data", str(mine.data), "--to-database", "mysql://x/y", check=False)
    assert wrong.returncode == 2
    assert other.data.exists()
