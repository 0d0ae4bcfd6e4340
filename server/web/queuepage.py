"""The engineer's queue page (`/queue`): the next task with a Take button, the tasks the engineer
holds with when each slice ends (Release, Done, Waiting on…), the slack alarms, the whole queue
ranked with due times (local, clockview) and slack, and the waiting tasks (Resume).

The queue's rules are support/queue.py's, the same the API's queue routes serve. Every POST
checks the session's CSRF token and answers 303 back to the page; an id that is no task 404,
a step the task's state refuses (held by another, waiting, pinned to another) 409, an invalid
form 400 with the reason, never a 500. Ticket titles and notes came from people: only escaped.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from server.storage.db import Tx
from server.storage.state import State
from server.support import clock, queue, tasks
from server.support.tickets import Invalid
from server.web import access, clockview, render, urls
from server.web.access import text
from server.web.settings import WebSettings

KIND_LABELS = {"first": "first reply", "next": "next reply", "work_item": "work item"}
WAIT_LABELS = {"customer": "the customer", "upload": "a bundle upload", "reproduction": "a reproduction run",
               "vendor": "a vendor"}
STEPS = ("take", "release", "done", "wait", "resume")
#: The ranked queue shows at most this many tasks (the soonest due).
SHOWN_MAX = 300


def _slack(seconds: float) -> Dict[str, Any]:
    if seconds < 0:
        return {"text": f"short by {clockview.span(-seconds)}", "bad": True}
    return {"text": clockview.span(seconds), "bad": False}


def _titles(tx: Tx, ticket_ids: List[str]) -> Dict[str, str]:
    unique = sorted(set(ticket_ids))
    found: Dict[str, str] = {}
    for start in range(0, len(unique), 500):
        chunk = unique[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in tx.all(f"SELECT id, title FROM tickets WHERE id IN ({marks})", chunk):
            found[row["id"]] = row["title"]
    return found


def _task(shown: Dict[str, Any], titles: Dict[str, str], now: float, zone: str) -> Dict[str, Any]:
    due = clockview.moment(shown["due_at"])
    return dict(shown, title=titles.get(shown["ticket_id"], ""), kind_label=KIND_LABELS.get(shown["kind"],
                shown["kind"]), due=clockview.deadline(due.timestamp() if due else None, now, zone),
                slack=_slack(shown["slack_seconds"]), effort=clockview.span(shown["effort_seconds"]))


def context(tx: Tx, engineer: str, zone: str) -> Dict[str, Any]:
    """What queue.html shows to `engineer`."""
    now = clock.now()
    found = queue.ranked(tx, engineer, now)
    listed = found["tasks"][:SHOWN_MAX]
    ids = [t["ticket_id"] for t in listed] + [h["ticket_id"] for h in found["holds"]] + \
        [w["ticket_id"] for w in found["waiting"]] + ([found["next"]["ticket_id"]] if found["next"] else [])
    titles = _titles(tx, ids)
    holds = []
    for hold in found["holds"]:
        ends = clockview.moment(hold["slice_ends"])
        left = (ends.timestamp() - now) if ends else 0.0
        holds.append(dict(hold, title=titles.get(hold["ticket_id"], ""),
                          ends=clockview.local(hold["slice_ends"], zone),
                          left=clockview.span(max(0.0, left))))
    return {
        "next": _task(found["next"], titles, now, zone) if found["next"] else None,
        "holds": holds,
        "tasks": [_task(t, titles, now, zone) for t in listed],
        "total": len(found["tasks"]),
        "waiting": [dict(w, title=titles.get(w["ticket_id"], ""),
                         since_local=clockview.local(w["since"], zone),
                         on_label=WAIT_LABELS.get(w["waiting_on"], w["waiting_on"]))
                    for w in found["waiting"]],
        "alarms": [dict(a, at_local=clockview.local(a["at"], zone)) for a in queue.alarms_for(tx, engineer)],
        "wait_labels": WAIT_LABELS,
    }


def _step(tx: Tx, step: str, engineer: str, actor: str, task_id: str, on: str, note: str) -> Any:
    now = clock.now()
    if step == "take":
        return queue.take(tx, engineer, task_id, now)
    if step in ("release", "done"):
        return queue.release(tx, engineer, task_id, now, "done" if step == "done" else "released")
    if step == "wait":
        return queue.wait(tx, engineer, task_id, on, note, now)
    return queue.resume(tx, task_id, actor, now)


def install(router: APIRouter, state: State, settings: WebSettings) -> None:
    @router.get(urls.QUEUE)
    async def queue_page(request: Request) -> Response:
        engineer = await access.signed_in(request, state, settings)
        if isinstance(engineer, Response):
            return engineer
        zone = clockview.viewer_zone(request)
        shown = await access.db(state, False, context, engineer.name, zone)
        return render.page(request, "queue.html", title="Your queue", **shown)

    @router.post("/queue/tasks/{task_id}/{step}")
    async def queue_step(request: Request, task_id: str, step: str) -> Response:
        posted = await access.engineer_form(request, state, settings)
        if isinstance(posted, Response):
            return posted
        engineer, form = posted
        if step not in STEPS:
            return render.message(request, 404, "No such step", "The queue's steps are take, release, done, "
                                  "wait and resume. Go back to the queue.")
        on = text(form.get("on"))
        if step == "wait" and on not in WAIT_LABELS:
            return _refused(request, 400, "Not saved", f"Choose what the task waits on: "
                            f"{', '.join(WAIT_LABELS)}")
        try:
            await access.db(state, True, _step, step, engineer.name, engineer.actor, task_id, on,
                            text(form.get("note")))
        except tasks.NotFound as exc:
            return _refused(request, 404, "No such task", str(exc))
        except (queue.Busy, queue.Conflict) as exc:
            return _refused(request, 409, "Not done", str(exc))
        except Invalid as exc:
            return _refused(request, 400, "Not saved", str(exc))
        return render.secure(RedirectResponse(urls.QUEUE, status_code=303))


def _refused(request: Request, status: int, title: str, why: Optional[str]) -> Response:
    return render.message(request, status, title, f"{(why or '')[:300]}. Go back to the queue.")
