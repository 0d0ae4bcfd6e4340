"""The promise by mail (issue 15), through the real smart host, SMTP endpoint and pages: an
engineer's acknowledgement sent with a proposal goes out with the proposal's paragraph and two
signed links per person; opening the accept link changes nothing (a scanner's GET), pressing
its button accepts once; a replayed, superseded, tampered or forged link is a clear 400/410
page; the counter link takes a time in the person's zone (a DST gap refused); a person answers
by a keyword line in their mail ("accept", "counter: … UTC"), never from quoted history, never
from another customer's address, and a line that cannot be read is answered with the reason."""

from __future__ import annotations

import datetime
import email
import email.policy
import json
import os
import re
import zoneinfo
from typing import Iterator, List

import pytest

from tests.mail.conftest import MailServer, mail_server, wait_for
from tests.mail.mailkit import customer_ticket, mail, reply_address
from tests.servers import free_port
from tests.web.conftest import Client, hidden, new_engineer

LINK = re.compile(r"(https?://[^\s/]+)(/promise/[^\s]+)")


@pytest.fixture(scope="module")
def srv(tmp_path_factory, backend, smarthost) -> Iterator[MailServer]:
    """A mail server whose pages are its public address (the links in mail point at it)."""
    base = tmp_path_factory.mktemp("promisemail")
    server = mail_server(base, backend, smarthost)
    server.server.port = free_port()
    old = os.environ.get("MYDIAG_PUBLIC_URL")
    os.environ["MYDIAG_PUBLIC_URL"] = server.server.url
    try:
        server.engineer = new_engineer(server.server, "carol")
        server.start()
    finally:
        if old is None:
            os.environ.pop("MYDIAG_PUBLIC_URL", None)
        else:
            os.environ["MYDIAG_PUBLIC_URL"] = old
    yield server
    server.server.stop()


def later(days: float, hour: int = 15) -> datetime.datetime:
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    while moment.weekday() >= 5:
        moment += datetime.timedelta(days=1)
    return moment.replace(hour=hour, minute=0, second=0, microsecond=0)


def versions(srv: MailServer, ticket_id: str) -> List[dict]:
    listed = json.loads(srv.server.api("GET", f"/api/v1/tickets/{ticket_id}/promises"))
    return listed["promises"] if isinstance(listed, dict) else listed


def asked(srv: MailServer, ticket_id: str, person: str) -> None:
    """The person's first mail on the ticket: a reply is owed."""
    to = reply_address(srv, ticket_id)
    srv.send(mail(person, to, "slow replica", "the replica lags behind"), person, [to])
    wait_for(lambda: any(m["author_kind"] == "customer" for m in srv.messages(ticket_id)),
             what="the question")


def propose(srv: MailServer, ticket_id: str, due: datetime.datetime, reason: str = "a reproduction run",
            body: str = "Looking into it.") -> None:
    client = Client(srv.server.port)
    assert client.sign_in(*srv.engineer, next_path=f"/tickets/{ticket_id}").status == 303
    page = client.get(f"/tickets/{ticket_id}")
    posted = client.post(f"/tickets/{ticket_id}/messages", {
        "csrf": hidden(page.body, "csrf"), "kind": "acknowledgement", "body": body,
        "propose_due": due.strftime("%Y-%m-%dT%H:%M"), "propose_zone": "UTC", "propose_reason": reason})
    assert posted.status == 303, posted.body


def mails_to(smarthost, person: str, count: int) -> List[email.message.EmailMessage]:
    got = wait_for(lambda: (lambda m: m if len(m) >= count else None)(
        [c for c in smarthost.collector.mails if person in c.rcpt_tos]), what=f"{count} mails to {person}")
    return [email.message_from_bytes(c.raw, policy=email.policy.default) for c in got]


def links(message) -> dict:
    found = LINK.findall(message.get_content())
    assert len(found) == 2, message.get_content()
    return {"accept": found[0][1], "counter": found[1][1]}


def test_the_proposal_is_mailed_with_links_and_the_accept_link_accepts_once(srv, smarthost) -> None:
    ticket_id, _c, (ann, bob) = customer_ticket(srv, people=2)
    asked(srv, ticket_id, ann)
    due = later(5)
    propose(srv, ticket_id, due, reason="waiting for the vendor's answer")
    (to_ann,) = mails_to(smarthost, ann, 1)
    text = to_ann.get_content()
    assert "Looking into it." in text
    assert (f"We propose to send our next reply by {due:%Y-%m-%d %H:%M} UTC (waiting for the vendor's "
            "answer).") in text
    ann_links = links(to_ann)
    (to_bob,) = mails_to(smarthost, bob, 1)
    assert links(to_bob)["accept"] != ann_links["accept"], "each person's links are their own"

    scanner = Client(srv.server.port)
    for _ in range(2):
        opened = scanner.get(ann_links["accept"])
        assert opened.status == 200 and "Accept" in opened.body and f"{due:%Y-%m-%d %H:%M}" in opened.body
    assert [p["state"] for p in versions(srv, ticket_id)] == ["proposed"], "a GET accepts nothing"
    assert scanner.post(ann_links["accept"], {}).status == 403, "the button's token is required"
    pressed = scanner.post(ann_links["accept"], {"csrf": hidden(opened.body, "csrf")})
    assert pressed.status == 200 and "Agreed" in pressed.body, pressed.body
    (accepted,) = versions(srv, ticket_id)
    assert accepted["state"] == "accepted" and accepted["answered_by"] == f"customer:{ann}"

    replay = scanner.post(ann_links["accept"], {"csrf": hidden(opened.body, "csrf")})
    assert replay.status == 410 and "used already" in replay.body
    assert scanner.get(ann_links["accept"]).status == 410
    spent = Client(srv.server.port).get(links(to_bob)["counter"])
    assert spent.status == 410, "answered: every link is spent"
    path = ann_links["accept"]
    tampered = path[:-1] + ("0" if path[-1] != "0" else "1")
    for bad in (tampered, path.replace(".a.", ".c."), "/promise/v1.pr-0000.a.99999.eA." + "0" * 40,
                "/promise/%3Cscript%3E", "/promise/" + "A" * 3000):
        refused = Client(srv.server.port).get(bad)
        assert refused.status == 400 and "<script>" not in refused.body, (bad, refused.status)
    assert [p["state"] for p in versions(srv, ticket_id)] == ["accepted"]


def test_the_counter_link_takes_a_time_in_the_persons_zone(srv, smarthost) -> None:
    ticket_id, _c, (ann,) = customer_ticket(srv)
    asked(srv, ticket_id, ann)
    propose(srv, ticket_id, later(5))
    counter = links(mails_to(smarthost, ann, 1)[0])["counter"]
    person = Client(srv.server.port)
    opened = person.get(counter)
    assert opened.status == 200 and 'type="datetime-local"' in opened.body
    token = hidden(opened.body, "csrf")
    gap = person.post(counter, {"csrf": token, "due": "2027-03-28T02:30", "zone": "Europe/Berlin"})
    assert gap.status == 400 and "does not exist" in gap.body
    wanted = later(7, hour=10)
    berlin = wanted.astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
    done = person.post(counter, {"csrf": token, "due": berlin.strftime("%Y-%m-%dT%H:%M"),
                                 "zone": "Europe/Berlin", "reason": "<b>our change window</b>"})
    assert done.status == 200, done.body
    assert "<b>our change window</b>" not in done.body
    listed = versions(srv, ticket_id)
    assert [p["state"] for p in listed] == ["countered", "proposed"]
    assert listed[-1]["due_at"] == wanted.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert listed[-1]["proposed_side"] == "customer" and listed[-1]["reason"] == "<b>our change window</b>"
    assert person.post(counter, {"csrf": token, "due": berlin.strftime("%Y-%m-%dT%H:%M"),
                                 "zone": "Europe/Berlin"}).status == 410


def answer(srv, ticket_id, person, body, in_reply_to=None, subject="Re: slow replica"):
    to = reply_address(srv, ticket_id)
    headers = {"In-Reply-To": in_reply_to, "References": in_reply_to} if in_reply_to else None
    before = len(srv.messages(ticket_id))
    srv.send(mail(person, to, subject, body, headers=headers), person, [to])
    return wait_for(lambda: (lambda m: m[-1] if len(m) > before else None)(srv.messages(ticket_id)),
                    what="the answer on the ticket")


def test_a_person_accepts_by_a_keyword_line_but_never_by_quoted_history(srv, smarthost) -> None:
    ticket_id, _c, (ann,) = customer_ticket(srv)
    asked(srv, ticket_id, ann)
    propose(srv, ticket_id, later(5))
    ours = mails_to(smarthost, ann, 1)[0]["Message-ID"]
    quoted = answer(srv, ticket_id, ann,
                    "Let me check with the team.\n\nOn Monday, support wrote:\n> accept\n", ours)
    assert quoted["kind"] == "needs_reply"
    assert [p["state"] for p in versions(srv, ticket_id)] == ["proposed"]
    agreed = answer(srv, ticket_id, ann, "Agreed.\n\nOn Monday, support wrote:\n> We propose ...\n", ours)
    assert agreed["kind"] == "no_reply_needed", "an answer alone needs no reply of its own"
    assert wait_for(lambda: versions(srv, ticket_id)[0]["state"] == "accepted", what="accepted by mail")
    assert versions(srv, ticket_id)[0]["answered_by"] == f"customer:{ann}"


def test_a_person_counters_by_mail_and_a_line_that_cannot_be_read_is_answered(srv, smarthost) -> None:
    ticket_id, _c, (ann,) = customer_ticket(srv)
    asked(srv, ticket_id, ann)
    propose(srv, ticket_id, later(5))
    ours = mails_to(smarthost, ann, 1)[0]["Message-ID"]
    answer(srv, ticket_id, ann, "counter: next friday afternoon", ours)
    told = mails_to(smarthost, ann, 2)[-1]
    assert "was not applied" in told.get_content() and "YYYY-MM-DD" in told.get_content()
    assert told["Auto-Submitted"] == "auto-generated"
    assert [p["state"] for p in versions(srv, ticket_id)] == ["proposed"]
    wanted = later(8, hour=9)
    answer(srv, ticket_id, ann, f"counter: {wanted:%Y-%m-%d %H:%M} UTC\nreason: the release is on Monday\n",
           ours)
    listed = wait_for(lambda: (lambda v: v if len(v) == 2 else None)(versions(srv, ticket_id)),
                      what="the counter by mail")
    assert listed[0]["state"] == "countered" and listed[1]["due_at"] == wanted.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert listed[1]["reason"] == "the release is on Monday"


def test_an_answer_to_a_replaced_proposal_or_from_a_stranger_answers_nothing(srv, smarthost) -> None:
    ticket_id, _c, (ann,) = customer_ticket(srv)
    asked(srv, ticket_id, ann)
    propose(srv, ticket_id, later(5), body="first proposal")
    first = mails_to(smarthost, ann, 1)[0]
    propose(srv, ticket_id, later(6), body="a better proposal")
    mails_to(smarthost, ann, 2)
    assert Client(srv.server.port).get(links(first)["accept"]).status == 410, "superseded"
    answer(srv, ticket_id, ann, "accept", first["Message-ID"])
    told = mails_to(smarthost, ann, 3)[-1]
    assert "answered or replaced" in told.get_content()
    assert versions(srv, ticket_id)[-1]["state"] == "proposed"

    stranger = "mallory@elsewhere.test"
    answer(srv, ticket_id, stranger, "accept")
    _o, _c2, (eve,) = customer_ticket(srv)
    to = reply_address(srv, ticket_id)
    srv.send(mail(eve, to, "Re: slow replica", "accept"), eve, [to])
    srv.inbox_settled(len(srv.query("SELECT id FROM mail_inbox")))
    assert versions(srv, ticket_id)[-1]["state"] == "proposed", "only the ticket's customer's people answer"
    assert not [c for c in smarthost.collector.mails if stranger in c.rcpt_tos], "no answer to strangers"
