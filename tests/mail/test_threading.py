"""Which ticket a mail joins, by each method; a forged, unsigned or other customer's token
never attaches mail to a ticket that is not the sender's."""

from __future__ import annotations

import re

from tests.mail.conftest import DOMAIN, wait_for
from tests.mail.mailkit import customer_ticket, mail, reply_address, support_address


def _messages(srv, ticket_id, count=1):
    return wait_for(
        lambda: (lambda m: m if len(m) >= count else None)(srv.messages(ticket_id)),
        what=f"{count} messages on {ticket_id}",
    )


def _settled_outcome(srv, message_id_header):
    def done():
        rows = [
            r
            for r in srv.query("SELECT * FROM mail_inbox WHERE state = 'done'")
            if message_id_header in srv_raw(srv, r["raw_key"])
        ]
        return rows[0] if rows else None

    return wait_for(done, what="the mail processed")


def srv_raw(srv, key):
    return (srv.data / "blobs" / "sha256" / key[:2] / key).read_text(errors="replace")


def test_the_signed_reply_address_threads(mailserver):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    to = reply_address(mailserver, ticket_id)
    mailserver.send(mail(ann, to, "no tag here", "by address"), ann, [to])
    assert _messages(mailserver, ticket_id)[0]["body"] == "by address"


def test_our_signed_message_id_in_in_reply_to_threads(mailserver):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    ours = mailserver.signer().message_id(ticket_id, "ob-0123456789abcdef")
    mailserver.send(
        mail(
            ann,
            support_address(),
            "a reply",
            "by message id",
            headers={"In-Reply-To": ours, "References": ours},
        ),
        ann,
    )
    assert _messages(mailserver, ticket_id)[0]["body"] == "by message id"


def test_references_to_a_stored_customer_message_thread_for_the_same_customer(mailserver):
    ticket_id, _c, (ann, bob) = customer_ticket(mailserver, people=2)
    to = reply_address(mailserver, ticket_id)
    mailserver.send(mail(ann, to, "first", "the first", message_id="<first-1@customer.test>"), ann, [to])
    _messages(mailserver, ticket_id)
    mailserver.send(
        mail(
            bob,
            support_address(),
            "Re: first",
            "bob follows up",
            headers={"References": "<first-1@customer.test>"},
        ),
        bob,
    )
    assert [m["body"] for m in _messages(mailserver, ticket_id, 2)] == ["the first", "bob follows up"]


def test_the_subject_tag_threads_only_for_a_person_of_the_tickets_customer(mailserver):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    _other_ticket, _o, (mallory,) = customer_ticket(mailserver)
    mailserver.send(
        mail(mallory, support_address(), f"Re: [mydiag {ticket_id}] hi", "mallory by tag"), mallory
    )
    mailserver.send(mail(ann, support_address(), f"Re: [mydiag {ticket_id}] hi", "ann by tag"), ann)
    wait_for(lambda: mailserver.messages(ticket_id), what="ann's mail")
    mailserver.inbox_settled(len(mailserver.query("SELECT id FROM mail_inbox")))
    assert [m["body"] for m in mailserver.messages(ticket_id)] == ["ann by tag"]


def test_a_forged_or_unsigned_token_never_attaches_mail_to_the_ticket(mailserver):
    ticket_id, customer, (ann,) = customer_ticket(mailserver)
    victim_ticket, _v, _people = customer_ticket(mailserver)
    good = reply_address(mailserver, ticket_id)
    mac = re.search(r"\.([0-9a-f]{40})@", good).group(1)
    forged = [
        f"support+{victim_ticket}.{mac}@{DOMAIN}",  # another ticket with ann's MAC
        f"support+{victim_ticket}@{DOMAIN}",  # unsigned
        f"support+{victim_ticket}.{'0' * 40}@{DOMAIN}",  # a made-up MAC
        f"support+{victim_ticket}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}@{DOMAIN}",  # one digit off
        good.replace(DOMAIN, "other.test"),  # the right token for another domain
    ]
    forged_ids = [f"<ob-0123456789abcdef.{victim_ticket}.{mac}@{DOMAIN}>"]
    for n, to in enumerate(forged):
        envelope = to if to.endswith("@" + DOMAIN) else support_address()  # RCPT takes only our domain
        mailserver.send(mail(ann, to, "forged", f"forged {n}"), ann, [envelope])
    for n, mid in enumerate(forged_ids):
        mailserver.send(
            mail(ann, support_address(), "forged", f"forged id {n}", headers={"In-Reply-To": mid}), ann
        )
    mailserver.inbox_settled(len(mailserver.query("SELECT id FROM mail_inbox")), timeout=60)
    wait_for(lambda: len(mailserver.query("SELECT id FROM mail_inbox WHERE state <> 'done'")) == 0)
    assert mailserver.messages(victim_ticket) == []
    # ann is a known person: her mail opened tickets of her own customer, never the victim's
    tickets = mailserver.query("SELECT id FROM tickets WHERE customer = ?", (customer,))
    assert len(tickets) == 1 + len(forged) + len(forged_ids)


def test_another_customers_valid_reply_address_does_not_take_a_known_persons_mail(mailserver):
    ticket_id, _c, _p = customer_ticket(mailserver)
    _t2, other_customer, (mallory,) = customer_ticket(mailserver)
    to = reply_address(mailserver, ticket_id)  # leaked to mallory, signed and valid
    mailserver.send(mail(mallory, to, "leaked", "mallory writes"), mallory, [to])
    wait_for(
        lambda: len(mailserver.query("SELECT id FROM tickets WHERE customer = ?", (other_customer,))) == 2,
        what="mallory's own new ticket",
    )
    assert mailserver.messages(ticket_id) == []


def test_an_unknown_sender_opens_no_ticket_and_gets_one_polite_answer(mailserver, smarthost):
    before = len(smarthost.collector.mails)
    stranger = "stranger-threading@nowhere.test"
    for n in range(3):
        mailserver.send(mail(stranger, support_address(), "hello?", f"anyone there {n}"), stranger)
    wait_for(lambda: len(mailserver.query("SELECT id FROM mail_inbox WHERE state <> 'done'")) == 0)
    answers = [m for m in smarthost.collector.wait(before + 1)[before:] if stranger in m.rcpt_tos]
    assert len(answers) == 1
    assert b"Auto-Submitted: auto-generated" in answers[0].raw
    assert mailserver.query("SELECT id FROM tickets WHERE title = ?", ("hello?",)) == []
