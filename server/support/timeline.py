"""A ticket's timeline: its messages, bundles (with their headline findings), remote sessions
and the reply clock's events, oldest first, as the API's timeline route and the web pages
show it. A customer's view leaves out internal notes and the clock's warnings.
"""

from __future__ import annotations

import calendar
import time
from typing import Any, Dict, List, Tuple

from server.gateway import records as session_records
from server.intake import bundles, reports
from server.storage.db import Tx
from server.support import breaches, calls, messages, obligations, promises, workitems
from server.support.tickets import iso


def ticket_timeline(tx: Tx, ticket_id: str, engineer: bool) -> List[Dict[str, Any]]:
    """Everything that happened on the ticket, oldest first (a customer's view without internal
    notes and clock warnings); ties keep messages before the clock events they caused."""
    entries: List[Tuple[float, int, Dict[str, Any]]] = []
    rows = tx.all("SELECT id, at FROM messages WHERE ticket_id = ?", (ticket_id,))
    times = {r["id"]: r["at"] for r in rows}
    for m in messages.messages_of(tx, ticket_id, include_internal=engineer):
        entries.append((times[m["id"]], 0, {"at": m["at"], "type": "message", "message": m}))
    found = bundles.list_bundles(tx, ticket_id)
    known = reports.summaries(tx, [b["id"] for b in found])
    for b in found:
        summary = known.get(b["id"], {"report": None, "headline": None})
        entries.append((_epoch(b["received"]), 1, {"at": b["received"], "type": "bundle", "bundle": {
            "id": b["id"], "filename": b["filename"], "status": b["status"], "host": b["host"], **summary}}))
    for s in session_records.list_for_ticket(tx, ticket_id):
        entries.append((_epoch(s["created"]), 2, {"at": s["created"], "type": "session", "session": {
            k: s[k] for k in ("id", "engineer", "purpose", "state", "expires", "ended")}}))
    for ob in obligations.of_ticket(tx, ticket_id):
        entries.append((ob["started"], 3, _clock(ob["started"], ob["id"], "due", ob["due_at"])))
        if ob["met_at"] is not None:
            entries.append((ob["met_at"], 3, _clock(ob["met_at"], ob["id"], "met", ob["due_at"])))
    for ev in breaches.events_of(tx, ticket_id):
        if engineer or ev["kind"] == "breach":
            entries.append((ev["recorded_at"], 4, _clock(ev["recorded_at"], ev["obligation_id"], ev["kind"],
                                                          ev["due"])))
    for order, source in ((5, promises), (6, workitems), (7, calls)):
        entries.extend((at, order, entry) for at, entry in source.timeline_entries(tx, ticket_id, engineer))
    return [entry for _, _, entry in sorted(entries, key=lambda e: (e[0], e[1]))]


def _clock(at: float, obligation_id: str, kind: str, due: float) -> Dict[str, Any]:
    return {"at": iso(at), "type": "clock", "clock": {"obligation": obligation_id, "kind": kind,
                                                      "due_at": iso(due)}}


def _epoch(text: str) -> float:
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
