"""The IMAP poller against a private Dovecot: mail delivered to the mailbox (through
Dovecot's own LMTP) lands on its ticket, is marked \\Seen, and the poller survives the IMAP
server restarting."""

from __future__ import annotations

import shutil

from tests.mail.conftest import wait_for
from tests.mail.mailkit import customer_ticket, mail, reply_address


def _seen(dovecot, subject):
    client = dovecot.client()
    try:
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["SUBJECT", subject])
        flags = client.get_flags(uids)
        return uids and all(b"\\Seen" in flags[u] for u in uids)
    finally:
        client.logout()


def test_mail_in_the_mailbox_lands_on_its_ticket_and_is_marked_seen(mailserver, dovecot):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    subject = f"imap one {ticket_id}"
    dovecot.deliver(mail(ann, reply_address(mailserver, ticket_id), subject, "by IMAP\n\n> quoted history\n"))
    (message,) = wait_for(lambda: mailserver.messages(ticket_id), what="the IMAP mail on the ticket")
    assert message["body"] == "by IMAP" and message["source"] == "mail"
    wait_for(lambda: _seen(dovecot, subject), what="\\Seen")
    (row,) = mailserver.query("SELECT source FROM mail_inbox WHERE message_id = ?", (message["id"],))
    assert row["source"] == "imap"


def test_the_poller_survives_the_imap_server_restarting(mailserver, dovecot):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    dovecot.restart()
    dovecot.deliver(
        mail(ann, reply_address(mailserver, ticket_id), f"after restart {ticket_id}", "still here")
    )
    (message,) = wait_for(lambda: mailserver.messages(ticket_id), timeout=60, what="mail after the restart")
    assert message["body"] == "still here"
    dovecot.stop()
    dovecot.start()
    dovecot.deliver(mail(ann, reply_address(mailserver, ticket_id), f"second restart {ticket_id}", "again"))
    wait_for(lambda: len(mailserver.messages(ticket_id)) == 2, timeout=60, what="mail after a second restart")


def test_a_message_seen_twice_is_taken_once(mailserver, dovecot):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    raw = mail(ann, reply_address(mailserver, ticket_id), f"twice {ticket_id}", "only once please")
    dovecot.deliver(raw)
    wait_for(lambda: mailserver.messages(ticket_id), what="the first copy")
    client = dovecot.client()
    try:  # an operator marks it unread again: the poller reads the same bytes a second time
        client.select_folder("INBOX")
        client.remove_flags(client.search(["SUBJECT", f"twice {ticket_id}"]), [b"\\Seen"])
    finally:
        client.logout()
    wait_for(lambda: _seen(dovecot, f"twice {ticket_id}"), what="seen again")
    mailserver.send(raw, ann, [reply_address(mailserver, ticket_id)])  # and the same mail by SMTP
    wait_for(lambda: not mailserver.query("SELECT id FROM mail_inbox WHERE state <> 'done'"), what="idle")
    assert len(mailserver.messages(ticket_id)) == 1


def test_imap_move_to_moves_processed_mail_out_of_the_inbox(tmp_path):
    from tests.mail.conftest import mail_server, start_dovecot

    dovecot = start_dovecot()  # a mailbox of its own: the module's server polls the shared one
    client = dovecot.client()
    try:
        if not client.folder_exists("Processed"):
            client.create_folder("Processed")
    finally:
        client.logout()
    password = tmp_path / "imap-password"
    password.write_text(dovecot.password)
    srv = mail_server(tmp_path, None, None, ["--imap", dovecot.url(), "--imap-password-file", str(password),
                                             "--imap-move-to", "Processed"])
    srv.start()
    try:
        ticket_id, _c, (ann,) = customer_ticket(srv)
        subject = f"moved {ticket_id}"
        dovecot.deliver(mail(ann, reply_address(srv, ticket_id), subject, "move me"))
        wait_for(lambda: srv.messages(ticket_id), what="the mail on the ticket")

        def moved():
            client = dovecot.client()
            try:
                client.select_folder("INBOX", readonly=True)
                left = client.search(["SUBJECT", subject])
                client.select_folder("Processed", readonly=True)
                return not left and client.search(["SUBJECT", subject])
            finally:
                client.logout()
        wait_for(moved, what="the mail in Processed")
    finally:
        srv.server.stop()
        dovecot.stop()
        shutil.rmtree(dovecot.base, ignore_errors=True)


def test_mail_that_comes_between_the_search_and_idle_ends_the_wait_at_once(tmp_path):
    """The NOOP before IDLE announces mail that came after the last search; IDLE would not
    announce it again, so the wait must end there (it used to last IDLE_SECONDS: 30 s)."""
    import time

    from server.mail import imap
    from server.storage.state import State
    from tests.mail.conftest import start_dovecot
    from tests.serverkit import make_server

    dovecot = start_dovecot()
    state = State.open(make_server(tmp_path, None).data)
    password = tmp_path / "imap-password"
    password.write_text(dovecot.password)
    poller = imap.Poller(state, dovecot.url(), str(password))
    client = poller._connect()
    try:
        assert poller.fetch_once(client) == 0  # the search: nothing yet
        dovecot.deliver(mail("ann@customer.test", "support@support.test", "between", "came late"))
        time.sleep(0.5)  # delivered and visible before the NOOP
        started = time.monotonic()
        poller.wait_idle(client)
        assert time.monotonic() - started < imap.IDLE_SECONDS / 3
        assert client.search(["UNSEEN"])  # and the next round's search finds it
    finally:
        client.logout()
        state.close()
        dovecot.stop()
        shutil.rmtree(dovecot.base, ignore_errors=True)
