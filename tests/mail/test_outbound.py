"""Engineer replies mailed through the smart host (STARTTLS with a certificate made at test
time, AUTH from a file) with the right headers; a failing smart host is retried from the
durable outbox and the failure is shown on the ticket; a permanent refusal is undelivered."""

from __future__ import annotations

import email
import email.policy
import json

from tests.mail.conftest import DOMAIN, wait_for
from tests.mail.mailkit import customer_ticket


def _reply(srv, ticket_id, body):
    return json.loads(
        srv.server.api("POST", f"/api/v1/tickets/{ticket_id}/messages", {"body": body, "kind": "reply"})
    )


def _message(srv, ticket_id, message_id):
    return [m for m in srv.messages(ticket_id) if m["id"] == message_id][0]


def test_a_reply_is_mailed_to_every_person_with_signed_from_reply_to_and_message_id(mailserver, smarthost):
    ticket_id, _c, people = customer_ticket(mailserver, people=2)
    reply = _reply(mailserver, ticket_id, "Raise innodb_buffer_pool_size to 24G.")
    got = wait_for(
        lambda: (
            [m for m in smarthost.collector.mails if set(m.rcpt_tos) & set(people)]
            if len([m for m in smarthost.collector.mails if set(m.rcpt_tos) & set(people)]) == 2
            else None
        ),
        what="two mails",
    )
    signer = mailserver.signer()
    for collected in got:
        assert collected.tls and collected.authenticated
        msg = email.message_from_bytes(collected.raw, policy=email.policy.default)
        assert signer.ticket_of_address(email.utils.parseaddr(msg["From"])[1]) == ticket_id
        assert signer.ticket_of_address(msg["Reply-To"]) == ticket_id
        assert signer.ticket_of_message_id(msg["Message-ID"])[0] == ticket_id
        assert f"[mydiag {ticket_id}]" in msg["Subject"]
        assert msg["X-Loop"] == f"support@{DOMAIN}"
        assert msg["Auto-Submitted"] is None  # a person's reply, not automatic mail
        assert "innodb_buffer_pool_size" in msg.get_content()
    wait_for(lambda: _message(mailserver, ticket_id, reply["id"])["delivery"] == "sent", what="sent")


def test_a_failing_smart_host_is_retried_from_the_outbox_and_the_failure_is_on_the_ticket(
    mailserver, smarthost
):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    smarthost.collector.refuse = "451 4.3.0 try again later"
    try:
        reply = _reply(mailserver, ticket_id, "a reply through a failing host")
        shown = wait_for(
            lambda: (lambda m: m if m["delivery_detail"] and "failed" in m["delivery_detail"] else None)(
                _message(mailserver, ticket_id, reply["id"])
            ),
            what="the failure",
        )
        assert shown["delivery"] == "pending" and "451" in shown["delivery_detail"]
        assert "retried at" in shown["delivery_detail"]
    finally:
        smarthost.collector.refuse = None
    wait_for(
        lambda: _message(mailserver, ticket_id, reply["id"])["delivery"] == "sent", what="sent after retry"
    )
    (row,) = mailserver.query("SELECT attempts, state FROM outbox WHERE message_id = ?", (reply["id"],))
    assert row["state"] == "sent" and row["attempts"] >= 2
    assert [m for m in smarthost.collector.mails if ann in m.rcpt_tos]


def test_a_permanent_refusal_marks_the_reply_undelivered(mailserver, smarthost):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    smarthost.collector.refuse = "550 5.7.1 relaying denied"
    try:
        reply = _reply(mailserver, ticket_id, "this one is refused")
        gone = wait_for(
            lambda: (lambda m: m if m["delivery"] == "undelivered" else None)(
                _message(mailserver, ticket_id, reply["id"])
            ),
            what="undelivered",
        )
    finally:
        smarthost.collector.refuse = None
    assert "550" in gone["delivery_detail"]


def test_an_internal_note_is_never_mailed(mailserver, smarthost):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    json.loads(
        mailserver.server.api(
            "POST", f"/api/v1/tickets/{ticket_id}/messages", {"body": "internal only", "kind": "internal"}
        )
    )
    reply = _reply(mailserver, ticket_id, "public")
    wait_for(lambda: _message(mailserver, ticket_id, reply["id"])["delivery"] == "sent", what="sent")
    bodies = [m.raw for m in smarthost.collector.mails if ann in m.rcpt_tos]
    assert len(bodies) == 1 and b"internal only" not in bodies[0]
