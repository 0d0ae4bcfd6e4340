"""Engineers, tickets and enrolled host keys: the records every request is checked against."""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any, Dict, List, Optional

from bundle import sign
from server import auth
from server.safetext import has_controls
from server.storage import audit
from server.storage.db import Tx

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_TICKET = re.compile(r"^tk-[a-z0-9]{10}$")


class Invalid(ValueError):
    """A value a client sent that the server will not store; the message says which."""


def clean_text(value: str, what: str, limit: int = 200) -> str:
    value = value.strip()
    if not value or len(value) > limit or has_controls(value):
        raise Invalid(f"{what} must be 1-{limit} printable characters")
    return value


def clean_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise Invalid(f"{what} must be 1-64 letters, digits, '.', '_', '@' or '-'")
    return value


def ticket_id_ok(value: str) -> bool:
    return bool(_TICKET.match(value))


def add_engineer(tx: Tx, name: str, actor: str, role: str = "engineer") -> str:
    """Create the account and return its token (shown once)."""
    name = clean_name(name, "an engineer name")
    if tx.one("SELECT name FROM engineers WHERE name = ?", (name,)):
        raise Invalid(f"engineer {name!r} already exists")
    tx.run("INSERT INTO engineers (name, role, created) VALUES (?, ?, ?)", (name, role, time.time()))
    token = auth.new_token(tx, role, name)
    audit.record(tx, actor, "engineer.add", subject=name, role=role)
    return token


def create_ticket(tx: Tx, customer: str, title: str, recipients: List[str], actor: str,
                  token_days: float) -> Dict[str, Any]:
    customer = clean_name(customer, "a customer name")
    title = clean_text(title, "a title")
    ticket_id = "tk-" + "".join(secrets.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(10))
    now = time.time()
    tx.run("INSERT INTO tickets (id, customer, title, recipients, created, created_by) "
           "VALUES (?, ?, ?, ?, ?, ?)", (ticket_id, customer, title, json.dumps(recipients), now, actor))
    expires = now + token_days * 86400
    token = auth.new_token(tx, "upload", ticket_id, expires)
    audit.record(tx, actor, "ticket.create", ticket_id, customer=customer)
    ticket = get_ticket(tx, ticket_id)
    assert ticket is not None
    ticket.update(upload_token=token, token_expires=iso(expires))
    return ticket


def get_ticket(tx: Tx, ticket_id: str) -> Optional[Dict[str, Any]]:
    if not ticket_id_ok(ticket_id):
        return None
    row = tx.one("SELECT id, customer, title, recipients, created FROM tickets WHERE id = ?", (ticket_id,))
    if row is None:
        return None
    return {"id": row["id"], "customer": row["customer"], "title": row["title"],
            "recipients": json.loads(row["recipients"]), "created": iso(row["created"])}


def list_tickets(tx: Tx, principal: auth.Principal) -> List[Dict[str, Any]]:
    if principal.is_engineer:
        ids = [r["id"] for r in tx.all("SELECT id FROM tickets ORDER BY created")]
    else:
        ids = [principal.ticket_id] if principal.ticket_id else []
    return [t for t in (get_ticket(tx, i) for i in ids) if t is not None]


def enroll_host(tx: Tx, ticket_id: str, public_key: str, hostname: str, actor: str) -> Dict[str, Any]:
    try:
        public_key = sign.normalize_public_key(clean_text(public_key, "a public key", 400))
    except sign.SignError as exc:
        raise Invalid(str(exc)) from None
    hostname = clean_text(hostname, "a host name", 255)
    ticket = get_ticket(tx, ticket_id)
    assert ticket is not None
    print_ = sign.fingerprint(public_key)
    existing = tx.one("SELECT hostname FROM hosts WHERE customer = ? AND fingerprint = ?",
                      (ticket["customer"], print_))
    if existing is None:
        tx.run("INSERT INTO hosts (customer, fingerprint, ticket_id, public_key, hostname, enrolled) "
               "VALUES (?, ?, ?, ?, ?, ?)",
               (ticket["customer"], print_, ticket_id, public_key.strip(), hostname, time.time()))
        audit.record(tx, actor, "host.enroll", ticket_id, print_, hostname=hostname)
    return {"fingerprint": print_, "hostname": existing["hostname"] if existing else hostname,
            "already_enrolled": existing is not None}


def enrolled_host(tx: Tx, customer: str, public_key: str) -> Optional[str]:
    """The host name a key was enrolled under for this customer, or None."""
    row = tx.one("SELECT hostname FROM hosts WHERE customer = ? AND fingerprint = ?",
                 (customer, sign.fingerprint(public_key)))
    return row["hostname"] if row else None


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


#: The ticket list's one query (its parameters: LIMIT, OFFSET); tests/web explains its plan.
TICKET_PAGE_SQL = (
    "SELECT t.id, t.customer, t.title, t.created, "
    "(SELECT COUNT(*) FROM bundles b WHERE b.ticket_id = t.id) AS bundles, "
    "(SELECT MAX(b.received) FROM bundles b WHERE b.ticket_id = t.id) AS last_bundle, "
    "(SELECT COUNT(*) FROM tickets) AS total "
    "FROM (SELECT id, customer, title, created FROM tickets ORDER BY created DESC, id DESC "
    "LIMIT ? OFFSET ?) t")


def ticket_page(tx: Tx, offset: int, limit: int) -> Dict[str, Any]:
    """One page of the ticket list, newest first, with each ticket's bundle count and last
    bundle time, and the number of tickets in all: one query over the indexes
    (tickets_created, bundles_ticket), whatever the number of tickets and bundles.

    The page is cut first (the inner query walks tickets_created alone) and only its rows
    get their bundle figures: PostgreSQL computes a select list's subqueries for the rows
    OFFSET skips too, which made the last of 200 pages 15 times slower than the first.
    The page's rows are put in order here (50 of them), not by a second ORDER BY in SQL."""
    rows = sorted(tx.all(TICKET_PAGE_SQL, (limit, offset)), key=lambda r: (r["created"], r["id"]),
                  reverse=True)
    if rows:
        total = int(rows[0]["total"])
    else:  # a page past the end: the count alone
        total = int((tx.one("SELECT COUNT(*) AS n FROM tickets") or {"n": 0})["n"])
    return {"tickets": [{k: r[k] for k in ("id", "customer", "title", "created", "bundles", "last_bundle")}
                        for r in rows], "total": total}


def ticket_hosts(tx: Tx, ticket_id: str) -> List[Dict[str, Any]]:
    """The host keys enrolled through this ticket, oldest first."""
    return tx.all("SELECT fingerprint, hostname, enrolled FROM hosts WHERE ticket_id = ? "
                  "ORDER BY enrolled, fingerprint", (ticket_id,))


def tickets_of_customer(tx: Tx, customer: str) -> List[Dict[str, Any]]:
    """The customer's tickets, oldest first (what the customer's people may see)."""
    ids = [r["id"] for r in tx.all("SELECT id FROM tickets WHERE customer = ? ORDER BY created, id",
                                   (customer,))]
    return [t for t in (get_ticket(tx, i) for i in ids) if t is not None]
