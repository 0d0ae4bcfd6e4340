"""Secrets made up at test time, and every form they could take in a bundle or on a terminal."""

from __future__ import annotations

import base64
import json
import secrets
import urllib.parse
from typing import Dict, Iterable, List


def make(prefix: str = "") -> str:
    """A fresh secret; `prefix` keeps it from starting with a dash."""
    return prefix + secrets.token_urlsafe(18)


def forms(secret: str) -> List[bytes]:
    """Raw, JSON-escaped, base64 (any alignment), hex (either case) and URL-encoded forms."""
    raw = secret.encode()
    found = {
        raw,
        json.dumps(secret)[1:-1].encode(),
        json.dumps(secret, ensure_ascii=False)[1:-1].encode(),
        raw.hex().encode(),
        raw.hex().upper().encode(),
        urllib.parse.quote(secret, safe="").encode(),
        urllib.parse.quote_plus(secret).encode(),
    }
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        core = encoded[(shift * 4 + 2) // 3 + 1:-4]
        if len(core) >= 8:
            found.add(core)
            found.add(base64.urlsafe_b64encode(b"\0" * shift + raw)[(shift * 4 + 2) // 3 + 1:-4])
    return sorted(f for f in found if len(f) >= 6)


def leaks(planted: Dict[str, str], blobs: Dict[str, bytes]) -> List[str]:
    """Which planted secrets (by label, never value) show up in which blob, in any form."""
    found: List[str] = []
    for label, secret in planted.items():
        for where, blob in blobs.items():
            if any(form in blob for form in forms(secret)):
                found.append(f"{label} in {where}")
    return found


def files_under(*folders) -> Dict[str, bytes]:
    out: Dict[str, bytes] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out[str(path)] = path.read_bytes()
    return out


def joined(texts: Iterable[str]) -> bytes:
    return "\n".join(texts).encode()
