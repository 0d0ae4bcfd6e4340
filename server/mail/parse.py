"""One message from raw MIME, treated as hostile.

Bounded: the raw size is refused before parsing (the SMTP endpoint at DATA, IMAP by its
RFC822.SIZE), at most `max_parts` parts are read and nesting stops at `MAX_DEPTH`; a
message the parser cannot make sense of (broken MIME, a recursion bomb) is kept as its
first bytes of text, marked `broken`, never an exception. Any charset: an unknown or
lying one decodes as UTF-8 with replacement characters. HTML becomes plain text
(htmltext.py); the body is then cut of its quoted history (mail-parser-reply) and of
control characters. Attachments are listed by name, type and size; only those the
inbound path may use (sealed bundles within the size limit) keep their bytes.

"No reply needed": a line that is only `#noreply` or `no reply needed` (any case,
optional trailing `.` or `!`) anywhere in the new text marks the message so; the line is
removed from the stored body.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
import unicodedata
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Dict, List, Optional, Tuple

from mailparser_reply import EmailReplyParser

MAX_DEPTH = 8
MAX_BODY_CHARS = 200_000
_NOREPLY = re.compile(r"^\s*(#\s*no-?reply|no reply needed)\s*[.!]?\s*$", re.IGNORECASE)
_ADDRESS = re.compile(r"^[^@\s<>\"(),;:\\\[\]]{1,64}@[A-Za-z0-9.-]{1,253}$")
_SEALED = (".tar.zst.age", ".age")


@dataclass
class Attachment:
    name: str
    type: str
    size: int
    data: Optional[bytes] = None

    def listed(self) -> Dict[str, Any]:
        return {"name": self.name, "type": self.type, "size": self.size}

    @property
    def sealed(self) -> bool:
        return self.name.lower().endswith(_SEALED) or (self.data or b"").startswith(b"age-encryption.org/")


@dataclass
class Parsed:
    headers: Dict[str, str] = field(default_factory=dict)
    subject: str = ""
    from_addr: str = ""
    from_name: str = ""
    recipients: List[str] = field(default_factory=list)
    message_id: str = ""
    in_reply_to: List[str] = field(default_factory=list)
    references: List[str] = field(default_factory=list)
    text: str = ""
    body: str = ""
    html: bool = False
    no_reply: bool = False
    #: A calendar program's answer to a call's invitation (text/calendar; method=REPLY).
    calendar_reply: bool = False
    attachments: List[Attachment] = field(default_factory=list)
    parts: int = 0
    parts_skipped: int = 0
    broken: str = ""
    message: Optional[Message] = None

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def one_line(text: str, limit: int = 300) -> str:
    """Header text as one printable line: CR, LF and every other control become a space."""
    cleaned = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs") else c
                      for c in str(text))
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    return cleaned[:limit]


def clean_body(text: str) -> str:
    """Text with only newlines and tabs among the control characters; at most MAX_BODY_CHARS."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cf", "Cs")
                   or c in "\u200d")
    return text[:MAX_BODY_CHARS]


def address(value: str) -> str:
    """The bare, lower-cased address in a header value, or '' when there is none that is valid."""
    _name, addr = email.utils.parseaddr(value or "")
    addr = addr.strip().lower()
    return addr if _ADDRESS.match(addr) else ""


def _ids(value: str) -> List[str]:
    return re.findall(r"<[^<>\s]{1,250}>", value or "")[:50]


def _header(msg: Message, name: str) -> str:
    try:
        values = msg.get_all(name) or []
        return one_line(" ".join(str(v) for v in values), 2000)
    except Exception:  # noqa: BLE001 - a header policy.default cannot decode: keep it raw
        raw = [v for k, v in msg.raw_items() if k.lower() == name.lower()]
        return one_line(" ".join(str(v) for v in raw), 2000)


def _decode(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = "utf-8"
    try:
        charset = part.get_content_charset() or "utf-8"
        return payload.decode(charset, errors="replace")
    except (LookupError, ValueError, TypeError):
        return payload.decode("utf-8", errors="replace")


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:  # noqa: BLE001 - a broken RFC 2231 parameter
        name = ""
    name = one_line(name, 200).replace("/", "_").replace("\\", "_")
    return name


def parse(raw: bytes, max_parts: int = 500, keep_bytes: int = 0) -> Parsed:
    """The message in `raw`; attachments up to `keep_bytes` that look sealed keep their bytes."""
    out = Parsed()
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        out.message = msg
        _read(msg, out, max_parts, keep_bytes)
    except (RecursionError, Exception) as exc:  # noqa: BLE001 - hostile MIME is never a crash
        out.broken = one_line(f"{type(exc).__name__}: {exc}", 200)
        head, _, rest = raw.partition(b"\r\n\r\n") if b"\r\n\r\n" in raw else raw.partition(b"\n\n")
        out.text = out.text or clean_body(rest[:MAX_BODY_CHARS].decode("utf-8", errors="replace"))
    out.body, out.no_reply = _new_text(out.text)
    # "Accepted: call on ticket …" from a calendar program answers our invitation: it needs no reply.
    out.no_reply = out.no_reply or out.calendar_reply
    return out


def _read(msg: Message, out: Parsed, max_parts: int, keep_bytes: int) -> None:
    for name in ("subject", "from", "to", "cc", "delivered-to", "message-id", "in-reply-to", "references",
                 "auto-submitted", "precedence", "x-auto-response-suppress", "x-loop", "return-path",
                 "content-type", "list-id", "x-autoreply", "x-autorespond", "sender"):
        value = _header(msg, name)
        if value:
            out.headers[name] = value
    out.subject = one_line(out.header("subject"), 300)
    out.from_addr = address(out.header("from"))
    out.from_name = one_line(email.utils.parseaddr(out.header("from"))[0], 100)
    found = []
    for name in ("to", "cc", "delivered-to"):
        for _n, addr in email.utils.getaddresses([out.header(name)])[:100]:
            addr = addr.strip().lower()
            if _ADDRESS.match(addr):
                found.append(addr)
    out.recipients = found
    ids = _ids(out.header("message-id"))
    out.message_id = ids[0] if ids else ""
    out.in_reply_to = _ids(out.header("in-reply-to"))
    out.references = _ids(out.header("references"))
    plain: List[str] = []
    html: List[str] = []
    _walk(msg, out, plain, html, max_parts, keep_bytes, 0)
    if plain:
        out.text = clean_body("\n\n".join(plain))
    elif html:
        from server.mail.htmltext import to_text

        out.html = True
        out.text = clean_body(to_text("\n".join(html), MAX_BODY_CHARS))


def _walk(part: Message, out: Parsed, plain: List[str], html: List[str], max_parts: int,
          keep_bytes: int, depth: int) -> None:
    out.parts += 1
    if out.parts > max_parts or depth > MAX_DEPTH:
        out.parts_skipped += 1
        return
    ctype = (part.get_content_type() or "text/plain").lower()
    if part.is_multipart():
        payload = part.get_payload()
        for sub in payload if isinstance(payload, list) else []:
            if out.parts >= max_parts:
                out.parts_skipped += 1
                continue
            _walk(sub, out, plain, html, max_parts, keep_bytes, depth + 1)
        return
    disposition = (part.get_content_disposition() or "").lower()
    name = _filename(part)
    if ctype in ("text/plain", "text/html") and disposition != "attachment" and not name:
        text = _decode(part)
        (plain if ctype == "text/plain" else html).append(text[:MAX_BODY_CHARS])
        return
    if ctype == "text/calendar" and str(part.get_param("method") or "").strip().upper() == "REPLY":
        out.calendar_reply = True
    if ctype in ("message/delivery-status", "text/rfc822-headers", "message/rfc822"):
        return  # read by loops.py for a report; never an attachment
    payload = part.get_payload(decode=True)
    size = len(payload) if isinstance(payload, bytes) else 0
    item = Attachment(name or f"part-{out.parts}", one_line(ctype, 100), size)
    if isinstance(payload, bytes) and size <= keep_bytes:
        item.data = payload
        if not item.sealed:
            item.data = None
    out.attachments.append(item)


def _new_text(text: str) -> Tuple[str, bool]:
    """The text without quoted history and without the keyword line: (body, no reply needed)."""
    body = text
    if text.strip():
        try:
            parsed = EmailReplyParser(languages=["en", "de", "fr", "es", "it", "nl"]).parse_reply(text=text)
            body = parsed if parsed and parsed.strip() else text
        except Exception:  # noqa: BLE001 - the reply parser's regexes on hostile text
            body = text
    lines = body.split("\n")
    while len(lines) > 1 and (not lines[-1].strip() or lines[-1].lstrip().startswith(">")):
        lines.pop()  # a quoted tail the reply parser left (HTML blockquotes, bare `>` lines)
    keep = [line for line in lines if not _NOREPLY.match(line)]
    return "\n".join(keep).strip(), len(keep) != len(lines)


def header_pairs(msg: Optional[Message]) -> List[Tuple[str, str]]:
    if msg is None:
        return []
    try:
        return [(k, str(v)) for k, v in msg.items()]
    except Exception:  # noqa: BLE001
        return []
