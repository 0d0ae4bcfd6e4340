"""Mail that must never be answered, and delivery-status reports.

`automatic(parsed, envelope_from, own)` says why a message is automatic (RFC 3834
`Auto-Submitted` other than `no`; `Precedence: bulk|junk|list`; `X-Auto-Response-Suppress`;
a `List-Id`; an `X-Loop` naming our address; a null return path `<>` (the envelope's, or
Return-Path); a sender that is mailer-daemon or postmaster; our own address as the sender),
or '' for a person's
mail. Automatic mail may still attach to a ticket (an out-of-office reply is information),
but nothing ever answers it.

`delivery_report(parsed)` reads a `multipart/report; report-type=delivery-status`
(RFC 3464): the original Message-ID (from the returned headers or message) and the
recipients whose `Action` is `failed`, with their status and diagnostic.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import Message
from typing import List, Optional, Tuple

from server.mail.parse import Parsed, address, one_line

_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")


def automatic(parsed: Parsed, envelope_from: str, own: str) -> str:
    auto = parsed.header("auto-submitted").split(";")[0].strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    precedence = parsed.header("precedence").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if parsed.header("x-auto-response-suppress"):
        return "X-Auto-Response-Suppress"
    if parsed.header("x-autoreply") or parsed.header("x-autorespond"):
        return "X-Autoreply"
    if parsed.header("list-id"):
        return "List-Id"
    loop = parsed.header("x-loop").lower()
    if own and own.lower() in loop:
        return "X-Loop names us"
    if envelope_from.strip() == "<>" or parsed.header("return-path").strip() == "<>":
        return "null return path"
    for who in (address(envelope_from), parsed.from_addr):
        if who and who.split("@", 1)[0] in _DAEMONS:
            return f"sender {who}"
        if who and own and who.split("@", 1)[1] == own.split("@", 1)[1] \
                and who.split("@", 1)[0].split("+", 1)[0] == own.split("@", 1)[0]:
            return "our own address"
    if parsed.header("content-type").lower().startswith("multipart/report"):
        return "a report"
    return ""


@dataclass
class Report:
    original_message_id: str = ""
    failed: List[Tuple[str, str]] = field(default_factory=list)

    @property
    def detail(self) -> str:
        return "; ".join(f"{rcpt}: {why}" for rcpt, why in self.failed)[:500]


def delivery_report(parsed: Parsed) -> Optional[Report]:
    """The report, when the message is a delivery-status report that names a failure."""
    msg = parsed.message
    ctype = parsed.header("content-type").lower()
    if msg is None or not ctype.startswith("multipart/report") or "delivery-status" not in ctype:
        return None
    report = Report()
    for part in _parts(msg):
        kind = part.get_content_type().lower()
        if kind == "message/delivery-status":
            report.failed += _failed(part)
        elif kind in ("text/rfc822-headers", "message/rfc822") and not report.original_message_id:
            report.original_message_id = _original_id(part)
    return report if report.failed else None


def _parts(msg: Message) -> List[Message]:
    found: List[Message] = []
    payload = msg.get_payload()
    for part in payload if isinstance(payload, list) else []:
        if len(found) > 20:
            break
        found.append(part)
    return found


def _failed(part: Message) -> List[Tuple[str, str]]:
    """Each `Action: failed` recipient block of a message/delivery-status part."""
    text = _text_of(part)
    failed = []
    for block in text.replace("\r\n", "\n").split("\n\n")[:100]:
        fields = {}
        for line in block.split("\n"):
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip()
        if fields.get("action", "").lower() != "failed":
            continue
        recipient = fields.get("final-recipient") or fields.get("original-recipient") or ""
        recipient = address(recipient.split(";", 1)[-1])
        why = one_line(" ".join(x for x in (fields.get("status", ""), fields.get("diagnostic-code", ""))
                                if x), 300)
        failed.append((recipient or "unknown recipient", why or "failed"))
    return failed


def _text_of(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package parses delivery-status into header blocks
        return "\n\n".join(str(block) for block in payload)
    raw = part.get_payload(decode=True)
    return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(payload)


def _original_id(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        inner = payload[0]
    else:
        raw = part.get_payload(decode=True)
        text = raw if isinstance(raw, bytes) else str(payload).encode("utf-8", errors="replace")
        inner = email.message_from_bytes(text, policy=email.policy.default)
    try:
        value = str(inner.get("message-id") or "")
    except Exception:  # noqa: BLE001
        return ""
    return one_line(value, 300)
