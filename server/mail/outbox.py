"""The durable outbox: every mail we send is a row first, sent by the sender loop after.

`enqueue` builds the whole message (From and Reply-To the ticket's signed reply address,
Message-ID our signed one naming the outbox row, `X-Loop`, and `Auto-Submitted:
auto-generated` on automatic mail) and stores it `queued`. `pickup` turns engineer
messages whose delivery is `pending` into one row per person of the ticket's customer.
`send_due` claims due rows (a conditional UPDATE, so two processes never send one row),
hands them to the smart host (sender.py) and records the outcome: accepted → `sent` and
the message's delivery `sent`; a temporary failure → retried after `retry_seconds`,
doubling, the attempt shown in the message's delivery detail; a permanent one (5xx) or
the last attempt → `failed` and the message `undelivered`.
"""

from __future__ import annotations

import email.utils
import logging
import os
import secrets
import time
from email.message import EmailMessage
from typing import Any, Callable, Dict, List, Optional

from server.config import MailSettings
from server.mail import promisemail
from server.mail.parse import one_line
from server.mail.tokens import Signer
from server.storage.db import Tx
from server.support import messages, people, tickets

log = logging.getLogger("mydiag.mail")
#: A claimed row whose sender died is taken over after this long.
SENDING_LEASE_SECONDS = 300.0


def build(signer: Signer, ticket_id: Optional[str], outbox_id: str, to_addr: str, subject: str,
          body: str, auto: bool, in_reply_to: Optional[str] = None, calendar: Optional[str] = None,
          calendar_method: str = "REQUEST") -> str:
    """The whole message; with `calendar` (an iCalendar text, server/mail/invites.py) it is
    multipart/alternative: `body`, then `text/calendar; method=…` (base64, so its CRLF lines stay)."""
    msg = EmailMessage()
    own = signer.reply_address(ticket_id) if ticket_id else signer.address
    msg["From"] = email.utils.formataddr(("mydiag support", own))
    msg["Reply-To"] = own
    msg["To"] = to_addr
    subject = one_line(subject, 200) or "(no subject)"
    if ticket_id and f"[mydiag {ticket_id}]" not in subject:
        subject = f"{subject} [mydiag {ticket_id}]"
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = signer.message_id(ticket_id, outbox_id) if ticket_id else \
        email.utils.make_msgid(outbox_id, signer.domain)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg["X-Loop"] = signer.address
    if auto:
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(body)
    if calendar is not None:
        msg.add_alternative(calendar.encode("utf-8"), maintype="text", subtype="calendar",
                            params={"method": calendar_method, "charset": "utf-8"})
    return msg.as_string()


def enqueue(tx: Tx, ticket_id: Optional[str], message_id: Optional[str], to_addr: str, subject: str,
            body: str, auto: bool = False, *, signer: Signer, in_reply_to: Optional[str] = None,
            calendar: Optional[str] = None, calendar_method: str = "REQUEST") -> str:
    outbox_id = "ob-" + secrets.token_hex(8)
    raw = build(signer, ticket_id, outbox_id, to_addr, subject, body, auto, in_reply_to, calendar,
                calendar_method)
    tx.run("INSERT INTO outbox (id, message_id, ticket_id, to_addr, raw, state, attempts, next_try,"
           " created) VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, ?)",
           (outbox_id, message_id, ticket_id, to_addr, raw, time.time(), time.time()))
    return outbox_id


def pickup(tx_factory: Callable[..., Any], signer: Signer, limit: int = 100, public_url: str = "") -> int:
    """Engineer replies and acknowledgements waiting to be mailed → outbox rows. Returns how many.
    A message sent together with a proposal gets its paragraph and each person's signed links
    (promisemail.py) under the server's `public_url` (else `$MYDIAG_PUBLIC_URL`; with neither,
    no links, only how to answer by mail)."""
    origin = (public_url or os.environ.get("MYDIAG_PUBLIC_URL", "")).strip().rstrip("/")
    with tx_factory(write=False) as tx:
        pending = tx.all(
            "SELECT m.id, m.ticket_id FROM messages m WHERE m.delivery = 'pending'"
            " AND m.author_kind = 'engineer' AND m.kind IN ('reply', 'acknowledgement')"
            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = m.id) ORDER BY m.at LIMIT ?",
            (limit,))
    count = 0
    for row in pending:
        with tx_factory() as tx:
            tx.lock("tickets", row["ticket_id"])
            if tx.one("SELECT id FROM outbox WHERE message_id = ?", (row["id"],)):
                continue  # another process took it meanwhile
            message = tx.one("SELECT id, ticket_id, body, kind FROM messages WHERE id = ?", (row["id"],))
            ticket = tickets.get_ticket(tx, row["ticket_id"])
            if message is None or ticket is None:
                continue
            to = [p["email"] for p in people.people_of(tx, ticket["customer"]) if p.get("email")]
            if not to:
                messages.set_delivery(tx, row["id"], "undelivered",
                                      f"not mailed: customer {ticket['customer']} has no person with an "
                                      "address (`mydiag-server customer add-person`)")
                continue
            last = tx.one("SELECT mail_message_id FROM messages WHERE ticket_id = ? AND author_kind ="
                          " 'customer' AND mail_message_id IS NOT NULL ORDER BY at DESC LIMIT 1",
                          (row["ticket_id"],))
            for addr in to:
                body = promisemail.reply_body(tx, signer, message, addr, origin)
                enqueue(tx, row["ticket_id"], row["id"], addr, f"Re: {ticket['title']}", body,
                        signer=signer, in_reply_to=last["mail_message_id"] if last else None)
            count += 1
    return count


def due(tx: Tx, now: float, limit: int = 50) -> List[Dict[str, Any]]:
    return tx.all("SELECT id, state, attempts, next_try FROM outbox WHERE state IN ('queued', 'sending')"
                  " AND next_try <= ? ORDER BY next_try, id LIMIT ?", (now, limit))


def send_due(tx_factory: Callable[..., Any], settings: MailSettings, signer: Signer,
             deliver: Callable[[str, str, str], None]) -> int:
    """Send what is due through `deliver(envelope_from, to_addr, raw)`; returns how many were tried."""
    now = time.time()
    with tx_factory(write=False) as tx:
        rows = due(tx, now)
    tried = 0
    for row in rows:
        with tx_factory() as tx:
            claimed = tx.run("UPDATE outbox SET state = 'sending', next_try = ? WHERE id = ? AND state = ?"
                             " AND attempts = ? AND next_try = ?",
                             (now + SENDING_LEASE_SECONDS, row["id"], row["state"], row["attempts"],
                              row["next_try"])) == 1
            full = tx.one("SELECT * FROM outbox WHERE id = ?", (row["id"],)) if claimed else None
        if full is None:
            continue
        tried += 1
        try:
            deliver(signer.address, full["to_addr"], full["raw"])
        except Exception as exc:  # noqa: BLE001 - every failure is recorded and, if temporary, retried
            _failed(tx_factory, settings, full, exc)
        else:
            with tx_factory() as tx:
                tx.run("UPDATE outbox SET state = 'sent', attempts = attempts + 1, last_error = NULL"
                       " WHERE id = ?", (full["id"],))
                if full["message_id"]:
                    messages.set_delivery(tx, full["message_id"], "sent", f"accepted by the smart host "
                                          f"for {full['to_addr']}")
    return tried


def permanent(exc: BaseException) -> bool:
    code = getattr(exc, "smtp_code", None)
    if code is None and hasattr(exc, "recipients"):
        codes = [c for c, _m in getattr(exc, "recipients", {}).values()]
        code = min(codes) if codes else None
    return isinstance(code, int) and 500 <= code < 600


def _failed(tx_factory: Callable[..., Any], settings: MailSettings, row: Dict[str, Any],
            exc: BaseException) -> None:
    attempt = int(row["attempts"]) + 1
    why = one_line(f"{type(exc).__name__}: {exc}", 300)
    final = permanent(exc) or attempt >= settings.max_attempts
    next_try = time.time() + settings.retry_seconds * 2 ** (attempt - 1)
    log.warning("mail %s to %s failed (attempt %s%s): %s", row["id"], row["to_addr"], attempt,
                ", final" if final else "", why)
    with tx_factory() as tx:
        tx.run("UPDATE outbox SET state = ?, attempts = ?, next_try = ?, last_error = ? WHERE id = ?",
               ("failed" if final else "queued", attempt, None if final else next_try, why, row["id"]))
        if row["message_id"]:
            if final:
                messages.set_delivery(tx, row["message_id"], "undelivered",
                                      f"not delivered to {row['to_addr']} after {attempt} attempts: {why}")
            else:
                messages.set_delivery(tx, row["message_id"], "pending",
                                      f"attempt {attempt} to {row['to_addr']} failed: {why}; retried at "
                                      f"{tickets.iso(next_try)}")
