"""The promise by mail: the proposal paragraph and its signed links in an engineer's outgoing
reply, and a customer's answer by a keyword line in their mail.

Links. An engineer's message sent together with a proposal (`carries`, recorded when both are
made in one transaction) goes out with "We propose to send our next reply by <UTC time>
(<reason>)." and two links for the person it is mailed to: accept (one click, on a page with a
button: a GET never answers) and propose another time. A link is
`/promise/v1.<promise>.<a|c>.<expiry>.<person>.<mac>`: the MAC is HMAC-SHA256 with the key of
`DATA/mail.key` over a kind of its own, the promise id, the action, the expiry (epoch seconds)
and the person's address (base64url), cut to 20 bytes in hex. `read_link` checks it in constant
time; a link is spent with its promise: it answers only while that version is the open
proposal, so a used, superseded or replayed link is refused (410), as an expired one; a
changed digit is a tampered link (400). Links expire after `LINK_DAYS`, or when the proposed
time has passed, whichever is first.

Keyword answers (the strict grammar, one line each, in the new text of the mail only; quoted
history, and anything after a quote marker, never counts):

    accept | accepted | agreed                          (any case, an optional `.` or `!`)
    counter: YYYY-MM-DD HH:MM ZONE                      (ZONE: UTC, Z or an IANA name)
    reason: TEXT                                        (optional, after a counter line)

More than one answer line, or a counter line whose time cannot be read (a local time that
does not exist or happens twice on a DST change included), is not applied; the person is told
why by one automatic mail. The answer applies to the proposal of the mail it replies to
(In-Reply-To / References naming one of our signed Message-IDs), else to the ticket's open
proposal; a proposal already answered or replaced is not answered again. Only a person of the
ticket's customer can answer, and never by automatic mail (inbound.py checks both).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Optional

try:
    import zoneinfo
except ImportError:  # pragma: no cover - the server runs on 3.9+
    zoneinfo = None  # type: ignore[assignment]

from server.mail.parse import one_line
from server.mail.tokens import Signer
from server.storage import audit
from server.storage.db import Tx
from server.support import clock, people, promises, tickets
from server.support.tickets import Invalid

LINK_DAYS = 14
ACTIONS = {"accept": "a", "counter": "c"}
_ACTION_OF = {v: k for k, v in ACTIONS.items()}
_MAC_HEX = 40
_LINK = re.compile(r"v1\.(?P<promise>pr-[a-z0-9]{1,40})\.(?P<action>[ac])\.(?P<expires>\d{1,12})\."
                   r"(?P<person>[A-Za-z0-9_-]{1,400})\.(?P<mac>[0-9a-f]{40})")
REASON_MAX = 500
#: The audit action that pairs an engineer's message with the proposal sent with it.
CARRIES = "promise.with_message"


# --- local times -----------------------------------------------------------------------------


_LOCAL = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?")


def zone_of(name: str) -> Any:
    """The tzinfo of `name` (UTC, Z or an IANA zone this machine knows); ValueError otherwise."""
    name = (name or "").strip()
    if name.upper() in ("UTC", "Z", "GMT"):
        return datetime.timezone.utc
    if not name or len(name) > 64 or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}",
                                                          name):
        raise ValueError(f"{name[:64]!r} is not a time zone (UTC, or an IANA name such as Europe/Berlin)")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{name!r} is not a time zone this server knows (an IANA name such as "
                         "Europe/Berlin)") from None


def local_moment(value: str, zone: str) -> float:
    """`YYYY-MM-DD HH:MM[:SS]` (or with a `T`, as a datetime-local field sends it) in `zone` as
    an epoch; ValueError with the reason for anything else, also for a local time the clocks
    skip (spring forward) or pass twice (fall back) in that zone."""
    shape = _LOCAL.fullmatch((value or "").strip())
    if shape is None:
        raise ValueError("the time is not a date and time of the form YYYY-MM-DD HH:MM")
    tz = zone_of(zone)
    year, month, day, hour, minute, second = (int(g or 0) for g in shape.groups())
    try:
        naive = datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise ValueError(f"{value.strip()} is not a date and time that exists") from None
    if tz is datetime.timezone.utc:
        return naive.replace(tzinfo=tz).timestamp()
    first, second_ = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second_.utcoffset():
        back = first.astimezone(datetime.timezone.utc).astimezone(tz).replace(tzinfo=None)
        if back != naive:
            raise ValueError(f"{naive:%Y-%m-%d %H:%M} does not exist in {zone} (the clocks skip it)")
        raise ValueError(f"{naive:%Y-%m-%d %H:%M} happens twice in {zone} (the clocks go back): "
                         "give the time in UTC")
    return first.timestamp()


def utc_text(epoch: float) -> str:
    """`YYYY-MM-DD HH:MM UTC`, the way a mail shows a time."""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def epoch_of(iso_text: Optional[str]) -> Optional[float]:
    """The API's `YYYY-MM-DDTHH:MM:SSZ` as an epoch (None for anything else)."""
    try:
        parsed = datetime.datetime.strptime(str(iso_text), "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return None
    return parsed.replace(tzinfo=datetime.timezone.utc).timestamp()


# --- signed links ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    promise_id: str
    action: str  # "accept" | "counter"
    email: str
    expires: float


class LinkRefused(Exception):
    """A link that does not answer: `.status` (400 tampered, 403 not the customer's, 410 used,
    replaced or expired) and str() the sentence the page shows."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> Optional[str]:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def _mac(key: bytes, promise_id: str, action: str, expires: str, person: str) -> str:
    data = "\x00".join(("promise-link", promise_id, action, expires, person)).encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:_MAC_HEX]


def make_link(signer: Signer, promise_id: str, action: str, email: str, expires: float) -> str:
    """The token of a link (the part after `/promise/`)."""
    code, stamp, person = ACTIONS[action], str(int(expires)), _b64(email.lower())
    return f"v1.{promise_id}.{code}.{stamp}.{person}.{_mac(signer.key, promise_id, code, stamp, person)}"


def read_link(signer: Signer, token: str, now: float) -> Link:
    """The link's promise, action and person when its MAC verifies and it has not expired;
    LinkRefused otherwise (never another exception, whatever `token` holds)."""
    found = _LINK.fullmatch(token or "") if isinstance(token, str) and len(token) < 700 else None
    if found is None:
        raise LinkRefused(400, "This link is not one of ours, or it was changed on the way: open the "
                          "link from the mail as it is, or answer on the ticket's page.")
    good = _mac(signer.key, found["promise"], found["action"], found["expires"], found["person"])
    email = _unb64(found["person"])
    if not hmac.compare_digest(good, found["mac"]) or email is None:
        raise LinkRefused(400, "This link is not one of ours, or it was changed on the way: open the "
                          "link from the mail as it is, or answer on the ticket's page.")
    if float(found["expires"]) <= now:
        raise LinkRefused(410, "This link has expired. The ticket's page shows where the proposal "
                          "stands; sign in there to answer.")
    return Link(found["promise"], _ACTION_OF[found["action"]], email, float(found["expires"]))


_GONE = {"accepted": "was accepted already", "countered": "was answered with another time already",
         "superseded": "was replaced by a newer proposal", "withdrawn": "was withdrawn"}


def open_for_link(tx: Tx, link: Link) -> Dict[str, Any]:
    """The promise a link answers, still open and the person still one of its customer's;
    LinkRefused when not (410 used or replaced, 403 the address left the customer)."""
    promise = promises.get(tx, link.promise_id)
    ticket = tickets.get_ticket(tx, promise["ticket_id"]) if promise else None
    if promise is None or ticket is None:
        raise LinkRefused(410, "The proposal of this link no longer exists.")
    person = people.person(tx, link.email)
    if person is None or person["customer"] != ticket["customer"]:
        raise LinkRefused(403, "This link was mailed to an address that no longer belongs to the "
                          "ticket's customer, so it cannot answer for them.")
    current = promises.open_proposal(tx, promise["ticket_id"])
    if promise["state"] != "proposed" or current is None or current["id"] != promise["id"]:
        why = _GONE.get(promise["state"], "is no longer open")
        raise LinkRefused(410, f"This link was used already or is out of date: the proposal {why}. "
                          "The ticket's page shows where it stands.")
    if promise["proposed_side"] != "engineer":
        raise LinkRefused(410, "This proposal is not ours to answer by link.")
    return promise


# --- the reply that carries a proposal -------------------------------------------------------


def note_carries(tx: Tx, actor: str, ticket_id: str, message_id: str, promise_id: str) -> None:
    """Record that `message_id` was sent together with the proposal `promise_id`."""
    audit.record(tx, actor, CARRIES, ticket_id, message_id, promise=promise_id)


def carried(tx: Tx, ticket_id: str, message_id: str) -> Optional[Dict[str, Any]]:
    """The proposal sent together with this message, if any."""
    row = tx.one("SELECT detail FROM audit WHERE ticket_id = ? AND action = ? AND subject = ? "
                 "ORDER BY seq DESC LIMIT 1", (ticket_id, CARRIES, message_id))
    if row is None:
        return None
    try:
        promise_id = json.loads(row["detail"] or "{}").get("promise")
    except ValueError:
        return None
    return promises.get(tx, promise_id) if isinstance(promise_id, str) else None


def link_expiry(promise: Dict[str, Any], now: float) -> float:
    due = epoch_of(promise.get("due_at")) or now
    return min(now + LINK_DAYS * 86400, max(due, now + 3600))


def paragraph(signer: Signer, promise: Dict[str, Any], to_addr: str, origin: str, now: float) -> str:
    """The proposal as a mail paragraph for `to_addr`: the time, the reason, the two links (when
    the server's public address is known) and how to answer by mail."""
    due = epoch_of(promise["due_at"])
    reason = one_line(promise.get("reason") or "", REASON_MAX)
    when = utc_text(due) if due is not None else promise["due_at"]
    lines = [f"We propose to send our next reply by {when}" + (f" ({reason})." if reason else ".")]
    if origin:
        expires = link_expiry(promise, now)
        base = origin.rstrip("/") + "/promise/"
        accept = base + make_link(signer, promise["id"], "accept", to_addr, expires)
        counter = base + make_link(signer, promise["id"], "counter", to_addr, expires)
        lines += ["", "To accept it (the page asks you to press a button):", accept, "",
                  "To propose another time:", counter]
    lines += ["", 'You can also answer this mail: write a line that is only the word "accept", or a '
              'line "counter: YYYY-MM-DD HH:MM UTC" with the time you need (and, if you like, a line '
              '"reason: ..." under it).']
    return "\n".join(lines)


def reply_body(tx: Tx, signer: Signer, message: Dict[str, Any], to_addr: str, origin: str) -> str:
    """An engineer message's mail body for `to_addr`: the body, then the proposal sent with it
    while that proposal is still open."""
    promise = carried(tx, message["ticket_id"], message["id"])
    if promise is None or promise["state"] != "proposed" or promise["proposed_side"] != "engineer":
        return message["body"]
    return message["body"].rstrip("\n") + "\n\n" + paragraph(signer, promise, to_addr, origin, clock.now()) \
        + "\n"


# --- answers by mail -------------------------------------------------------------------------


_ACCEPT = re.compile(r"\s*(accept|accepted|agreed)\s*[.!]?\s*", re.IGNORECASE)
_COUNTER = re.compile(r"\s*counter\s*:\s*(?P<rest>.*)", re.IGNORECASE)
_COUNTER_AT = re.compile(r"(?P<at>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2})\s*(?P<zone>\S+)\s*")
_REASON = re.compile(r"\s*reason\s*:\s*(?P<text>.*)", re.IGNORECASE)
#: Where quoted history starts, also when the reply parser left it in place.
_QUOTE_START = re.compile(r"\s*(>|-{2,}\s*original message|_{5,}|on .{1,200} wrote:\s*$|"
                          r"(from|von|de|sent|gesendet):\s)", re.IGNORECASE)


@dataclass(frozen=True)
class Answer:
    action: str                   # "accept" | "counter" | "" (not readable: `error` says why)
    due_at: Optional[float] = None
    reason: str = ""
    error: str = ""
    only: bool = False            # the new text holds nothing but the answer


def answer_in(body: str) -> Optional[Answer]:
    """The keyword answer in a mail's new text, or None when it holds none."""
    found = []
    reason = ""
    other = False
    for line in (body or "").split("\n"):
        if _QUOTE_START.match(line):
            break
        if _ACCEPT.fullmatch(line):
            found.append(Answer("accept"))
        elif _COUNTER.fullmatch(line):
            rest = _COUNTER.fullmatch(line)["rest"]  # type: ignore[index]
            shape = _COUNTER_AT.fullmatch(rest)
            try:
                if shape is None:
                    raise ValueError("write the time as YYYY-MM-DD HH:MM UTC")
                found.append(Answer("counter", local_moment(shape["at"], shape["zone"])))
            except ValueError as exc:
                found.append(Answer("", error=f"the line {one_line(line, 80)!r} could not be read: {exc}"))
        elif _REASON.fullmatch(line) and found and not reason:
            reason = one_line(_REASON.fullmatch(line)["text"], REASON_MAX)  # type: ignore[index]
        elif line.strip():
            other = True
    if not found:
        return None
    if len(found) > 1:
        return Answer("", error="the mail holds more than one answer line (accept or counter)")
    answer = found[0]
    return Answer(answer.action, answer.due_at, reason if answer.action == "counter" else "", answer.error,
                  only=not other)


def _referenced(tx: Tx, signer: Signer, ticket_id: str, ids: Any) -> Optional[Dict[str, Any]]:
    """The newest proposal carried by one of our mails that these Message-IDs name."""
    newest = None
    for value in ids:
        signed = signer.ticket_of_message_id(value)
        if not signed or signed[0] != ticket_id:
            continue
        row = tx.one("SELECT message_id FROM outbox WHERE id = ? AND ticket_id = ?", (signed[1], ticket_id))
        promise = carried(tx, ticket_id, row["message_id"]) if row and row["message_id"] else None
        if promise is not None and (newest is None or promise["version"] > newest["version"]):
            newest = promise
    return newest


def apply_answer(tx: Tx, signer: Signer, ticket_id: str, sender: str, answer: Answer,
                 thread_ids: Any) -> str:
    """Apply a person's keyword answer to the proposal their mail answers: "" when applied, else
    the one-line reason it was not (for the automatic answer)."""
    if answer.error:
        return answer.error
    proposal = _referenced(tx, signer, ticket_id, thread_ids) or promises.open_proposal(tx, ticket_id)
    current = promises.open_proposal(tx, ticket_id)
    if proposal is None or current is None:
        return "there is no open proposal on this ticket to answer"
    if proposal["id"] != current["id"] or proposal["state"] != "proposed":
        return (f"the proposal of {utc_text(epoch_of(proposal['due_at']) or 0)} was answered or replaced "
                "already; the ticket's page shows the one open now")
    if current["proposed_side"] != "engineer":
        return "the open proposal on this ticket is your own; it waits for our answer"
    actor = f"customer:{sender}"
    try:
        if answer.action == "accept":
            promises.accept(tx, ticket_id, current["id"], actor=actor, side="customer")
        else:
            assert answer.due_at is not None
            promises.counter(tx, ticket_id, current["id"], due_at=answer.due_at,
                             reason=answer.reason or "proposed by mail", actor=actor, side="customer")
    except promises.Infeasible as exc:
        verdict = exc.verdict
        earliest = getattr(verdict, "earliest_feasible_at", None)
        return (f"our engineers' calendars cannot carry a reply by {utc_text(answer.due_at or 0)}" +
                (f"; the earliest we can promise is {utc_text(earliest)}" if earliest else ""))
    except (promises.Conflict, promises.NotFound, Invalid) as exc:
        return one_line(str(exc), 300)
    return ""


def refusal_text(reason: str) -> str:
    """The automatic answer's body when a keyword answer was not applied."""
    return ("Hello,\n\nyour mail was added to the ticket, but your answer to our proposal was not "
            f"applied: {one_line(reason, 400)}.\n\nOpen the ticket's page to see the proposal that is "
            "open now and answer there, or answer this mail with a line that is only the word "
            '"accept", or a line "counter: YYYY-MM-DD HH:MM UTC".\n')
