"""Blob storage behind one small interface: uploads in progress, and sealed bundles by hash.

Two stores have these methods (docs/storage.md): `LocalStore`, a directory (the
default), and `S3Store` (server/storage/s3.py), an S3-compatible object store where an
upload in progress is a multipart upload whose state lives in the store itself, so any
server process can resume it. Blobs are keyed by their SHA-256 and written once; an
upload in progress counts only the bytes its committed PATCHes wrote (the database's
offset), and a writer opened at that offset drops whatever a dead PATCH left past it.

A store that cannot be reached, or fails, raises `StoreUnavailable` (an OSError): the
API answers 503 with Retry-After, and the work is retried; a missing blob raises
FileNotFoundError in both stores.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import BinaryIO, ContextManager, Iterator

_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


class StoreUnavailable(OSError):
    """The blob store did not answer or failed (down, 5xx, timeouts after the retries):
    nothing was changed that counts, and the same call may succeed later."""

    #: Seconds a client is told to wait (Retry-After) before it tries again.
    retry_after = 5


class StagingWriter:
    """Appends to one upload from a given offset; the bytes count once the caller commits
    the new offset in the database (tus.end_patch), after `close`."""

    #: Whether `write` and `close` may wait on the network (the API then calls them off the
    #: event loop); a local file's writes are left on it.
    remote = False

    def __init__(self, path: Path, offset: int) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "r+b", buffering=0)
        # Bytes past the committed offset are from a PATCH that did not finish: drop them.
        self._file.truncate(offset)
        self._file.seek(offset)
        self.written = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._file.write(view)
            view = view[n:]
            self.written += n

    def close(self) -> None:
        self._file.close()


class BlobStore:
    """Uploads in progress (`staging_*`, by upload id) and blobs (by SHA-256 hex).

    Every method may block (disk, network): the API calls them off the event loop.
    """

    def describe(self) -> str:
        """Where the blobs are, for the start-up line (never a credential)."""
        raise NotImplementedError

    def staging_size(self, upload_id: str) -> int:
        raise NotImplementedError

    def staging_writer(self, upload_id: str, offset: int) -> StagingWriter:
        raise NotImplementedError

    def staging_digest(self, upload_id: str) -> str:
        raise NotImplementedError

    def discard_staging(self, upload_id: str) -> None:
        raise NotImplementedError

    def promote(self, upload_id: str, sha256: str) -> None:
        """Make a finished upload the blob of `sha256` (kept once, however often it comes)."""
        raise NotImplementedError

    def put_file(self, path: Path, sha256: str) -> None:
        raise NotImplementedError

    def open(self, sha256: str) -> BinaryIO:
        raise NotImplementedError

    def local_copy(self, sha256: str) -> ContextManager[Path]:
        """The blob as a file on this machine for as long as the context lasts."""
        raise NotImplementedError

    def exists(self, sha256: str) -> bool:
        raise NotImplementedError


class LocalStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "staging").mkdir(parents=True, exist_ok=True)
        (self.root / "sha256").mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return f"local {self.root}"

    def staging_path(self, upload_id: str) -> Path:
        if not _ID.match(upload_id):
            raise ValueError("bad upload id")
        return self.root / "staging" / upload_id

    def _blob(self, sha256: str) -> Path:
        if not _SHA.match(sha256):
            raise ValueError("bad sha256")
        return self.root / "sha256" / sha256[:2] / sha256

    def staging_size(self, upload_id: str) -> int:
        try:
            return self.staging_path(upload_id).stat().st_size
        except FileNotFoundError:
            return 0

    def staging_writer(self, upload_id: str, offset: int) -> StagingWriter:
        return StagingWriter(self.staging_path(upload_id), offset)

    def staging_digest(self, upload_id: str) -> str:
        digest = hashlib.sha256()
        with open(self.staging_path(upload_id), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def discard_staging(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.staging_path(upload_id))

    def promote(self, upload_id: str, sha256: str) -> None:
        target = self._blob(sha256)
        if target.exists():
            self.discard_staging(upload_id)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = self.staging_path(upload_id)
        with open(staged, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(staged, target)

    def put_file(self, path: Path, sha256: str) -> None:
        target = self._blob(sha256)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{sha256}.import")
        shutil.copyfile(path, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)

    def open(self, sha256: str) -> BinaryIO:
        return open(self._blob(sha256), "rb")

    @contextlib.contextmanager
    def local_copy(self, sha256: str) -> Iterator[Path]:
        yield self._blob(sha256)

    def exists(self, sha256: str) -> bool:
        return self._blob(sha256).exists()
