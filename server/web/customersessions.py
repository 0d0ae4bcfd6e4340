"""Customer people on the web: sign-in links by e-mail and their sessions.

A link carries a random 256-bit token; the database keeps only its SHA-256
(`customer_signin_links`), when it was made, when it expires (15 minutes) and when it was
used: it signs in once. Links asked for are limited per address (5 per 15 minutes) and per
client address (20 per 15 minutes, counted in `customer_link_requests`, apart from the
engineers' failed sign-ins), whether the address is a known person or not. A customer session
(`customer_web_sessions`, cookie `mydiag_customer`) is an engineer session's twin: the
token's digest, the person, their organization and the session's CSRF token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Tuple

from server.storage.db import Tx
from server.support import people
from server.web.settings import SESSION_MAX_SECONDS, SIGNIN_WINDOW_SECONDS
from server.web.websessions import _digest, new_token, token_shape_ok

LINK_SECONDS = 15 * 60
LINKS_PER_EMAIL = 5
LINKS_PER_ADDRESS = 20
_SLIDE_SECONDS = 60.0


@dataclass(frozen=True)
class Person:
    """A signed-in customer person: address, organization and the session's CSRF token."""

    email: str
    customer: str
    csrf: str

    @property
    def actor(self) -> str:
        return f"customer:{self.email}"


def ask_link(tx: Tx, email: str, address: str) -> Optional[Tuple[str, str]]:
    """A new sign-in link's (token, the person's address) when `email` is a known person and
    neither limit is reached, else None. Every call counts against the client address."""
    now = time.time()
    since = now - SIGNIN_WINDOW_SECONDS
    tx.run("DELETE FROM customer_link_requests WHERE at < ?", (since,))
    tx.run("DELETE FROM customer_signin_links WHERE expires < ?", (now - SIGNIN_WINDOW_SECONDS,))
    by_address = tx.one("SELECT COUNT(*) AS n FROM customer_link_requests WHERE address = ? AND at > ?",
                        (address, since))
    tx.run("INSERT INTO customer_link_requests (address, at) VALUES (?, ?)", (address, now))
    if int(by_address["n"] if by_address else 0) >= LINKS_PER_ADDRESS:
        return None
    found = people.person(tx, email)
    if found is None:
        return None
    by_email = tx.one("SELECT COUNT(*) AS n FROM customer_signin_links WHERE email = ? AND created > ?",
                      (found["email"], since))
    if int(by_email["n"] if by_email else 0) >= LINKS_PER_EMAIL:
        return None
    token = new_token()
    tx.run("INSERT INTO customer_signin_links (digest, email, created, expires, used) "
           "VALUES (?, ?, ?, ?, NULL)",
           (_digest(token), found["email"], now, now + LINK_SECONDS))
    return token, found["email"]


def usable(tx: Tx, token: str) -> bool:
    """Whether a link would sign in now (opening it shows the button; only pressing spends it)."""
    row = tx.one("SELECT used, expires FROM customer_signin_links WHERE digest = ?", (_digest(token),))
    return row is not None and row["used"] is None and row["expires"] > time.time()


def use_link(tx: Tx, token: Optional[str], idle_seconds: float) -> Optional[Tuple[str, Person]]:
    """Spend a sign-in link: (the new session's cookie token, the person), or None when the
    link is unknown, used, expired or its person was removed. The conditional UPDATE makes
    it single use also when two requests race."""
    if not token_shape_ok(token):
        return None
    assert token is not None
    now = time.time()
    if tx.run("UPDATE customer_signin_links SET used = ? WHERE digest = ? AND used IS NULL AND expires > ?",
              (now, _digest(token), now)) != 1:
        return None
    row = tx.one("SELECT email FROM customer_signin_links WHERE digest = ?", (_digest(token),))
    found = people.person(tx, row["email"]) if row else None
    if found is None:
        return None
    session = new_token()
    csrf = new_token()
    tx.run("DELETE FROM customer_web_sessions WHERE expires < ?", (now,))
    tx.run("INSERT INTO customer_web_sessions (digest, email, customer, csrf, created, expires) "
           "VALUES (?, ?, ?, ?, ?, ?)", (_digest(session), found["email"], found["customer"], csrf, now,
                                          now + idle_seconds))
    return session, Person(found["email"], found["customer"], csrf)


def resolve(tx: Tx, token: Optional[str], idle_seconds: float) -> Tuple[Optional[Person], bool]:
    """The person behind a customer cookie (still a person of the same organization), and
    whether the session's expiry is due to be pushed forward."""
    if not token_shape_ok(token):
        return None, False
    assert token is not None
    row = tx.one("SELECT s.email, s.customer, s.csrf, s.created, s.expires, p.customer AS now_of "
                 "FROM customer_web_sessions s JOIN customer_people p ON p.email = s.email "
                 "WHERE s.digest = ?",
                 (_digest(token),))
    now = time.time()
    if row is None or row["expires"] <= now or row["created"] + SESSION_MAX_SECONDS <= now \
            or row["now_of"] != row["customer"]:
        return None, False
    due = row["expires"] - now < idle_seconds - _SLIDE_SECONDS
    return Person(row["email"], row["customer"], row["csrf"]), due


def slide(tx: Tx, token: str, idle_seconds: float) -> None:
    now = time.time()
    tx.run("UPDATE customer_web_sessions SET expires = ? WHERE digest = ? AND expires > ? "
           "AND ? < created + ?",
           (now + idle_seconds, _digest(token), now, now + idle_seconds, SESSION_MAX_SECONDS))


def end(tx: Tx, token: Optional[str]) -> None:
    if token_shape_ok(token):
        tx.run("DELETE FROM customer_web_sessions WHERE digest = ?", (_digest(str(token)),))
