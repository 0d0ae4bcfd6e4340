"""The call invitation as RFC 5545 text: CRLF lines folded at 75 octets, TEXT escaping, UTC times,
the properties a calendar program needs, customer text that cannot add a property, and the mail
that carries it (text/calendar; method=REQUEST, the bytes unchanged) queued to everyone invited.

The parser here is the test's own, written from RFC 5545 section 3.1 (unfolding, content lines,
quoted parameter values) and 3.3.11 (TEXT), so it does not share code with what it checks."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import secrets
from typing import Dict, List, Tuple

import pytest

from server.mail import invites, outbox
from server.mail.tokens import Signer
from server.storage.db import open_database
from server.support import calls, clock, people, policies, tickets

pytestmark = pytest.mark.server

NAME = re.compile(r"^[A-Z][A-Z0-9-]*$")


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


# --- the test's own reading of RFC 5545 ----------------------------------------------------------


def physical_lines(text: str) -> List[bytes]:
    raw = text.encode("utf-8")
    assert raw.endswith(b"\r\n"), "the object ends in CRLF"
    lines = raw[:-2].split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines), "a bare CR or LF"
    return lines


def unfold(text: str) -> List[str]:
    out: List[str] = []
    for line in physical_lines(text):
        assert len(line) <= 75, f"{len(line)} octets: {line!r}"
        decoded = line.decode("utf-8")  # a fold inside a UTF-8 sequence fails here
        if decoded[:1] in (" ", "\t"):
            out[-1] += decoded[1:]
        else:
            out.append(decoded)
    return out


def split_line(line: str) -> Tuple[str, Dict[str, str], str]:
    """name, parameters, value: the first ':' outside a quoted string ends the parameters."""
    quoted, end = False, None
    for at, c in enumerate(line):
        if c == '"':
            quoted = not quoted
        elif c == ":" and not quoted:
            end = at
            break
    assert end is not None, f"no value in {line!r}"
    head, value = line[:end], line[end + 1:]
    parts, cur, quoted = [], "", False
    for c in head:
        if c == '"':
            quoted = not quoted
        if c == ";" and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    name = parts[0]
    assert NAME.match(name), f"bad property name {name!r}"
    params = {}
    for p in parts[1:]:
        key, _, val = p.partition("=")
        assert NAME.match(key), f"bad parameter {key!r}"
        if val.startswith('"'):
            assert val.endswith('"') and '"' not in val[1:-1]
            val = val[1:-1]
        params[key] = val
    return name, params, value


def unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\":
            nxt = value[i + 1]
            assert nxt in "\\;,nN", f"bad escape \\{nxt}"
            out.append("\n" if nxt in "nN" else nxt)
            i += 2
            continue
        assert c not in ";,", f"unescaped {c!r} in a TEXT value"
        out.append(c)
        i += 1
    return "".join(out)


def properties(text: str) -> List[Tuple[str, Dict[str, str], str]]:
    return [split_line(line) for line in unfold(text)]


# --- what is checked -----------------------------------------------------------------------------


def a_call(**extra) -> Dict:
    call = {"id": "call-0123456789abcdef", "ticket_id": "tk-abcdefghij",
            "ical_uid": "call-0123456789abcdef@mydiag", "ical_sequence": 0,
            "starts_at": "2026-01-05T09:30:00Z", "ends_at": "2026-01-05T10:00:00Z", "limit_minutes": 30,
            "engineer": "ann", "session_id": None, "agenda": ["replica lag", "sync_binlog"],
            "attendees": [{"name": "Carol", "email": "carol@example.com", "role": "account manager"}]}
    call.update(extra)
    return call


TICKET = {"id": "tk-abcdefghij", "title": "replication lag", "customer": "acme"}
INVITED = [("Carol (account manager)", "carol@example.com"), ("dba@acme.example", "dba@acme.example")]


def test_a_request_has_the_properties_a_calendar_program_needs():
    text = invites.calendar(a_call(), TICKET, "support+tk-abcdefghij.x@support.test", INVITED,
                            now=epoch("2026-01-05T09:00"))
    props = properties(text)
    names = [p[0] for p in props]
    assert names[:5] == ["BEGIN", "PRODID", "VERSION", "CALSCALE", "METHOD"] and names[-1] == "END"
    value = {n: v for n, _p, v in props if n not in ("BEGIN", "END", "ATTENDEE")}
    assert value["METHOD"] == "REQUEST" and value["VERSION"] == "2.0"
    assert value["UID"] == "call-0123456789abcdef@mydiag" and value["SEQUENCE"] == "0"
    assert (value["DTSTAMP"], value["DTSTART"], value["DTEND"]) == (
        "20260105T090000Z", "20260105T093000Z", "20260105T100000Z")
    assert unescape(value["SUMMARY"]) == "mydiag support call: replication lag"
    described = unescape(value["DESCRIPTION"])
    assert "1. replica lag\n2. sync_binlog" in described and "Time limit: 30 minutes" in described
    assert "Carol (account manager)" in described
    organizer = [p for p in props if p[0] == "ORGANIZER"][0]
    assert organizer[2] == "mailto:support+tk-abcdefghij.x@support.test" and "ann" in organizer[1]["CN"]
    attendees = [(p[1]["CN"], p[2]) for p in props if p[0] == "ATTENDEE"]
    assert attendees == [("Carol (account manager)", "mailto:carol@example.com"),
                         ("dba@acme.example", "mailto:dba@acme.example")]
    assert [n for n, _p, _v in props if n in ("BEGIN", "END")] == ["BEGIN", "BEGIN", "END", "END"]


def test_text_values_are_escaped_and_come_back_unchanged():
    tricky = 'C:\\temp; a, b\nnext line "quoted" <b>bold</b>'
    text = invites.calendar(a_call(agenda=[tricky]), dict(TICKET, title=tricky), "o@support.test", INVITED)
    value = {n: v for n, _p, v in properties(text)}
    assert unescape(value["SUMMARY"]) == f"mydiag support call: {tricky}"
    assert f"1. {tricky}" in unescape(value["DESCRIPTION"])


@pytest.mark.parametrize("hostile", [
    "x\r\nATTENDEE:mailto:evil@example.com", "x\nATTENDEE:mailto:evil@example.com",
    "x\rATTENDEE:mailto:evil@example.com", "x\u2028ATTENDEE:mailto:evil@example.com",
    "x\x85ATTENDEE:mailto:evil@example.com", "x\r\n ATTENDEE:mailto:evil@example.com",
    "END:VEVENT\r\nBEGIN:VEVENT", '"; ROLE=CHAIR:mailto:evil@example.com',
])
def test_customer_text_cannot_add_a_property_or_a_parameter(hostile):
    """Even text the support modules would refuse (they refuse controls) cannot escape its value."""
    call = a_call(agenda=[hostile], engineer=hostile,
                  attendees=[{"name": hostile, "email": "carol@example.com", "role": hostile}])
    text = invites.calendar(call, dict(TICKET, title=hostile), "o@support.test",
                            [(hostile, "carol@example.com")])
    props = properties(text)
    assert [p[0] for p in props].count("ATTENDEE") == 1
    assert [p[0] for p in props].count("BEGIN") == 2 and [p[0] for p in props].count("END") == 2
    attendee = [p for p in props if p[0] == "ATTENDEE"][0]
    assert set(attendee[1]) == {"CN", "ROLE", "PARTSTAT", "RSVP"} and attendee[1]["ROLE"] == "REQ-PARTICIPANT"
    assert attendee[2] == "mailto:carol@example.com"
    assert "evil@example.com" not in "".join(v for n, _p, v in props if n in ("ATTENDEE", "ORGANIZER"))


def test_long_lines_fold_at_75_octets_without_splitting_a_character():
    long = "Größe der InnoDB-Pufferpools prüfen — 東京のレプリカ 🚀 " * 6
    text = invites.calendar(a_call(agenda=[long[:200]]), dict(TICKET, title=long), "o@support.test", INVITED)
    lines = physical_lines(text)
    assert max(len(line) for line in lines) <= 75 and any(len(line) >= 70 for line in lines)
    value = {n: v for n, _p, v in properties(text)}
    assert long[:200] in unescape(value["DESCRIPTION"])
    assert invites.fold("A" * 75) == "A" * 75 + "\r\n"
    assert invites.fold("A" * 76) == "A" * 75 + "\r\n A\r\n"


def test_a_cancellation_moves_the_sequence_and_says_cancelled():
    text = invites.calendar(a_call(ical_sequence=1), TICKET, "o@support.test", INVITED, method="CANCEL")
    value = {n: v for n, _p, v in properties(text)}
    assert value["METHOD"] == "CANCEL" and value["STATUS"] == "CANCELLED" and value["SEQUENCE"] == "1"
    with pytest.raises(ValueError):
        invites.calendar(a_call(), TICKET, "o@support.test", INVITED, method="PUBLISH\r\nX")


def test_the_mail_carries_the_calendar_part_byte_for_byte():
    signer = Signer(secrets.token_bytes(32), "support.test")
    text = invites.calendar(a_call(), TICKET, signer.reply_address(TICKET["id"]), INVITED)
    raw = outbox.build(signer, TICKET["id"], "ob-1", "carol@example.com", "Call invitation", "see attached",
                       True, calendar=text)
    msg = email.message_from_string(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p for p in msg.iter_parts()}
    assert parts["text/plain"].get_content().strip() == "see attached"
    cal = parts["text/calendar"]
    assert cal.get_param("method") == "REQUEST" and cal.get_content_charset() == "utf-8"
    assert cal.get_payload(decode=True) == text.encode("utf-8")
    plain = outbox.build(signer, TICKET["id"], "ob-2", "carol@example.com", "s", "body", False)
    assert email.message_from_string(plain, policy=email.policy.default).get_content_type() == "text/plain"


@pytest.fixture
def db(tmp_path, own_backend):
    policies.configure(None)
    clock.set_now(epoch("2026-01-05T09:00"))
    database = open_database(own_backend or f"sqlite:///{tmp_path / 'server.db'}")
    with database.tx() as tx:
        tickets.add_engineer(tx, "ann", "test")
    yield database
    database.close()
    clock.reset()


def test_the_invitation_is_queued_to_the_attendees_with_an_address_and_the_customers_people(db):
    signer = Signer(secrets.token_bytes(32), "support.test")
    with db.tx() as tx:
        ticket = tickets.create_ticket(tx, "acme", "replication lag", [], "engineer:ann", 30)
        people.add_person(tx, "acme", "dba@acme.example", "Dee", "test")
        people.add_person(tx, "acme", "carol@example.com", None, "test")  # also an attendee: mailed once
        people.add_person(tx, "globex", "other@globex.example", None, "test")
        call = calls.request(tx, ticket["id"], agenda=["replica lag"], attendees=[
            {"name": "Carol", "email": "carol@example.com", "role": "account manager"},
            {"name": "Phone only", "role": "consultant"}], engineer="ann", earliest=None,
            actor="engineer:ann")
        ids = invites.send(tx, signer, call)
        rows = tx.all("SELECT to_addr, raw, ticket_id, state FROM outbox ORDER BY to_addr")
    assert len(ids) == 2 and sorted(r["to_addr"] for r in rows) == ["carol@example.com", "dba@acme.example"]
    for row in rows:
        assert row["state"] == "queued" and row["ticket_id"] == ticket["id"]
        msg = email.message_from_string(row["raw"], policy=email.policy.default)
        assert msg["To"] == row["to_addr"] and msg["Auto-Submitted"] == "auto-generated"
        assert f"[mydiag {ticket['id']}]" in msg["Subject"] and "Call invitation" in msg["Subject"]
        cal = [p for p in msg.walk() if p.get_content_type() == "text/calendar"][0]
        props = properties(cal.get_payload(decode=True).decode("utf-8"))
        assert sorted(v for n, _p, v in props if n == "ATTENDEE") == [
            "mailto:carol@example.com", "mailto:dba@acme.example"]
        assert {n: v for n, _p, v in props}["DTSTART"] == "20260105T093000Z"
    with db.tx() as tx:
        refused = None
        try:
            calls.request(tx, ticket["id"], agenda=[], attendees=[], engineer="ann", earliest=None, actor="t")
        except calls.Refused as exc:
            refused = exc.call
        assert refused is not None and invites.send(tx, signer, refused) == []
