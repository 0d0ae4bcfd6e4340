"""A call's invitation really leaves: through the outbox and the smart host (STARTTLS, AUTH) to the
attendee with an address and to every person of the ticket's customer, as multipart/alternative
with a text/calendar; method=REQUEST part that reads as RFC 5545 (the parser of
tests/unit/test_invites.py): the call's UID, its UTC times, the ticket's signed reply address as
ORGANIZER; calling it off sends a CANCEL with the next SEQUENCE; a refused call sends nothing."""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
import urllib.error
import urllib.request
from typing import Any, Dict, List

from tests.mail.conftest import wait_for
from tests.mail.mailkit import customer_ticket
from tests.unit.test_invites import properties, unescape


def post(srv, path: str, body: Dict[str, Any]):
    request = urllib.request.Request(srv.server.url + path, method="POST", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {srv.server.admin_token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def calendars_to(smarthost, addresses: List[str], count: int) -> List[Dict[str, Any]]:
    """The mails with a calendar part that reached the smart host for `addresses`, once there are `count`."""
    def found():
        out = []
        for collected in list(smarthost.collector.mails):
            if not set(collected.rcpt_tos) & set(addresses):
                continue
            msg = email.message_from_bytes(collected.raw, policy=email.policy.default)
            parts = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
            if parts:
                out.append({"to": collected.rcpt_tos, "msg": msg, "part": parts[0], "tls": collected.tls,
                            "text": parts[0].get_payload(decode=True).decode("utf-8")})
        return out if len(out) >= count else None

    return wait_for(found, what=f"{count} invitations")


def test_an_invitation_reaches_the_attendee_and_the_customers_people_and_reads_as_icalendar(
        mailserver, smarthost):
    ticket_id, _customer, people = customer_ticket(mailserver, people=2)
    attendee = f"am-{ticket_id[3:]}@partner.example"
    status, refused = post(mailserver, f"/api/v1/tickets/{ticket_id}/calls", {"agenda": []})
    assert status == 422 and refused["error"].startswith("no agenda, no call")
    status, booked = post(mailserver, f"/api/v1/tickets/{ticket_id}/calls", {
        "agenda": ["why the replica lags; since when", "is sync_binlog=0 safe, and for how long"],
        "limit_minutes": 45,
        "attendees": [{"name": "Ann Manager", "email": attendee, "role": "account manager"}]})
    assert status == 201, booked
    invites = calendars_to(smarthost, [attendee, *people], 3)
    assert sorted(r for i in invites for r in i["to"]) == sorted([attendee, *people])
    signer = mailserver.signer()
    start = booked["starts_at"].replace("-", "").replace(":", "")
    end = booked["ends_at"].replace("-", "").replace(":", "")
    for invite in invites:
        msg, part = invite["msg"], invite["part"]
        assert invite["tls"] and msg.get_content_type() == "multipart/alternative"
        assert part.get_param("method") == "REQUEST" and part.get_content_charset() == "utf-8"
        assert f"[mydiag {ticket_id}]" in msg["Subject"] and msg["Auto-Submitted"] == "auto-generated"
        assert signer.ticket_of_address(email.utils.parseaddr(msg["From"])[1]) == ticket_id
        props = properties(invite["text"])
        value = {n: v for n, _p, v in props if n not in ("BEGIN", "END", "ATTENDEE")}
        assert value["METHOD"] == "REQUEST" and value["UID"] == booked["ical_uid"]
        assert value["SEQUENCE"] == "0"
        assert (value["DTSTART"], value["DTEND"]) == (start, end)
        organizer = [p for p in props if p[0] == "ORGANIZER"][0][2]
        assert signer.ticket_of_address(organizer.removeprefix("mailto:")) == ticket_id
        assert sorted(v for n, _p, v in props if n == "ATTENDEE") == sorted(
            f"mailto:{a}" for a in [attendee, *people])
        described = unescape(value["DESCRIPTION"])
        assert "1. why the replica lags; since when" in described and "Time limit: 45 minutes" in described

    status, gone = post(mailserver, f"/api/v1/tickets/{ticket_id}/calls/{booked['id']}/cancel",
                        {"reason": "fixed before the call"})
    assert status == 200 and gone["state"] == "cancelled"
    every = calendars_to(smarthost, [attendee, *people], 6)
    cancels = [i for i in every if i["part"].get_param("method") == "CANCEL"]
    assert len(cancels) == 3
    for cancel in cancels:
        value = {n: v for n, _p, v in properties(cancel["text"])}
        assert value["STATUS"] == "CANCELLED" and value["SEQUENCE"] == "1"
        assert value["UID"] == booked["ical_uid"]
    rows = mailserver.query("SELECT state FROM outbox WHERE ticket_id = ?", (ticket_id,))
    assert len(rows) == 6  # the refused request mailed nothing
    wait_for(lambda: all(r["state"] == "sent" for r in mailserver.query(
        "SELECT state FROM outbox WHERE ticket_id = ?", (ticket_id,))), what="all sent")
