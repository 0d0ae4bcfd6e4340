"""Faults of a scaled-out deployment (issue 18): three processes on PostgreSQL and s3rver
behind HAProxy. The process writing an upload is SIGKILLed mid-PATCH: the agent resumes
through another process and the bundle is accepted once. The store is down for 30 s
mid-upload: the uploads wait and resume, nothing is lost, nothing is accepted unverified.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest

from tests.haproxykit import balancer
from tests.s3kit import S3rver
from tests.serverkit import ROOT, Proxy, Server, _database, make_bundle, seal, server_cli
from tests.servers import free_port

# psycopg is imported where it is used: the agent's Python 3.9 run collects this file
# without the server extra (and deselects it by the mark).
pytestmark = pytest.mark.server

MIB = 1 << 20


@pytest.fixture
def postgres() -> Iterator[str]:
    yield from _database("postgresql")


@pytest.fixture
def deployment(tmp_path, postgres) -> Iterator[tuple]:
    s3 = S3rver(tmp_path / "s3rver-data", "mydiag-faults").start()
    data = tmp_path / "data"
    init = json.loads(server_cli(
        "init", "--data", str(data), "--json", "--database", postgres, "--blob-store", "s3",
        "--s3-endpoint", s3.endpoint, "--s3-bucket", s3.bucket, "--s3-prefix", "srv/",
        "--s3-region", "us-east-1", "--s3-credentials-file", str(s3.credentials_file(tmp_path))).stdout)
    config = json.loads((data / "config.json").read_text())
    config["blobs"].update(connect_timeout=1, read_timeout=5, max_attempts=2)
    (data / "config.json").write_text(json.dumps(config))
    server = Server(data, postgres, init["admin_token"], init["recipients"][0])
    ports = [free_port() for _ in range(3)]
    front = None
    try:
        for port in ports:
            server.start(port)
        front = balancer(tmp_path, ports)
        server.port = front.http_port
        yield server, front, s3
    finally:
        if front is not None:
            front.stop()
        server.stop()
        s3.stop()


def _agent(url: str, ticket: Dict, sealed: Path, home: Path) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    (home / "token").write_text(ticket["upload_token"])
    return subprocess.Popen([sys.executable, "-m", "agent.cli", "upload", str(sealed), "--server", url,
                             "--ticket", ticket["id"], "--token-file", str(home / "token"), "--json",
                             "--chunk-size", "2"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MYDIAG_HOME": str(home)})


def _wait(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def _accepted_once(server: Server, ticket: Dict, sha: str, s3: S3rver) -> None:
    [listed] = server.settled(ticket["id"], timeout=120)
    assert listed["status"] == "accepted" and listed["sha256"] == sha and listed["verified"]
    import psycopg

    with psycopg.connect(server.database, autocommit=True) as conn:
        accepts = conn.execute("SELECT COUNT(*) FROM audit WHERE action = 'bundle.accept' AND ticket_id = %s",
                               (ticket["id"],)).fetchone()[0]
        unverified = conn.execute("SELECT COUNT(*) FROM bundles WHERE status = 'accepted'"
                                  " AND verified IS NULL").fetchone()[0]
    assert accepts == 1 and unverified == 0
    keys = s3.keys("srv/")
    assert f"srv/sha256/{sha[:2]}/{sha}" in keys and not [k for k in keys if "/staging/" in k], keys
    stored = s3.client().get_object(Bucket=s3.bucket, Key=f"srv/sha256/{sha[:2]}/{sha}")
    with stored["Body"] as body:
        assert hashlib.sha256(body.read()).hexdigest() == sha


def test_the_process_writing_an_upload_is_killed_and_another_takes_it_over(deployment, tmp_path):
    server, front, s3 = deployment
    ticket = server.ticket()
    sealed = seal(make_bundle(tmp_path / "b", payload=9 * MIB), server.recipient)
    sha = hashlib.sha256(sealed.read_bytes()).hexdigest()
    slow = Proxy(front.http_port, rate=3 * MIB)
    agent = _agent(slow.url, ticket, sealed, tmp_path / "home")
    try:
        _wait(lambda: slow.sent > 3 * MIB)
        owner = []
        import psycopg

        with psycopg.connect(server.database, autocommit=True) as conn:
            # The lease is held while a PATCH streams: its owner names the process writing it.
            _wait(lambda: owner.extend(r[0] for r in conn.execute(
                "SELECT lease_owner FROM uploads WHERE ticket_id = %s AND state = 'receiving'"
                " AND lease_owner IS NOT NULL", (ticket["id"],))) or owner)
        pid = int(owner[0].split(":")[1])
        [victim] = [p for p in server.processes if p.pid == pid]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        slow.cut_all()  # what the agent's connection sees of a dead backend
        out, err = agent.communicate(timeout=240)
    finally:
        slow.close()
    assert agent.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "accepted" and result["sha256"] == sha
    _accepted_once(server, ticket, sha, s3)
    assert len(server.bundles(ticket["id"])) == 1


def test_the_store_is_down_for_30_s_mid_upload_and_the_uploads_resume(deployment, tmp_path):
    server, front, s3 = deployment
    ticket = server.ticket()
    sealed = seal(make_bundle(tmp_path / "b", payload=9 * MIB), server.recipient)
    sha = hashlib.sha256(sealed.read_bytes()).hexdigest()
    slow = Proxy(front.http_port, rate=3 * MIB)
    agent = _agent(slow.url, ticket, sealed, tmp_path / "home")
    try:
        _wait(lambda: slow.sent > 3 * MIB)
        s3.stop()
        down = time.monotonic()
        time.sleep(30)
        assert agent.poll() is None, "the agent waits for the store instead of giving up"
        assert not [b for b in server.bundles(ticket["id"]) if b["status"] == "accepted"]
        s3.start()  # the same port and folder: the store came back
        out, err = agent.communicate(timeout=240)
    finally:
        slow.close()
    assert agent.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "accepted" and result["sha256"] == sha
    _accepted_once(server, ticket, sha, s3)
    [listed] = server.bundles(ticket["id"])
    assert listed["verified"] and time.monotonic() - down >= 30
