"""Writes a plain bundle: a zstd-compressed tar whose first member is manifest.json.

Every artifact passes through the redactor before it touches the disk. Members are
staged in a private folder beside the output (the manifest must come first and needs
every file's digest), then streamed into `<name>.partial`, fsynced and renamed: a
crash never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import List, Optional, Sequence

import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bundle.age import AgeWriter
from bundle.manifest import MANIFEST_PATH, FileEntry, Manifest
from bundle.paths import member_ok
from bundle.redact import Redactor
from bundle.sign import SIGNATURE_PATH, signature_document

PARTIAL_SUFFIX = ".partial"
ZSTD_LEVEL = 6
_CHUNK = 1 << 16


class BundleWriter:
    def __init__(self, output_dir: Path, redactor: Optional[Redactor] = None) -> None:
        self.output_dir = Path(output_dir)
        self.redactor = redactor or Redactor()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._stage = Path(tempfile.mkdtemp(prefix=".mydiag-stage-", dir=self.output_dir))
        self._entries: List[FileEntry] = []
        self._lock = threading.Lock()

    @property
    def paths(self) -> List[str]:
        return [e.path for e in self._entries]

    def add(self, path: str, data: bytes) -> FileEntry:
        """Redact `data` and stage it as member `path`."""
        if not member_ok(path) or path in (MANIFEST_PATH, SIGNATURE_PATH):
            raise ValueError(f"bad bundle member path {path!r}")
        with self._lock:
            if path in self.paths:
                raise ValueError(f"bundle member {path} written twice")
            clean = self.redactor.apply(path, data)
            target = self._stage / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(clean)
            entry = FileEntry(path, len(clean), hashlib.sha256(clean).hexdigest())
            self._entries.append(entry)
            return entry

    def finish(
        self, manifest: Manifest, name: str, signing_key: Optional[Ed25519PrivateKey] = None,
        recipients: Optional[Sequence[str]] = None,
    ) -> Path:
        """Write the bundle atomically and return its path.

        With `signing_key`, `manifest.sig` follows the manifest. With `recipients`, the
        bundle is sealed as it is written (age v1, `name` + ".age"): no plaintext copy of
        the whole bundle is ever on disk.
        """
        manifest.files = list(self._entries)
        manifest.redaction = dict(self.redactor.report())
        if recipients:
            name += ".age"
        final = self.output_dir / name
        partial = self.output_dir / f".{name}{PARTIAL_SUFFIX}"
        mtime = int(_parse_epoch(manifest.finished))
        try:
            with open(partial, "wb") as raw:
                sealer = AgeWriter(raw, recipients) if recipients else None
                compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
                with compressor.stream_writer(sealer or raw, closefd=False) as zout, tarfile.open(
                    fileobj=zout, mode="w|", format=tarfile.PAX_FORMAT
                ) as tar:
                    body = json.dumps(manifest.to_dict(), indent=2, sort_keys=True).encode() + b"\n"
                    tar.addfile(_info(MANIFEST_PATH, len(body), mtime), io.BytesIO(body))
                    if signing_key is not None:
                        signature = signature_document(signing_key, body)
                        tar.addfile(_info(SIGNATURE_PATH, len(signature), mtime), io.BytesIO(signature))
                    for entry in self._entries:
                        with open(self._stage / entry.path, "rb") as member:
                            tar.addfile(_info(entry.path, entry.bytes, mtime), member)
                if sealer is not None:
                    sealer.close()
                raw.flush()
                os.fsync(raw.fileno())
            os.rename(partial, final)
            _fsync_dir(self.output_dir)
        except BaseException:
            _unlink(partial)
            raise
        finally:
            self.discard()
        return final

    def discard(self) -> None:
        shutil.rmtree(self._stage, ignore_errors=True)


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o600
    info.uname = info.gname = ""
    return info


def _parse_epoch(stamp: str) -> float:
    import datetime as _dt

    try:
        return _dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=_dt.timezone.utc
        ).timestamp()
    except ValueError:
        return 0.0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
