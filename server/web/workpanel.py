"""The work items and calls of a ticket's pages.

On the engineers' page: "Who is doing what", the running reply's work items (owner, estimate,
due in the viewer's time zone, state, result), the form that adds one (due inside the promise:
a `datetime-local` in the viewer's zone, turned into UTC; a local time that does not exist or
happens twice on a DST change is refused), the forms that finish one (done with a result, or
cancelled), and the reply drafted from the done items in a form that posts to the ordinary
message route (conversation.py). Then the calls: each with its time, state, agenda, attendees
and minutes, the minutes form and the cancel form of a scheduled call, and the request form
(agenda items one per line, a time limit, up to `ATTENDEE_ROWS` attendees with name, e-mail and
role). On the customer's page: their calls, the cancel form and the request form.

Everything goes through support/workitems.py and support/calls.py, the invitation through
server/mail/invites.py, exactly as the API does (server/api/work.py). Every POST checks the
session's CSRF token and answers 303 back to the page; an invalid form answers 400 with the
reason, a refused call 422 with the reason (the refusal is recorded), another ticket's or
customer's id 404; never a 500.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import zoneinfo
from typing import Any, Dict, List, Optional

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from server.mail import invites
from server.mail.inbound import signer_of
from server.storage.db import Tx
from server.storage.state import State
from server.support import calls, clock, obligations, tickets, workitems
from server.support.tickets import Invalid
from server.web import access, clockview, conversation, render, urls
from server.web.access import text
from server.web.settings import WebSettings

ATTENDEE_ROWS = 3
#: Form fields are cut to this before they are read (the support modules check the real bounds).
_FIELD_MAX = 25000


def local_value(epoch: float, zone: str) -> str:
    """An epoch as a `datetime-local` value in `zone` (`YYYY-MM-DDTHH:MM`)."""
    moment = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    return moment.astimezone(zoneinfo.ZoneInfo(clockview.zone_name(zone))).strftime("%Y-%m-%dT%H:%M")


def from_local(value: str, zone: str, what: str) -> float:
    """A `datetime-local` value in the viewer's zone as epoch seconds; a time that does not exist
    or happens twice there (a DST change) is refused with the reason."""
    try:
        naive = dt.datetime.strptime(value.strip(), "%Y-%m-%dT%H:%M")
    except ValueError:
        raise Invalid(f"{what} must be a date and time (YYYY-MM-DDTHH:MM)") from None
    place = zoneinfo.ZoneInfo(clockview.zone_name(zone))
    early, late = naive.replace(tzinfo=place, fold=0), naive.replace(tzinfo=place, fold=1)
    if early.astimezone(dt.timezone.utc).astimezone(place).replace(tzinfo=None) != naive:
        raise Invalid(f"{value} does not exist in {clockview.zone_name(zone)} (the clocks go forward)")
    if early.utcoffset() != late.utcoffset():
        raise Invalid(f"{value} happens twice in {clockview.zone_name(zone)} (the clocks go back): "
                      "choose another minute")
    return early.timestamp()


def _item_view(item: Dict[str, Any], zone: str, now: float) -> Dict[str, Any]:
    due = clockview.moment(item["due_at"])
    shown = clockview.deadline(due.timestamp() if due else None, now, zone) or {}
    return {**item, "due": shown.get("due", "–"), "left": shown.get("left", ""),
            "overdue": bool(shown.get("overdue")) and item["state"] == "open",
            "estimate": clockview.span(item["estimate_seconds"]),
            "done": clockview.local(item["done_at"], zone) if item["done_at"] else ""}


def _call_view(call: Dict[str, Any], zone: str) -> Dict[str, Any]:
    return {**call, "starts": clockview.local(call["starts_at"], zone) if call["starts_at"] else "",
            "ends": clockview.local(call["ends_at"], zone) if call["ends_at"] else "",
            "requested": clockview.local(call["requested_at"], zone),
            "minuted": clockview.local(call["minuted_at"], zone) if call["minuted_at"] else "",
            "who": [f"{a['name']} ({a['role']})" if a.get("role") else a["name"] for a in call["attendees"]]}


def context(tx: Tx, ticket_id: str, engineer: bool, zone: str) -> Dict[str, Any]:
    """What _work.html shows: for engineers the work items, the draft and the forms; for both
    sides the calls and the request form."""
    now = clock.now()
    zone = clockview.zone_name(zone)
    panel: Dict[str, Any] = {
        "for_engineer": engineer, "zone": zone, "attendee_rows": list(range(1, ATTENDEE_ROWS + 1)),
        "limit_default": calls.DEFAULT_MINUTES, "limit_max": calls.MAX_MINUTES,
        "max_items": calls.MAX_AGENDA_ITEMS,
        "calls": [_call_view(c, zone) for c in reversed(calls.of_ticket(tx, ticket_id))],
    }
    if engineer:
        running = obligations.running(tx, ticket_id)
        made = workitems.composition(tx, ticket_id)
        panel.update(
            items=[_item_view(i, zone, now) for i in workitems.of_ticket(tx, ticket_id)],
            engineers=[r["name"] for r in tx.all("SELECT name FROM engineers ORDER BY name")],
            can_split=running is not None,
            due_max=local_value(running["due_at"], zone) if running else "",
            due_max_text=clockview.local(running["due_at"], zone) if running else "",
            draft=made["body"], draft_done=len(made["done"]), draft_open=len(made["open"]),
            sessions=[{"id": r["id"], "purpose": r["purpose"]} for r in tx.all(
                "SELECT id, purpose FROM sessions WHERE ticket_id = ? AND state = 'live' AND expires > ? "
                "ORDER BY created", (ticket_id, time.time()))])
    return {"work_panel": panel}


# --- the forms -------------------------------------------------------------------------------------


def _field(form: Any, name: str) -> str:
    return text(form.get(name))[:_FIELD_MAX]


def _minutes_field(value: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise Invalid(f"{what} must be a number of minutes") from None
    if not math.isfinite(number):
        raise Invalid(f"{what} must be a number of minutes")
    return number


def _attendees(form: Any) -> List[Dict[str, str]]:
    rows = []
    for n in range(1, ATTENDEE_ROWS + 1):
        name, email, role = (_field(form, f"{k}{n}").strip() for k in ("attendee_name", "attendee_email",
                                                                       "attendee_role"))
        if name or email or role:
            rows.append({"name": name, "email": email, "role": role})
    return rows


def _limit(form: Any) -> int:
    raw = _field(form, "limit_minutes").strip() or str(calls.DEFAULT_MINUTES)
    if not raw.isdigit() or len(raw) > 6:
        raise Invalid(f"the time limit must be a whole number of minutes, 1-{calls.MAX_MINUTES}")
    return int(raw)


def _request(tx: Tx, ticket_id: str, form_values: Dict[str, Any], engineer: Optional[str], actor: str,
             zone: str, signer: Any, customer: Optional[str]) -> Any:
    ticket = tickets.get_ticket(tx, ticket_id)
    if ticket is None or (customer is not None and ticket["customer"] != customer):
        return None
    earliest = from_local(form_values["earliest"], zone, "the earliest start") \
        if form_values["earliest"].strip() else None
    try:
        call = calls.request(tx, ticket_id, agenda=form_values["agenda"], limit_minutes=form_values["limit"],
                             attendees=form_values["attendees"], engineer=engineer, earliest=earliest,
                             actor=actor, session_id=form_values["session"] if customer is None else None)
    except calls.Refused as refused:
        return refused  # committed with this transaction: the refusal stays recorded
    invites.send(tx, signer, call, actor=actor)
    return call


def _cancel(tx: Tx, ticket_id: str, call_id: str, reason: str, actor: str, signer: Any,
            customer: Optional[str]) -> Optional[Dict[str, Any]]:
    ticket = tickets.get_ticket(tx, ticket_id)
    if ticket is None or (customer is not None and ticket["customer"] != customer):
        return None
    call = calls.cancel(tx, ticket_id, call_id, reason=reason, actor=actor)
    invites.send(tx, signer, call, method="CANCEL", actor=actor)
    return call


def _add_item(tx: Tx, ticket_id: str, title: str, owner: str, estimate_minutes: float, due: str, zone: str,
              actor: str) -> Optional[Dict[str, Any]]:
    if tickets.get_ticket(tx, ticket_id) is None:
        return None
    return workitems.add(tx, ticket_id, title=title, owner=owner, estimate=estimate_minutes * 60.0,
                         due_at=from_local(due, zone, "the due time"), actor=actor)


def _finish(tx: Tx, ticket_id: str, item_id: str, state: str, result: str,
            actor: str) -> Optional[Dict[str, Any]]:
    if tickets.get_ticket(tx, ticket_id) is None:
        return None
    return workitems.update(tx, ticket_id, item_id, state=state, result=result or None, actor=actor)


def _minutes(tx: Tx, ticket_id: str, call_id: str, minutes: str, actor: str) -> Optional[Dict[str, Any]]:
    if tickets.get_ticket(tx, ticket_id) is None:
        return None
    return calls.record_minutes(tx, ticket_id, call_id, minutes=minutes, actor=actor)


def install(router: APIRouter, state: State, settings: WebSettings) -> None:
    async def run(request: Request, work, *args) -> Any:
        """`work` in a write transaction; the support modules' refusals as pages (None: 404)."""
        try:
            return await access.db(state, True, work, *args)
        except Invalid as exc:
            return conversation.invalid(request, str(exc))
        except (workitems.NotFound, calls.NotFound) as exc:
            return render.message(request, 404, "Not found", f"{str(exc)[:200].capitalize()} on this ticket.")
        except (workitems.Conflict, calls.Conflict) as exc:
            return render.message(request, 409, "Not done", f"{str(exc)[:300]}.")

    def answer(request: Request, done: Any, back_to: str) -> Response:
        if isinstance(done, Response):
            return done
        if done is None:
            return conversation.no_ticket(request)
        if isinstance(done, calls.Refused):
            return render.message(request, 422, "Call refused", f"{done.reason}. The refusal is recorded on "
                                  "the ticket; go back and change the request.")
        return render.secure(RedirectResponse(back_to, status_code=303))

    @router.post("/tickets/{ticket_id}/work-items")
    async def add_item(request: Request, ticket_id: str) -> Response:
        posted = await access.engineer_form(request, state, settings)
        if isinstance(posted, Response):
            return posted
        engineer, form = posted
        try:
            estimate = _minutes_field(_field(form, "estimate_minutes"), "the estimate")
        except Invalid as exc:
            return conversation.invalid(request, str(exc))
        done = await run(request, _add_item, ticket_id, _field(form, "title"), _field(form, "owner"),
                         estimate, _field(form, "due"), clockview.viewer_zone(request), engineer.actor)
        return answer(request, done, urls.ticket(ticket_id) + "#work")

    @router.post("/tickets/{ticket_id}/work-items/{item_id}")
    async def finish_item(request: Request, ticket_id: str, item_id: str) -> Response:
        posted = await access.engineer_form(request, state, settings)
        if isinstance(posted, Response):
            return posted
        engineer, form = posted
        wanted = _field(form, "state")
        if wanted not in workitems.FINISHED:
            return conversation.invalid(request, "The state is done or cancelled")
        done = await run(request, _finish, ticket_id, item_id, wanted, _field(form, "result"), engineer.actor)
        return answer(request, done, urls.ticket(ticket_id) + "#work")

    def call_values(form: Any) -> Dict[str, Any]:
        return {"agenda": _field(form, "agenda"), "limit": _limit(form), "attendees": _attendees(form),
                "earliest": _field(form, "earliest"), "session": _field(form, "session_id").strip() or None}

    @router.post("/tickets/{ticket_id}/calls")
    async def request_call(request: Request, ticket_id: str) -> Response:
        posted = await access.engineer_form(request, state, settings)
        if isinstance(posted, Response):
            return posted
        engineer, form = posted
        try:
            values = call_values(form)
        except Invalid as exc:
            return conversation.invalid(request, str(exc))
        chosen = _field(form, "engineer").strip() or engineer.name
        done = await run(request, _request, ticket_id, values, chosen, engineer.actor,
                         clockview.viewer_zone(request), signer_of(state), None)
        return answer(request, done, urls.ticket(ticket_id) + "#calls")

    @router.post("/tickets/{ticket_id}/calls/{call_id}/minutes")
    async def minutes(request: Request, ticket_id: str, call_id: str) -> Response:
        posted = await access.engineer_form(request, state, settings)
        if isinstance(posted, Response):
            return posted
        engineer, form = posted
        done = await run(request, _minutes, ticket_id, call_id, _field(form, "minutes"), engineer.actor)
        return answer(request, done, urls.ticket(ticket_id) + "#calls")

    @router.post("/tickets/{ticket_id}/calls/{call_id}/cancel")
    async def cancel(request: Request, ticket_id: str, call_id: str) -> Response:
        posted = await access.engineer_form(request, state, settings)
        if isinstance(posted, Response):
            return posted
        engineer, form = posted
        done = await run(request, _cancel, ticket_id, call_id, _field(form, "reason"), engineer.actor,
                         signer_of(state), None)
        return answer(request, done, urls.ticket(ticket_id) + "#calls")

    def not_theirs(request: Request) -> Response:
        return render.message(request, 404, "No such ticket", "There is no ticket with this id among yours.")

    @router.post("/customer/tickets/{ticket_id}/calls")
    async def customer_request(request: Request, ticket_id: str) -> Response:
        posted = await access.customer_form(request, state, settings)
        if isinstance(posted, Response):
            return posted
        person, form = posted
        try:
            values = call_values(form)
        except Invalid as exc:
            return conversation.invalid(request, str(exc))
        done = await run(request, _request, ticket_id, values, None, person.actor,
                         clockview.viewer_zone(request), signer_of(state), person.customer)
        if done is None:
            return not_theirs(request)
        return answer(request, done, urls.customer_ticket(ticket_id) + "#calls")

    @router.post("/customer/tickets/{ticket_id}/calls/{call_id}/cancel")
    async def customer_cancel(request: Request, ticket_id: str, call_id: str) -> Response:
        posted = await access.customer_form(request, state, settings)
        if isinstance(posted, Response):
            return posted
        person, form = posted
        done = await run(request, _cancel, ticket_id, call_id, _field(form, "reason"), person.actor,
                         signer_of(state), person.customer)
        if done is None:
            return not_theirs(request)
        return answer(request, done, urls.customer_ticket(ticket_id) + "#calls")
