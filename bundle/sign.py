"""Host signatures: an Ed25519 key per host, and the `manifest.sig` member of a bundle.

The host key is a PKCS#8 PEM file (mode 0600; `openssl pkey` reads it). Its public
half travels as one line of text, `mydiag-ed25519 <base64 of the 32 raw bytes>`.

A bundle's second member, `manifest.sig`, is a small JSON document holding the
signer's public key text and an Ed25519 signature over the exact bytes of the first
member, `manifest.json`. The manifest carries every file's sha256, so one valid
signature covers the whole bundle.

Any other use of the host key (enrollment, upload authentication) must sign messages
that begin with a context label of its own, never raw bytes a peer chose: a manifest
is a JSON object and starts with `{`, so a signature made for another purpose can
then never pass as a manifest signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Tuple, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "ed25519"
KEY_PREFIX = "mydiag-ed25519"
SIGNATURE_PATH = "manifest.sig"
SIGNATURE_FORMAT = 1

PathLike = Union[str, "os.PathLike[str]"]


class SignError(Exception):
    """A host key or signature document that cannot be used; the message is one line."""


def generate_host_key(path: PathLike) -> Ed25519PrivateKey:
    """Create a new host key at `path` (mode 0600); never replaces an existing one."""
    path = Path(path)
    if path.exists():
        raise SignError(f"{path} already exists; remove it first to make a new host key")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        # link, not rename: two concurrent `keys init` never replace each other's key.
        os.link(temp, path)
    except FileExistsError:
        raise SignError(f"{path} already exists; remove it first to make a new host key") from None
    finally:
        if temp.exists():
            os.unlink(temp)
    return key


def load_host_key(path: PathLike) -> Ed25519PrivateKey:
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise SignError(f"no host key at {path}: run `mydiag keys init` to create one") from None
    except OSError as exc:
        raise SignError(f"cannot read the host key {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise SignError(
            f"the host key {path} is readable by other users (mode {mode & 0o777:04o}): "
            f"run `chmod 600 {path}`"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SignError(f"{path} is not a valid host key (an unencrypted PEM Ed25519 key)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignError(f"{path} is not an Ed25519 key")
    return key


def public_key_text(key: Union[Ed25519PrivateKey, Ed25519PublicKey]) -> str:
    """`mydiag-ed25519 <base64>`: the one-line public key of a host."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{KEY_PREFIX} {base64.b64encode(raw).decode()}"


def parse_public_key(text: str) -> Ed25519PublicKey:
    parts = text.strip().split()
    if len(parts) != 2 or parts[0] != KEY_PREFIX:
        raise SignError(f"not a mydiag public key (expected '{KEY_PREFIX} <base64>')")
    try:
        raw = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SignError(f"not a mydiag public key (expected '{KEY_PREFIX} <base64>')")
    return Ed25519PublicKey.from_public_bytes(raw)


def normalize_public_key(text: str) -> str:
    return public_key_text(parse_public_key(text))


def fingerprint(public_text: str) -> str:
    """`SHA256:…` of the raw public key, the way `ssh-keygen -l` shows keys."""
    raw = parse_public_key(public_text).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return key.sign(data)


def verify(public_text: str, data: bytes, signature: bytes) -> bool:
    """True when `signature` is a valid Ed25519 signature of `data` by `public_text`."""
    try:
        parse_public_key(public_text).verify(signature, data)
    except (SignError, InvalidSignature, ValueError):
        return False
    return True


def signature_document(key: Ed25519PrivateKey, manifest_bytes: bytes) -> bytes:
    """The `manifest.sig` member for these exact manifest bytes."""
    document = {
        "format": SIGNATURE_FORMAT,
        "algorithm": ALGORITHM,
        "signed": "manifest.json",
        "public_key": public_key_text(key),
        "signature": base64.b64encode(sign(key, manifest_bytes)).decode(),
    }
    return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"


def parse_signature_document(data: bytes) -> Tuple[str, bytes]:
    """(public key text, signature) from a `manifest.sig` member; SignError when malformed."""
    try:
        document = json.loads(data)
        if not isinstance(document, dict):
            raise ValueError("not an object")
        algorithm, public, encoded = (
            document["algorithm"], document["public_key"], document["signature"]
        )
        if not isinstance(public, str):
            raise TypeError("public_key is not text")
        signature = base64.b64decode(encoded, validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
        raise SignError(f"{SIGNATURE_PATH} is malformed ({type(exc).__name__})") from None
    if algorithm != ALGORITHM:
        raise SignError(f"{SIGNATURE_PATH} uses an unknown algorithm {str(algorithm)[:32]!r}")
    if document.get("signed", "manifest.json") != "manifest.json":
        raise SignError(f"{SIGNATURE_PATH} signs {str(document['signed'])[:64]!r}, not manifest.json")
    return normalize_public_key(public), signature
