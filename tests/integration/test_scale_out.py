"""Three `mydiag-server run` processes on one data directory, PostgreSQL and s3rver, behind
Debian's HAProxy (issue 18): uploads, messages and the pages all go through the balancer,
and every process answers exactly what the balancer answered (each one alone is the same
server as the three together). Remote sessions across processes are tested elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from tests.haproxykit import Balancer, balancer
from tests.s3kit import S3rver, s3rver_at
from tests.serverkit import ROOT, Server, _database, make_bundle, seal, server_cli
from tests.servers import free_port
from tests.web.conftest import Client, new_engineer

pytestmark = pytest.mark.server

PROCESSES = 3


class Cluster:
    def __init__(self, server: Server, ports: List[int], front: Balancer, s3: S3rver) -> None:
        self.server, self.ports, self.front, self.s3 = server, ports, front, s3

    def api(self, port: int, method: str, path: str, token: str, data: Dict = None) -> tuple:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", method=method,
            data=json.dumps(data).encode() if data is not None else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def everywhere(self, method: str, path: str, token: str) -> List[tuple]:
        """The same GET through the balancer, then from each process directly."""
        return [self.api(port, method, path, token) for port in [self.front.http_port, *self.ports]]


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    yield from _database("postgresql")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, postgres) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("scale-out")
    s3 = next(s3_gen := s3rver_at(base))
    data = base / "data"
    init = json.loads(server_cli(
        "init", "--data", str(data), "--json", "--database", postgres, "--blob-store", "s3",
        "--s3-endpoint", s3.endpoint, "--s3-bucket", s3.bucket, "--s3-prefix", "srv/",
        "--s3-region", "us-east-1", "--s3-credentials-file", str(s3.credentials_file(base))).stdout)
    server = Server(data, postgres, init["admin_token"], init["recipients"][0])
    ports = [free_port() for _ in range(PROCESSES)]
    front = None
    try:
        for port in ports:
            server.start(port)
        front = balancer(base, ports)
        server.port = front.http_port  # Server.api and .ticket go through the balancer
        yield Cluster(server, ports, front, s3)
    finally:
        if front is not None:
            front.stop()
        server.stop()
        s3_gen.close()


def _upload(url: str, ticket: Dict, sealed: Path, home: Path) -> Dict:
    token = home / "token"
    home.mkdir(parents=True, exist_ok=True)
    token.write_text(ticket["upload_token"])
    done = subprocess.run([sys.executable, "-m", "agent.cli", "upload", str(sealed), "--server", url,
                           "--ticket", ticket["id"], "--token-file", str(token), "--json", "--keep"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "MYDIAG_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_uploads_through_the_balancer_are_accepted_once_and_seen_by_every_process(cluster, tmp_path):
    server = cluster.server
    ticket = server.ticket()
    sealed = [seal(make_bundle(tmp_path / f"b{i}", host=f"db{i}", payload=(1 << 20) + i * 4096),
                   server.recipient) for i in range(6)]
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in sealed}
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda i: _upload(cluster.front.url, ticket, sealed[i], tmp_path / f"h{i}"),
                                range(len(sealed))))
    assert {r["status"] for r in results} == {"accepted"}
    assert {r["sha256"] for r in results} == digests
    settled = server.settled(ticket["id"])
    assert sorted(b["sha256"] for b in settled) == sorted(digests), "each bundle stored exactly once"
    assert {b["status"] for b in settled} == {"accepted"}
    answers = cluster.everywhere("GET", f"/api/v1/tickets/{ticket['id']}/bundles", server.admin_token)
    for answer in answers[1:]:
        assert answer == answers[0], f"a process lists otherwise than the balancer: {answer} != {answers[0]}"
    keys = cluster.s3.keys("srv/")
    assert all(f"srv/sha256/{d[:2]}/{d}" in keys for d in digests)
    assert not [k for k in keys if "/staging/" in k], "no upload left half-staged"
    assert not [p for p in (server.data / "blobs").rglob("*") if p.is_file()], "nothing on local disk"
    # Sending a bundle again through the balancer (another process, by round robin) is a duplicate.
    again = _upload(cluster.front.url, ticket, sealed[0], tmp_path / "again")
    assert again["status"] == "accepted" and again["bundle"] == results[0]["bundle"]
    assert len(server.bundles(ticket["id"])) == len(sealed)


def test_messages_through_the_balancer_are_one_conversation_on_every_process(cluster):
    server = cluster.server
    ticket = server.ticket()
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    sent = []
    for i in range(PROCESSES * 2):  # round robin: each process takes some of them
        token, kind = ((ticket["upload_token"], "needs_reply") if i % 2 == 0
                       else (server.admin_token, "reply"))
        status, message = cluster.api(cluster.front.http_port, "POST", path, token,
                                      {"body": f"message {i}", "kind": kind})
        assert status == 201, message
        sent.append(message["id"])
    answers = cluster.everywhere("GET", path, ticket["upload_token"])
    assert answers[0][0] == 200 and [m["id"] for m in answers[0][1]] == sent
    assert all(a == answers[0] for a in answers), "every process shows the same conversation"
    assert answers[0][1][-2]["due_at"] is None, "a reply through another process met the customer's message"


def test_an_engineer_signs_in_and_reads_a_ticket_page_through_the_balancer(cluster, tmp_path):
    server = cluster.server
    name, password = new_engineer(server)
    ticket = server.ticket(title="pages behind the balancer")
    sealed = seal(make_bundle(tmp_path / "b", host="page-host", payload=64 << 10), server.recipient)
    outcome = _upload(cluster.front.url, ticket, sealed, tmp_path / "h")
    client = Client(cluster.front.http_port)
    # The sign-in form and its POST reach different processes (round robin): the CSRF token
    # and the session cookie must hold on any of them.
    reply = client.sign_in(name, password, f"/tickets/{ticket['id']}")
    assert reply.status == 303, reply.body[:500]
    pages = [client.get(f"/tickets/{ticket['id']}") for _ in range(PROCESSES)]
    direct = [Client(port, jar=dict(client.jar)).get(f"/tickets/{ticket['id']}") for port in cluster.ports]
    for page in pages + direct:
        assert page.status == 200, page.body[:500]
        assert "pages behind the balancer" in page.body and outcome["bundle"] in page.body
    assert Client(cluster.front.http_port).get(f"/tickets/{ticket['id']}").status in (302, 303, 401)
