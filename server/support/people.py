"""A customer organization's people, identified by e-mail address.

An address belongs to one customer. It is stored lower-cased; a valid one has exactly one
`@`, something on each side, no whitespace or control characters and at most 254
characters. Mail from an address here attaches to that customer's tickets; the web pages
sign people in by it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from server.safetext import has_controls
from server.storage import audit
from server.storage.db import Tx
from server.support import clock
from server.support.policies import DEFAULT_PLAN
from server.support.tickets import Invalid, clean_name, clean_text


def clean_email(value: str) -> str:
    email = (value or "").strip().lower()
    local, at, domain = email.partition("@")
    if (not at or not local or not domain or "@" in domain or len(email) > 254 or has_controls(email)
            or any(c.isspace() for c in email) or domain.startswith(".") or domain.endswith(".")):
        raise Invalid(f"{value!r} is not an e-mail address (one '@', no spaces, at most 254 characters)")
    return email


def add_person(tx: Tx, customer: str, email: str, name: Optional[str], actor: str) -> Dict[str, Any]:
    """Add (or rename) a person of `customer`; an address of another customer is refused."""
    customer = clean_name(customer, "a customer name")
    email = clean_email(email)
    name = clean_text(name, "a person's name") if name else None
    existing = person(tx, email)
    if existing is not None and existing["customer"] != customer:
        raise Invalid(f"{email} already belongs to another customer")
    if existing is None:
        tx.run("INSERT INTO customer_people (email, customer, name, added) VALUES (?, ?, ?, ?)",
               (email, customer, name, clock.now()))
    elif name is not None:
        tx.run("UPDATE customer_people SET name = ? WHERE email = ?", (name, email))
    audit.record(tx, actor, "person.add", subject=email, customer=customer)
    found = person(tx, email)
    assert found is not None
    return found


def person(tx: Tx, email: str) -> Optional[Dict[str, Any]]:
    """`{"email", "customer", "name"}` for a known address (any case), else None."""
    try:
        email = clean_email(email)
    except Invalid:
        return None
    return tx.one("SELECT email, customer, name FROM customer_people WHERE email = ?", (email,))


def people_of(tx: Tx, customer: str) -> List[Dict[str, Any]]:
    return tx.all("SELECT email, customer, name FROM customer_people WHERE customer = ? ORDER BY email",
                  (customer,))


def set_plan(tx: Tx, customer: str, plan: str, actor: str) -> None:
    """The customer's support plan, which chooses its reply policy (server/support/policies.py)."""
    customer = clean_name(customer, "a customer name")
    plan = clean_name(plan, "a plan name")
    tx.run("INSERT INTO customer_plans (customer, plan, updated) VALUES (?, ?, ?) "
           "ON CONFLICT (customer) DO UPDATE SET plan = excluded.plan, updated = excluded.updated",
           (customer, plan, clock.now()))
    audit.record(tx, actor, "customer.plan", subject=customer, plan=plan)


def plan_of(tx: Tx, customer: str) -> str:
    row = tx.one("SELECT plan FROM customer_plans WHERE customer = ?", (customer,))
    return row["plan"] if row else DEFAULT_PLAN
