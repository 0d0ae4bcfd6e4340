"""The promise on a ticket's pages, and the page of a signed link mailed with a proposal.

Both sides see the promise in force with its clock, the open proposal and every version
(who proposed, who answered, the reasons, renegotiated), in the viewer's time zone. An
engineer proposes the next-reply time (a datetime-local in the viewer's zone, turned into UTC;
a local time that does not exist or happens twice on a DST change is refused), accepts a
customer's counter or proposes another time; when admission control refuses, the answer is a
409 page with the earliest feasible time as a one-click proposal and the commitments that
would have to move. A customer accepts or counters an engineer's proposal; a counter the
engineers' calendars cannot carry shows the earliest feasible time (and how many other
commitments would have to move, never which). All of it goes through support/promises.py.

The signed link (`/promise/TOKEN`, server/mail/promisemail.py) works without sign-in: a GET
shows the proposal with one Accept button or the counter form (a mail scanner's fetch answers
nothing); the POST carries the pre-session double-submit token as the sign-in forms do. A
tampered link answers 400, one whose address left the customer 403, a used, replaced or
expired one 410: one sentence, never a 500. Signed-in POSTs check the session's CSRF token.
"""

from __future__ import annotations

import math
import zoneinfo
from typing import Any, Dict, Optional, Tuple

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from server.mail import promisemail
from server.mail.inbound import signer_of
from server.mail.promisemail import LinkRefused
from server.storage.db import Tx
from server.storage.state import State
from server.support import admission, clock, obligations, promises, tickets
from server.support.tickets import Invalid
from server.web import access, clockview, render, urls, websessions
from server.web.access import text
from server.web.settings import WebSettings

STATE_LABELS = {"proposed": "proposed, awaiting an answer", "accepted": "accepted",
                "countered": "answered with another time", "superseded": "replaced",
                "withdrawn": "withdrawn"}
REASON_MAX = 500
#: A proposal further out than this is a typing mistake, not a plan.
MAX_AHEAD_DAYS = 365


# --- what the panel shows --------------------------------------------------------------------


def _view(promise: Dict[str, Any], zone: str, now: float) -> Dict[str, Any]:
    due = promisemail.epoch_of(promise.get("due_at"))
    shown = clockview.deadline(due, now, zone) or {"due": "–", "left": "", "overdue": False}
    return {**promise, "due": shown["due"], "left": shown["left"], "overdue": shown["overdue"],
            "proposed": clockview.local(promise.get("proposed_at"), zone),
            "answered": _local_or_blank(promise.get("answered_at"), zone),
            "policy_due": _local_or_blank(promise.get("policy_due_at"), zone),
            "state_label": STATE_LABELS.get(promise.get("state", ""), promise.get("state", "")),
            "side_label": "support" if promise.get("proposed_side") == "engineer" else "customer"}


def _local_or_blank(value: Any, zone: str) -> str:
    return clockview.local(value, zone) if value else ""


def local_value(epoch: float, zone: str) -> str:
    """An epoch as a datetime-local field's value in `zone` (`YYYY-MM-DDTHH:MM`)."""
    found = clockview.moment(epoch)
    assert found is not None
    return found.astimezone(zoneinfo.ZoneInfo(clockview.zone_name(zone))).strftime("%Y-%m-%dT%H:%M")


def context(tx: Tx, ticket_id: str, engineer: bool, zone: str) -> Dict[str, Any]:
    """What _promise.html shows: the promise in force, the open proposal, every version, and
    which forms this side may use."""
    now = clock.now()
    versions = promises.of_ticket(tx, ticket_id, engineer)
    running = obligations.running(tx, ticket_id)
    if not versions and running is None:
        return {"promise_panel": None}
    force = promises.in_force(tx, ticket_id)
    pending = promises.open_proposal(tx, ticket_id)
    side = "engineer" if engineer else "customer"
    return {"promise_panel": {
        "for_engineer": engineer,
        "in_force": _view(force, zone, now) if force else None,
        "open": _view(pending, zone, now) if pending else None,
        "can_answer": bool(pending and pending["proposed_side"] != side),
        "history": [_view(p, zone, now) for p in versions],
        "can_propose": engineer and running is not None,
        "counter_check": _counter_check(tx, ticket_id, pending, zone, engineer),
        "zone": clockview.zone_name(zone),
        "suggest": local_value(_suggestion(running, now), zone),
    }}


def _counter_check(tx: Tx, ticket_id: str, pending: Optional[Dict[str, Any]], zone: str,
                   engineer: bool) -> Optional[Dict[str, Any]]:
    """A customer's open counter the engineers' calendars cannot carry, as both sides see it
    before an engineer answers: the earliest feasible time (and, for engineers, what would
    have to move; for the customer only how many). None when feasible or not a counter."""
    if pending is None or pending["proposed_side"] != "customer":
        return None
    due = promisemail.epoch_of(pending["due_at"])
    if due is None or due <= clock.now():
        return None
    verdict = admission.check(tx, ticket_id, pending["obligation_id"], due,
                              effort=pending.get("estimate_seconds"))
    if verdict.ok:
        return None
    return refusal_view(promises.Infeasible(verdict), zone, engineer)


def _suggestion(running: Optional[Dict[str, Any]], now: float) -> float:
    """What a proposal form starts with: the running obligation's due time while it is ahead,
    else an hour from now (to the minute)."""
    due = running.get("due_at") if running else None
    return _ceil_minute(due if due and due > now + 60 else now + 3600)


# --- the work, each in one transaction -------------------------------------------------------


def _ceil_minute(epoch: float) -> float:
    return math.ceil(epoch / 60.0) * 60.0


def refusal_view(exc: Exception, zone: str, for_engineer: bool) -> Dict[str, Any]:
    """Admission's refusal as a page shows it: the reason, the earliest feasible time (local
    text; `earliest_utc` for a one-click form, `earliest_local` for a form in `zone`, rounded up
    to the minute) and the commitments that would have to move (to a customer: only how many)."""
    verdict = getattr(exc, "verdict", None)
    earliest = getattr(verdict, "earliest_feasible_at", None)
    earliest = _ceil_minute(earliest) if earliest else None
    must_move = [str(m) for m in (getattr(verdict, "must_move", ()) or ())]
    return {"why": str(exc), "earliest": clockview.local(earliest, zone) if earliest else "",
            "earliest_utc": local_value(earliest, "UTC") if earliest else "",
            "earliest_local": local_value(earliest, zone) if earliest else "",
            "must_move": must_move if for_engineer else [], "must_move_count": len(must_move)}


def _ticket_promise(tx: Tx, ticket_id: str, promise_id: str,
                    customer: Optional[str]) -> Optional[Dict[str, Any]]:
    """The promise `promise_id` of `ticket_id` (of `customer`'s, for a customer), else None."""
    ticket = tickets.get_ticket(tx, ticket_id)
    if ticket is None or (customer is not None and ticket["customer"] != customer):
        return None
    promise = promises.get(tx, promise_id) if promise_id.startswith("pr-") else None
    return promise if promise is not None and promise["ticket_id"] == ticket_id else None


def _act(tx: Tx, what: str, ticket_id: str, promise_id: str, customer: Optional[str], actor: str,
         due_at: Optional[float], reason: str) -> Tuple[str, Any]:
    """An answer (accept, counter) to `promise_id`: ("done", promise), ("refused", Infeasible),
    ("conflict", text) or ("missing", None). A refusal is returned, not raised, so that its record is kept."""
    if _ticket_promise(tx, ticket_id, promise_id, customer) is None:
        return "missing", None
    side = "customer" if customer is not None else "engineer"
    try:
        if what == "accept":
            done = promises.accept(tx, ticket_id, promise_id, actor=actor, side=side)
        else:
            done = promises.counter(tx, ticket_id, promise_id, due_at=due_at, reason=reason, actor=actor,
                                    side=side)
    except promises.Infeasible as exc:
        return "refused", exc
    except promises.Conflict as exc:
        return "conflict", str(exc)
    except promises.NotFound:
        return "missing", None
    return "done", done


def propose_with_message(tx: Tx, ticket_id: str, actor: str, due_at: float, reason: str,
                         estimate: Optional[float], post: Any) -> Tuple[str, Any]:
    """An engineer's proposal and, when `post` is given, the message sent with it, in one
    transaction (conversation.py's messages route): the proposal first, while the obligation it
    moves is running, then the message through `post(tx)`, the pair noted for the outbox. A
    refusal stores no message: ("refused", Infeasible); else ("done", promise), ("conflict",
    text) or ("missing", None)."""
    if tickets.get_ticket(tx, ticket_id) is None:
        return "missing", None
    try:
        promise = promises.propose(tx, ticket_id, due_at=due_at, reason=reason, actor=actor, side="engineer",
                                   estimate=estimate)
    except promises.Infeasible as exc:
        return "refused", exc
    except promises.Conflict as exc:
        return "conflict", str(exc)
    if post is not None:
        message = post(tx)
        promisemail.note_carries(tx, actor, ticket_id, message["id"], promise["id"])
    return "done", promise


def _link_open(tx: Tx, link: promisemail.Link, zone: str) -> Dict[str, Any]:
    promise = promisemail.open_for_link(tx, link)
    ticket = tickets.get_ticket(tx, promise["ticket_id"])
    return {"promise": _view(promise, zone, clock.now()), "ticket": ticket}


def _link_act(tx: Tx, link: promisemail.Link, due_at: Optional[float], reason: str,
              zone: str) -> Tuple[str, Any]:
    promise = promisemail.open_for_link(tx, link)
    actor = f"customer:{link.email}"
    try:
        if link.action == "accept":
            done = promises.accept(tx, promise["ticket_id"], promise["id"], actor=actor, side="customer")
        else:
            done = promises.counter(tx, promise["ticket_id"], promise["id"], due_at=due_at, reason=reason,
                                    actor=actor, side="customer")
    except promises.Infeasible as exc:
        return "refused", (exc, _view(promise, zone, clock.now()))
    except (promises.Conflict, promises.NotFound) as exc:
        raise LinkRefused(410, f"This link is out of date: {exc}.") from None
    return "done", _view(done, zone, clock.now())


# --- forms -----------------------------------------------------------------------------------


def read_due(form: Any, field: str = "due", zone_field: str = "zone") -> float:
    """The form's local date and time in its zone as UTC epoch; ValueError with the reason."""
    due = promisemail.local_moment(text(form.get(field)), text(form.get(zone_field)) or "UTC")
    now = clock.now()
    if due <= now:
        raise ValueError("the time has passed already: choose a time in the future")
    if due > now + MAX_AHEAD_DAYS * 86400:
        raise ValueError(f"the time is more than {MAX_AHEAD_DAYS} days ahead")
    return due


def read_reason(form: Any, required: bool) -> str:
    reason = " ".join(text(form.get("reason")).split())
    if required and not reason:
        raise ValueError("a proposal needs a reason (why this time)")
    if len(reason) > REASON_MAX:
        raise ValueError(f"the reason is longer than {REASON_MAX} characters")
    return reason


def read_estimate(form: Any) -> Optional[float]:
    value = text(form.get("estimate_hours")).strip()
    if not value:
        return None
    try:
        hours = float(value)
    except ValueError:
        raise ValueError("the work still needed is a number of hours") from None
    if not (0 < hours <= 24 * 30) or math.isnan(hours):
        raise ValueError("the work still needed is between 0 and 720 hours")
    return hours * 3600.0


def refused_page(request: Request, refusal: Dict[str, Any], *, action: str, hidden: Dict[str, str],
                 for_engineer: bool, back: str, wanted: str, due_field: str = "due",
                 zone_field: str = "zone") -> Response:
    """409: admission control refused; the earliest feasible time offered as one click (a form
    to `action` with `hidden` and the time in `due_field`, UTC in `zone_field`)."""
    return render.page(request, "promise_page.html", status=409, title="Not feasible", mode="refused",
                       refusal=refusal, action=action, hidden=hidden, for_engineer=for_engineer, back=back,
                       wanted=wanted, due_field=due_field, zone_field=zone_field)


def install(router: APIRouter, state: State, settings: WebSettings) -> None:
    def bad(request: Request, why: str) -> Response:
        return render.message(request, 400, "Not saved", f"{why[:300]}. Go back and change the form.")

    def missing(request: Request) -> Response:
        return render.message(request, 404, "No such proposal", "This ticket has no such proposal.")

    def conflict(request: Request, why: str) -> Response:
        return render.message(request, 409, "Not possible now", f"{why[:300]}. Reload the ticket's page to "
                              "see where the proposal stands.")

    async def engineer_act(request: Request, ticket_id: str, promise_id: str, what: str) -> Response:
        posted = await access.engineer_form(request, state, settings)
        if isinstance(posted, Response):
            return posted
        engineer, form = posted
        zone = clockview.viewer_zone(request)
        due, reason = None, ""
        try:
            if what != "accept":
                due, reason = read_due(form), read_reason(form, required=True)
            outcome, value = await access.db(state, True, _act, what, ticket_id, promise_id, None,
                                             engineer.actor, due, reason)
        except (ValueError, Invalid) as exc:
            return bad(request, str(exc))
        back = urls.ticket(ticket_id) + "#promise"
        if outcome == "missing":
            return missing(request)
        if outcome == "conflict":
            return conflict(request, value)
        if outcome == "refused":
            refusal = refusal_view(value, zone, True)
            # A customer's time that cannot be carried: the one click proposes the earliest instead.
            action = urls.promise_counter(ticket_id, promise_id) if what == "accept" else request.url.path
            wanted = clockview.local(due, zone) if due else "the customer's time"
            return refused_page(request, refusal, action=action, back=back, for_engineer=True, wanted=wanted,
                                hidden={"reason": reason or "the earliest time our calendars can carry"})
        return render.secure(RedirectResponse(back, status_code=303))

    async def customer_act(request: Request, ticket_id: str, promise_id: str, what: str) -> Response:
        posted = await access.customer_form(request, state, settings)
        if isinstance(posted, Response):
            return posted
        person, form = posted
        zone = clockview.viewer_zone(request)
        due, reason = None, ""
        try:
            if what == "counter":
                due, reason = read_due(form), read_reason(form, required=False)
            outcome, value = await access.db(state, True, _act, what, ticket_id, promise_id, person.customer,
                                             person.actor, due, reason)
        except (ValueError, Invalid) as exc:
            return bad(request, str(exc))
        back = urls.customer_ticket(ticket_id) + "#promise"
        if outcome == "missing":
            return render.message(request, 404, "No such ticket", "There is no ticket with this id among "
                                  "yours, or it has no such proposal.")
        if outcome == "conflict":
            return conflict(request, value)
        if outcome == "refused":
            action = urls.customer_promise_counter(ticket_id, promise_id) if what == "accept" \
                else request.url.path
            return refused_page(request, refusal_view(value, zone, False), action=action, back=back,
                                for_engineer=False, wanted=clockview.local(due, zone) if due else "",
                                hidden={"reason": reason})
        return render.secure(RedirectResponse(back, status_code=303))

    @router.post("/tickets/{ticket_id}/promises/{promise_id}/accept")
    async def engineer_accept(request: Request, ticket_id: str, promise_id: str) -> Response:
        return await engineer_act(request, ticket_id, promise_id, "accept")

    @router.post("/tickets/{ticket_id}/promises/{promise_id}/counter")
    async def engineer_counter(request: Request, ticket_id: str, promise_id: str) -> Response:
        return await engineer_act(request, ticket_id, promise_id, "counter")

    @router.post("/customer/tickets/{ticket_id}/promises/{promise_id}/accept")
    async def customer_accept(request: Request, ticket_id: str, promise_id: str) -> Response:
        return await customer_act(request, ticket_id, promise_id, "accept")

    @router.post("/customer/tickets/{ticket_id}/promises/{promise_id}/counter")
    async def customer_counter(request: Request, ticket_id: str, promise_id: str) -> Response:
        return await customer_act(request, ticket_id, promise_id, "counter")

    # --- the signed link ---------------------------------------------------------------------

    def link_page(request: Request, status: int = 200, **values: Any) -> Response:
        token = request.cookies.get(access.SIGNIN_COOKIE)
        if not websessions.token_shape_ok(token):
            token = websessions.new_token()
        for name, default in (("promise", None), ("ticket", None), ("refusal", None), ("done", None),
                              ("reason", ""), ("suggest", ""), ("zone_shown", "UTC"), ("link_path", "")):
            values.setdefault(name, default)
        response = render.page(request, "promise_page.html", status=status, title="Our proposal",
                               link_csrf=token, **values)
        access.set_cookie(response, request, settings, access.SIGNIN_COOKIE, token, max_age=3600)
        return response

    def link_refused(request: Request, exc: LinkRefused) -> Response:
        titles = {400: "Link not valid", 403: "Link not valid for this address", 410: "Link no longer valid"}
        return render.message(request, exc.status, titles.get(exc.status, "Link not valid"), str(exc))

    @router.get("/promise/{token}")
    async def open_link(request: Request, token: str) -> Response:
        zone = clockview.viewer_zone(request)
        try:
            link = promisemail.read_link(signer_of(state), token, clock.now())
            shown = await access.db(state, False, _link_open, link, zone)
        except LinkRefused as exc:
            return link_refused(request, exc)
        return link_page(request, mode=link.action, link_path=urls.promise_link(token), zone_shown=zone,
                         suggest=local_value(promisemail.epoch_of(shown["promise"]["due_at"]) or clock.now(),
                                             zone), **shown)

    @router.post("/promise/{token}")
    async def use_link(request: Request, token: str) -> Response:
        form = await request.form()
        if not websessions.same(request.cookies.get(access.SIGNIN_COOKIE), text(form.get("csrf"))):
            return access.csrf_refused(request)
        zone = clockview.viewer_zone(request)
        due, reason = None, ""
        try:
            link = promisemail.read_link(signer_of(state), token, clock.now())
            if link.action == "counter":
                due, reason = read_due(form), read_reason(form, required=False)
            outcome, value = await access.db(state, True, _link_act, link, due, reason, zone)
        except LinkRefused as exc:
            return link_refused(request, exc)
        except (ValueError, Invalid) as exc:
            return bad(request, str(exc))
        if outcome == "refused":
            exc, shown = value
            refusal = refusal_view(exc, zone, False)
            # An accept link cannot carry a time of its own: the counter link or the page can.
            mode = "counter" if link.action == "counter" else "blocked"
            return link_page(request, status=409, mode=mode, link_path=urls.promise_link(token),
                             zone_shown=zone, promise=shown, refusal=refusal,
                             suggest=refusal["earliest_local"] or text(form.get("due")), reason=reason)
        return link_page(request, mode="done", done=value, action=link.action)


