"""The ticket list (`/`) and a ticket's page (`/tickets/{id}`).

The list is one query per page (support/tickets.ticket_page). A ticket's page shows its
bundles (with links to each report, and to the diff with the host's previous accepted
bundle), the hosts enrolled through it, its remote sessions (with links to each replay)
and its audit timeline. Every value that came from a customer is only ever escaped.
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
from server.support import tickets
from server.web import access, render
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
        listed = await access.db(state, False, tickets.ticket_page, (number - 1) * PER_PAGE, PER_PAGE)
        pages = max(1, -(-listed["total"] // PER_PAGE))
        return render.page(request, "tickets.html", title="Tickets", tickets=listed["tickets"],
                           total=listed["total"], page_number=number, pages=pages)

    @router.get("/tickets/{ticket_id}")
    async def ticket_page(request: Request, ticket_id: str) -> Response:
        who = await access.signed_in(request, state, settings)
        if isinstance(who, Response):
            return who
        shown = await access.db(state, False, _ticket, ticket_id)
        if shown is None:
            return render.message(request, 404, "No such ticket",
                                  "There is no ticket with this id. Go back to the ticket list.")
        return render.page(request, "ticket.html", title=f"Ticket {shown['ticket']['id']}", **shown)


def _page_number(text: Optional[str]) -> int:
    if text and text.isdigit() and len(text) < 7:
        return max(1, int(text))
    return 1


def _ticket(tx: Tx, ticket_id: str) -> Optional[Dict[str, Any]]:
    ticket = tickets.get_ticket(tx, ticket_id)
    if ticket is None:
        return None
    listed = bundle_records.list_bundles(tx, ticket_id)
    return {
        "ticket": ticket,
        "bundles": _with_previous(listed),
        "hosts": tickets.ticket_hosts(tx, ticket_id),
        "sessions": list(reversed(session_records.list_for_ticket(tx, ticket_id))),
        "timeline": [dict(e, detail=_detail(e["detail"])) for e in audit.entries(tx, ticket_id, TIMELINE)],
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
