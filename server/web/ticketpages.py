"""The ticket list (`/`) and a ticket's page (`/tickets/{id}`).

The list is one query per page (`LIST_SQL`): tickets with an open reply obligation first,
the one due soonest on top (the longest waiting on a tie), then the rest newest first. A
ticket's page starts with its conversation (conversation.py: the timeline, the next
deadline's clock, the reply form), then shows its bundles (with links to each report, and
to the diff with the host's previous accepted bundle), the hosts enrolled through it, its
remote sessions (with links to each replay) and its audit timeline. Every value that came
from a customer is only ever escaped.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.gateway import records as session_records
from server.intake import bundles as bundle_records
from server.storage import audit
from server.storage.db import Tx
from server.storage.state import State
from server.support import clock, tickets
from server.web import access, clockview, conversation, promisepanel, render, workpanel
from server.web.settings import WebSettings

PER_PAGE = 50
#: The audit timeline shows this many of the ticket's newest entries.
TIMELINE = 500


def install(router: APIRouter, state: State, settings: WebSettings) -> None:
    @router.get("/")
    async def ticket_list(request: Request) -> Response:
        who = await access.signed_in(request, state, settings)
        if isinstance(who, Response):
            return who
        number = _page_number(request.query_params.get("page"))
        zone = clockview.viewer_zone(request)
        listed = await access.db(state, False, deadline_page, (number - 1) * PER_PAGE, PER_PAGE, zone)
        pages = max(1, -(-listed["total"] // PER_PAGE))
        return render.page(request, "tickets.html", title="Tickets", tickets=listed["tickets"],
                           total=listed["total"], page_number=number, pages=pages,
                           any_due=listed["any_due"])

    @router.get("/tickets/{ticket_id}")
    async def ticket_page(request: Request, ticket_id: str) -> Response:
        who = await access.signed_in(request, state, settings)
        if isinstance(who, Response):
            return who
        zone = clockview.viewer_zone(request)
        shown = await access.db(state, False, _ticket, ticket_id, zone)
        if shown is None:
            return render.message(request, 404, "No such ticket",
                                  "There is no ticket with this id. Go back to the ticket list.")
        return render.page(request, "ticket.html", title=f"Ticket {shown['ticket']['id']}",
                           **conversation.context(), **shown)


def _page_number(text: Optional[str]) -> int:
    if text and text.isdigit() and len(text) < 7:
        return max(1, int(text))
    return 1


#: The list's one query (its parameters: offset + limit twice, then LIMIT, OFFSET). Two walks
#: over indexes, each cut at the page's end: the open obligations by due time
#: (obligations_due; on one due time, the one waiting longest first), then the tickets
#: without one, newest first (tickets_created, with a probe of obligations_ticket each);
#: only the page's rows get their bundle figures (as support/tickets.TICKET_PAGE_SQL explains).
LIST_SQL = (
    "SELECT p.id, p.customer, p.title, p.created, p.next_due, p.since, p.later, "
    "(SELECT COUNT(*) FROM bundles b WHERE b.ticket_id = p.id) AS bundles, "
    "(SELECT MAX(b.received) FROM bundles b WHERE b.ticket_id = p.id) AS last_bundle, "
    "(SELECT COUNT(*) FROM tickets) AS total FROM ("
    "SELECT * FROM (SELECT t.id, t.customer, t.title, t.created, o.due_at AS next_due, o.started AS since, "
    "0 AS later FROM obligations o JOIN tickets t ON t.id = o.ticket_id WHERE o.state = 'open' "
    "ORDER BY o.due_at, o.started, t.id LIMIT ?) due "
    "UNION ALL "
    "SELECT * FROM (SELECT t.id, t.customer, t.title, t.created, "
    "CAST(NULL AS DOUBLE PRECISION) AS next_due, CAST(NULL AS DOUBLE PRECISION) AS since, 1 AS later "
    "FROM tickets t WHERE NOT EXISTS (SELECT 1 FROM obligations o WHERE o.ticket_id = t.id "
    "AND o.state = 'open') ORDER BY t.created DESC, t.id DESC LIMIT ?) rest "
    "ORDER BY later, next_due, since, created DESC, id DESC LIMIT ? OFFSET ?) p")


def deadline_page(tx: Tx, offset: int, limit: int, zone: str) -> Dict[str, Any]:
    """One page of the list by next deadline, each ticket with its due time and time left."""
    rows = tx.all(LIST_SQL, (offset + limit, offset + limit, limit, offset))
    rows.sort(key=lambda r: (r["created"], r["id"]), reverse=True)
    rows.sort(key=lambda r: (r["later"], r["next_due"] or 0.0, r["since"] or 0.0))
    if rows:
        total = int(rows[0]["total"])
    else:
        total = int((tx.one("SELECT COUNT(*) AS n FROM tickets") or {"n": 0})["n"])
    now = clock.now()
    shown = ("id", "customer", "title", "created", "bundles", "last_bundle")
    return {"tickets": [dict({k: r[k] for k in shown}, due=clockview.deadline(r["next_due"], now, zone))
                        for r in rows], "total": total, "any_due": any(r["later"] == 0 for r in rows)}


def _ticket(tx: Tx, ticket_id: str, zone: str) -> Optional[Dict[str, Any]]:
    ticket = tickets.get_ticket(tx, ticket_id)
    if ticket is None:
        return None
    listed = bundle_records.list_bundles(tx, ticket_id)
    return {
        "ticket": ticket,
        "conversation": conversation.timeline(tx, ticket_id, True),
        "deadline": conversation.next_deadline(tx, ticket_id, zone),
        "bundles": _with_previous(listed),
        "hosts": tickets.ticket_hosts(tx, ticket_id),
        "sessions": list(reversed(session_records.list_for_ticket(tx, ticket_id))),
        "timeline": [dict(e, detail=_detail(e["detail"])) for e in audit.entries(tx, ticket_id, TIMELINE)],
        **promisepanel.context(tx, ticket_id, True, zone),
        **workpanel.context(tx, ticket_id, True, zone),
    }


def _with_previous(listed: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The bundles newest first, each accepted one with `previous`: the id of the same host's
    accepted bundle before it (what "compare with previous" diffs against), or None."""
    last: Dict[str, str] = {}
    out = []
    for bundle in listed:
        previous = None
        if bundle["status"] == "accepted" and bundle["host"]:
            previous = last.get(bundle["host"])
            last[bundle["host"]] = bundle["id"]
        out.append(dict(bundle, previous=previous))
    return list(reversed(out))


def _detail(detail: Any) -> str:
    """An audit entry's detail as one line of `key=value` text (escaped where it is shown)."""
    if not isinstance(detail, dict):
        return str(detail)
    return ", ".join(f"{key}={value}" for key, value in sorted(detail.items()))
