"""The conversation on a ticket's pages: the timeline shown, the next deadline's clock, and the
engineers' forms (a reply of a kind, "no reply needed" with a reason, the viewer's time zone).

The timeline is support/timeline.py's, the one the API's timeline route serves. An engineer's
public message from the page is `delivered` (the customer reads it on the web) unless the
server mails and the customer has people with e-mail: then `pending`, for the outbox (the
same rule as the API's messages route). Every POST checks the session's CSRF token and
answers 303 back to the ticket; an invalid form answers 400 with the reason, never a 500.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from server.storage.db import Tx
from server.storage.state import State
from server.support import clock, messages, obligations, people, tickets
from server.support.tickets import Invalid
from server.support.timeline import ticket_timeline
from server.web import access, clockview, promisepanel, render, urls
from server.web.access import text
from server.web.settings import WebSettings

#: The timeline shows at most this many entries (the newest).
TIMELINE_MAX = 1000
KIND_LABELS = {"needs_reply": "needs a reply", "no_reply_needed": "no reply needed", "reply": "reply",
               "acknowledgement": "acknowledgement", "internal": "internal note"}
CLOCK_LABELS = {"due": "reply owed", "met": "deadline met", "warning_50": "50% of the time used",
                "warning_80": "80% of the time used", "warning_95": "95% of the time used",
                "breach": "deadline missed"}


def timeline(tx: Tx, ticket_id: str, engineer: bool) -> List[Dict[str, Any]]:
    return ticket_timeline(tx, ticket_id, engineer)[-TIMELINE_MAX:]


def next_deadline(tx: Tx, ticket_id: str, zone: str) -> Dict[str, Any]:
    """The ticket's running obligation as the page shows it: state, due (local) and time left."""
    row = obligations.running(tx, ticket_id)
    if row is None:
        return {"state": "none"}
    if row["state"] == "paused":
        return {"state": "paused", "since": clockview.local(row["paused_at"], zone)}
    shown = clockview.deadline(row["due_at"], clock.now(), zone) or {}
    return {"state": "open", "kind": row["kind"], **shown}


def due_view(due_iso: Optional[str], zone: str) -> Optional[Dict[str, Any]]:
    """A message's ISO UTC due time as local text with the time left."""
    if not due_iso:
        return None
    found = clockview.moment(due_iso)
    return clockview.deadline(found.timestamp() if found else None, clock.now(), zone)


def _engineer_post(tx: Tx, ticket_id: str, actor: str, kind: str, body: str, waiting: bool,
                   mails: bool) -> Optional[Dict[str, Any]]:
    ticket = tickets.get_ticket(tx, ticket_id)
    if ticket is None:
        return None
    delivery = None
    if kind != "internal":
        delivery = "pending" if mails and people.people_of(tx, ticket["customer"]) else "delivered"
    return messages.add_message(tx, ticket_id, author=actor, author_kind="engineer", kind=kind, body=body,
                                source="web", delivery=delivery, waiting_on_customer=waiting)


def _no_reply(tx: Tx, ticket_id: str, message_id: str, by: str, reason: str) -> Optional[Dict[str, Any]]:
    found = messages.message(tx, message_id) if message_id.startswith("msg-") else None
    if found is None or found["ticket_id"] != ticket_id:
        return None
    return messages.mark_no_reply(tx, message_id, by, reason)


def context() -> Dict[str, Any]:
    """What the timeline template needs besides the entries."""
    return {"kind_labels": KIND_LABELS, "clock_labels": CLOCK_LABELS, "due_view": due_view}


def back(path: str) -> Response:
    return render.secure(RedirectResponse(path, status_code=303))


def invalid(request: Request, why: str) -> Response:
    return render.message(request, 400, "Not saved", f"{why[:300]}. Go back and change the form.")


def no_ticket(request: Request) -> Response:
    return render.message(request, 404, "No such ticket", "There is no ticket with this id. "
                          "Go back to the ticket list.")


def install(router: APIRouter, state: State, settings: WebSettings) -> None:
    @router.post("/tickets/{ticket_id}/messages")
    async def post_message(request: Request, ticket_id: str) -> Response:
        posted = await access.engineer_form(request, state, settings)
        if isinstance(posted, Response):
            return posted
        engineer, form = posted
        kind = text(form.get("kind"))
        if kind not in messages.ENGINEER_KINDS:
            return invalid(request, f"The kind is one of: {', '.join(messages.ENGINEER_KINDS)}")
        waiting = text(form.get("waiting")) == "1"
        post = (ticket_id, engineer.actor, kind, text(form.get("body")), waiting,
                bool(state.config.mail.smarthost))
        if text(form.get("propose_due")).strip():
            return await _post_with_proposal(request, form, engineer.actor, post)
        try:
            posted = await access.db(state, True, _engineer_post, *post)
        except Invalid as exc:
            return invalid(request, str(exc))
        if posted is None:
            return no_ticket(request)
        return back(urls.ticket(ticket_id) + "#conversation")

    async def _post_with_proposal(request: Request, form: Any, actor: str, post: tuple) -> Response:
        """A proposal of the next-reply time, with the message (when it has a body) in the same
        transaction (promisepanel.py); mailed, the message carries the proposal's paragraph and
        signed links. Only an acknowledgement or a question carries one: a plain reply meets
        the deadline the proposal would move."""
        ticket_id, kind, body, waiting = post[0], post[2], post[3], post[4]
        with_message = bool(body.strip())
        if with_message and not (kind == "acknowledgement" or (kind == "reply" and waiting)):
            return invalid(request, "A proposal of the next-reply time goes with an acknowledgement or a "
                           "reply that waits on the customer (a reply meets the deadline it would move)")
        try:
            due = promisepanel.read_due(form, "propose_due", "propose_zone")
            reason = promisepanel.read_reason({"reason": form.get("propose_reason")}, required=True)
            estimate = promisepanel.read_estimate(form)
            outcome, value = await access.db(
                state, True, promisepanel.propose_with_message, ticket_id, actor, due, reason, estimate,
                (lambda tx: _engineer_post(tx, *post)) if with_message else None)
        except (ValueError, Invalid) as exc:
            return invalid(request, str(exc))
        if outcome == "missing":
            return no_ticket(request)
        if outcome == "conflict":
            return render.message(request, 409, "Not possible now",
                                  f"{value[:300]}. Reload the ticket's page.")
        if outcome == "refused":
            zone = clockview.viewer_zone(request)
            return promisepanel.refused_page(
                request, promisepanel.refusal_view(value, zone, True), action=request.url.path,
                for_engineer=True, back=urls.ticket(ticket_id) + "#promise",
                wanted=clockview.local(due, zone), due_field="propose_due", zone_field="propose_zone",
                hidden={"kind": kind, "body": body, "waiting": "1" if waiting else "",
                        "propose_reason": reason, "estimate_hours": text(form.get("estimate_hours"))})
        return back(urls.ticket(ticket_id) + ("#conversation" if with_message else "#promise"))

    @router.post("/tickets/{ticket_id}/messages/{message_id}/no-reply")
    async def no_reply(request: Request, ticket_id: str, message_id: str) -> Response:
        posted = await access.engineer_form(request, state, settings)
        if isinstance(posted, Response):
            return posted
        engineer, form = posted
        try:
            marked = await access.db(state, True, _no_reply, ticket_id, message_id, engineer.actor,
                                     text(form.get("reason")))
        except Invalid as exc:
            return invalid(request, str(exc))
        if marked is None:
            return render.message(request, 404, "No such message", "This ticket has no message with this id.")
        return back(urls.ticket(ticket_id) + "#conversation")

    @router.post("/timezone")
    async def set_zone(request: Request) -> Response:
        """The viewer's time zone (engineer or customer person), kept in a cookie for a year."""
        form = await request.form()
        viewer = await access.current(request, state, settings) or await access.current_customer(
            request, state, settings)
        if viewer is None or not access.csrf_ok(viewer, text(form.get("csrf"))):
            return access.csrf_refused(request)
        wanted = text(form.get("zone")).strip()
        zone = clockview.zone_name(wanted)
        if wanted and zone != wanted:
            return invalid(request, f"{wanted!r} is not a time zone this server knows (an IANA name such as "
                           "Europe/Berlin)")
        response = back(urls.safe_next(text(form.get("next"))))
        access.set_cookie(response, request, settings, clockview.TZ_COOKIE, zone, max_age=365 * 86400)
        return response
