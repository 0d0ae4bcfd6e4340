"""A sealed bundle mailed to the ticket goes through the same intake checks as an upload and
appears on the ticket accepted; a bundle over the attachment limit gets a reply with the
upload command line instead of silence; a damaged one is quarantined with its reason."""

from __future__ import annotations

import email
import email.policy
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

from tests.mail.conftest import wait_for
from tests.mail.mailkit import customer_ticket, reply_address
from tests.serverkit import ROOT, make_bundle, seal


def _with_attachment(sender: str, to: str, path: Path, data: bytes = b"") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, "the bundle you asked for"
    msg["Message-ID"] = email.utils.make_msgid("bundle", "customer.test")
    msg.set_content("Here it is.")
    msg.add_attachment(
        data or path.read_bytes(), maintype="application", subtype="octet-stream", filename=path.name
    )
    return msg.as_bytes(policy=email.policy.SMTP)


def _collect(server, folder: Path, recipient: str) -> Path:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "collect",
            "--host",
            server.host,
            "--port",
            str(server.port),
            "--user",
            server.user,
            "--profile",
            "quick",
            "--samples",
            "1",
            "--output",
            str(folder),
            "--recipient",
            recipient,
            "--allow-findings",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={"MYSQL_PWD": server.password, "PATH": "/usr/bin:/bin", "HOME": str(folder)},
    )
    assert done.returncode == 0, done.stderr
    (sealed,) = folder.glob("*.tar.zst.age")
    return sealed


def test_a_collected_sealed_bundle_mailed_to_the_ticket_is_accepted_on_it(mailserver, server, tmp_path):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    sealed = _collect(server, tmp_path, mailserver.recipient)
    assert sealed.stat().st_size < 256 * 1024
    to = reply_address(mailserver, ticket_id)
    mailserver.send(_with_attachment(ann, to, sealed), ann, [to])
    (bundle,) = wait_for(lambda: mailserver.server.settled(ticket_id) or None, what="the bundle")
    assert bundle["status"] == "accepted", bundle["reason"]
    assert bundle["filename"] == sealed.name
    (message,) = wait_for(lambda: mailserver.messages(ticket_id), what="the message")
    (listed,) = message["attachments"]
    assert listed["name"] == sealed.name and listed["size"] == sealed.stat().st_size
    assert listed["bundle"] == bundle["id"]


def test_a_damaged_bundle_by_mail_is_quarantined_with_the_reason(mailserver, tmp_path):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    sealed = seal(make_bundle(tmp_path, payload=1024), mailserver.recipient)
    data = bytearray(sealed.read_bytes())
    data[-40] ^= 0xFF
    to = reply_address(mailserver, ticket_id)
    mailserver.send(_with_attachment(ann, to, sealed, bytes(data)), ann, [to])
    (bundle,) = wait_for(lambda: mailserver.server.settled(ticket_id) or None, what="the bundle")
    assert bundle["status"] == "quarantined" and bundle["reason"]


def test_a_bundle_over_the_limit_gets_the_upload_command_line(mailserver, smarthost, tmp_path):
    ticket_id, _c, (ann,) = customer_ticket(mailserver)
    sealed = seal(make_bundle(tmp_path, payload=400 * 1024), mailserver.recipient)
    assert sealed.stat().st_size > 256 * 1024
    to = reply_address(mailserver, ticket_id)
    mailserver.send(_with_attachment(ann, to, sealed), ann, [to])
    answer = wait_for(lambda: [m for m in smarthost.collector.mails if ann in m.rcpt_tos], what="the answer")[
        0
    ]
    msg = email.message_from_bytes(answer.raw, policy=email.policy.default)
    assert msg["Auto-Submitted"] == "auto-generated"
    assert (
        f"mydiag upload --server https://support.example.test --ticket {ticket_id} --token-file FILE BUNDLE"
        in msg.get_content()
    )
    assert mailserver.server.bundles(ticket_id) == []
    (message,) = wait_for(lambda: mailserver.messages(ticket_id), what="the message")
    assert (
        message["attachments"][0]["size"] == sealed.stat().st_size
        and "bundle" not in message["attachments"][0]
    )
