"""Fan-out under a simulated clock on real databases (SQLite and PostgreSQL): work items inside the
running obligation's promise, in their owners' queues, finished once, composed into the reply."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from server.storage import audit
from server.storage.db import open_database
from server.support import clock, messages, policies, tickets, workitems
from server.support.tickets import Invalid

pytestmark = pytest.mark.server

H = 3600.0


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


@pytest.fixture
def db(tmp_path, own_backend):
    policies.configure(None)  # the default: 4 h first reply, Monday to Friday 09:00-17:00 UTC
    clock.set_now(epoch("2026-01-05T09:00"))  # a Monday
    database = open_database(own_backend or f"sqlite:///{tmp_path / 'server.db'}")
    with database.tx() as tx:
        for name in ("ann", "bob"):
            tickets.add_engineer(tx, name, "test")
    yield database
    database.close()
    clock.reset()


def asked(db, customer: str = "acme") -> str:
    """A ticket whose customer asked something: a first reply is owed by 13:00."""
    with db.tx() as tx:
        ticket = tickets.create_ticket(tx, customer, "replication lag", [], "engineer:ann", 30)
        messages.add_message(tx, ticket["id"], author="token:x", author_kind="customer", kind="needs_reply",
                             body="the replica is 2 h behind", source="api")
    return ticket["id"]


def add(db, ticket_id: str, **values):
    fields = {"title": "check the relay log", "owner": "ann", "estimate": H,
              "due_at": epoch("2026-01-05T12:00"), "actor": "engineer:ann", **values}
    with db.tx() as tx:
        return workitems.add(tx, ticket_id, **fields)


def test_one_reply_fans_out_to_two_engineers_queues_inside_the_promise(db):
    ticket_id = asked(db)
    first = add(db, ticket_id, title="read the relay log", owner="ann")
    second = add(db, ticket_id, title="check the disk latency", owner="bob", estimate=1800,
                 due_at=epoch("2026-01-05T13:00"))
    assert first["state"] == second["state"] == "open"
    assert first["obligation_id"] == second["obligation_id"] and first["obligation_id"].startswith("ob-")
    assert first["due_at"] == "2026-01-05T12:00:00Z" and first["estimate_seconds"] == H
    with db.tx(write=False) as tx:
        queue = workitems.open_items(tx)
        actions = [e["action"] for e in audit.entries(tx, ticket_id)]
    assert {(q["id"], q["owner"]) for q in queue} == {(first["id"], "ann"), (second["id"], "bob")}
    assert set(queue[0]) >= {"id", "ticket_id", "obligation_id", "owner", "estimate", "due_at", "created_at"}
    assert queue[0]["due_at"] == epoch("2026-01-05T12:00")  # epoch seconds for the planner
    assert actions.count("work_item.add") == 2


def test_a_due_time_outside_the_promise_is_refused_with_its_bounds(db):
    ticket_id = asked(db)
    for due in (epoch("2026-01-05T08:00"), epoch("2026-01-05T09:00"), epoch("2026-01-05T13:00:01"),
                math.nan, math.inf, "tomorrow", True):
        with pytest.raises(Invalid, match="inside the promise"):
            add(db, ticket_id, due_at=due)
    assert add(db, ticket_id, due_at=epoch("2026-01-05T13:00"))["due_at"] == "2026-01-05T13:00:00Z"


def test_no_reply_owed_means_nothing_to_split(db):
    with db.tx() as tx:
        ticket = tickets.create_ticket(tx, "acme", "quiet", [], "engineer:ann", 30)
    with pytest.raises(workitems.Conflict, match="no reply is owed"):
        add(db, ticket["id"])


@pytest.mark.parametrize("own_backend", ["sqlite"], indirect=True)  # checked before any SQL
@pytest.mark.parametrize("values, what", [
    ({"owner": "mallory"}, "engineer account"), ({"owner": ""}, "engineer account"),
    ({"owner": "x" * 5000}, "engineer account"),
    ({"estimate": 0}, "estimate"), ({"estimate": -5}, "estimate"), ({"estimate": 31 * 86400}, "estimate"),
    ({"estimate": math.nan}, "estimate"), ({"estimate": "1h"}, "estimate"),
    ({"title": ""}, "title"), ({"title": "a\r\nb"}, "title"), ({"title": "bell\x07"}, "title"),
    ({"title": "rtl\u202e"}, "title"), ({"title": "x" * 201}, "title"),
])
def test_hostile_values_are_refused_and_nothing_is_stored(db, values, what):
    ticket_id = asked(db)
    with pytest.raises(Invalid, match=what):
        add(db, ticket_id, **values)
    with db.tx(write=False) as tx:
        assert workitems.of_ticket(tx, ticket_id) == []


def test_markup_in_a_title_is_kept_as_text(db):
    ticket_id = asked(db)
    item = add(db, ticket_id, title="<script>alert(1)</script>")
    assert item["title"] == "<script>alert(1)</script>"


def test_done_needs_a_result_and_a_finished_item_is_never_changed(db):
    ticket_id = asked(db)
    item = add(db, ticket_id)
    with db.tx() as tx:
        with pytest.raises(Invalid, match="result"):
            workitems.update(tx, ticket_id, item["id"], state="done", actor="engineer:ann")
        with pytest.raises(Invalid, match="state"):
            workitems.update(tx, ticket_id, item["id"], state="open", actor="engineer:ann")
    clock.set_now(epoch("2026-01-05T10:00"))
    with db.tx() as tx:
        done = workitems.update(tx, ticket_id, item["id"], state="done",
                                result="relay log is fine\r\nsee below", actor="engineer:ann")
    assert done["state"] == "done" and done["done_at"] == "2026-01-05T10:00:00Z"
    assert done["result"] == "relay log is fine\nsee below"
    with db.tx() as tx:
        with pytest.raises(workitems.Conflict, match="already done"):
            workitems.update(tx, ticket_id, item["id"], state="cancelled", actor="engineer:bob")
        assert workitems.open_items(tx) == []
        assert "work_item.done" in [e["action"] for e in audit.entries(tx, ticket_id)]


def test_another_tickets_item_is_not_found(db):
    mine, theirs = asked(db, "acme"), asked(db, "globex")
    item = add(db, theirs)
    with db.tx() as tx:
        for forged in (item["id"], "wi-0000000000000000", "../etc", "x" * 10000):
            with pytest.raises(workitems.NotFound):
                workitems.update(tx, mine, forged, state="cancelled", actor="engineer:ann")


def test_the_reply_is_composed_from_the_done_items_in_the_order_they_were_added(db):
    ticket_id = asked(db)
    a = add(db, ticket_id, title="Relay log")
    clock.set_now(epoch("2026-01-05T09:01"))
    b = add(db, ticket_id, title="Disk latency", owner="bob")
    clock.set_now(epoch("2026-01-05T09:02"))
    c = add(db, ticket_id, title="Cancelled idea")
    with db.tx() as tx:
        workitems.update(tx, ticket_id, b["id"], state="done", result="p99 write 40 ms", actor="engineer:bob")
        workitems.update(tx, ticket_id, c["id"], state="cancelled", actor="engineer:ann")
        assert workitems.compose_reply(tx, ticket_id) == "Disk latency:\np99 write 40 ms"
        workitems.update(tx, ticket_id, a["id"], state="done", result="no gaps", actor="engineer:ann")
        body = workitems.compose_reply(tx, ticket_id)
        made = workitems.composition(tx, ticket_id)
    assert body == "Relay log:\nno gaps\n\nDisk latency:\np99 write 40 ms"
    assert made["done"] == [a["id"], b["id"]] and made["open"] == []


def test_a_met_obligation_takes_its_open_items_out_of_the_queues(db):
    ticket_id = asked(db)
    add(db, ticket_id)
    with db.tx() as tx:
        messages.add_message(tx, ticket_id, author="engineer:ann", author_kind="engineer", kind="reply",
                             body="answered", source="api", delivery="delivered")
        assert workitems.open_items(tx) == []
        assert workitems.of_ticket(tx, ticket_id)[0]["state"] == "open"


def test_the_timeline_shows_work_items_to_engineers_only(db):
    ticket_id = asked(db)
    item = add(db, ticket_id)
    with db.tx() as tx:
        workitems.update(tx, ticket_id, item["id"], state="done", result="ok", actor="engineer:ann")
        seen = workitems.timeline_entries(tx, ticket_id, True)
        assert workitems.timeline_entries(tx, ticket_id, False) == []
    assert [e["work_item"]["event"] for _, e in seen] == ["added", "done"]
    assert all(e["type"] == "work_item" for _, e in seen)


def test_each_item_is_next_in_its_owners_queue(db):
    from server.support import queue

    ticket_id = asked(db)
    ann = add(db, ticket_id, owner="ann", estimate=1800, due_at=epoch("2026-01-05T10:00"))
    bob = add(db, ticket_id, owner="bob", estimate=1800, due_at=epoch("2026-01-05T11:00"))
    with db.tx(write=False) as tx:
        first, second = queue.next_for(tx, "ann", clock.now()), queue.next_for(tx, "bob", clock.now())
    assert (first["task_id"], first["kind"]) == (ann["id"], "work_item")
    assert (second["task_id"], second["kind"]) == (bob["id"], "work_item")
