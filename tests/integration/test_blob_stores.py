"""The blob stores: one contract run against the local directory and against S3Store on a
real s3rver, then the S3 store through the real server (init, run, `mydiag upload`,
`bundle open`, and an upload resumed by a second process after the first was SIGKILLed
mid-PATCH)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, List

import psutil
import pytest

from server.config import BlobSettings
from server.storage.blobs import LocalStore
from tests.s3kit import S3rver, s3rver_at
from tests.serverkit import ROOT, Proxy, Server, make_bundle, seal, server_cli

pytestmark = pytest.mark.server

MIB = 1 << 20
PART = 5 * MIB


@pytest.fixture
def s3rver(tmp_path) -> Iterator[S3rver]:
    """A fresh s3rver with one bucket for this test, stopped afterwards."""
    yield from s3rver_at(tmp_path)


@pytest.fixture(scope="module")
def shared_s3(tmp_path_factory) -> Iterator[S3rver]:
    yield from s3rver_at(tmp_path_factory.mktemp("s3"))


def s3_store(server: S3rver, scratch: Path, prefix: str = ""):
    from server.storage.s3 import S3Store

    settings = BlobSettings(kind="s3", endpoint=server.endpoint, bucket=server.bucket,
                            prefix=prefix or f"t{secrets.token_hex(4)}/", part_bytes=PART,
                            credentials_file=str(server.credentials_file(scratch)),
                            connect_timeout=2, read_timeout=10, max_attempts=2)
    return S3Store(settings, scratch / "scratch")


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "blobs")
    return s3_store(request.getfixturevalue("shared_s3"), tmp_path)


def write(store, upload_id: str, offset: int, data: bytes, close: bool = True, piece: int = 65536) -> None:
    writer = store.staging_writer(upload_id, offset)
    for start in range(0, len(data), piece):
        writer.write(data[start:start + piece])
    assert writer.written == len(data)
    if close:
        writer.close()


def read_all(store, sha256: str) -> bytes:
    with store.open(sha256) as handle:
        return handle.read()


def test_staging_resumes_at_offsets_and_promotes(store):
    data = os.urandom(12 * MIB + 12345)
    sha = hashlib.sha256(data).hexdigest()
    upload = secrets.token_hex(16)
    assert store.staging_size(upload) == 0
    cuts = [0, 100, 3 * MIB + 7, 9 * MIB, len(data)]  # tails, a part boundary crossed, parts
    for start, end in zip(cuts, cuts[1:]):
        write(store, upload, start, data[start:end])
        assert store.staging_size(upload) == end
    assert store.staging_digest(upload) == sha
    assert not store.exists(sha)
    store.promote(upload, sha)
    assert store.exists(sha)
    assert read_all(store, sha) == data
    assert store.staging_size(upload) == 0


def test_an_unfinished_patch_is_cut_off_at_the_committed_offset(store):
    data = os.urandom(11 * MIB + 3)
    upload = secrets.token_hex(16)
    write(store, upload, 0, data[:2 * MIB])
    # A PATCH from 2 MiB dies: it sent a part past the offset and never closed (SIGKILL) ...
    write(store, upload, 2 * MIB, os.urandom(6 * MIB), close=False)
    # ... and another wrote and closed, but its offset was never committed.
    write(store, upload, 2 * MIB, os.urandom(MIB + 5))
    assert store.staging_size(upload) >= 2 * MIB
    writer = store.staging_writer(upload, 2 * MIB)  # the next PATCH at the committed offset
    assert store.staging_size(upload) == 2 * MIB, "bytes past the committed offset are dropped"
    for start in range(2 * MIB, len(data), 777_777):
        writer.write(data[start:min(start + 777_777, len(data))])
    writer.close()
    assert store.staging_size(upload) == len(data)
    sha = hashlib.sha256(data).hexdigest()
    assert store.staging_digest(upload) == sha
    store.promote(upload, sha)
    assert read_all(store, sha) == data


def test_the_same_blob_twice_is_kept_once(store, tmp_path):
    data = os.urandom(300_000)
    sha = hashlib.sha256(data).hexdigest()
    for _ in range(2):
        upload = secrets.token_hex(16)
        write(store, upload, 0, data)
        store.promote(upload, sha)
        assert store.staging_size(upload) == 0
    source = tmp_path / "again.bin"
    source.write_bytes(data)
    store.put_file(source, sha)
    assert read_all(store, sha) == data
    if not isinstance(store, LocalStore):
        shared = store.list_keys(store.prefix)
        assert shared == [store.blob_key(sha)], shared


def test_put_file_open_seek_and_local_copy(store, tmp_path):
    data = os.urandom(7 * MIB + 1)  # more than a part: put_file goes by parts
    sha = hashlib.sha256(data).hexdigest()
    source = tmp_path / "bundle.age"
    source.write_bytes(data)
    store.put_file(source, sha)
    assert store.exists(sha)
    with store.open(sha) as handle:
        assert handle.read(10) == data[:10]
        assert handle.seek(0, 2) == len(data)
        handle.seek(5 * MIB)
        assert handle.read(100) == data[5 * MIB:5 * MIB + 100]
        handle.seek(0)
        assert hashlib.sha256(handle.read()).hexdigest() == sha
        assert handle.read(1) == b""
    with store.local_copy(sha) as path:
        copied = Path(path)
        assert copied.read_bytes() == data
    if not isinstance(store, LocalStore):
        assert not copied.exists(), "the downloaded copy is removed after the context"
        assert (copied.stat().st_mode & 0o077) == 0 if copied.exists() else True


def test_missing_blobs_and_bad_ids(store):
    missing = "0" * 64
    assert not store.exists(missing)
    with pytest.raises(FileNotFoundError), store.open(missing) as handle:
        handle.read(1)
    for bad in ("../etc", "a/b", "", "x" * 81):
        with pytest.raises(ValueError):
            store.staging_size(bad)
        with pytest.raises(ValueError):
            store.staging_writer(bad, 0)
    for bad in ("ABC", "0" * 63, "../" + "0" * 61, "g" * 64):
        with pytest.raises(ValueError):
            store.exists(bad)
        with pytest.raises(ValueError):
            store.open(bad)


def test_a_64_mib_upload_in_odd_chunks_stays_in_bounded_memory(store):
    total = 64 * MIB
    upload = secrets.token_hex(16)
    me = psutil.Process()
    base = me.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], me.memory_info().rss)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    digest = hashlib.sha256()
    sizes = [1, 65_537, 999_983, 3 * MIB + 11, 17]
    offset = 0
    try:
        while offset < total:
            # A PATCH of 5-ish MiB in odd chunks, then the next PATCH at the committed offset.
            writer = store.staging_writer(upload, offset)
            for size in sizes:
                size = min(size, total - offset - writer.written)
                if size <= 0:
                    break
                chunk = os.urandom(size)
                writer.write(chunk)
                digest.update(chunk)
            offset += writer.written
            writer.close()
        assert store.staging_size(upload) == total
        assert store.staging_digest(upload) == digest.hexdigest()
    finally:
        stop.set()
        watcher.join()
    growth = (peak[0] - base) / MIB
    # Two parts (5 MiB here: one filling, one on the wire), a chunk, boto3's buffers (about 14
    # MiB measured): far below the 64 MiB it would take to hold the upload.
    assert growth < 32, f"the test process grew {growth:.0f} MiB for a {total >> 20} MiB upload"
    store.discard_staging(upload)
    assert store.staging_size(upload) == 0


def test_the_blobs_section_of_the_configuration(tmp_path):
    from server.config import Config, ConfigError, DataDir

    assert Config.from_dict({"recipients": []}).blobs == BlobSettings()  # older config.json: local
    data = DataDir(tmp_path)
    data.save(Config(recipients=["age1x"], blobs=BlobSettings(kind="s3", bucket="b", prefix="p/")))
    assert data.load().blobs.bucket == "b" and data.load().blobs.prefix == "p/"
    (tmp_path / "config.json").write_text(json.dumps({"recipients": [], "blobs": {"kind": "gcs"}}))
    with pytest.raises(ConfigError, match="blobs.kind must be local or s3"):
        data.load()
    assert BlobSettings(kind="s3", bucket="b", endpoint="http://k:secret@h:9").describe() == \
        "s3://b/ at http://k:***@h:9"


# Through the real server -------------------------------------------------------------------


def s3_server(base: Path, s3: S3rver, prefix: str = "srv/") -> Server:
    data = base / "data"
    creds = s3.credentials_file(base)
    init = json.loads(server_cli(
        "init", "--data", str(data), "--json", "--blob-store", "s3", "--s3-endpoint", s3.endpoint,
        "--s3-bucket", s3.bucket, "--s3-prefix", prefix, "--s3-region", "us-east-1",
        "--s3-credentials-file", str(creds)).stdout)
    assert init["blobs"] == f"s3://{s3.bucket}/{prefix} at {s3.endpoint}"
    config = json.loads((data / "config.json").read_text())
    assert s3.secret_key not in (data / "config.json").read_text()
    config["blobs"].update(part_bytes=PART, connect_timeout=1, read_timeout=5, max_attempts=2)
    (data / "config.json").write_text(json.dumps(config))
    return Server(data, None, init["admin_token"], init["recipients"][0])


def agent_upload(url: str, ticket: dict, path: Path, base: Path, chunk_mib: int = 3) -> List[str]:
    token = base / "token"
    token.write_text(ticket["upload_token"])
    return [sys.executable, "-m", "agent.cli", "upload", str(path), "--server", url, "--ticket", ticket["id"],
            "--token-file", str(token), "--chunk-size", str(chunk_mib), "--json"]


def test_init_refuses_an_unreachable_store_and_credentials_in_the_url(tmp_path, s3rver):
    done = server_cli("init", "--data", str(tmp_path / "d1"), "--blob-store", "s3", "--s3-endpoint",
                      "http://127.0.0.1:9", "--s3-bucket", "b", check=False)
    assert done.returncode == 6 and "cannot use the blob store" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "d1" / "config.json").exists()
    done = server_cli("init", "--data", str(tmp_path / "d2"), "--blob-store", "s3", "--s3-endpoint",
                      f"http://S3RVER:{s3rver.secret_key}@127.0.0.1:{s3rver.port}", "--s3-bucket", "b",
                      check=False)
    assert done.returncode == 2 and s3rver.secret_key not in done.stderr, done.stderr
    loose = tmp_path / "loose"
    loose.write_text("S3RVER\nsecret\n")
    loose.chmod(0o644)
    done = server_cli("init", "--data", str(tmp_path / "d3"), "--blob-store", "s3", "--s3-endpoint",
                      s3rver.endpoint, "--s3-bucket", s3rver.bucket, "--s3-credentials-file", str(loose),
                      check=False)
    assert done.returncode != 0 and "chmod 600" in done.stderr, done.stderr


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    """A real 9 MiB bundle (made once: random bytes compress slowly), sealed per test."""
    return make_bundle(tmp_path_factory.mktemp("bundle"), payload=9 * MIB)


def test_an_upload_through_the_server_onto_s3_and_back(tmp_path, s3rver, plain):
    support = s3_server(tmp_path, s3rver)
    support.start()
    try:
        ticket = support.ticket()
        sealed = seal(plain, support.recipient)
        sha = hashlib.sha256(sealed.read_bytes()).hexdigest()
        done = subprocess.run(agent_upload(support.url, ticket, sealed, tmp_path), cwd=ROOT,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "MYDIAG_HOME": str(tmp_path / "home")})
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["status"] == "accepted" and result["sha256"] == sha
        keys = s3rver.keys("srv/")
        assert f"srv/sha256/{sha[:2]}/{sha}" in keys and not [k for k in keys if "/staging/" in k], keys
        assert not [p for p in (support.data / "blobs").rglob("*") if p.is_file()], "nothing on local disk"
        [listed] = support.settled(ticket["id"])
        opened = support.cli("bundle", "open", listed["id"], "--output", str(tmp_path / "out"))
        unsealed = Path(opened.stdout.split("unsealed: ", 1)[1].splitlines()[0])
        assert unsealed.read_bytes() == plain.read_bytes(), "the bundle read back from S3 is the one sent"
        [status] = (tmp_path / "out").rglob("status.json")
        assert json.loads(status.read_text()) == {"Threads_running": 3}
        assert "blobs s3://" in support.logs()
    finally:
        support.stop()


def test_an_upload_resumes_through_another_process_after_a_sigkill_mid_patch(tmp_path, s3rver, plain):
    support = s3_server(tmp_path, s3rver)
    first = support.start()
    second_port = _free_port()
    try:
        ticket = support.ticket()
        sealed = seal(plain, support.recipient)
        size = sealed.stat().st_size
        sha = hashlib.sha256(sealed.read_bytes()).hexdigest()
        proxy = Proxy(support.port, rate=3 * MIB)
        agent = subprocess.Popen(agent_upload(proxy.url, ticket, sealed, tmp_path, chunk_mib=2), cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "MYDIAG_HOME": str(tmp_path / "home")})
        # PATCHes of 2 MiB: two are committed (a 4 MiB tail in the store); the third (4-6 MiB)
        # is under way, and its first 5 MiB part went to the store before the kill.
        _wait(lambda: proxy.sent > int(5.6 * MIB))
        staged = s3rver.keys("srv/staging/")
        assert [k for k in staged if k.endswith(f"state-{4 * MIB:020d}.json")], staged
        assert [k for k in staged if "/tail-" in k], staged
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        proxy.upstream_port = second_port
        proxy.cut_all()
        support.start(second_port)  # another process, same database and store
        support.port = second_port
        out, err = agent.communicate(timeout=180)
        assert agent.returncode == 0, err
        result = json.loads(out)
        assert result["status"] == "accepted" and result["sha256"] == sha
        resent = proxy.sent - size
        assert resent <= 2 * MIB + (64 << 10), f"{resent} bytes sent again: more than the PATCH that died"
        keys = s3rver.keys("srv/")
        assert f"srv/sha256/{sha[:2]}/{sha}" in keys and not [k for k in keys if "/staging/" in k], keys
        stored = s3rver.client().get_object(Bucket=s3rver.bucket, Key=f"srv/sha256/{sha[:2]}/{sha}")
        with stored["Body"] as body:
            assert hashlib.sha256(body.read()).hexdigest() == sha
        [listed] = support.settled(ticket["id"])
        assert listed["status"] == "accepted"
        proxy.close()
    finally:
        support.stop()


def _free_port() -> int:
    from tests.servers import free_port

    return free_port()


def _wait(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)
