"""Which ticket a mail belongs to, in this order, the first that holds:

1. one of the recipients (envelope, To, Cc, Delivered-To) is a signed reply address whose
   MAC verifies, for a ticket that exists (and the sender is not a person of another customer);
2. In-Reply-To or References names one of our signed Message-IDs (the same condition); else a Message-ID of a
   stored message (`find_by_mail_id`) on a ticket of the sender's customer;
3. the subject carries `[mydiag tk-…]` and the sender is a person of that ticket's customer.

A token that does not verify is ignored, so a forged or unsigned one never attaches mail to
another customer's ticket. Otherwise a person of a known customer opens a new ticket for
that customer; an unknown sender does only where `allow_new_tickets` is set (for
`new_ticket_customer`), and else gets one polite answer (inbound.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

from server.mail.parse import Parsed
from server.mail.tokens import Signer
from server.storage.db import Tx
from server.support import messages, people, tickets

_TAG = re.compile(r"\[mydiag (tk-[a-z0-9]{10})\]", re.IGNORECASE)


@dataclass
class Thread:
    ticket_id: Optional[str]
    method: str
    customer: Optional[str] = None


def _customer(tx: Tx, ticket_id: str) -> Optional[str]:
    ticket = tickets.get_ticket(tx, ticket_id)
    return ticket["customer"] if ticket else None


def resolve(tx: Tx, signer: Signer, parsed: Parsed, sender: str, envelope_to: Iterable[str]) -> Thread:
    sender_person = people.person(tx, sender) if sender else None
    sender_customer = sender_person["customer"] if sender_person else None
    for rcpt in [*envelope_to, *parsed.recipients]:
        ticket_id = signer.ticket_of_address(rcpt)
        customer = _customer(tx, ticket_id) if ticket_id else None
        if ticket_id and customer and sender_customer in (None, customer):
            return Thread(ticket_id, "reply-address", customer)
    ids = [*parsed.in_reply_to, *reversed(parsed.references)]
    for value in ids:
        signed = signer.ticket_of_message_id(value)
        customer = _customer(tx, signed[0]) if signed else None
        if signed and customer and sender_customer in (None, customer):
            return Thread(signed[0], "message-id", customer)
    if sender_customer:
        for value in ids:
            found = messages.find_by_mail_id(tx, value)
            if (
                found
                and found["author_kind"] == "customer"
                and _customer(tx, found["ticket_id"]) == sender_customer
            ):
                return Thread(found["ticket_id"], "references", sender_customer)
        tag = _TAG.search(parsed.subject)
        if tag:
            ticket_id = tag.group(1).lower()
            if _customer(tx, ticket_id) == sender_customer:
                return Thread(ticket_id, "subject-tag", sender_customer)
        return Thread(None, "new-from-person", sender_customer)
    return Thread(None, "unknown-sender", None)
