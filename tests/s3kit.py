"""A real S3-compatible server for tests: s3rver (npm, file-backed, not ours) on loopback.

scripts/system-deps.sh installs it under .tools/; Node runs it on a free 127.0.0.1 port
with its data in a temp folder and one bucket made at start-up. A missing `node` or
s3rver fails the test (CI must not pass by skipping the object store). `stop` and `start`
again on the same port and folder is a store that went down and came back.

s3rver knows one key id (S3RVER) and takes any secret with it; the tests' secret is made
up per run anyway. Its known gaps (ListParts refused, suffix ranges wrong) are not ours.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
S3RVER = ROOT / ".tools" / "node_modules" / "s3rver" / "bin" / "s3rver.js"


def _unavailable(what: str) -> None:
    pytest.fail(f"{what} (scripts/system-deps.sh installs it): the object store tests need it")


@dataclass
class S3rver:
    """One s3rver process: its folder, port and bucket, and made-up credentials."""

    directory: Path
    bucket: str
    port: int = 0
    #: s3rver knows one key id, S3RVER (and takes any secret with it).
    access_key: str = "S3RVER"
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    process: Optional[subprocess.Popen] = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3rver:
        node = shutil.which("node")
        if node is None:
            _unavailable("node is not installed")
        if not S3RVER.is_file():
            _unavailable(f"s3rver is not installed at {S3RVER}")
        self.port = self.port or free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory.parent / f"s3rver-{self.port}.log", "ab") as log:
            self.process = subprocess.Popen(
                [node, str(S3RVER), "--directory", str(self.directory), "--address", "127.0.0.1",
                 "--port", str(self.port), "--silent", "--configure-bucket", self.bucket],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"s3rver exited at start-up with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"s3rver not listening on {self.port} after 20 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def credentials_file(self, folder: Path) -> Path:
        """The key id and secret as `--s3-credentials-file` reads them (two lines, mode 0600)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"s3-credentials-{self.port}"
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(f"{self.access_key}\n{self.secret_key}\n")
        return path

    def client(self, endpoint: Optional[str] = None):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=endpoint or self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"mode": "standard", "max_attempts": 2},
                                          connect_timeout=2, read_timeout=10))

    def keys(self, prefix: str = "") -> list:
        found, token = [], None
        client = self.client()
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, **extra)
            found += [item["Key"] for item in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not token:
                return sorted(found)


def s3rver_at(folder: Path, bucket: str = "mydiag-test") -> Iterator[S3rver]:
    server = S3rver(folder / "s3rver-data", bucket).start()
    try:
        yield server
    finally:
        server.stop()
