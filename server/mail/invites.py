"""The invitation to a call: an iCalendar object (RFC 5545; iTIP METHOD:REQUEST, or CANCEL when the
call is called off) mailed through the outbox to the call's attendees with an address and to
the people of the ticket's customer.

The rules kept here:

- One VEVENT: UID (the call's `ical_uid`), SEQUENCE (moves on with each change), DTSTAMP,
  DTSTART/DTEND in UTC, SUMMARY, DESCRIPTION (the agenda, the time limit, who attends),
  ORGANIZER (the engineer, at the ticket's signed reply address, so answers thread onto the
  ticket) and one ATTENDEE per address.
- Lines end in CRLF and are folded at 75 octets (never inside a UTF-8 sequence). TEXT values
  are escaped (`\\` `;` `,` and newlines); every other control character becomes a space.
  Parameter values (CN) are quoted strings without DQUOTE or controls. Addresses passed the
  strict check of support/calls.py (`clean_email`), so customer text (agenda, names, a
  ticket's title) can never end a line and start a property of its own.
- The mail is `multipart/alternative`: the same text for people, and the `text/calendar;
  method=…` part calendar programs act on (outbox.enqueue's `calendar`).
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any, Dict, List, Optional, Tuple

from server.mail import outbox
from server.mail.tokens import Signer
from server.storage import audit
from server.storage.db import Tx
from server.support import calls, clock, people, tickets
from server.support.tickets import Invalid

PRODID = "-//mydiag//support calls//EN"
LINE_OCTETS = 75
SUMMARY_MAX = 150


def stamp(epoch: float) -> str:
    """An epoch as an iCalendar UTC DATE-TIME (`20261202T150000Z`)."""
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _printable(value: str, keep_newlines: bool) -> str:
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    return "".join(c if (c == "\n" and keep_newlines) or unicodedata.category(c) not in
                   ("Cc", "Cf", "Zl", "Zp", "Cs") else " " for c in text)


def escape_text(value: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newline escaped."""
    text = _printable(value, keep_newlines=True)
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def quote_param(value: str) -> str:
    """A parameter value as a quoted string: no DQUOTE, no control characters."""
    return '"' + _printable(value, keep_newlines=False).replace('"', "'") + '"'


def fold(line: str) -> str:
    """One content line folded at 75 octets (continuations start with a space), never splitting a
    UTF-8 sequence; CRLF at the end."""
    out: List[str] = []
    current, size, room = [], 0, LINE_OCTETS
    for char in line:
        octets = len(char.encode("utf-8"))
        if size + octets > room:
            out.append("".join(current))
            current, size, room = [], 0, LINE_OCTETS - 1
        current.append(char)
        size += octets
    out.append("".join(current))
    return "\r\n ".join(out) + "\r\n"


def _epoch(text: Optional[str]) -> float:
    return dt.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).timestamp()


def _hm(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%H:%M")


def _who(person: Dict[str, Any]) -> str:
    return f"{person['name']} ({person['role']})" if person.get("role") else str(person["name"])


def description(call: Dict[str, Any], ticket: Dict[str, Any]) -> str:
    """What the invitation says to people (also the mail's text part)."""
    starts, ends = _epoch(call["starts_at"]), _epoch(call["ends_at"])
    lines = ["Agenda:"] + [f"{n}. {item}" for n, item in enumerate(call["agenda"], 1)]
    lines += ["", f"Time limit: {call['limit_minutes']} minutes "
              f"({_hm(starts)}-{_hm(ends)} UTC on {call['starts_at'][:10]}); "
              "the call ends when the agenda is settled or the time is up.",
              f"Support engineer: {call['engineer']}"]
    if call["attendees"]:
        lines.append("With: " + ", ".join(_who(a) for a in call["attendees"]))
    lines.append(f"Ticket {ticket['id']}: {ticket['title']}")
    if call.get("session_id"):
        lines.append(f"Held as the remote session {call['session_id']}.")
    return "\n".join(lines)


def recipients(tx: Tx, call: Dict[str, Any], ticket: Dict[str, Any]) -> List[Tuple[str, str]]:
    """(name, address) of everyone invited: the attendees with an address, then the customer's
    people; each address once, only addresses that pass the strict check."""
    out: List[Tuple[str, str]] = []
    seen = set()
    listed = [(_who(a), a["email"]) for a in call["attendees"] if a.get("email")]
    listed += [(p.get("name") or p["email"], p["email"]) for p in people.people_of(tx, ticket["customer"])]
    for name, address in listed:
        try:
            address = calls.clean_email(address)
        except Invalid:
            continue
        if address not in seen:
            seen.add(address)
            out.append((name, address))
    return out


def calendar(call: Dict[str, Any], ticket: Dict[str, Any], organizer: str,
             invited: List[Tuple[str, str]], method: str = "REQUEST", now: Optional[float] = None) -> str:
    """The iCalendar object of `call` (a calls.get dict) as text with CRLF line ends."""
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"unsupported iTIP method {method!r}")
    summary = f"mydiag support call: {ticket['title']}"[:SUMMARY_MAX]
    lines = ["BEGIN:VCALENDAR", f"PRODID:{PRODID}", "VERSION:2.0", "CALSCALE:GREGORIAN", f"METHOD:{method}",
             "BEGIN:VEVENT",
             f"UID:{escape_text(call['ical_uid'])}",
             f"SEQUENCE:{int(call['ical_sequence'])}",
             f"DTSTAMP:{stamp(clock.now() if now is None else now)}",
             f"DTSTART:{stamp(_epoch(call['starts_at']))}",
             f"DTEND:{stamp(_epoch(call['ends_at']))}",
             f"SUMMARY:{escape_text(summary)}",
             f"DESCRIPTION:{escape_text(description(call, ticket))}",
             f"ORGANIZER;CN={quote_param(str(call['engineer']) + ' (mydiag support)')}:mailto:{organizer}"]
    for name, address in invited:
        lines.append(f"ATTENDEE;CN={quote_param(name)};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;"
                     f"RSVP=TRUE:mailto:{address}")
    lines += [f"STATUS:{'CANCELLED' if method == 'CANCEL' else 'CONFIRMED'}", "TRANSP:OPAQUE",
              "END:VEVENT", "END:VCALENDAR"]
    return "".join(fold(line) for line in lines)


def send(tx: Tx, signer: Signer, call: Dict[str, Any], method: str = "REQUEST",
         actor: str = "mail") -> List[str]:
    """Queue the invitation (or, with CANCEL, its cancellation) of a scheduled call for everyone
    invited (audited: `call.invite`); the outbox ids. A call without a time (refused) is not mailed."""
    if not call.get("starts_at") or not call.get("ends_at"):
        return []
    ticket = tickets.get_ticket(tx, call["ticket_id"])
    if ticket is None:
        return []
    invited = recipients(tx, call, ticket)
    text = calendar(call, ticket, signer.reply_address(ticket["id"]), invited, method)
    when = f"{call['starts_at'][:10]} {call['starts_at'][11:16]} UTC"
    if method == "CANCEL":
        subject = f"Call cancelled: {when}, {ticket['title']}"
        body = (f"The support call on {when} is cancelled: {call.get('cancel_reason') or 'no reason given'}."
                f"\n\n{description(call, ticket)}\n")
    else:
        subject = f"Call invitation: {when}, {ticket['title']}"
        body = (f"You are invited to a support call on {when}.\n\n{description(call, ticket)}\n\n"
                "The invitation is attached for your calendar program.\n")
    ids = [outbox.enqueue(tx, ticket["id"], None, address, subject, body, auto=True, signer=signer,
                          calendar=text, calendar_method=method) for _name, address in invited]
    audit.record(tx, actor, "call.invite", ticket["id"], call["id"], method=method, recipients=len(ids),
                 sequence=call["ical_sequence"])
    return ids
