"""Signed per-ticket reply addresses and Message-IDs.

`support+tk-abcdefgh23.<mac>@domain` and `<ob-<nonce>.tk-abcdefgh23.<mac>@domain>`: the MAC is
HMAC-SHA256 over the kind, the ticket id (and the nonce) with the key in `DATA/mail.key`
(32 random bytes, mode 0600, made at first use), cut to 20 bytes and written in lower-case
hex (mail systems may fold the case of a local part). A parser returns the ticket id only
when the MAC verifies (compared in constant time); anything else is None, never an error.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from server.config import write_private

_MAC_HEX = 40
_TICKET = r"tk-[a-z0-9]{10}"
_REPLY = re.compile(rf"^(?P<local>[a-z0-9._-]+)\+(?P<ticket>{_TICKET})\.(?P<mac>[0-9a-f]{{{_MAC_HEX}}})"
                    r"@(?P<domain>[a-z0-9.-]+)$")
_MSGID = re.compile(rf"^<?(?P<nonce>[a-z]{{2}}-[0-9a-f]{{8,32}})\.(?P<ticket>{_TICKET})\."
                    rf"(?P<mac>[0-9a-f]{{{_MAC_HEX}}})@(?P<domain>[a-z0-9.-]+)>?$")


def load_key(path: Path) -> bytes:
    """The signing key, created (0600, from the first byte) when missing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        write_private(path, secrets.token_bytes(32))
        data = path.read_bytes()
    if len(data) < 32:
        raise ValueError(f"{path} is damaged (shorter than 32 bytes)")
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)
    return data


def _mac(key: bytes, *parts: str) -> str:
    return hmac.new(key, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()[:_MAC_HEX]


def reply_address(ticket_id: str, key: bytes, domain: str, local: str = "support") -> str:
    return f"{local}+{ticket_id}.{_mac(key, 'reply', ticket_id)}@{domain.lower()}"


def parse_reply_address(address: str, key: bytes, domain: str) -> Optional[str]:
    """The ticket id of one of our reply addresses whose MAC verifies, else None."""
    found = _REPLY.match((address or "").strip().strip("<>").lower())
    if found is None or found["domain"] != domain.lower():
        return None
    good = _mac(key, "reply", found["ticket"])
    return found["ticket"] if hmac.compare_digest(good, found["mac"]) else None


def message_id(ticket_id: str, key: bytes, domain: str, nonce: Optional[str] = None) -> str:
    """`<nonce.ticket.mac@domain>`; `nonce` (e.g. an outbox id `ob-…`) is signed too."""
    nonce = nonce or "mi-" + secrets.token_hex(8)
    return f"<{nonce}.{ticket_id}.{_mac(key, 'msgid', nonce, ticket_id)}@{domain.lower()}>"


def parse_message_id_full(value: str, key: bytes, domain: str) -> Optional[Tuple[str, str]]:
    """(ticket id, nonce) of one of our Message-IDs whose MAC verifies, else None."""
    found = _MSGID.match((value or "").strip().lower())
    if found is None or found["domain"] != domain.lower():
        return None
    good = _mac(key, "msgid", found["nonce"], found["ticket"])
    if not hmac.compare_digest(good, found["mac"]):
        return None
    return found["ticket"], found["nonce"]


def parse_message_id(value: str, key: bytes, domain: str) -> Optional[str]:
    """The ticket id of one of our Message-IDs whose MAC verifies, else None."""
    full = parse_message_id_full(value, key, domain)
    return full[0] if full else None


@dataclass(frozen=True)
class Signer:
    """The key and the names it signs for: what the inbound and outbound paths share."""

    key: bytes
    domain: str
    local: str = "support"

    def reply_address(self, ticket_id: str) -> str:
        return reply_address(ticket_id, self.key, self.domain, self.local)

    def ticket_of_address(self, address: str) -> Optional[str]:
        return parse_reply_address(address, self.key, self.domain)

    def message_id(self, ticket_id: str, nonce: Optional[str] = None) -> str:
        return message_id(ticket_id, self.key, self.domain, nonce)

    def ticket_of_message_id(self, value: str) -> Optional[Tuple[str, str]]:
        return parse_message_id_full(value, self.key, self.domain)

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}"
