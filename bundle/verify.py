"""Verifies a plain or sealed bundle in one streaming pass, and says exactly what holds.

Sealed bundles are opened in memory, chunk by chunk: no plaintext touches the disk.
The checks: the age envelope authenticates to its end; every member keeps the format's
rules and the limits (bundle.reader: paths, order, sizes, count, compression ratio);
`manifest.json` comes first and has the documented shape (bundle.manifest_schema);
`manifest.sig` (second) is a valid Ed25519 signature over the manifest's exact bytes,
by the expected signer when one is given; and every member's sha256 matches the
manifest, with nothing missing or added. Whatever the input, it runs in
bounded memory and time and ends in a verdict, never an exception of the input's making.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from bundle import age, sign
from bundle.limits import DEFAULT, Limits
from bundle.manifest import Manifest
from bundle.manifest_schema import ManifestError, parse
from bundle.reader import BundleError, LimitExceeded, manifest_bytes, members


@dataclass
class Verdict:
    """What a verification found. `ok` only when every check held and the bundle is signed."""

    sealed: bool = False
    #: The age1… recipient whose identity opened a sealed bundle.
    opened_by: Optional[str] = None
    #: Why the sealed envelope or the archive could not be read to its end.
    unreadable: Optional[str] = None
    unreadable_kind: Optional[str] = None
    #: True when `unreadable` is a limit the bundle would have crossed (bundle.limits).
    over_limit: bool = False
    #: The checked manifest document (bundle.manifest_schema), once it was read.
    manifest: Optional[Dict[str, Any]] = None
    host: Optional[str] = None
    signed: bool = False
    signer: Optional[str] = None
    signature_valid: Optional[bool] = None
    signature_problem: Optional[str] = None
    expected_signer: Optional[str] = None
    files_listed: int = 0
    files_matched: int = 0
    changed: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    extra: List[str] = field(default_factory=list)

    @property
    def signer_matches(self) -> Optional[bool]:
        if self.expected_signer is None or self.signer is None:
            return None
        return self.expected_signer == self.signer

    @property
    def intact(self) -> bool:
        """Readable to the end, and every member matches the manifest."""
        return self.unreadable is None and not (
            self.changed or self.missing or self.extra
        )

    @property
    def ok(self) -> bool:
        return (
            self.intact and self.signed and bool(self.signature_valid)
            and self.signer_matches is not False
            and not (self.expected_signer is not None and self.signer is None)
        )


def verify_bundle(
    path: Path, identities: Optional[Sequence[str]] = None, signer: Optional[str] = None,
    limits: Limits = DEFAULT,
) -> Verdict:
    """Check the bundle at `path` (sealed bundles need `identities`) within `limits`.

    The compression ratio is measured against the size of the file at `path`. Raises
    age.AgeError when a sealed bundle's header cannot be opened (not age, wrong key,
    corrupted header); every later problem is recorded in the verdict.
    """
    verdict = Verdict(expected_signer=sign.normalize_public_key(signer) if signer else None)
    verdict.sealed = age.is_age_file(path)
    with open(path, "rb") as raw:
        packed = os.fstat(raw.fileno()).st_size
        if not verdict.sealed:
            _walk(raw, verdict, limits, packed)
            return verdict
        reader = age.AgeReader(raw, identities or [])
        verdict.opened_by = age.recipient_of(list(identities or [])[reader.identity_index])
        try:
            _walk(reader, verdict, limits, packed)
            if verdict.unreadable is None:
                reader.drain()
        except age.AgeError as exc:
            verdict.unreadable, verdict.unreadable_kind = str(exc), exc.kind
    return verdict


def _walk(stream, verdict: Verdict, limits: Limits, packed: int) -> None:
    manifest_data: Optional[bytes] = None
    signature: Optional[bytes] = None
    seen: Dict[str, str] = {}
    try:
        for index, (info, handle) in enumerate(members(stream, limits, packed)):
            if index == 0 and handle is not None:
                manifest_data = manifest_bytes(handle, limits)
                if not _read_manifest(verdict, manifest_data, limits):
                    return
                continue
            if index == 1 and info.name == sign.SIGNATURE_PATH and handle is not None:
                signature = manifest_bytes(handle, limits)
                continue
            if handle is None:
                verdict.extra.append(f"{info.name} (not a regular file)")
                continue
            digest = hashlib.sha256()
            for chunk in iter(lambda h=handle: h.read(1 << 16), b""):
                digest.update(chunk)
            seen[info.name] = digest.hexdigest()
    except BundleError as exc:
        verdict.unreadable = str(exc).replace("the bundle: ", "", 1)
        verdict.over_limit = isinstance(exc, LimitExceeded)
        return
    if manifest_data is None or verdict.manifest is None:
        verdict.unreadable = "the bundle is empty"
        return
    manifest = Manifest.from_dict(verdict.manifest)
    _check_signature(verdict, manifest_data, signature)
    expected = {f.path: f.sha256 for f in manifest.files}
    verdict.files_listed = len(expected)
    verdict.missing = sorted(set(expected) - set(seen))
    verdict.changed = sorted(p for p in expected if p in seen and seen[p] != expected[p])
    verdict.extra += sorted(set(seen) - set(expected))
    verdict.files_matched = sum(1 for p in expected if seen.get(p) == expected[p])


def _read_manifest(verdict: Verdict, data: bytes, limits: Limits) -> bool:
    """Check the manifest's shape first of all: nothing may use a field before that."""
    try:
        verdict.manifest = parse(data, limits)
    except ManifestError as exc:
        verdict.unreadable = f"manifest.json is not valid: {exc}"
        return False
    verdict.host = verdict.manifest["host"]
    return True


def _check_signature(verdict: Verdict, manifest_bytes: bytes, signature: Optional[bytes]) -> None:
    if signature is None:
        return
    verdict.signed = True
    try:
        verdict.signer, raw = sign.parse_signature_document(signature)
    except sign.SignError as exc:
        verdict.signature_valid, verdict.signature_problem = False, str(exc)
        return
    verdict.signature_valid = sign.verify(verdict.signer, manifest_bytes, raw)
    if not verdict.signature_valid:
        verdict.signature_problem = (
            "the signature does not match manifest.json (the manifest or its signature was changed)"
        )
