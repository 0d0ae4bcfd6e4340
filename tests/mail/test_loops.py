"""Loops and bounces: automatic mail is never answered, our own mail is never taken in
again, and a delivery-status report marks the reply it names undelivered."""

from __future__ import annotations

import email
import email.policy
import json
import secrets
import time

import pytest

from tests.mail.conftest import DOMAIN, wait_for
from tests.mail.mailkit import customer_ticket, mail, reply_address, support_address


def _idle(srv):
    wait_for(lambda: not srv.query("SELECT id FROM mail_inbox WHERE state <> 'done'"), what="inbox done")


def _answers_to(smarthost, address):
    return [m for m in smarthost.collector.mails if address in m.rcpt_tos]


@pytest.mark.parametrize(
    "headers,envelope",
    [
        ({"Auto-Submitted": "auto-replied"}, None),
        ({"Precedence": "bulk"}, None),
        ({"Precedence": "junk"}, None),
        ({"Precedence": "list"}, None),
        ({"X-Auto-Response-Suppress": "All"}, None),
        ({}, "<>"),
        ({"List-Id": "<ops.lists.nowhere.test>"}, None),
    ],
)
def test_automatic_mail_from_an_unknown_sender_is_never_answered(mailserver, smarthost, headers, envelope):
    sender = f"auto-{abs(hash(json.dumps(headers))) % 10**8}-{envelope is None}@nowhere.test"
    mailserver.send(
        mail(sender, support_address(), "Out of office", "I am away", headers=headers),
        "" if envelope == "<>" else sender,
    )
    _idle(mailserver)
    time.sleep(1.5)  # a sender round would have queued and sent an answer by now
    assert _answers_to(smarthost, sender) == []
    assert mailserver.query("SELECT id FROM outbox WHERE to_addr = ?", (sender,)) == []


def test_mailer_daemon_and_postmaster_are_never_answered(mailserver, smarthost):
    for sender in ("MAILER-DAEMON@nowhere.test", "postmaster@nowhere.test"):
        mailserver.send(mail(sender, support_address(), "Undeliverable", "bounce text"), sender)
    _idle(mailserver)
    time.sleep(1.5)
    assert (
        mailserver.query(
            "SELECT id FROM outbox WHERE to_addr LIKE ? AND (to_addr LIKE ? OR to_addr LIKE ?)",
            ("%nowhere.test", "mailer%", "postmaster%"),
        )
        == []
    )


def test_an_out_of_office_reply_on_a_ticket_is_kept_but_needs_no_reply(mailserver):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    to = reply_address(mailserver, ticket_id)
    mailserver.send(
        mail(
            ann,
            to,
            "Automatic reply: slow",
            "I am out until Monday",
            headers={"Auto-Submitted": "auto-replied"},
        ),
        ann,
        [to],
    )
    (message,) = wait_for(lambda: mailserver.messages(ticket_id), what="the auto reply")
    assert message["kind"] == "no_reply_needed" and message["due_at"] is None


def test_a_calendar_answer_to_a_call_invitation_is_kept_but_needs_no_reply(mailserver):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    to = reply_address(mailserver, ticket_id)
    boundary = "b-" + secrets.token_hex(6)
    raw = mail(ann, to, "Accepted: call on your ticket", "x").split(b"Content-Type:")[0] + (
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAnn has accepted.\r\n"
        f"--{boundary}\r\nContent-Type: text/calendar; charset=utf-8; method=REPLY\r\n\r\n"
        "BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:call-1@support.test\r\n"
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{ann}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        f"--{boundary}--\r\n").encode()
    mailserver.send(raw, ann, [to])
    (message,) = wait_for(lambda: mailserver.messages(ticket_id), what="the calendar answer")
    assert message["kind"] == "no_reply_needed" and message["due_at"] is None
    assert "Ann has accepted." in message["body"]


def test_our_own_mail_is_not_taken_in_again(mailserver):
    ticket_id, _c, _p = customer_ticket(mailserver)
    to = reply_address(mailserver, ticket_id)
    ours = [
        mail(f"mydiag support <{to}>", to, "Re: slow", "our reply", headers={"X-Loop": support_address()}),
        mail(support_address(), to, "Re: slow", "from our address"),
    ]
    for raw in ours:
        mailserver.send(raw, support_address(), [to])
    _idle(mailserver)
    assert mailserver.messages(ticket_id) == []
    outcomes = {
        r["outcome"]
        for r in mailserver.query(
            "SELECT outcome FROM mail_inbox WHERE envelope_to LIKE ?", (f"%{ticket_id}%",)
        )
    }
    assert outcomes == {"ignored: our own mail"}


def _dsn(original_message_id: str, recipient: str) -> bytes:
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>\r\nTo: {support_address()}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BB"\r\n\r\n'
        "--BB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--BB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.test\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        f"--BB\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {original_message_id}\r\n"
        "Subject: Re: slow\r\n--BB--\r\n"
    ).encode()


def test_a_delivery_status_report_marks_the_reply_undelivered_and_reopens_the_clock(mailserver, smarthost):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    to = reply_address(mailserver, ticket_id)
    mailserver.send(mail(ann, to, "slow", "please help"), ann, [to])
    wait_for(lambda: mailserver.messages(ticket_id), what="ann's question")
    reply = json.loads(
        mailserver.server.api(
            "POST",
            f"/api/v1/tickets/{ticket_id}/messages",
            {"body": "Try raising the buffer pool.", "kind": "reply"},
        )
    )
    assert reply["delivery"] == "pending"

    def sent():
        found = [m for m in _answers_to(smarthost, ann)]
        return found[-1] if found else None

    mailed = wait_for(sent, what="the reply at the smart host")
    mailed_id = email.message_from_bytes(mailed.raw, policy=email.policy.default)["Message-ID"]
    wait_for(
        lambda: [
            m for m in mailserver.messages(ticket_id) if m["id"] == reply["id"] and m["delivery"] == "sent"
        ],
        what="delivery sent",
    )
    mailserver.send(_dsn(mailed_id, ann), "", [support_address()])
    bounced = wait_for(
        lambda: [
            m
            for m in mailserver.messages(ticket_id)
            if m["id"] == reply["id"] and m["delivery"] == "undelivered"
        ],
        what="delivery undelivered",
    )[0]
    assert "5.1.1" in bounced["delivery_detail"] and ann in bounced["delivery_detail"]
    question = mailserver.messages(ticket_id)[0]
    assert question["due_at"] is not None  # the bounced reply met nothing
    assert mailserver.query("SELECT id FROM outbox WHERE to_addr LIKE ?", ("mailer-daemon%",)) == []


def test_a_report_naming_a_forged_message_id_changes_nothing(mailserver):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    forged = f"<ob-0123456789abcdef.{ticket_id}.{'0' * 40}@{DOMAIN}>"
    mailserver.send(_dsn(forged, ann), "", [support_address()])
    _idle(mailserver)
    (row,) = [
        r
        for r in mailserver.query("SELECT outcome, raw_key FROM mail_inbox")
        if forged in (mailserver.data / "blobs" / "sha256" / r["raw_key"][:2] / r["raw_key"]).read_text()
    ]
    assert row["outcome"] == "ignored: a delivery report for no mail of ours"
