"""Uploads under real faults over loopback: the connection cut mid-chunk, the server
SIGKILLed and restarted mid-upload, the agent SIGKILLed mid-upload and run again.
Each time the upload resumes from the server's offset and re-sends at most one chunk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.serverkit import ROOT, make_bundle, make_server, seal

pytestmark = pytest.mark.server

CHUNK = 1 << 20
#: Request lines and headers of the HEAD/POST/PATCH requests around a resume.
OVERHEAD = 64 << 10


def agent_args(url: str, ticket: dict, path: Path, token_file: Path) -> list:
    token_file.write_text(ticket["upload_token"])
    return [sys.executable, "-m", "agent.cli", "upload", str(path), "--server", url, "--ticket",
            ticket["id"], "--token-file", str(token_file), "--chunk-size", "1", "--json"]


def run_agent(args: list, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MYDIAG_HOME": str(home)})


@pytest.mark.parametrize("checksum", [False, True], ids=["plain", "chunk-checksum"])
def test_a_cut_connection_resumes_and_sends_only_the_rest(support, proxy_to, tmp_path, checksum):
    ticket = support.ticket()
    sealed = seal(make_bundle(tmp_path, payload=4 << 20), support.recipient)
    size = sealed.stat().st_size
    proxy = proxy_to(support.port)
    proxy.cut_after(int(2.5 * CHUNK))
    args = agent_args(proxy.url, ticket, sealed, tmp_path / "token")
    done = run_agent(args + ["--chunk-checksum"] if checksum else args, tmp_path / "home")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "accepted"
    resent = proxy.sent - size
    # With checksums the chunk in flight is dropped whole; without, the server kept it.
    assert 0 < resent <= (CHUNK if checksum else 0) + OVERHEAD, f"{resent} bytes re-sent"
    assert not sealed.exists() and not list(tmp_path.glob("*.upload.json"))


def test_the_server_killed_and_restarted_mid_upload(tmp_path, own_backend, proxy_to):
    support = make_server(tmp_path, own_backend)
    first = support.start()
    try:
        ticket = support.ticket()
        sealed = seal(make_bundle(tmp_path / "b", payload=4 << 20), support.recipient)
        proxy = proxy_to(support.port, rate=3 << 20)
        agent = subprocess.Popen(agent_args(proxy.url, ticket, sealed, tmp_path / "token"), cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "MYDIAG_HOME": str(tmp_path / "home")})
        _wait(lambda: proxy.sent > int(1.5 * CHUNK))
        support.kill(first)
        time.sleep(0.5)
        support.start(support.port)
        out, err = agent.communicate(timeout=120)
        assert agent.returncode == 0, err
        assert json.loads(out)["status"] == "accepted"
        assert proxy.sent - sealed_size(out) <= 2 * CHUNK + OVERHEAD
        [listed] = support.bundles(ticket["id"])
        assert listed["status"] == "accepted"
    finally:
        support.stop()


def sealed_size(out: str) -> int:
    return int(json.loads(out)["bytes"])


def test_the_agent_sigkilled_mid_upload_resumes_when_run_again(support, proxy_to, tmp_path):
    ticket = support.ticket()
    plain = make_bundle(tmp_path, payload=4 << 20)
    proxy = proxy_to(support.port)
    proxy.stall_after(int(2.5 * CHUNK))
    args = agent_args(proxy.url, ticket, plain, tmp_path / "token")
    home = tmp_path / "home"
    agent = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "MYDIAG_HOME": str(home)})
    assert proxy.stalled.wait(60), "the upload never got going"
    agent.send_signal(signal.SIGKILL)
    agent.wait(10)
    proxy.cut_all()
    sealed = plain.with_name(plain.name + ".age")
    journal = sealed.with_name(sealed.name + ".upload.json")
    assert sealed.exists() and journal.exists(), "the sealed copy and its journal survive the kill"
    before = proxy.sent
    done = run_agent(args, home)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "accepted"
    size = result["bytes"]
    assert proxy.sent - before <= size - 2 * CHUNK + CHUNK + OVERHEAD, "only the rest was sent"
    assert not sealed.exists() and not journal.exists()
    assert plain.exists()


def _wait(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)
