"""Tokens and who may do what.

A token is shown once, when it is made; the database keeps only its SHA-256. Three
kinds: `admin` and `engineer` (any ticket), `upload` (one ticket, with an expiry).
Anything a principal may not see answers exactly like something that does not exist.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Optional

from server.storage.db import Tx

PREFIX = {"admin": "mda_", "engineer": "mde_", "upload": "mdu_"}
_SHAPE = re.compile(r"^md[aeu]_[A-Za-z0-9_-]{20,100}$")


@dataclass(frozen=True)
class Principal:
    kind: str
    name: str
    ticket_id: Optional[str] = None

    @property
    def is_engineer(self) -> bool:
        return self.kind in ("admin", "engineer")

    @property
    def actor(self) -> str:
        """How the audit log names this principal (never the token)."""
        return f"{self.kind}:{self.name}"

    def may_see(self, ticket_id: str) -> bool:
        return self.is_engineer or self.ticket_id == ticket_id

    def may_enroll(self, ticket_id: str) -> bool:
        """Host keys are the customer's to vouch for: only the ticket's own upload token
        enrolls one, never an engineer or admin (who could then sign bundles as the host)."""
        return self.kind == "upload" and self.ticket_id == ticket_id


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(tx: Tx, kind: str, subject: str, expires: Optional[float] = None) -> str:
    token = PREFIX[kind] + secrets.token_urlsafe(32)
    tx.run("INSERT INTO tokens (digest, kind, subject, created, expires) VALUES (?, ?, ?, ?, ?)",
           (digest(token), kind, subject, time.time(), expires))
    return token


def resolve(tx: Tx, token: str) -> Optional[Principal]:
    """The principal behind a token, or None when it is unknown, revoked or expired."""
    if not _SHAPE.match(token):
        return None
    # One statement (one round trip on PostgreSQL, on every request): the token and, for an
    # upload token, its ticket's customer. A ticket that is gone leaves the customer NULL.
    row = tx.one("SELECT k.kind, k.subject, k.expires, k.revoked, t.customer FROM tokens k"
                 " LEFT JOIN tickets t ON k.kind = 'upload' AND t.id = k.subject WHERE k.digest = ?",
                 (digest(token),))
    if row is None or row["revoked"] or (row["expires"] is not None and row["expires"] < time.time()):
        return None
    if row["kind"] == "upload":
        if row["customer"] is None:
            return None
        return Principal("upload", row["customer"], row["subject"])
    return Principal(row["kind"], row["subject"])


def bearer(header: Optional[str]) -> Optional[str]:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
