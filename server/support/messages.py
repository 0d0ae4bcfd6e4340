"""A ticket's messages: what the customer's people and the engineers said, and of which kind.

Kinds: a customer message `needs_reply` (it starts or joins the ticket's reply clock) or
`no_reply_needed`; an engineer message is a `reply` (public, substantive: once delivered
it meets the clock), an `acknowledgement` (public, meets nothing) or an `internal` note
(never shown to the customer). Bodies are plain text, at most 256 KiB, without lone
surrogates or control characters other than tab and newline (carriage returns become
newlines). Times are UTC: epoch seconds in the database, ISO 8601 in what is returned.

Delivery of an engineer's public message: `pending` (to be mailed: server/mail's sender
picks it up), `sent` (the smart host accepted it), `delivered` (shown on the web, or
confirmed), `undelivered` (bounced: it meets no deadline).
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Dict, Iterable, List, Optional

from server.storage import audit
from server.storage.db import Tx
from server.support import clock, obligations
from server.support.tickets import Invalid, clean_text, iso

CUSTOMER_KINDS = ("needs_reply", "no_reply_needed")
ENGINEER_KINDS = ("reply", "acknowledgement", "internal")
KINDS = CUSTOMER_KINDS + ENGINEER_KINDS
PUBLIC_ENGINEER_KINDS = ("reply", "acknowledgement")
DELIVERIES = ("pending", "sent", "delivered", "undelivered")
#: Deliveries that count as the customer having the reply.
DELIVERED = ("sent", "delivered")
SOURCES = ("web", "api", "mail")
MAX_BODY_BYTES = 256 * 1024

_COLUMNS = ("id, ticket_id, at, author, author_kind, kind, body, source, mail_message_id, raw_key, "
            "attachments, delivery, delivery_detail, no_reply_reason, no_reply_by, waiting, obligation_id")


def clean_body(body: str) -> str:
    """The stored form of a body, or Invalid: bounded, no lone surrogates, no controls."""
    if not isinstance(body, str):
        raise Invalid("a message body must be text")
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError:
        raise Invalid("a message body must be valid Unicode (it holds a lone surrogate)") from None
    if size > MAX_BODY_BYTES:
        raise Invalid(f"a message body may hold at most {MAX_BODY_BYTES // 1024} KiB")
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    bad = next((c for c in body if (ord(c) < 32 and c not in "\t\n") or 0x7f <= ord(c) < 0xa0
                or c in "\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"), None)
    if bad is not None:
        raise Invalid(f"a message body may not hold control character U+{ord(bad):04X}")
    body = body.strip("\n")
    if not body.strip():
        raise Invalid("a message body must not be empty")
    return body


def add_message(tx: Tx, ticket_id: str, *, author: str, author_kind: str, kind: str, body: str,
                source: str, at: Optional[float] = None, mail_message_id: Optional[str] = None,
                raw_key: Optional[str] = None, attachments: Iterable[Any] = (),
                delivery: Optional[str] = None, waiting_on_customer: bool = False) -> Dict[str, Any]:
    """Store a message and account for it on the ticket's clock; the message as a dict."""
    if author_kind == "customer":
        if kind not in CUSTOMER_KINDS:
            raise Invalid(f"a customer message is one of: {', '.join(CUSTOMER_KINDS)}")
        if waiting_on_customer:
            raise Invalid("only an engineer's reply waits on the customer")
        delivery = None
    elif author_kind == "engineer":
        if kind not in ENGINEER_KINDS:
            raise Invalid(f"an engineer message is one of: {', '.join(ENGINEER_KINDS)}")
        if waiting_on_customer and kind != "reply":
            raise Invalid("waiting_on_customer goes with a reply (one that asks the customer something)")
        if kind == "internal":
            delivery = None
        elif delivery is None:
            delivery = "delivered"
        elif delivery not in DELIVERIES:
            raise Invalid(f"delivery is one of: {', '.join(DELIVERIES)}")
    else:
        raise Invalid("author_kind is customer or engineer")
    if source not in SOURCES:
        raise Invalid(f"source is one of: {', '.join(SOURCES)}")
    author = clean_text(author, "an author", 320)
    body = clean_body(body)
    when = clock.now() if at is None else float(at)
    message_id = "msg-" + secrets.token_hex(8)
    tx.run(f"INSERT INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
           (message_id, ticket_id, when, author, author_kind, kind, body, source, mail_message_id, raw_key,
            json.dumps(list(attachments)), delivery, None, None, None, 1 if waiting_on_customer else 0, None))
    row = _row(tx, message_id)
    if author_kind == "customer":
        obligations.on_customer_message(tx, row)
    elif kind == "reply" and delivery in DELIVERED:
        obligations.on_delivered_reply(tx, row, when)
    audit.record(tx, author if ":" in author else f"{author_kind}:{author}", "message.add", ticket_id,
                 message_id, kind=kind, source=source)
    return message(tx, message_id) or {}


def _row(tx: Tx, message_id: str) -> Dict[str, Any]:
    row = tx.one(f"SELECT {_COLUMNS} FROM messages WHERE id = ?", (message_id,))
    if row is None:
        raise Invalid("no such message")
    return row


def _public(tx: Tx, row: Dict[str, Any]) -> Dict[str, Any]:
    due = obligations.due_at(tx, row["obligation_id"]) if row["author_kind"] == "customer" else None
    return {"id": row["id"], "ticket_id": row["ticket_id"], "at": iso(row["at"]), "author": row["author"],
            "author_kind": row["author_kind"], "kind": row["kind"], "body": row["body"],
            "source": row["source"], "mail_message_id": row["mail_message_id"],
            "attachments": json.loads(row["attachments"] or "[]"), "delivery": row["delivery"],
            "delivery_detail": row["delivery_detail"], "no_reply_reason": row["no_reply_reason"],
            "no_reply_by": row["no_reply_by"], "waiting_on_customer": bool(row["waiting"]),
            "obligation_id": row["obligation_id"], "due_at": iso(due) if due is not None else None}


def message(tx: Tx, message_id: str) -> Optional[Dict[str, Any]]:
    row = tx.one(f"SELECT {_COLUMNS} FROM messages WHERE id = ?", (message_id,))
    return _public(tx, row) if row else None


def messages_of(tx: Tx, ticket_id: str, include_internal: bool = True, limit: int = 10_000) -> List[Dict]:
    """The ticket's messages, oldest first (internal notes only when asked for)."""
    where = "" if include_internal else " AND kind <> 'internal'"
    rows = tx.all(f"SELECT {_COLUMNS} FROM messages WHERE ticket_id = ?{where} ORDER BY at, id LIMIT ?",
                  (ticket_id, limit))
    return [_public(tx, r) for r in rows]


def set_delivery(tx: Tx, message_id: str, delivery: str, detail: str = "") -> Dict[str, Any]:
    """Record how an engineer's public message fared. `sent`/`delivered` let a reply meet
    the clock (at this moment); `undelivered` undoes what it did to the clock."""
    if delivery not in DELIVERIES:
        raise Invalid(f"delivery is one of: {', '.join(DELIVERIES)}")
    row = _row(tx, message_id)
    if row["author_kind"] != "engineer" or row["kind"] not in PUBLIC_ENGINEER_KINDS:
        raise Invalid("only an engineer's public message has a delivery")
    before = row["delivery"]
    tx.run("UPDATE messages SET delivery = ?, delivery_detail = ? WHERE id = ?",
           (delivery, detail[:2000] or None, message_id))
    if row["kind"] == "reply":
        if delivery in DELIVERED and before not in DELIVERED:
            obligations.on_delivered_reply(tx, row, clock.now())
        elif delivery == "undelivered" and before != "undelivered":
            obligations.on_undelivered(tx, row)
    if delivery == "undelivered":
        audit.record(tx, "system:mail", "message.undelivered", row["ticket_id"], message_id,
                     detail=detail[:200])
    return message(tx, message_id) or {}


def find_by_mail_id(tx: Tx, message_id_header: str) -> Optional[Dict[str, Any]]:
    """The message whose Message-ID is this (with or without the angle brackets)."""
    value = (message_id_header or "").strip()
    if not value or len(value) > 998:
        return None
    bare = value.strip("<>")
    row = tx.one(f"SELECT {_COLUMNS} FROM messages WHERE mail_message_id IN (?, ?) ORDER BY at LIMIT 1",
                 (f"<{bare}>", bare))
    return _public(tx, row) if row else None


def mark_no_reply(tx: Tx, message_id: str, by: str, reason: str) -> Dict[str, Any]:
    """An engineer marks a customer's message as needing no reply (audited, with the reason)."""
    reason = clean_text(reason, "a reason", 500)
    row = _row(tx, message_id)
    if row["author_kind"] != "customer":
        raise Invalid("only a customer's message can be marked as needing no reply")
    if row["kind"] == "no_reply_needed":
        raise Invalid("this message already needs no reply")
    tx.run("UPDATE messages SET kind = 'no_reply_needed', no_reply_reason = ?, no_reply_by = ? WHERE id = ?",
           (reason, by, message_id))
    obligations.on_no_reply(tx, row)
    audit.record(tx, by, "message.no_reply", row["ticket_id"], message_id, reason=reason)
    return message(tx, message_id) or {}


def pending_mail(tx: Tx, limit: int = 100) -> List[Dict[str, Any]]:
    """Engineers' public messages waiting to be mailed, oldest first (server/mail's sender)."""
    rows = tx.all(f"SELECT {_COLUMNS} FROM messages WHERE delivery = 'pending' ORDER BY at LIMIT ?", (limit,))
    return [_public(tx, r) for r in rows]
