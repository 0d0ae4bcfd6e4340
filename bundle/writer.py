"""Writes a plain bundle: a zstd-compressed tar whose first member is manifest.json.

Every artifact passes through the redactor before it touches the disk, and this class
is the only way into a bundle. Members are staged in a private folder beside the output
(the manifest must come first and needs every file's digest). `prepare` then replaces
names by pseudonyms (when asked), redacts the manifest's own text (error messages land
there) and lints everything for secrets the rules missed; only then are the members
streamed into `<name>.partial`, fsynced and renamed: a crash never leaves a file that
looks complete.
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
from collections import Counter
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Sequence

import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bundle.age import AgeWriter
from bundle.manifest import MANIFEST_PATH, FileEntry, Manifest
from bundle.paths import SUFFIX, member_ok
from bundle.sign import SIGNATURE_PATH, signature_document
from privacy.lint import Finding, SecretFindings, lint_bytes, lint_file
from privacy.redact import Redactor, dump_json, json_documents, kind_of

PARTIAL_SUFFIX = ".partial"
ZSTD_LEVEL = 6
_CHUNK = 1 << 16


class BadMemberPath(ValueError):
    """A member path the bundle format refuses (bundle.paths.member_problem)."""


class BundleWriter:
    def __init__(
        self, output_dir: Path, redactor: Optional[Redactor] = None, *,
        allow_findings: bool = False,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.redactor = redactor or Redactor()
        #: Finish even when the lint finds something (`--allow-findings`); counted in the report.
        self.allow_findings = allow_findings
        self.findings: List[Finding] = []
        self._made_output_dir = not self.output_dir.exists()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._stage = Path(tempfile.mkdtemp(prefix=".mydiag-stage-", dir=self.output_dir))
        self._entries: List[FileEntry] = []
        self._lock = threading.Lock()
        self._prepared = False

    @property
    def stage(self) -> Path:
        """Where the redacted members wait (for `--review`); removed by finish and discard."""
        return self._stage

    @property
    def paths(self) -> List[str]:
        return [e.path for e in self._entries]

    def add(self, path: str, data: bytes) -> FileEntry:
        """Redact `data` and stage it as member `path`."""
        if not member_ok(path) or path in (MANIFEST_PATH, SIGNATURE_PATH):
            raise BadMemberPath(f"bad bundle member path {path!r}")
        with self._lock:
            if path in self.paths:
                raise ValueError(f"bundle member {path} written twice")
            if self._prepared:
                raise ValueError(f"bundle member {path} added after the bundle was prepared")
            clean = self.redactor.apply(path, data)
            target = self._stage / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(clean)
            entry = FileEntry(path, len(clean), hashlib.sha256(clean).hexdigest())
            self._entries.append(entry)
            return entry

    def add_stream(self, path: str, src: IO[bytes]) -> FileEntry:
        """Redact a big text stream (a log) line by line straight into member `path`."""
        if not member_ok(path) or path in (MANIFEST_PATH, SIGNATURE_PATH):
            raise BadMemberPath(f"bad bundle member path {path!r}")
        with self._lock:
            if path in self.paths or self._prepared:
                raise ValueError(f"bundle member {path} written twice or after prepare")
            target = self._stage / path
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                self.redactor.stream(path, src, out)
            entry = FileEntry(path, target.stat().st_size, _digest(target))
            self._entries.append(entry)
            return entry

    def prepare(self, manifest: Manifest) -> List[FileEntry]:
        """Make the staged members final: pseudonyms, the manifest's own text, the lint.

        Returns the entries as they will be written (with per-file redaction counts).
        Raises SecretFindings when the lint finds something and findings are not allowed.
        """
        with self._lock:
            if not self._prepared:
                renamed = self._pseudonymize() if self.redactor.pseudonymizer is not None else {}
                self._clean_manifest(manifest, renamed)
                for entry in self._entries:
                    entry.redactions = self.redactor.file_report(entry.path)
                self.findings = [
                    finding for entry in self._entries
                    for finding in lint_file(entry.path, self._stage / entry.path)
                ]
                self._prepared = True
            manifest.files = list(self._entries)
            manifest.redaction = self._report()
            body = json.dumps(manifest.to_dict(), indent=2, sort_keys=True).encode()
            findings = self.findings + lint_bytes(MANIFEST_PATH, body)
        if findings and not self.allow_findings:
            raise SecretFindings(findings)
        return list(self._entries)

    def _report(self) -> Dict[str, int]:
        report = dict(self.redactor.report())
        if self.findings and self.allow_findings:
            report["lint_finding_allowed"] = len(self.findings)
        return report

    def _pseudonymize(self) -> Dict[str, str]:
        """Second pass: every learned name and address becomes its token, paths included."""
        pseudo = self.redactor.pseudonymizer
        assert pseudo is not None
        renamed: Dict[str, str] = {}
        taken = set(self.paths)
        for entry in self._entries:
            counts: Counter = Counter()
            new_path = pseudo.text(entry.path, counts)
            if new_path != entry.path and (not member_ok(new_path) or new_path in taken):
                new_path = entry.path
            source = self._stage / entry.path
            target = self._stage / new_path
            temporary = target.with_name(target.name + ".pseudonyms")
            target.parent.mkdir(parents=True, exist_ok=True)
            kind = kind_of(entry.path)
            with open(source, "rb") as src, open(temporary, "wb") as dst:
                if kind in ("json", "jsonl"):
                    raw = src.read()
                    documents = json_documents(raw, kind)
                    if documents is not None:
                        dst.write(dump_json([pseudo.json(d, counts) for d in documents], kind, raw))
                    else:
                        dst.write(pseudo.text(raw.decode("utf-8", "surrogateescape"), counts)
                                  .encode("utf-8", "surrogateescape"))
                else:
                    for line in src:
                        text = line.decode("utf-8", "surrogateescape")
                        dst.write(pseudo.text(text, counts).encode("utf-8", "surrogateescape"))
            os.replace(temporary, target)
            if new_path != entry.path:
                source.unlink()
                self.redactor.rename(entry.path, new_path)
                renamed[entry.path] = new_path
                taken.add(new_path)
                entry.path = new_path
            count = self.redactor.counter(entry.path)
            for rule, n in counts.items():
                count(rule, n)
            entry.bytes = target.stat().st_size
            entry.sha256 = _digest(target)
        return renamed

    def _clean_manifest(self, manifest: Manifest, renamed: Dict[str, str]) -> None:
        """The manifest's free text (errors, notes, fixes, host) through the same rules."""
        redactor = self.redactor
        pseudo = redactor.pseudonymizer
        counts: Counter = Counter()

        def clean(value: Any) -> Any:
            value = redactor.value(value, MANIFEST_PATH)
            return pseudo.json(value, counts) if pseudo is not None else value

        manifest.host = clean(manifest.host)
        manifest.mysql = clean(manifest.mysql)
        manifest.options = clean(manifest.options)
        for item in manifest.collectors:
            item.error, item.fix, item.notes = clean(item.error), clean(item.fix), clean(item.notes)
            item.files = [renamed.get(path, path) for path in item.files]
        count = redactor.counter(MANIFEST_PATH)
        for rule, n in counts.items():
            count(rule, n)

    def finish(
        self, manifest: Manifest, name: str, signing_key: Optional[Ed25519PrivateKey] = None,
        recipients: Optional[Sequence[str]] = None,
    ) -> Path:
        """Write the bundle atomically and return its path.

        With `signing_key`, `manifest.sig` follows the manifest. With `recipients`, the
        bundle is sealed as it is written (age v1, `name` + ".age"): no plaintext copy of
        the whole bundle is ever on disk.
        """
        try:
            self.prepare(manifest)
        except BaseException:
            self.discard()
            raise
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
            final = _publish(partial, final)
            _fsync_dir(self.output_dir)
        except BaseException:
            _unlink(partial)
            raise
        finally:
            self.discard()
        return final

    def discard(self) -> None:
        """Remove the staged members, and the output folder when this writer made it for nothing."""
        shutil.rmtree(self._stage, ignore_errors=True)
        if self._made_output_dir:
            with contextlib.suppress(OSError):
                self.output_dir.rmdir()


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def _publish(partial: Path, final: Path) -> Path:
    """Give the finished file its name without ever replacing another bundle: two
    collections in the same second get `…Z.tar.zst` and `…Z-2.tar.zst`. A hard link
    claims the name atomically; where the filesystem has none, the name is checked first."""
    base, suffix = final.name, ""
    for ending in (SUFFIX + ".age", SUFFIX):
        if base.endswith(ending):
            base, suffix = base[: -len(ending)], ending
            break
    for number in range(1, 1000):
        stem = base + (f"-{number}" if number > 1 else "")
        candidate = final.with_name(stem + suffix)
        # The plain and the sealed form of one name belong to one collection (the sealed
        # copy of a --keep-plain bundle is the plain name plus .age).
        if any(final.with_name(stem + other).exists() for other in (SUFFIX, SUFFIX + ".age")
               if other != suffix):
            continue
        try:
            os.link(partial, candidate)
        except FileExistsError:
            continue
        except OSError:  # no hard links here (some network and FUSE filesystems)
            if candidate.exists():
                continue
            os.rename(partial, candidate)
            return candidate
        _unlink(partial)
        return candidate
    raise FileExistsError(f"{final}: 999 bundles of this name already exist in {final.parent}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
