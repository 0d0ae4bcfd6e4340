"""The customers' pages: sign-in by an e-mailed link, their organization's tickets, a ticket's
conversation and the message form.

Asking for a link always answers the same page, whether the address is a person of a
customer or not, and whether a limit was reached or not (customersessions.py). The link is
mailed through the outbox (server/mail/outbox.py), which the sender loop delivers to the
smart host. Opening a link shows a button (mail scanners that fetch links do not spend
it); pressing it spends the link and starts a customer session. A customer sees only their
organization's tickets: another one answers 404, the same page as a ticket that does not
exist. Their timeline has no internal notes and no clock warnings.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from server.mail import outbox
from server.mail.inbound import signer_of
from server.storage import audit
from server.storage.db import Tx
from server.storage.state import State
from server.support import messages, tickets
from server.support.tickets import Invalid
from server.web import (
    access,
    clockview,
    conversation,
    customersessions,
    promisepanel,
    render,
    urls,
    websessions,
    workpanel,
)
from server.web.access import text
from server.web.settings import WebSettings

SENT = ("If this address belongs to one of our customers' people, a sign-in link is on its way to it. "
        "The link works once, within 15 minutes.")
REFUSED = ("This sign-in link is not valid: it was used already, it expired, or it was never ours. "
           "Ask for a new one.")
_EMAIL_MAX = 254


def _mail_link(tx: Tx, state: State, email: str, address: str, origin: str) -> None:
    made = customersessions.ask_link(tx, email, address)
    if made is None:
        return
    token, to_addr = made
    link = origin + urls.customer_link(token)
    body = (f"Someone (we hope you) asked to sign in to mydiag support as {to_addr}.\n\n"
            f"Open this link within 15 minutes to sign in; it works once:\n\n{link}\n\n"
            "If you did not ask for it, ignore this mail: nothing happens without the link.\n")
    outbox.enqueue(tx, None, None, to_addr, "Your mydiag support sign-in link", body, auto=True,
                   signer=signer_of(state))
    audit.record(tx, "web", "web.customer.link", subject=to_addr, address=address)


def _spend(tx: Tx, token: str, idle_seconds: float, address: str):
    spent = customersessions.use_link(tx, token, idle_seconds)
    if spent is not None:
        audit.record(tx, spent[1].actor, "web.customer.signin", subject=spent[1].email, address=address)
    return spent


def _own_ticket(tx: Tx, person: customersessions.Person, ticket_id: str) -> Optional[Dict[str, Any]]:
    ticket = tickets.get_ticket(tx, ticket_id)
    return ticket if ticket is not None and ticket["customer"] == person.customer else None


def _ticket_view(tx: Tx, person: customersessions.Person, ticket_id: str, zone: str) -> Optional[Dict]:
    ticket = _own_ticket(tx, person, ticket_id)
    if ticket is None:
        return None
    shown = conversation.timeline(tx, ticket_id, False)
    latest = next((e["message"] for e in reversed(shown) if e["type"] == "message"
                   and e["message"]["author_kind"] == "customer"), None)
    return {"ticket": ticket, "conversation": shown, "latest": latest,
            "latest_due": conversation.due_view(latest["due_at"], zone) if latest else None,
            **promisepanel.context(tx, ticket_id, False, zone),
            **workpanel.context(tx, ticket_id, False, zone)}


def _customer_post(tx: Tx, person: customersessions.Person, ticket_id: str, body: str,
                   no_reply: bool) -> Optional[Dict[str, Any]]:
    if _own_ticket(tx, person, ticket_id) is None:
        return None
    return messages.add_message(tx, ticket_id, author=person.email, author_kind="customer",
                                kind="no_reply_needed" if no_reply else "needs_reply", body=body,
                                source="web")


def install(router: APIRouter, state: State, settings: WebSettings) -> None:
    def signin_form(request: Request, status: int = 200, sent: bool = False, link: str = "") -> Response:
        token = request.cookies.get(access.SIGNIN_COOKIE)
        if not websessions.token_shape_ok(token):
            token = websessions.new_token()
        response = render.page(request, "customer_signin.html", status=status, signin_csrf=token, sent=sent,
                               title="Customer sign-in", sent_text=SENT, link=link)
        access.set_cookie(response, request, settings, access.SIGNIN_COOKIE, token, max_age=3600)
        return response

    def pre_session_ok(request: Request, form: Any) -> bool:
        return websessions.same(request.cookies.get(access.SIGNIN_COOKIE), text(form.get("csrf")))

    def not_found(request: Request) -> Response:
        return render.message(request, 404, "No such ticket", "There is no ticket with this id among yours.")

    @router.get("/customer/signin")
    async def signin_page(request: Request) -> Response:
        return signin_form(request)

    @router.post("/customer/signin")
    async def ask(request: Request) -> Response:
        form = await request.form()
        if not pre_session_ok(request, form):
            return access.csrf_refused(request)
        email = text(form.get("email")).strip()[:_EMAIL_MAX]
        origin = settings.public_url or _own_origin(request)
        await access.db(state, True, _mail_link, state, email, access.address(request), origin)
        return signin_form(request, sent=True)

    @router.get("/customer/signin/{token}")
    async def open_link(request: Request, token: str) -> Response:
        valid = websessions.token_shape_ok(token) and await access.db(state, False, customersessions.usable,
                                                                      token)
        if not valid:
            return render.message(request, 403, "Sign-in link refused", REFUSED)
        return signin_form(request, link=urls.customer_link(token))

    @router.post("/customer/signin/{token}")
    async def spend_link(request: Request, token: str) -> Response:
        form = await request.form()
        if not pre_session_ok(request, form):
            return access.csrf_refused(request)
        spent = await access.db(state, True, _spend, token, settings.idle_seconds, access.address(request))
        if spent is None:
            return render.message(request, 403, "Sign-in link refused", REFUSED)
        response = render.secure(RedirectResponse(urls.CUSTOMER_HOME, status_code=303))
        access.set_cookie(response, request, settings, access.CUSTOMER_COOKIE, spent[0])
        access.drop_cookie(response, request, settings, access.SIGNIN_COOKIE)
        return response

    @router.post("/customer/signout")
    async def signout(request: Request) -> Response:
        person = await access.current_customer(request, state, settings)
        if person is not None:
            form = await request.form()
            if not access.csrf_ok(person, text(form.get("csrf"))):
                return access.csrf_refused(request)
            await access.db(state, True, customersessions.end, request.cookies.get(access.CUSTOMER_COOKIE))
            request.state.customer = None
        response = render.secure(RedirectResponse(urls.CUSTOMER_SIGNIN, status_code=303))
        access.drop_cookie(response, request, settings, access.CUSTOMER_COOKIE)
        return response

    @router.get("/customer")
    async def ticket_list(request: Request) -> Response:
        person = await access.customer_signed_in(request, state, settings)
        if isinstance(person, Response):
            return person
        listed = await access.db(state, False, tickets.tickets_of_customer, person.customer)
        return render.page(request, "customer_tickets.html", title="Your tickets",
                           tickets=list(reversed(listed)))

    @router.get("/customer/tickets/{ticket_id}")
    async def ticket_page(request: Request, ticket_id: str) -> Response:
        person = await access.customer_signed_in(request, state, settings)
        if isinstance(person, Response):
            return person
        zone = clockview.viewer_zone(request)
        shown = await access.db(state, False, _ticket_view, person, ticket_id, zone)
        if shown is None:
            return not_found(request)
        return render.page(request, "customer_ticket.html", title=f"Ticket {shown['ticket']['id']}",
                           for_engineer=False, **conversation.context(), **shown)

    @router.post("/customer/tickets/{ticket_id}/messages")
    async def post_message(request: Request, ticket_id: str) -> Response:
        posted = await access.customer_form(request, state, settings)
        if isinstance(posted, Response):
            return posted
        person, form = posted
        try:
            posted = await access.db(state, True, _customer_post, person, ticket_id, text(form.get("body")),
                                     text(form.get("no_reply")) == "1")
        except Invalid as exc:
            return conversation.invalid(request, str(exc))
        if posted is None:
            return not_found(request)
        return render.secure(RedirectResponse(urls.customer_ticket(ticket_id) + "#conversation",
                                              status_code=303))


def _own_origin(request: Request) -> str:
    """The address this server listens on, for a mailed link when MYDIAG_PUBLIC_URL is not
    set: never the request's Host header, which whoever asks for the link chooses (a link
    to their own site, with a valid token in it, would reach the customer)."""
    host, port = (request.scope.get("server") or ("127.0.0.1", 80))[:2]
    host = f"[{host}]" if ":" in str(host) else str(host)
    return f"http://{host}:{port}"
