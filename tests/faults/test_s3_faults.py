"""The S3 store failing under a real server: s3rver stopped mid-upload and started again,
answering 500 for a while (an HTTP proxy of ours in front of it), and slow past the
read timeout. The tus PATCH answers 503 with Retry-After (never a 500 or a traceback), the
agent waits and resumes, nothing is lost and nothing is accepted unverified, and a slow
store does not hold up the event loop."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Optional

import pytest

from tests.integration.test_blob_stores import MIB, agent_upload, s3_server
from tests.s3kit import S3rver, s3rver_at
from tests.serverkit import ROOT, Proxy, Server, make_bundle, seal, server_cli

pytestmark = pytest.mark.server


class StoreProxy:
    """An HTTP proxy of ours in front of s3rver: forwards every request as it came (the Host
    header too, so SigV4 signatures still hold), or answers 500 (`fail`), or waits `delay`
    seconds before forwarding. Counts what it failed."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.fail = False
        self.delay = 0.0
        self.failed = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                return None

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if owner.fail:
                    owner.failed += 1
                    error = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                if owner.delay:
                    time.sleep(owner.delay)
                upstream = http.client.HTTPConnection("127.0.0.1", owner.upstream_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    upstream.request(self.command, self.path, body=body if length else None, headers=headers)
                    reply = upstream.getresponse()
                    data = reply.read()
                    self.send_response(reply.status)
                    for key, value in reply.getheaders():
                        if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(key, value)
                    # A HEAD answer names the object's length, with no body.
                    self.send_header("Content-Length", reply.getheader("Content-Length", "0")
                                     if self.command == "HEAD" else str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda request, address: None  # a client that hung up is no news
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def s3rver(tmp_path) -> Iterator[S3rver]:
    yield from s3rver_at(tmp_path)


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), payload=6 * MIB)


@pytest.fixture
def behind_proxy(tmp_path, s3rver) -> Iterator[tuple]:
    """A server whose S3 endpoint is a StoreProxy in front of s3rver (read timeout 1 s)."""
    proxy = StoreProxy(s3rver.port)
    support = s3_server(tmp_path, s3rver)
    config = json.loads((support.data / "config.json").read_text())
    config["blobs"].update(endpoint=proxy.endpoint, read_timeout=1.0, connect_timeout=1.0, max_attempts=2)
    (support.data / "config.json").write_text(json.dumps(config))
    support.start()
    try:
        yield support, proxy
    finally:
        support.stop()
        proxy.close()


def tus(support: Server, ticket: dict, method: str, path: str, body: Optional[bytes] = None,
        headers: Optional[dict] = None) -> tuple:
    request = urllib.request.Request(support.url + path, method=method, data=body, headers={
        "Authorization": f"Bearer {ticket['upload_token']}", "Tus-Resumable": "1.0.0", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def create_upload(support: Server, ticket: dict, length: int) -> str:
    status, headers, _ = tus(support, ticket, "POST", f"/api/v1/tickets/{ticket['id']}/uploads",
                             headers={"Upload-Length": str(length)})
    assert status == 201, status
    return "/api/v1/" + headers["Location"].split("/api/v1/", 1)[1]


def patch(support: Server, ticket: dict, location: str, offset: int, data: bytes) -> tuple:
    return tus(support, ticket, "PATCH", location, data, {
        "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
        "Content-Length": str(len(data))})


def run_agent(support_url: str, ticket: dict, sealed: Path, base: Path) -> subprocess.Popen:
    return subprocess.Popen(agent_upload(support_url, ticket, sealed, base, chunk_mib=1), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MYDIAG_HOME": str(base / "home")})


def accepted_once(support: Server, ticket: dict, out: str, sha: str) -> None:
    result = json.loads(out)
    assert result["status"] == "accepted" and result["sha256"] == sha
    [listed] = support.settled(ticket["id"])
    assert listed["status"] == "accepted" and listed["sha256"] == sha


def no_500(support: Server) -> None:
    logs = support.logs()
    assert "Traceback" not in logs and "Exception in ASGI" not in logs, logs[-3000:]


def test_the_store_stopped_mid_upload_and_started_again(tmp_path, s3rver, plain):
    support = s3_server(tmp_path, s3rver)
    support.start()
    try:
        ticket = support.ticket()
        sealed = seal(plain, support.recipient)
        sha = hashlib.sha256(sealed.read_bytes()).hexdigest()
        slow = Proxy(support.port, rate=2 * MIB)
        agent = run_agent(slow.url, ticket, sealed, tmp_path)
        deadline = time.monotonic() + 60
        while slow.sent < 2 * MIB and time.monotonic() < deadline:
            time.sleep(0.02)
        s3rver.stop()
        location = create_upload(support, ticket, 10)
        status, headers, body = patch(support, ticket, location, 0, b"0123456789")
        assert status == 503 and headers.get("Retry-After") == "5", (status, body)
        assert headers.get("Tus-Resumable") == "1.0.0" and b"blob store" in body
        time.sleep(3)
        assert agent.poll() is None, "the agent waits for the store"
        assert support.bundles(ticket["id"]) == [], "nothing accepted while the store is down"
        journal = json.loads(sealed.with_name(sealed.name + ".upload.json").read_text())
        status, headers, _ = tus(support, ticket, "HEAD", journal["location"])
        committed = int(headers["Upload-Offset"])
        assert status == 200 and committed >= MIB, "what was sent before the store went down still counts"
        before = slow.sent
        s3rver.start()  # the same port and folder: the store is back with what it held
        out, err = agent.communicate(timeout=180)
        assert agent.returncode == 0, err
        accepted_once(support, ticket, out, sha)
        resent = slow.sent - before - (sealed_size(out) - committed)
        assert resent <= MIB + (64 << 10), f"{resent} bytes sent again after the store came back"
        assert "the blob store" in support.logs()
        no_500(support)
        slow.close()
    finally:
        support.stop()


def sealed_size(out: str) -> int:
    return int(json.loads(out)["bytes"])


def test_a_store_answering_500_gives_503_and_the_upload_waits(tmp_path, behind_proxy, plain):
    support, proxy = behind_proxy
    probe = support.ticket()  # a ticket of its own: its 10-byte "bundle" is verified (and retried) apart
    proxy.fail = True
    location = create_upload(support, probe, 10)
    status, headers, body = patch(support, probe, location, 0, b"0123456789")
    assert status == 503 and headers.get("Retry-After") == "5", (status, body)
    # The failed PATCH let go of its lease: a retry once the store is back is taken at once.
    proxy.fail = False
    status, headers, body = patch(support, probe, location, 0, b"0123456789")
    assert status == 204 and headers["Upload-Offset"] == "10", (status, body)
    ticket = support.ticket()
    sealed = seal(plain, support.recipient)
    sha = hashlib.sha256(sealed.read_bytes()).hexdigest()
    proxy.fail = True
    agent = run_agent(support.url, ticket, sealed, tmp_path)
    deadline = time.monotonic() + 10
    while proxy.failed < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert agent.poll() is None and proxy.failed >= 4, "the agent keeps trying while the store fails"
    proxy.fail = False
    out, err = agent.communicate(timeout=180)
    assert agent.returncode == 0, err
    accepted_once(support, ticket, out, sha)
    no_500(support)
    # Reading a bundle back while the store fails: the store is named, not the output folder.
    [listed] = support.bundles(ticket["id"])
    proxy.fail = True
    done = server_cli("bundle", "open", "--data", str(support.data), listed["id"],
                      "--output", str(tmp_path / "opened"), check=False)
    proxy.fail = False
    assert done.returncode == 6, done.stderr
    assert done.stderr.count("\n") == 1 and f"cannot read bundle {listed['id']}" in done.stderr, done.stderr
    assert not (tmp_path / "opened").exists() or not any((tmp_path / "opened").iterdir())


def test_a_slow_store_answers_503_and_leaves_the_event_loop_free(tmp_path, behind_proxy):
    support, proxy = behind_proxy
    ticket = support.ticket()
    location = create_upload(support, ticket, 6 * MIB)
    proxy.delay = 2.5  # past the read timeout (1 s) of every attempt
    answered = {}

    def slow_patch() -> None:
        answered["patch"] = patch(support, ticket, location, 0, os.urandom(64 << 10))

    worker = threading.Thread(target=slow_patch)
    worker.start()
    time.sleep(0.3)
    worst = 0.0
    while worker.is_alive():
        started = time.monotonic()
        with urllib.request.urlopen(f"{support.url}/api/v1/health", timeout=10) as reply:
            assert reply.status == 200
        worst = max(worst, time.monotonic() - started)
        time.sleep(0.1)
    worker.join()
    status, headers, body = answered["patch"]
    assert status == 503 and headers.get("Retry-After") == "5", (status, body)
    assert worst < 0.5, f"the health check waited {worst:.2f} s behind the slow store"
    # Slow but within the timeout: the same upload goes through, from the committed offset.
    proxy.delay = 0.2
    status, headers, _ = tus(support, ticket, "HEAD", location)
    assert status == 200 and headers["Upload-Offset"] == "0"
    data = os.urandom(6 * MIB)
    status, headers, body = patch(support, ticket, location, 0, data)
    assert status == 204 and headers["Upload-Offset"] == str(len(data)), (status, body)
    no_500(support)
