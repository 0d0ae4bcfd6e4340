"""Mail delivered to the SMTP endpoint with smtplib lands on its ticket: stored before the
250, the quoted history cut, HTML made plain text, the raw MIME kept; hostile mail as a
class is answered 250 or 5xx and never crashes or hangs the endpoint."""

from __future__ import annotations

import hashlib
import smtplib
import socket
import time

import pytest

from tests.mail.conftest import wait_for
from tests.mail.mailkit import customer_ticket, mail, reply_address


def _one_message(srv, ticket_id, count=1):
    return wait_for(
        lambda: (lambda m: m if len(m) >= count else None)(srv.messages(ticket_id)),
        what=f"{count} messages on {ticket_id}",
    )


def test_a_reply_by_smtp_lands_on_its_ticket_without_the_quoted_history_and_with_a_due_date(mailserver):
    ticket_id, _customer, (ann,) = customer_ticket(mailserver)
    raw = mail(
        ann,
        reply_address(mailserver, ticket_id),
        "Re: slow",
        "The lag is back since 10:00.\n\nOn Mon, 1 Jan 2024 at 10:00, Support <s@x> wrote:\n"
        "> Please send a bundle.\n> Thanks\n",
    )
    assert mailserver.send(raw, ann, [reply_address(mailserver, ticket_id)]) == {}
    (message,) = _one_message(mailserver, ticket_id)
    assert message["body"] == "The lag is back since 10:00."
    assert message["author"] == ann and message["author_kind"] == "customer"
    assert message["kind"] == "needs_reply" and message["due_at"]
    assert message["source"] == "mail"
    (row,) = mailserver.query("SELECT raw_key FROM messages WHERE id = ?", (message["id"],))
    blob = mailserver.data / "blobs" / "sha256" / row["raw_key"][:2] / row["raw_key"]
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == row["raw_key"]
    assert b"Please send a bundle" in blob.read_bytes()  # the raw MIME is kept whole


def test_html_mail_is_stored_as_plain_text_with_no_markup(mailserver):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    html = (
        "<html><head><style>p{color:red}</style><script>alert('x')</script></head><body>"
        "<p>Replica <b>stopped</b> &amp; lagging</p><img src=x onerror=alert(1)>"
        "<a href='https://example.test/graph'>graph</a><iframe src='https://evil'>in</iframe>"
        "<p>&lt;script&gt; is text</p></body></html>"
    )
    mailserver.send(
        mail(ann, reply_address(mailserver, ticket_id), "html", html, html=True),
        ann,
        [reply_address(mailserver, ticket_id)],
    )
    (message,) = _one_message(mailserver, ticket_id)
    body = message["body"]
    assert "Replica stopped & lagging" in body and "graph [https://example.test/graph]" in body
    for markup in ("<b>", "<p", "<img", "onerror", "alert", "color:red", "<iframe", "<a "):
        assert markup not in body
    assert "<script> is text" in body  # text the customer wrote, escaped where it is shown


@pytest.mark.parametrize("line", ["#noreply", "No reply needed.", "  #NOREPLY  "])
def test_the_keyword_line_marks_the_message_as_needing_no_reply(mailserver, line):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    mailserver.send(
        mail(ann, reply_address(mailserver, ticket_id), "thanks", f"Thanks, that fixed it!\n{line}\n"),
        ann,
        [reply_address(mailserver, ticket_id)],
    )
    (message,) = _one_message(mailserver, ticket_id)
    assert message["kind"] == "no_reply_needed" and message["due_at"] is None
    assert message["body"] == "Thanks, that fixed it!"


def test_a_mail_over_the_size_limit_is_refused_at_data_with_552(mailserver):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    big = mail(ann, reply_address(mailserver, ticket_id), "big", ("x" * 76 + "\n") * 40_000)
    with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPSenderRefused)) as caught:
        mailserver.send(big, ann, [reply_address(mailserver, ticket_id)])
    assert caught.value.smtp_code == 552
    assert mailserver.messages(ticket_id) == []


def _hostile(ann: str, to: str) -> dict:
    parts = "".join("--b\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(10_000))
    nested = "Subject: inner\r\n\r\nbomb"
    for _ in range(3000):
        nested = "Content-Type: message/rfc822\r\n\r\n" + nested
    head = f"From: {ann}\r\nTo: {to}\r\n"
    return {
        "malformed-mime": (
            head + 'Subject: broken\r\nContent-Type: multipart/mixed; boundary="x\r\n\r\n'
            '--x\r\nContent-Type: text/plain; charset="\r\n\r\nbody\r\n--y--\r\n'
        ).encode(),
        "10000-parts": (
            head + "Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + "--b--\r\n"
        ).encode(),
        "rfc822-bomb": (head + "Subject: nested\r\n" + nested).encode(),
        "bad-charset": (
            head + "Subject: =?x-no-such?q?abc?=\r\nContent-Type: text/plain; charset=x-no-such\r\n\r\n"
        ).encode()
        + b"\xff\xfe caf\xe9 \x00 \x1b[31m red\r\n",
        "lying-utf8": (head + "Subject: utf8\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n").encode()
        + b"\xc3\x28 \xed\xa0\x80 surrogate\r\n",
        "header-injection": (
            head + "Subject: =?utf-8?q?hello=0D=0ABcc:_victim@evil.test=0D=0A=0D=0Abody?=\r\n\r\nhi\r\n"
        ).encode(),
        "markup": (
            head + "Subject: <script>alert(1)</script>\r\nContent-Type: text/html\r\n\r\n"
            "<svg onload=alert(1)><script>document.cookie</script><p>hi</p>"
        ).encode(),
        "no-headers": b"\r\n\r\njust a body\r\n",
        "binary-garbage": bytes(range(256)) * 40,
        "base64-bad": (
            head + "Subject: b64\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64===\r\n"
        ).encode(),
    }


def test_hostile_mail_is_answered_250_or_5xx_never_crashes_and_is_stored_as_plain_text(mailserver):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    to = reply_address(mailserver, ticket_id)
    before = len(mailserver.query("SELECT id FROM mail_inbox"))
    accepted = []
    for name, raw in _hostile(ann, to).items():
        started = time.monotonic()
        try:
            mailserver.send(raw, ann, [to])
            accepted.append(name)
        except smtplib.SMTPResponseException as exc:
            assert 500 <= exc.smtp_code < 600, (name, exc)
        assert time.monotonic() - started < 20, name
    assert {"10000-parts", "rfc822-bomb", "header-injection", "markup"} <= set(accepted)
    rows = mailserver.inbox_settled(before + len(accepted), timeout=90)
    assert all(r["state"] == "done" for r in rows), [(r["outcome"]) for r in rows if r["state"] != "done"]
    messages = mailserver.messages(ticket_id)
    assert len(messages) >= len(accepted) - 2  # mail with no sender at all opens nothing
    for message in messages:
        assert "<script" not in message["body"] and "<svg" not in message["body"]
        assert not any(ord(c) < 32 and c not in "\n\t" for c in message["body"])
    (created,) = mailserver.query("SELECT COUNT(*) AS n FROM tickets WHERE title LIKE ?", ("%victim%",))
    assert created["n"] == 0  # the subject never became a header of its own anywhere
    assert mailserver.processes[-1].poll() is None
    with socket.create_connection(("127.0.0.1", mailserver.smtp_port), timeout=5) as sock:
        assert sock.recv(100).startswith(b"220")


def test_the_lmtp_endpoint_takes_mail_and_answers_per_recipient(tmp_path):
    from tests.mail.conftest import mail_server

    srv = mail_server(tmp_path, None, None, ["--lmtp"])
    srv.start()
    try:
        ticket_id, _c, (ann,) = customer_ticket(srv)
        to = reply_address(srv, ticket_id)
        raw = mail(ann, to, "by lmtp", "over LMTP")
        # RFC 2033: one reply per recipient after DATA (smtplib reads only one, so by hand)
        with socket.create_connection(("127.0.0.1", srv.smtp_port), timeout=10) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"220")
            for command in (b"LHLO client.test", f"MAIL FROM:<{ann}>".encode(), f"RCPT TO:<{to}>".encode(),
                            b"RCPT TO:<support@support.test>", b"DATA"):
                sock.sendall(command + b"\r\n")
                line = reader.readline()
                while line[3:4] == b"-":
                    line = reader.readline()
                assert line[:1] in (b"2", b"3"), (command, line)
            sock.sendall(raw + b"\r\n.\r\n")
            assert [reader.readline()[:3] for _ in range(2)] == [b"250", b"250"]
        (message,) = _one_message(srv, ticket_id)
        assert message["body"] == "over LMTP"
    finally:
        srv.server.stop()


def test_mail_stored_before_a_crash_is_processed_when_the_server_comes_back(tmp_path):
    """Store first, process after: a mail whose inbox row was written (the 250 said) but that
    the process died before reading, or died while reading, is taken when a server runs again."""
    from server.mail import inbound
    from tests.mail.conftest import mail_server

    srv = mail_server(tmp_path, None, None)
    srv.start()
    ticket_id, _c, (ann,) = customer_ticket(srv)
    to = reply_address(srv, ticket_id)
    srv.server.kill()
    state = srv.state()
    try:
        inbound.receive(state, mail(ann, to, "before crash", "stored, never read"), ann, [to], "smtp")
        mid = inbound.receive(state, mail(ann, to, "mid crash", "claimed, then the process died"), ann, [to],
                              "smtp")
        with state.db.tx() as tx:  # what a process that died mid-way leaves: a lease that ran out
            tx.run("UPDATE mail_inbox SET state = 'processing', attempts = 1, next_try = ? WHERE id = ?",
                   (time.time() - 1, mid.inbox_id))
    finally:
        state.close()
    srv.start()
    try:
        messages = _one_message(srv, ticket_id, 2)
        assert sorted(m["body"] for m in messages) == ["claimed, then the process died", "stored, never read"]
    finally:
        srv.server.stop()


def test_a_recipient_outside_our_domain_is_refused_at_rcpt(mailserver):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        mailserver.send(b"Subject: relay?\r\n\r\nplease relay", "x@nowhere.test", ["victim@elsewhere.test"])
    assert caught.value.recipients["victim@elsewhere.test"][0] == 550
