"""Reads a plain bundle with the standard library and zstandard, streaming, within bounds.

Every member passes the format's rules before anyone reads a byte of it: its path
(bundle.paths.member_problem), its place (manifest.json first and only there, manifest.sig
second if at all, no name twice, no file that is also a folder of another), and the
limits (bundle.limits): its size as the tar header declares it, the running total, the
compression ratio against the file as received, the member count. A member over a limit
is refused at its header, so a bomb costs the reader nothing. Any problem is a
BundleError with one line that is safe to print and to store.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO, Dict, Iterator, Optional, Set, Tuple, Union

import zstandard

from bundle.limits import DEFAULT, MAX_EXTENSION_CHAIN, MAX_EXTENSION_HEADER, MAX_ZSTD_WINDOW, Limits
from bundle.manifest import MANIFEST_PATH, Manifest
from bundle.manifest_schema import ManifestError, parse, shown
from bundle.paths import member_problem
from bundle.sign import SIGNATURE_PATH

#: A bundle on disk, or a readable stream of one (for example a sealed bundle being opened).
Source = Union[Path, str, BinaryIO]

#: What the archive layers raise on input they cannot decode.
_DECODE_ERRORS = (zstandard.ZstdError, tarfile.TarError, EOFError, ValueError, OverflowError,
                  RecursionError)
_EXTENSIONS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
               tarfile.GNUTYPE_LONGLINK)


class BundleError(Exception):
    """A bundle that cannot be read: the message says why, in one line."""


class LimitExceeded(BundleError):
    """A bundle that would expand past a limit (bundle.limits): refused before it did."""


class _BoundedInfo(tarfile.TarInfo):
    """The standard TarInfo, minus what lets a header make tarfile allocate without bound.

    tarfile reads a pax or long-name header into memory whole, follows chains of them
    recursively, and keeps sparse maps of any length; refuse those here, at the header,
    before it does (these are the private hooks every CPython from 3.9 to 3.13 calls).
    """

    def _proc_member(self, tar: tarfile.TarFile):  # type: ignore[override]
        if self.type in _EXTENSIONS:
            if not 0 <= self.size <= MAX_EXTENSION_HEADER:
                raise LimitExceeded(f"a tar extension header of {self.size} bytes (the limit is "
                                    f"{MAX_EXTENSION_HEADER})")
            chain = getattr(tar, "_mydiag_chain", 0) + 1
            if chain > MAX_EXTENSION_CHAIN:
                raise LimitExceeded(f"more than {MAX_EXTENSION_CHAIN} tar extension headers in a row")
            tar._mydiag_chain = chain  # type: ignore[attr-defined]
        else:
            tar._mydiag_chain = 0  # type: ignore[attr-defined]
            if self.type == tarfile.GNUTYPE_SPARSE:
                raise BundleError("a sparse tar member (bundle members are regular files)")
        return super()._proc_member(tar)

    def _proc_gnusparse_00(self, *_args):  # type: ignore[override]
        raise BundleError("a sparse tar member (bundle members are regular files)")

    _proc_gnusparse_01 = _proc_gnusparse_10 = _proc_gnusparse_00


@contextmanager
def _open_tar(source: Source) -> Iterator[tarfile.TarFile]:
    try:
        with contextlib.ExitStack() as stack:
            raw = source if hasattr(source, "read") else stack.enter_context(open(source, "rb"))
            reader = zstandard.ZstdDecompressor(max_window_size=MAX_ZSTD_WINDOW).stream_reader(
                raw, closefd=False)
            with tarfile.open(fileobj=reader, mode="r|", tarinfo=_BoundedInfo, encoding="utf-8",
                              errors="surrogateescape") as tar:
                yield tar
    except FileNotFoundError:
        raise BundleError(f"{source}: no such file") from None
    except BundleError as exc:
        raise type(exc)(f"{_label(source)}: {exc}") from None
    except _DECODE_ERRORS as exc:
        raise BundleError(f"{_label(source)}: not a readable mydiag bundle ({_one_line(exc)})") from None


class _Member:
    """One member's bytes as tarfile streams them, with decoding errors as BundleError."""

    def __init__(self, handle: IO[bytes], label: str) -> None:
        self._handle = handle
        self._label = label

    def read(self, size: int = -1) -> bytes:
        try:
            return self._handle.read(size)
        except _DECODE_ERRORS as exc:
            raise BundleError(f"{self._label}: not a readable mydiag bundle ({_one_line(exc)})") from None


class _Rules:
    """The per-member checks of the module docstring, with what they must remember."""

    def __init__(self, limits: Limits, packed_bytes: Optional[int]) -> None:
        self.limits = limits
        self.packed_bytes = packed_bytes
        self.allowed = limits.unpacked_allowed(packed_bytes)
        self.count = 0
        self.total = 0
        self.files: Dict[str, str] = {}
        self.folders: Set[str] = set()

    def admit(self, info: tarfile.TarInfo) -> None:
        index, name = self.count, info.name
        self.count += 1
        if self.count > self.limits.members:
            raise LimitExceeded(f"more than {self.limits.members} members (the limit)")
        problem = member_problem(name, self.limits.path_bytes)
        if problem:
            raise BundleError(f"member {shown(name)} breaks the bundle format: {problem}")
        self._place(index, info)
        self._size(info)
        if info.isdir():
            if self._key(name) in self.files:
                raise BundleError(f"member {shown(name)} is a folder and also a file")
            self.folders.add(self._key(name))
            return
        self._unique(name)

    def _size(self, info: tarfile.TarInfo) -> None:
        size = info.size if info.isfile() or info.type not in tarfile.SUPPORTED_TYPES else 0
        if size < 0:
            raise BundleError(f"member {shown(info.name)} has a negative size")
        if size > self.limits.member_bytes:
            raise LimitExceeded(f"member {shown(info.name)} unpacks to {size} bytes; the limit per "
                                f"member is {self.limits.member_bytes}")
        self.total += size
        if self.total <= self.allowed:
            return
        if self.allowed < self.limits.unpacked_bytes:
            raise LimitExceeded(
                f"the members unpack to more than {self.allowed} bytes, over {self.limits.ratio:g} "
                f"times the {self.packed_bytes} bytes received (a compression bomb)")
        raise LimitExceeded(f"the members unpack to more than {self.allowed} bytes (the limit)")

    def _place(self, index: int, info: tarfile.TarInfo) -> None:
        name = info.name
        if index == 0:
            if name != MANIFEST_PATH or not info.isfile():
                raise BundleError(f"the first member is {shown(name)}, not {MANIFEST_PATH}")
        elif name == MANIFEST_PATH:
            raise BundleError(f"a second {MANIFEST_PATH} (member {index + 1})")
        elif name == SIGNATURE_PATH and (index != 1 or not info.isfile()):
            raise BundleError(f"{SIGNATURE_PATH} as member {index + 1} (it may only be the second)")
        if name in (MANIFEST_PATH, SIGNATURE_PATH) and info.size > self.limits.manifest_bytes:
            raise LimitExceeded(f"{name} is {info.size} bytes; the limit is {self.limits.manifest_bytes}")

    def _unique(self, name: str) -> None:
        key = self._key(name)
        if key in self.files:
            earlier = self.files[key]
            if earlier == name:
                raise BundleError(f"member {shown(name)} appears twice")
            raise BundleError(f"members {shown(earlier)} and {shown(name)} are one file on "
                              "case-insensitive file systems")
        if key in self.folders:
            raise BundleError(f"member {shown(name)} is a file and also the folder of another member")
        parts = key.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in self.files:
                raise BundleError(f"member {shown(name)} is inside {shown(self.files[folder])}, "
                                  "which is a file")
            self.folders.add(folder)
        self.files[key] = name

    @staticmethod
    def _key(name: str) -> str:
        """What a file system that folds case and Unicode forms would make of the name."""
        return unicodedata.normalize("NFC", name).casefold()


def members(source: Source, limits: Limits = DEFAULT, packed_bytes: Optional[int] = None,
            ) -> Iterator[Tuple[tarfile.TarInfo, Optional[_Member]]]:
    """Each member and, for a regular file, its bytes as a stream; see the module docstring.

    `packed_bytes` is the size of the file as received, for the compression ratio (the
    size of `source` when it is a path; unknown, so no ratio bound, for a bare stream).
    """
    if packed_bytes is None and not hasattr(source, "read"):
        with contextlib.suppress(OSError):
            packed_bytes = os.stat(source).st_size
    rules = _Rules(limits, packed_bytes)
    label = _label(source)
    with _open_tar(source) as tar:
        while True:
            info = tar.next()
            if info is None:
                return
            # Streaming: tarfile would otherwise keep every member it has seen.
            tar.members.clear()
            rules.admit(info)
            handle = tar.extractfile(info) if info.isfile() else None
            yield info, _Member(handle, label) if handle is not None else None


def manifest_bytes(handle: _Member, limits: Limits = DEFAULT) -> bytes:
    """The manifest member's bytes (its size was bounded at its header)."""
    return handle.read(limits.manifest_bytes + 1)


def read_manifest(path: Source, limits: Limits = DEFAULT) -> Manifest:
    for _info, handle in members(path, limits):
        assert handle is not None  # the rules make the first member a regular manifest.json
        try:
            return Manifest.from_dict(parse(manifest_bytes(handle, limits), limits))
        except ManifestError as exc:
            raise BundleError(f"{_label(path)}: manifest.json is not valid: {exc}") from None
    raise BundleError(f"{_label(path)}: empty bundle")


def copy_member(path: Source, name: str, out: BinaryIO, limits: Limits = DEFAULT) -> int:
    """Stream member `name` into `out`; the bytes copied."""
    for info, handle in members(path, limits):
        if info.name == name and handle is not None:
            copied = 0
            for chunk in iter(lambda h=handle: h.read(1 << 16), b""):
                out.write(chunk)
                copied += len(chunk)
            return copied
    raise BundleError(f"{_label(path)}: no member {shown(name)} (see `mydiag inspect {_label(path)}`)")


def read_member(path: Source, name: str, limits: Limits = DEFAULT) -> bytes:
    """Member `name` in memory: for small members (manifest-sized at most)."""
    for info, handle in members(path, limits):
        if info.name == name and handle is not None:
            if info.size > limits.manifest_bytes:
                raise LimitExceeded(f"{_label(path)}: member {shown(name)} is {info.size} bytes, too "
                                    f"big to read into memory (the limit is {limits.manifest_bytes})")
            return handle.read()
    raise BundleError(f"{_label(path)}: no member {shown(name)} (see `mydiag inspect {_label(path)}`)")


def _label(source: Source) -> str:
    return "the bundle" if hasattr(source, "read") else shown(str(source), 200).strip("'\"")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return shown(text, 200)[1:-1]
