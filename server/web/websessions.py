"""Web sessions, CSRF tokens and the sign-in throttle, kept in the database.

The cookie holds a random token; the database keeps only its SHA-256 (`web_sessions`),
so a copy of the database signs nobody in. Each session has its own CSRF token, which
every form carries. A session ends when it is unused for the idle time, at its maximum
age, at sign-out, or when the engineer's password changes. Failed sign-ins are counted
per account and per address over a window (`signin_failures`), across all processes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Optional, Tuple

from server.storage.db import Tx
from server.web.settings import SESSION_MAX_SECONDS, SIGNIN_FAILURES, SIGNIN_WINDOW_SECONDS

#: A session's expiry is pushed forward at most this often (one write a minute, not per page).
_SLIDE_SECONDS = 60.0


@dataclass(frozen=True)
class Engineer:
    """Who is signed in: their name, role, and the session's CSRF token."""

    name: str
    role: str
    csrf: str

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.name}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_shape_ok(token: Optional[str]) -> bool:
    return bool(token) and 20 <= len(token or "") <= 100 and all(
        c.isalnum() or c in "-_" for c in token or "")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same(a: Optional[str], b: Optional[str]) -> bool:
    """Constant-time equality of two tokens; a missing one never matches."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


def start(tx: Tx, engineer: str, idle_seconds: float) -> str:
    """A new session for `engineer`; returns the cookie's token (kept nowhere else)."""
    token = new_token()
    now = time.time()
    tx.run("DELETE FROM web_sessions WHERE expires < ?", (now,))
    tx.run("INSERT INTO web_sessions (digest, engineer, csrf, created, expires) VALUES (?, ?, ?, ?, ?)",
           (_digest(token), engineer, new_token(), now, now + idle_seconds))
    return token


def resolve(tx: Tx, token: Optional[str], idle_seconds: float) -> Tuple[Optional[Engineer], bool]:
    """The signed-in engineer behind a cookie's token, or None (unknown, expired, not an
    engineer); and whether the session's expiry is due to be pushed forward (`slide`)."""
    if not token_shape_ok(token):
        return None, False
    assert token is not None
    row = tx.one("SELECT s.engineer, s.csrf, s.created, s.expires, e.role FROM web_sessions s "
                 "JOIN engineers e ON e.name = s.engineer WHERE s.digest = ?", (_digest(token),))
    now = time.time()
    if row is None or row["expires"] <= now or row["created"] + SESSION_MAX_SECONDS <= now:
        return None, False
    if row["role"] not in ("admin", "engineer"):
        return None, False
    return Engineer(row["engineer"], row["role"], row["csrf"]), \
        row["expires"] - now < idle_seconds - _SLIDE_SECONDS


def slide(tx: Tx, token: str, idle_seconds: float) -> None:
    """Push a session's idle expiry forward from now (never past its maximum age)."""
    tx.run("UPDATE web_sessions SET expires = MIN(? , created + ?) WHERE digest = ? AND expires > ?"
           if tx.dialect == "sqlite" else
           "UPDATE web_sessions SET expires = LEAST(?, created + ?) WHERE digest = ? AND expires > ?",
           (time.time() + idle_seconds, SESSION_MAX_SECONDS, _digest(token), time.time()))


def end(tx: Tx, token: Optional[str]) -> Optional[str]:
    """End the session behind `token`; returns whose it was (None: there was none)."""
    if not token_shape_ok(token):
        return None
    assert token is not None
    row = tx.one("SELECT engineer FROM web_sessions WHERE digest = ?", (_digest(token),))
    tx.run("DELETE FROM web_sessions WHERE digest = ?", (_digest(token),))
    return row["engineer"] if row else None


def throttled(tx: Tx, account: str, address: str) -> bool:
    """Whether this account or this address used up its failed sign-ins for the window."""
    since = time.time() - SIGNIN_WINDOW_SECONDS
    by_account = tx.one("SELECT COUNT(*) AS n FROM signin_failures WHERE account = ? AND at > ?",
                        (account, since))
    by_address = tx.one("SELECT COUNT(*) AS n FROM signin_failures WHERE address = ? AND at > ?",
                        (address, since))
    return max(int(by_account["n"] if by_account else 0),
               int(by_address["n"] if by_address else 0)) >= SIGNIN_FAILURES


def failed(tx: Tx, account: str, address: str) -> None:
    now = time.time()
    tx.run("DELETE FROM signin_failures WHERE at < ?", (now - SIGNIN_WINDOW_SECONDS,))
    tx.run("INSERT INTO signin_failures (account, address, at) VALUES (?, ?, ?)", (account, address, now))
