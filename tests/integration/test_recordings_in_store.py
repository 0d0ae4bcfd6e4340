"""Session recordings in the blob store: a real gateway on s3rver, real `mydiag session grant`
processes and the stock OpenSSH client. A finished part leaves the gateway's disk for the
bucket (by SHA-256, named in the database), and `session replay`, the replay page and its
download verify it from there; a store that is down keeps the part local until the archiver
stores it; `mydiag-server migrate` stores the recordings of a local installation."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.test_blob_stores import s3_server
from tests.s3kit import S3rver, s3rver_at
from tests.serverkit import make_server, server_cli
from tests.sessionkit import Gateway, Grant, wait_until
from tests.web.conftest import Client, new_engineer

pytestmark = pytest.mark.server

PREFIX = "srv/"


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[S3rver]:
    yield from s3rver_at(tmp_path_factory.mktemp("s3"))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, s3) -> Iterator[Gateway]:
    base = tmp_path_factory.mktemp("gateway")
    gw = Gateway(s3_server(base, s3, PREFIX), 0, base)
    gw.start()
    gw.engineer("alice")
    yield gw
    gw.server.stop()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored(gateway: Gateway, session_id: str) -> list:
    conn = sqlite3.connect(f"file:{gateway.server.data / 'server.db'}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT file, cast_sha256, chain_sha256, bytes FROM recordings"
                            " WHERE session_id = ? ORDER BY file", (session_id,)).fetchall()
    finally:
        conn.close()


def one_part(gateway: Gateway, tmp_path: Path, words: str) -> Grant:
    ticket = gateway.server.ticket(customer="acme", title="recordings in the store")
    grant = Grant(gateway, ticket, tmp_path / "home", mode="shell").ready()
    try:
        done = gateway.ssh("alice", grant.id, "echo", words)
        assert done.returncode == 0 and done.stdout == f"{words}\n", done.stderr
        grant.wait_for("part 1, exit 0")
    finally:
        grant.stop()
    grant.ticket = ticket  # type: ignore[attr-defined]
    return grant


def replay_page(gateway: Gateway, ticket_id: str, session_id: str) -> tuple:
    name, password = new_engineer(gateway.server)
    client = Client(gateway.server.port)
    assert client.sign_in(name, password, f"/tickets/{ticket_id}").status == 303
    page = client.get(f"/tickets/{ticket_id}/sessions/{session_id}/replay")
    cast = client.get(f"/tickets/{ticket_id}/sessions/{session_id}/recording.cast?part=1")
    return page, cast


def test_a_finished_part_moves_to_the_bucket_and_replays_from_there(gateway, s3, tmp_path):
    grant = one_part(gateway, tmp_path, "recorded into the bucket")
    remote = gateway.recordings(grant.id)
    wait_until(lambda: not (remote / "1.cast").exists(), timeout=20)
    assert not (remote / "1.chain").exists()
    # The customer's copy is byte-identical to the server's: its hashes name the objects.
    mine_cast, mine_chain = grant.folder / "1.cast", grant.folder / "1.chain"
    size = mine_cast.stat().st_size
    assert stored(gateway, grant.id) == [("1.cast", sha(mine_cast), sha(mine_chain), size)]
    keys = s3.keys(PREFIX + "sha256/")
    for digest in (sha(mine_cast), sha(mine_chain)):
        assert f"{PREFIX}sha256/{digest[:2]}/{digest}" in keys
        body = s3.client().get_object(Bucket=s3.bucket, Key=f"{PREFIX}sha256/{digest[:2]}/{digest}")["Body"]
        assert hashlib.sha256(body.read()).hexdigest() == digest

    there = gateway.server.cli("session", "replay", grant.id, "--instant")
    assert there.returncode == 0, there.stderr
    assert "recorded into the bucket" in there.stdout and "1.cast: verified" in there.stderr
    page, cast = replay_page(gateway, grant.ticket["id"], grant.id)
    assert page.status == 200 and "recorded into the bucket" in page.body and "verified" in page.body
    assert "TAMPERED" not in page.body and "NOT VERIFIED" not in page.body
    assert cast.status == 200 and cast.body == mine_cast.read_text()


def test_a_store_down_at_the_end_keeps_the_part_local_until_the_archiver_stores_it(gateway, s3, tmp_path):
    s3.stop()
    try:
        grant = one_part(gateway, tmp_path, "kept while the store is down")
        remote = gateway.recordings(grant.id)
        # The archiver tried as the part closed (and again on its rounds): the files stay.
        wait_until(lambda: "stays on this disk" in gateway.server.logs(), timeout=20)
        assert (remote / "1.cast").read_bytes() == (grant.folder / "1.cast").read_bytes()
        assert stored(gateway, grant.id) == []
        local = gateway.server.cli("session", "replay", grant.id, "--instant")
        assert local.returncode == 0 and "kept while the store is down" in local.stdout, local.stderr
        assert "1.cast: verified" in local.stderr
    finally:
        s3.start()
    wait_until(lambda: not (remote / "1.cast").exists(), timeout=30, step=0.5)
    assert [row[1] for row in stored(gateway, grant.id)] == [sha(grant.folder / "1.cast")]
    again = gateway.server.cli("session", "replay", grant.id, "--instant")
    assert again.returncode == 0 and "1.cast: verified" in again.stderr, again.stderr
    page, cast = replay_page(gateway, grant.ticket["id"], grant.id)
    assert page.status == 200 and "kept while the store is down" in page.body
    assert cast.body == (grant.folder / "1.cast").read_text()


def test_migrate_stores_a_local_installations_recordings(tmp_path, s3):
    base = tmp_path / "local"
    gw = Gateway(make_server(base, None), 0, base)
    gw.start()
    try:
        gw.engineer("alice")
        grant = one_part(gw, tmp_path, "recorded before the migration")
        remote = gw.recordings(grant.id)
        assert (remote / "1.cast").is_file(), "the local store keeps parts where they were written"
    finally:
        gw.server.stop()
    prefix = "migrated/"
    done = server_cli("migrate", "--data", str(gw.server.data), "--to-blob-store", "s3", "--s3-endpoint",
                      s3.endpoint, "--s3-bucket", s3.bucket, "--s3-prefix", prefix, "--s3-credentials-file",
                      str(s3.credentials_file(tmp_path)), "--json")
    summary = json.loads(done.stdout)
    assert summary["recordings"] == 1, summary
    digest = sha(grant.folder / "1.cast")
    assert f"{prefix}sha256/{digest[:2]}/{digest}" in s3.keys(prefix)
    assert [row[1] for row in stored(gw, grant.id)] == [digest]
    # The source is left as it was (the backup); without it, the part replays from the store.
    assert (remote / "1.cast").is_file()
    moved = tmp_path / "moved-away"
    remote.rename(moved)
    replayed = gw.server.cli("session", "replay", grant.id, "--instant")
    assert replayed.returncode == 0 and "recorded before the migration" in replayed.stdout, replayed.stderr
    assert "1.cast: verified" in replayed.stderr
