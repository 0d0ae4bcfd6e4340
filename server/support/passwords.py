"""Engineer passwords: argon2id hashes (argon2-cffi), never the password itself.

`check` costs the same whether the account exists or not (an unknown name is checked
against a fixed dummy hash), so the answer's timing does not tell which names exist.
"""

from __future__ import annotations

import time
from typing import Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from server.storage import audit
from server.storage.db import Tx
from server.support.tickets import Invalid

#: An engineer's password: long enough to resist guessing, short enough to hash cheaply.
MIN_PASSWORD = 12
MAX_PASSWORD = 1024

_HASHER = PasswordHasher()
_DUMMY = _HASHER.hash("mydiag: no such engineer, the same cost anyway")


def acceptable(password: str) -> Optional[str]:
    """Why `password` cannot be used, or None when it can."""
    if len(password) < MIN_PASSWORD:
        return f"the password must be at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"the password must be at most {MAX_PASSWORD} characters"
    if password != password.strip():
        return "the password must not begin or end with white space"
    return None


def set_password(tx: Tx, name: str, password: str, actor: str) -> None:
    """Set (or replace) an engineer's password; every web session of theirs ends."""
    why = acceptable(password)
    if why:
        raise Invalid(why)
    if tx.one("SELECT name FROM engineers WHERE name = ?", (name,)) is None:
        raise Invalid(f"no engineer {name!r} (add one with `mydiag-server engineer add`)")
    digest = _HASHER.hash(password)
    tx.run("DELETE FROM engineer_passwords WHERE name = ?", (name,))
    tx.run("INSERT INTO engineer_passwords (name, hash, updated) VALUES (?, ?, ?)",
           (name, digest, time.time()))
    tx.run("DELETE FROM web_sessions WHERE engineer = ?", (name,))
    audit.record(tx, actor, "engineer.password", subject=name)


def stored_hash(tx: Tx, name: str) -> Optional[str]:
    row = tx.one("SELECT p.hash FROM engineer_passwords p JOIN engineers e ON e.name = p.name "
                 "WHERE p.name = ? AND e.role IN ('admin', 'engineer')", (name,))
    return row["hash"] if row else None


def check(stored: Optional[str], password: str) -> bool:
    """Whether `password` matches `stored` (None: no such account, checked against a dummy)."""
    if len(password) > MAX_PASSWORD:
        password = password[:MAX_PASSWORD]
    try:
        return bool(_HASHER.verify(stored or _DUMMY, password)) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
