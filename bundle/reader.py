"""Reads a plain bundle with the standard library and zstandard, streaming."""

from __future__ import annotations

import contextlib
import hashlib
import json
import tarfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO, Dict, Iterator, List, Optional, Tuple, Union

import zstandard

from bundle.manifest import MANIFEST_PATH, Manifest
from bundle.sign import SIGNATURE_PATH

#: A bundle on disk, or a readable stream of one (for example a sealed bundle being opened).
Source = Union[Path, str, BinaryIO]


class BundleError(Exception):
    """A bundle that cannot be read: the message says why, in one line."""


@contextmanager
def _open_tar(path: Source) -> Iterator[tarfile.TarFile]:
    try:
        with contextlib.ExitStack() as stack:
            raw = path if hasattr(path, "read") else stack.enter_context(open(path, "rb"))
            reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=False)
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                yield tar
    except FileNotFoundError:
        raise BundleError(f"{path}: no such file") from None
    except (zstandard.ZstdError, tarfile.TarError, EOFError) as exc:
        raise BundleError(f"{_label(path)}: not a readable mydiag bundle ({exc})") from None


def members(path: Source) -> Iterator[Tuple[tarfile.TarInfo, Optional[IO[bytes]]]]:
    with _open_tar(path) as tar:
        for info in tar:
            yield info, tar.extractfile(info) if info.isfile() else None


def read_manifest(path: Path) -> Manifest:
    for info, handle in members(path):
        if info.name != MANIFEST_PATH or handle is None:
            raise BundleError(f"{path}: first member is {info.name!r}, not {MANIFEST_PATH}")
        try:
            return Manifest.from_dict(json.loads(handle.read()))
        except (ValueError, TypeError) as exc:
            raise BundleError(f"{path}: manifest.json is not valid ({exc})") from None
    raise BundleError(f"{path}: empty bundle")


def _label(source: Source) -> str:
    return "the bundle" if hasattr(source, "read") else str(source)


def read_signed_manifest(path: Source) -> Tuple[bytes, Optional[bytes]]:
    """The exact bytes of manifest.json and of manifest.sig (None when the bundle is unsigned)."""
    manifest: Optional[bytes] = None
    for info, handle in members(path):
        if manifest is None:
            if info.name != MANIFEST_PATH or handle is None:
                raise BundleError(
                    f"{_label(path)}: first member is {info.name!r}, not {MANIFEST_PATH}"
                )
            manifest = handle.read()
            continue
        if info.name == SIGNATURE_PATH and handle is not None:
            return manifest, handle.read()
        return manifest, None
    if manifest is None:
        raise BundleError(f"{_label(path)}: empty bundle")
    return manifest, None


def read_member(path: Path, name: str) -> bytes:
    for info, handle in members(path):
        if info.name == name and handle is not None:
            return handle.read()
    raise BundleError(f"{path}: no member {name!r} (see `mydiag inspect {path}`)")


def check_digests(path: Path) -> Dict[str, List[str]]:
    """Compare every member with the manifest: {'missing': [...], 'changed': [...], 'extra': [...]}."""
    manifest = read_manifest(path)
    expected = {f.path: f.sha256 for f in manifest.files}
    seen: Dict[str, str] = {}
    for info, handle in members(path):
        if handle is None or info.name in (MANIFEST_PATH, SIGNATURE_PATH):
            continue
        digest = hashlib.sha256()
        for chunk in iter(lambda h=handle: h.read(1 << 16), b""):
            digest.update(chunk)
        seen[info.name] = digest.hexdigest()
    return {
        "missing": sorted(set(expected) - set(seen)),
        "changed": sorted(p for p in expected if p in seen and seen[p] != expected[p]),
        "extra": sorted(set(seen) - set(expected)),
    }
