"""Small builders for the mail tests: a person's mail, a ticket with people."""

from __future__ import annotations

import email.utils
import secrets
from typing import Dict, Optional, Tuple

from tests.mail.conftest import DOMAIN, MailServer


def mail(
    sender: str,
    to: str,
    subject: str,
    body: str,
    *,
    headers: Optional[Dict[str, str]] = None,
    html: bool = False,
    message_id: Optional[str] = None,
) -> bytes:
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: {message_id or email.utils.make_msgid(secrets.token_hex(4), 'customer.test')}",
        f"Date: {email.utils.formatdate()}",
        "MIME-Version: 1.0",
    ]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Type: text/{'html' if html else 'plain'}; charset=utf-8")
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n") + "\r\n").encode("utf-8")


def customer_ticket(srv: MailServer, people: int = 1) -> Tuple[str, str, list]:
    """A ticket for a new customer with `people` people: (ticket id, customer, addresses)."""
    customer = "c" + secrets.token_hex(4)
    ticket = srv.server.ticket(customer)
    addresses = [f"p{n}-{secrets.token_hex(3)}@{customer}.test" for n in range(people)]
    for address in addresses:
        srv.add_person(customer, address)
    return ticket["id"], customer, addresses


def reply_address(srv: MailServer, ticket_id: str) -> str:
    return srv.signer().reply_address(ticket_id)


def support_address() -> str:
    return f"support@{DOMAIN}"
