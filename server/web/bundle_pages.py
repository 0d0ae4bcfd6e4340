"""A bundle's report page and the diff of two bundles of one ticket, for engineers.

The report page shows the fragment the verifier rendered when the bundle was accepted
(server/intake/reports.py; a bundle accepted before reports existed is rendered on its
first view). The fragment is report/html.py's output, which escapes every value that came
from the bundle; it is the one piece of HTML a page takes as is. The diff reads both
bundles and renders report/diff.py's comparison; bundles of two different hosts are not
compared (400: the differences would not be changes of one server). A bundle of another
ticket answers 404, exactly like one that does not exist.

`router(state)` is what server/api/app.py includes: these pages and the replay page
(replay.py), hidden from the OpenAPI document.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from fastapi.routing import APIRoute
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from report import html
from report.diff import diff
from report.engine import Report, evaluate
from report.model import Bundle
from server.intake import bundles, reports
from server.intake.checks import one_line
from server.storage.db import Tx
from server.storage.state import State
from server.support import tickets
from server.web import access, render, replay, urls
from server.web.settings import WebSettings

#: The report's own stylesheet (shared with `mydiag report --html`), served at /static/report.css.
REPORT_CSS: Path = html.STYLESHEET


def router(state: State) -> APIRouter:
    """The bundle report, diff and replay pages of `state`'s server."""
    # The plain route class (the app's default is the API's strict JSON one).
    pages = APIRouter(include_in_schema=False, route_class=APIRoute)
    settings = WebSettings.from_environment()
    install(pages, state, settings)
    replay.install(pages, state, settings)
    return pages


Found = Tuple[Optional[Dict[str, Any]], List[Optional[Dict[str, Any]]]]


def _find(tx: Tx, ticket_id: str, bundle_ids: List[str]) -> Found:
    """(the ticket, each of `bundle_ids` if it is a bundle of that ticket, else None)."""
    ticket = tickets.get_ticket(tx, ticket_id)
    found: List[Optional[Dict[str, Any]]] = []
    for bundle_id in bundle_ids:
        bundle = bundles.get_bundle(tx, bundle_id) if ticket else None
        found.append(bundle if bundle is not None and bundle["ticket"] == ticket_id else None)
    return ticket, found


def _same_host(tx: Tx, ticket_id: str, bundle: Dict[str, Any]) -> List[Tuple[Dict[str, Any], bool]]:
    """The ticket's other accepted bundles of the same host, to compare with, each with
    whether it came before `bundle` (the list is in the order received)."""
    found, before = [], True
    for other in bundles.list_bundles(tx, ticket_id):
        if other["id"] == bundle["id"]:
            before = False
        elif other["status"] == "accepted" and other["host"] == bundle["host"]:
            found.append((other, before))
    return found


def _report_fragment(state: State, bundle_id: str) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """(the report row, its HTML fragment); rendered now when missing (or its blob is gone)."""
    row = reports.ensure(state, bundle_id)
    if row is None:
        return None, None
    html = reports.fragment(state, row)
    if html is None and row["state"] == reports.RENDERED:
        row = reports.render(state, bundle_id)
        html = reports.fragment(state, row)
    return row, html


def _stored_report(state: State, bundle_id: str, bundle: Bundle) -> Report:
    row = reports.ensure(state, bundle_id)
    if row is not None and row["state"] == reports.RENDERED and row["report_json"]:
        try:
            return Report.from_dict(json.loads(row["report_json"]))
        except (ValueError, TypeError, KeyError):
            pass
    return evaluate(bundle)


def _diff_fragment(state: State, before: Dict[str, Any], after: Dict[str, Any]) -> str:
    a = reports.read_bundle(state, before["sha256"], before["filename"])
    b = reports.read_bundle(state, after["sha256"], after["filename"])
    compared = diff(a, b, _stored_report(state, before["id"], a), _stored_report(state, after["id"], b))
    return html.render_diff(compared, standalone=False)


def install(router: APIRouter, state: State, settings: WebSettings) -> None:
    def no_ticket(request: Request) -> Response:
        return render.message(request, 404, "No such ticket", "There is no ticket with this id.")

    def no_bundle(request: Request) -> Response:
        return render.message(request, 404, "No such bundle", "This ticket has no bundle with this id.")

    @router.get("/tickets/{ticket_id}/bundles/{bundle_id}/report")
    async def report_page(request: Request, ticket_id: str, bundle_id: str) -> Response:
        engineer = await access.signed_in(request, state, settings)
        if isinstance(engineer, Response):
            return engineer
        ticket, (bundle,) = await access.db(state, False, _find, ticket_id, [bundle_id])
        if ticket is None:
            return no_ticket(request)
        if bundle is None:
            return no_bundle(request)
        if bundle["status"] != "accepted":
            why = f" ({bundle['reason']})" if bundle["reason"] else ""
            text = (f"This bundle is quarantined{why}: it has no report." if bundle["status"] == "quarantined"
                    else "This bundle is not verified yet; its report is rendered once it is accepted.")
            return render.message(request, 409, "No report for this bundle", text)
        row, fragment = await run_in_threadpool(_report_fragment, state, bundle_id)
        others = await access.db(state, False, _same_host, ticket_id, bundle)
        compare = [{"bundle": other, "url": urls.diff(ticket_id, *((other["id"], bundle["id"]) if earlier
                                                                  else (bundle["id"], other["id"])))}
                   for other, earlier in others]
        return render.page(
            request, "report.html", title=f"Report: {bundle['host'] or bundle['filename']}", ticket=ticket,
            bundle=bundle, report_state=row["state"] if row else None, error=row["error"] if row else None,
            # report/html.py escaped every value from the bundle: the fragment is taken as is.
            fragment=Markup(fragment) if fragment is not None else None, compare=compare,
            ticket_url=urls.ticket(ticket_id))

    @router.get("/tickets/{ticket_id}/diff")
    async def diff_page(request: Request, ticket_id: str, a: Optional[str] = None,
                        b: Optional[str] = None) -> Response:
        engineer = await access.signed_in(request, state, settings)
        if isinstance(engineer, Response):
            return engineer
        if not a or not b:
            return render.message(request, 400, "Two bundles are needed",
                                  "A diff compares two bundles of this ticket: give both (?a=…&b=…).")
        ticket, (before, after) = await access.db(state, False, _find, ticket_id, [a[:100], b[:100]])
        if ticket is None:
            return no_ticket(request)
        if before is None or after is None:
            return no_bundle(request)
        if before["id"] == after["id"]:
            return render.message(request, 400, "The same bundle twice",
                                  "A diff compares two different bundles: pick another one.")
        for side in (before, after):
            if side["status"] != "accepted":
                return render.message(request, 409, "Bundle not accepted",
                                      f"Bundle {side['id']} is {side['status']}: only accepted bundles "
                                      "are compared.")
        if (before["host"] or "") != (after["host"] or ""):
            return render.message(
                request, 400, "Bundles of different hosts",
                f"These bundles come from two different hosts ({before['host'] or 'unknown'} and "
                f"{after['host'] or 'unknown'}): a diff compares two bundles of one host.")
        try:
            fragment = await run_in_threadpool(_diff_fragment, state, before, after)
        except Exception as exc:  # noqa: BLE001 - a bundle the report cannot read: say so, no 500
            return render.message(request, 422, "Cannot compare these bundles",
                                  one_line(f"{type(exc).__name__}: {exc}", 300))
        return render.page(
            request, "diff.html", title=f"Diff: {before['host'] or 'bundles'}", ticket=ticket, before=before,
            after=after, fragment=Markup(fragment), ticket_url=urls.ticket(ticket_id),
            before_url=urls.bundle_report(ticket_id, before["id"]),
            after_url=urls.bundle_report(ticket_id, after["id"]),
            swapped_url=urls.diff(ticket_id, after["id"], before["id"]))

    @router.get("/static/report.css")
    async def report_css() -> Response:
        return render.secure(FileResponse(REPORT_CSS, media_type="text/css"), private=False)

