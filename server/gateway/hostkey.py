"""The gateway's own SSH host key: made once on first start, kept in the data directory.

A customer's agent learns its line when the session is granted (the API's gateway
`host_key`) and refuses any other key when it dials in. Several server processes on one
data directory present the same key (so a host may dial any of them, and the processes
know each other by it): `init` makes it, and where it is missing the first process to make
it wins, the others read it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import paramiko

HOST_KEY = "ssh_host_ed25519_key"
#: The key server processes present to each other's gateways (peers.py).
PEER_KEY = "gateway_peer_ed25519_key"


def make_gateway_keys(folder: Path) -> None:
    """Both keys, made at `init`: every process started from a copy of the folder has the same."""
    load_key(folder / HOST_KEY)
    load_key(folder / PEER_KEY)


def load_host_key(path: Path) -> paramiko.PKey:
    """The gateway's Ed25519 host key, made on first use (mode 0600)."""
    return load_key(path)


def load_key(path: Path) -> paramiko.Ed25519Key:
    """An Ed25519 private key file, made on first use (mode 0600) by exactly one process."""
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            # A link never replaces: of two processes starting at once, both end up with the first key.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return paramiko.Ed25519Key(filename=str(path))


def key_line(key: paramiko.PKey) -> str:
    """The public half as an authorized_keys / known_hosts line: `TYPE BASE64`."""
    return f"{key.get_name()} {key.get_base64()}"
