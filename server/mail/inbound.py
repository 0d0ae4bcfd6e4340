"""One path for every inbound mail, whichever way it came (SMTP/LMTP endpoint, IMAP poller).

Store first, process after: `receive` writes the raw MIME to the blob store (by its
sha256) and a `mail_inbox` row, durably, before the SMTP endpoint answers 250 or the
IMAP poller marks the mail seen; the same bytes twice are one row. `process` then reads
it (parse.py), drops our own mail, reads a delivery-status report (the reply it names
becomes undelivered), finds the ticket (threading.py), stores the message with its
attachments, takes sealed bundles through the same intake checks as an upload, and
answers what needs an answer (never automatic mail). `sweep` processes what is due,
oldest first, retrying a crash with a growing pause; `ingest` is receive then process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from server.intake import bundles
from server.mail import loops, outbox, promisemail
from server.mail import threading as mail_threading
from server.mail.parse import Parsed, address, one_line, parse
from server.mail.tokens import Signer, load_key
from server.storage import audit
from server.storage.state import State
from server.support import messages, people, tickets

log = logging.getLogger("mydiag.mail")
ATTEMPTS = 5
RETRY_SECONDS = 5.0
#: How long a process may hold one inbox row before another may take it over.
LEASE_SECONDS = 120.0
#: Polite answers to unknown senders in one hour, all senders together: forged senders in
#: bulk must not turn the server into a source of backscatter.
NOTICES_PER_HOUR = 60


@dataclass
class Result:
    inbox_id: str
    outcome: str = "stored"
    ticket_id: Optional[str] = None
    message_id: Optional[str] = None
    bundles: List[str] = field(default_factory=list)
    duplicate: bool = False
    #: The inbox row was marked done in the same transaction as the message (exactly once).
    recorded: bool = False


def signer_of(state: State) -> Signer:
    mail = state.config.mail
    return Signer(load_key(state.data.mail_key_path), mail.domain or "localhost", mail.local_part)


def receive(state: State, raw: bytes, envelope_from: str, envelope_to: Sequence[str],
            source: str) -> Result:
    """Keep the bytes and their inbox row (durable when this returns)."""
    sha256 = hashlib.sha256(raw).hexdigest()
    if not state.store.exists(sha256):
        tmp = state.data.tmp / f"mail-{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
            state.store.put_file(tmp, sha256)
        finally:
            tmp.unlink(missing_ok=True)
    inbox_id = "mb-" + sha256[:32]
    rcpts = json.dumps([one_line(r, 320) for r in envelope_to][:100])
    with state.db.tx() as tx:
        done = tx.run("INSERT INTO mail_inbox (id, raw_key, size, envelope_from, envelope_to, source,"
                      " received, state, attempts, next_try) VALUES (?, ?, ?, ?, ?, ?, ?, 'new', 0, ?)"
                      " ON CONFLICT (id) DO NOTHING",
                      (inbox_id, sha256, len(raw), one_line(envelope_from, 320), rcpts, source,
                       time.time(), time.time()))
    return Result(inbox_id, duplicate=done != 1)


def ingest(state: State, raw_bytes: bytes, envelope_from: str, envelope_to: Sequence[str],
           source: str = "mail") -> Result:
    """Receive and process one mail now; a duplicate of one already taken is not processed again."""
    got = receive(state, raw_bytes, envelope_from, envelope_to, source)
    if got.duplicate:
        return got
    return process(state, got.inbox_id) or got


def sweep(state: State, limit: int = 200) -> int:
    """Process inbox rows that are due; returns how many were processed."""
    now = time.time()
    with state.db.tx(write=False) as tx:
        due = [r["id"] for r in tx.all(
            "SELECT id FROM mail_inbox WHERE state IN ('new', 'processing') AND next_try <= ?"
            " ORDER BY received, id LIMIT ?", (now, limit))]
    count = 0
    for inbox_id in due:
        try:
            if process(state, inbox_id) is not None:
                count += 1
        except Exception as exc:  # noqa: BLE001 - the database went away: next round
            log.warning("mail %s: %s: %s", inbox_id, type(exc).__name__, exc)
    return count


def _claim(state: State, inbox_id: str) -> Optional[Dict[str, Any]]:
    now = time.time()
    with state.db.tx() as tx:
        row = tx.one("SELECT * FROM mail_inbox WHERE id = ?", (inbox_id,))
        if row is None or row["state"] not in ("new", "processing") or (row["next_try"] or 0) > now:
            return None
        tx.run("UPDATE mail_inbox SET state = 'processing', attempts = attempts + 1, next_try = ?"
               " WHERE id = ? AND state = ? AND attempts = ?",
               (now + LEASE_SECONDS, inbox_id, row["state"], row["attempts"]))
        row["attempts"] = int(row["attempts"]) + 1
        return row


def process(state: State, inbox_id: str) -> Optional[Result]:
    row = _claim(state, inbox_id)
    if row is None:
        return None
    try:
        with state.store.open(row["raw_key"]) as handle:
            raw = handle.read(state.config.mail.max_message_bytes + 1)
        result = _process(state, row, raw)
    except Exception as exc:  # noqa: BLE001 - a crash is retried, then recorded: never a lost mail
        why = one_line(f"{type(exc).__name__}: {exc}", 300)
        log.warning("processing mail %s failed (attempt %s): %s", inbox_id, row["attempts"], why)
        final = row["attempts"] >= ATTEMPTS
        with state.db.tx() as tx:
            tx.run("UPDATE mail_inbox SET state = ?, next_try = ?, outcome = ? WHERE id = ?",
                   ("failed" if final else "new", time.time() + RETRY_SECONDS * 2 ** row["attempts"],
                    f"failed: {why}", inbox_id))
        return Result(inbox_id, "failed" if final else "retry")
    if not result.recorded:
        with state.db.tx() as tx:
            _done(tx, result)
    return result


def _process(state: State, row: Dict[str, Any], raw: bytes) -> Result:
    mail = state.config.mail
    signer = signer_of(state)
    result = Result(row["id"])
    if len(raw) > mail.max_message_bytes:
        result.outcome = "refused: over max_message_bytes"
        return result
    parsed = parse(raw, mail.max_parts, keep_bytes=mail.max_attachment_bytes)
    envelope_from = row["envelope_from"]
    envelope_to = json.loads(row["envelope_to"] or "[]")
    sender = parsed.from_addr or address(envelope_from)
    own = signer.address
    if own.lower() in parsed.header("x-loop").lower() or _is_own(sender, signer):
        result.outcome = "ignored: our own mail"
        return result
    report = loops.delivery_report(parsed)
    if report is not None:
        return _bounce(state, signer, result, report)
    auto = loops.automatic(parsed, envelope_from, own)
    with state.db.tx() as tx:
        thread = mail_threading.resolve(tx, signer, parsed, sender, envelope_to)
        if parsed.message_id and thread.ticket_id is not None:
            known = messages.find_by_mail_id(tx, parsed.message_id)
            if known is not None:
                result.outcome, result.ticket_id = "duplicate", thread.ticket_id
                return result
        if thread.ticket_id is None:
            if auto:
                result.outcome = f"ignored: automatic mail ({auto}) on no ticket"
                return result
            customer = thread.customer
            if customer is None and mail.allow_new_tickets:
                customer = mail.new_ticket_customer
            if customer is None:
                _polite_answer(tx, state, signer, parsed, sender)
                result.outcome = "refused: unknown sender"
                return result
            ticket = tickets.create_ticket(tx, customer, parsed.subject or "(no subject)",
                                           state.config.recipients, f"mail:{sender}",
                                           state.config.limits.token_days)
            thread = mail_threading.Thread(ticket["id"], "new-ticket", customer)
        result.ticket_id = thread.ticket_id
        if not any(a.sealed and a.data is not None for a in parsed.attachments):
            listed = [a.listed() for a in parsed.attachments]
            _attach(tx, state, signer, row, parsed, result, thread, auto, listed)
            return result
    listed = _bundles(state, result, parsed, sender)  # outside a transaction: verification takes its own
    with state.db.tx() as tx:
        _attach(tx, state, signer, row, parsed, result, thread, auto, listed)
    return result


def _attach(tx: Any, state: State, signer: Signer, row: Dict[str, Any], parsed: Parsed, result: Result,
            thread: mail_threading.Thread, auto: str, listed: List[Dict[str, Any]]) -> None:
    """The message on its ticket, and the inbox row done, in one transaction: exactly once."""
    mail = state.config.mail
    sender = parsed.from_addr or address(row["envelope_from"])
    ticket_id = thread.ticket_id or ""
    answer = _promise_answer(tx, parsed, sender, ticket_id, auto)
    kind = "no_reply_needed" if (parsed.no_reply or auto or (answer and answer.only)) else "needs_reply"
    message = messages.add_message(
        tx, ticket_id, author=sender or "unknown", author_kind="customer", kind=kind,
        body=_fit(parsed.body) or "(no text)", source="mail", mail_message_id=parsed.message_id or None,
        raw_key=row["raw_key"], attachments=listed)
    result.message_id = message["id"]
    audit.record(tx, f"mail:{sender}", "mail.receive", ticket_id, message["id"],
                 method=thread.method, automatic=auto or None, broken=parsed.broken or None,
                 parts_skipped=parsed.parts_skipped or None)
    if answer is not None:
        refused = promisemail.apply_answer(tx, signer, ticket_id, sender, answer,
                                           [*parsed.in_reply_to, *reversed(parsed.references)])
        audit.record(tx, f"mail:{sender}", "mail.promise_answer", ticket_id, message["id"],
                     answer=answer.action or None, refused=refused or None)
        if refused:
            outbox.enqueue(tx, ticket_id, None, sender, f"Re: {parsed.subject}" if parsed.subject else
                           "Your answer to our proposal", promisemail.refusal_text(refused), auto=True,
                           signer=signer, in_reply_to=parsed.message_id or None)
    oversized = [a for a in parsed.attachments if a.sealed and a.size > mail.max_attachment_bytes]
    if oversized and not auto and sender:
        _upload_answer(tx, state, signer, parsed, sender, ticket_id, oversized[0].size)
    result.outcome = f"attached ({thread.method})"
    _done(tx, result)
    result.recorded = True


def _promise_answer(tx: Any, parsed: Parsed, sender: str, ticket_id: str,
                    auto: str) -> Optional[promisemail.Answer]:
    """A keyword answer to a proposal (promisemail.py), only from a person of the ticket's
    customer and never in automatic mail (an out-of-office quoting "accept" answers nothing)."""
    if auto or not sender or not ticket_id:
        return None
    person = people.person(tx, sender)
    ticket = tickets.get_ticket(tx, ticket_id)
    if person is None or ticket is None or person["customer"] != ticket["customer"]:
        return None
    return promisemail.answer_in(parsed.body)


def _done(tx: Any, result: Result) -> None:
    tx.run("UPDATE mail_inbox SET state = 'done', outcome = ?, ticket_id = ?, message_id = ?,"
           " processed = ? WHERE id = ?",
           (result.outcome, result.ticket_id, result.message_id, time.time(), result.inbox_id))


def _fit(body: str) -> str:
    """The body within the message store's limit (cut at a character, marked as cut)."""
    data = body.encode("utf-8")
    if len(data) <= messages.MAX_BODY_BYTES - 64:
        return body
    return data[: messages.MAX_BODY_BYTES - 64].decode("utf-8", errors="ignore") + "\n[… cut: too long]"


def _is_own(sender: str, signer: Signer) -> bool:
    local, _, domain = sender.partition("@")
    return domain == signer.domain.lower() and local.split("+", 1)[0] == signer.local.lower()


def _bundles(state: State, result: Result, parsed: Parsed, sender: str) -> List[Dict[str, Any]]:
    """Every attachment listed; each sealed one within the limit stored as an upload would
    be and verified by the same checks (bundles.register, bundles.verify)."""
    listed = []
    for item in parsed.attachments:
        entry = item.listed()
        if item.sealed and item.data is not None:
            sha256 = hashlib.sha256(item.data).hexdigest()
            tmp = state.data.tmp / f"mail-bundle-{secrets.token_hex(8)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(item.data)
                state.store.put_file(tmp, sha256)
            finally:
                tmp.unlink(missing_ok=True)
            bundle_id = bundles.register(state, result.ticket_id or "", sha256, len(item.data),
                                         bundles.safe_name(item.name), f"mail:{sender}")
            bundles.verify(state, bundle_id)
            entry["bundle"] = bundle_id
            result.bundles.append(bundle_id)
        listed.append(entry)
    return listed


def _bounce(state: State, signer: Signer, result: Result, report: loops.Report) -> Result:
    signed = signer.ticket_of_message_id(report.original_message_id)
    if signed is None:
        result.outcome = "ignored: a delivery report for no mail of ours"
        return result
    ticket_id, nonce = signed
    result.ticket_id = ticket_id
    with state.db.tx() as tx:
        sent = tx.one("SELECT message_id FROM outbox WHERE id = ? AND ticket_id = ?", (nonce, ticket_id))
        detail = f"bounced: {report.detail}"
        if sent is not None:
            tx.run("UPDATE outbox SET state = 'bounced', last_error = ? WHERE id = ?", (detail, nonce))
            if sent["message_id"]:
                messages.set_delivery(tx, sent["message_id"], "undelivered", detail)
                result.message_id = sent["message_id"]
        audit.record(tx, "mail", "mail.bounce", ticket_id, nonce, detail=detail)
    result.outcome = "bounce"
    return result


def _polite_answer(tx: Any, state: State, signer: Signer, parsed: Parsed, sender: str) -> None:
    """One answer per sender within `notice_interval_hours`, at most NOTICES_PER_HOUR in all;
    none to an address we cannot read."""
    if not sender:
        return
    now = time.time()
    row = tx.one("SELECT at FROM mail_notices WHERE email = ?", (sender,))
    if row is not None and row["at"] > now - state.config.mail.notice_interval_hours * 3600:
        return
    recent = tx.one("SELECT COUNT(*) AS n FROM mail_notices WHERE at > ?", (now - 3600,))
    if recent is not None and int(recent["n"]) >= NOTICES_PER_HOUR:
        log.warning("not answering %s: %s answers to unknown senders in the last hour", sender,
                    NOTICES_PER_HOUR)
        return
    tx.run("INSERT INTO mail_notices (email, at) VALUES (?, ?) ON CONFLICT (email) DO UPDATE SET at = ?",
           (sender, now, now))
    outbox.enqueue(tx, None, None, sender, f"Re: {parsed.subject}" if parsed.subject else "Your mail",
                   "Hello,\n\nthank you for your mail. This address takes mail about existing support "
                   "tickets from the people of our customers, and your address is not one we know, so "
                   "your message was not added to a ticket.\n\nIf you are a customer, please ask your "
                   "support contact to add your address, or write from the address they know.\n\n"
                   "This answer is sent once; further mail from your address is not answered.\n",
                   auto=True, signer=signer, in_reply_to=parsed.message_id or None)


def _upload_answer(tx: Any, state: State, signer: Signer, parsed: Parsed, sender: str, ticket_id: str,
                   size: int) -> None:
    mail = state.config.mail
    url = mail.public_url or os.environ.get("MYDIAG_PUBLIC_URL", "") or "https://SUPPORT-SERVER"
    outbox.enqueue(tx, ticket_id, None, sender, f"Re: {parsed.subject}" if parsed.subject else "Your bundle",
                   f"Hello,\n\nthe bundle attached to your mail is {size} bytes, more than the "
                   f"{mail.max_attachment_bytes} bytes a mail may bring, so it was not imported. "
                   "Please upload it instead (it resumes where it stopped if the connection drops):\n\n"
                   f"    mydiag upload --server {url} --ticket {ticket_id} --token-file FILE BUNDLE\n\n"
                   "FILE holds the ticket's upload token you were given, BUNDLE is the .tar.zst.age "
                   "file.\n", auto=True, signer=signer, in_reply_to=parsed.message_id or None)
