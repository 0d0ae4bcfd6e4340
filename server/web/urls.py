"""Every link the pages show, built in one place (path parts are quoted; ids are checked
where they are read, not here)."""

from __future__ import annotations

import urllib.parse
from typing import Optional

_SAFE_NEXT_MAX = 2000


def _q(part: str) -> str:
    return urllib.parse.quote(str(part), safe="")


def ticket_list(page: int = 1) -> str:
    return "/" if page <= 1 else f"/?page={int(page)}"


def ticket(ticket_id: str) -> str:
    return f"/tickets/{_q(ticket_id)}"


def bundle_report(ticket_id: str, bundle_id: str) -> str:
    return f"/tickets/{_q(ticket_id)}/bundles/{_q(bundle_id)}/report"


def diff(ticket_id: str, a: str, b: str) -> str:
    """Compare bundle `a` (the earlier) with bundle `b`."""
    return f"/tickets/{_q(ticket_id)}/diff?a={_q(a)}&b={_q(b)}"


def replay(ticket_id: str, session_id: str) -> str:
    return f"/tickets/{_q(ticket_id)}/sessions/{_q(session_id)}/replay"


def static(name: str) -> str:
    return f"/static/{_q(name)}"


def signin(next_path: Optional[str] = None) -> str:
    safe = safe_next(next_path)
    return "/signin" if safe == "/" else "/signin?" + urllib.parse.urlencode({"next": safe})


SIGNOUT = "/signout"


def safe_next(value: Optional[str]) -> str:
    """`value` if it is a path on this site, else "/": never `//host`, `/\\host`, a scheme,
    a control character or a backslash (browsers read `/\\` as `//`)."""
    if not value or len(value) > _SAFE_NEXT_MAX or not value.startswith("/"):
        return "/"
    if value.startswith("//") or "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7f for c in value):
        return "/"
    parts = urllib.parse.urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


CUSTOMER_SIGNIN = "/customer/signin"
CUSTOMER_SIGNOUT = "/customer/signout"
CUSTOMER_HOME = "/customer"
TIMEZONE = "/timezone"


def customer_ticket(ticket_id: str) -> str:
    return f"/customer/tickets/{_q(ticket_id)}"


def customer_link(token: str) -> str:
    return f"/customer/signin/{_q(token)}"


def ticket_messages(ticket_id: str) -> str:
    return f"/tickets/{_q(ticket_id)}/messages"


def no_reply(ticket_id: str, message_id: str) -> str:
    return f"/tickets/{_q(ticket_id)}/messages/{_q(message_id)}/no-reply"


def customer_messages(ticket_id: str) -> str:
    return f"/customer/tickets/{_q(ticket_id)}/messages"


def promise_propose(ticket_id: str) -> str:
    return f"/tickets/{_q(ticket_id)}/promises"


def promise_accept(ticket_id: str, promise_id: str) -> str:
    return f"/tickets/{_q(ticket_id)}/promises/{_q(promise_id)}/accept"


def promise_counter(ticket_id: str, promise_id: str) -> str:
    return f"/tickets/{_q(ticket_id)}/promises/{_q(promise_id)}/counter"


def customer_promise_accept(ticket_id: str, promise_id: str) -> str:
    return f"/customer/tickets/{_q(ticket_id)}/promises/{_q(promise_id)}/accept"


def customer_promise_counter(ticket_id: str, promise_id: str) -> str:
    return f"/customer/tickets/{_q(ticket_id)}/promises/{_q(promise_id)}/counter"


def promise_link(token: str) -> str:
    """A signed link mailed with a proposal (server/mail/promisemail.py)."""
    return f"/promise/{_q(token)}"


def work_items(ticket_id: str) -> str:
    return f"/tickets/{_q(ticket_id)}/work-items"


def work_item(ticket_id: str, item_id: str) -> str:
    return f"/tickets/{_q(ticket_id)}/work-items/{_q(item_id)}"


def calls(ticket_id: str) -> str:
    return f"/tickets/{_q(ticket_id)}/calls"


def call_minutes(ticket_id: str, call_id: str) -> str:
    return f"/tickets/{_q(ticket_id)}/calls/{_q(call_id)}/minutes"


def call_cancel(ticket_id: str, call_id: str) -> str:
    return f"/tickets/{_q(ticket_id)}/calls/{_q(call_id)}/cancel"


def customer_calls(ticket_id: str) -> str:
    return f"/customer/tickets/{_q(ticket_id)}/calls"


def customer_call_cancel(ticket_id: str, call_id: str) -> str:
    return f"/customer/tickets/{_q(ticket_id)}/calls/{_q(call_id)}/cancel"


QUEUE = "/queue"


def queue_task(task_id: str, action: str) -> str:
    """A step of the queue page on one task: take, release, done, wait or resume."""
    return f"/queue/tasks/{_q(task_id)}/{_q(action)}"
