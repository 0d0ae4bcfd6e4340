"""Capacity, tasks, admission and the queue's slices under a simulated clock, on a real (SQLite)
database: the settings refuse what they cannot use in one line; the supply is each engineer's
own calendar minus time off minus their calls, worth share x (1 - reserve); efforts are inflated
by the estimator's measured overrun; admission refuses what the calendars cannot carry; the
loop ends slices, ends an upload wait when a bundle arrives, and fires each slack alarm once."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest

from server.planning import estimates
from server.storage.db import open_database
from server.support import (
    admission,
    calls,
    capacity,
    clock,
    messages,
    policies,
    queue,
    rosters,
    tasks,
    tickets,
)
from server.support.policies import PolicyError
from server.support.tickets import Invalid

pytestmark = pytest.mark.server

H = 3600.0
WEEKDAYS = {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


@pytest.fixture
def db(tmp_path):
    policies.configure({"calendars": {"business": {"always": True}},
                        "policies": [{"name": "default", "first_reply": "4h", "next_reply": "4h",
                                      "calendar": "business"}]})
    capacity.configure({"reserve": 0.0, "slice": "30m", "long_slices": 4, "alarm_slack": "1h"})
    clock.set_now(epoch("2026-12-07T08:00"))  # a Monday
    database = open_database(f"sqlite:///{tmp_path / 'server.db'}")
    with database.tx() as tx:
        for name in ("alice", "bob"):
            tickets.add_engineer(tx, name, "cli:test")
        tx.run("DELETE FROM engineers WHERE name NOT IN ('alice', 'bob')")
    yield database
    database.close()
    clock.reset()
    capacity.configure(None)
    policies.configure(None)


def asked(db, customer: str = "acme") -> tuple:
    """A ticket whose customer asked something now: (ticket id, obligation id)."""
    with db.tx() as tx:
        ticket = tickets.create_ticket(tx, customer, "replication lag", [], "engineer:alice", 30)
        messages.add_message(tx, ticket["id"], author="ann@example.com", author_kind="customer",
                             kind="needs_reply", body="help", source="web")
        return ticket["id"], tx.one("SELECT id FROM obligations WHERE ticket_id = ?", (ticket["id"],))["id"]


def test_the_defaults_apply_without_a_section():
    assert capacity.parse(None) == capacity.Settings(0.15, 1800.0, 4, 3600.0, 60)
    assert capacity.parse({"slice": "45m", "reserve": 0.2, "horizon_days": 30}).slice_seconds == 2700


@pytest.mark.parametrize("section, says", [
    ({"slcie": "30m"}, "unknown setting(s) slcie"),
    ({"reserve": 1}, "support.capacity.reserve"),
    ({"reserve": -0.1}, "support.capacity.reserve"),
    ({"reserve": "lots"}, "support.capacity.reserve"),
    ({"reserve": True}, "support.capacity.reserve"),
    ({"slice": "1s"}, "support.capacity.slice"),
    ({"slice": "2d"}, "support.capacity.slice"),
    ({"slice": "soon"}, "support.capacity.slice"),
    ({"long_slices": 0}, "support.capacity.long_slices"),
    ({"long_slices": 1.5}, "support.capacity.long_slices"),
    ({"long_slices": True}, "support.capacity.long_slices"),
    ({"alarm_slack": "-1h"}, "support.capacity.alarm_slack"),
    ({"alarm_slack": "60d"}, "support.capacity.alarm_slack"),
    ({"horizon_days": 0}, "support.capacity.horizon_days"),
    ({"horizon_days": 400}, "support.capacity.horizon_days"),
    ([1, 2], "must be an object"),
])
def test_a_bad_setting_is_refused_in_one_line(section, says):
    with pytest.raises(PolicyError) as refused:
        capacity.parse(section)
    assert says in str(refused.value) and "\n" not in str(refused.value)


def test_the_supply_is_the_own_calendar_minus_time_off_and_calls_worth_share_and_reserve(db):
    capacity.configure({"reserve": 0.2, "slice": "30m"})
    with db.tx() as tx:
        # Berlin 09:00-17:00 is 08:00-16:00 UTC in December; bob works half of it for the queue.
        rosters.set_calendar(tx, "bob", timezone="Europe/Berlin", hours=WEEKDAYS, share=0.5,
                             actor="cli:test")
        rosters.add_time_off(tx, "bob", epoch("2026-12-08T00:00"), epoch("2026-12-09T00:00"), "dentist",
                             "cli:test")
    ticket_id, _ = asked(db)
    with db.tx() as tx:
        call = calls.request(tx, ticket_id, agenda=["the lag"], limit_minutes=60, attendees=[],
                             engineer="bob", earliest=epoch("2026-12-07T10:00"), actor="engineer:alice")
        assert call["state"] == "scheduled"
        supply = capacity.supply(tx, clock.now())
    assert set(supply.engineers) == {"alice", "bob"}
    monday_end = epoch("2026-12-07T16:00")
    # Monday: 8 h open, 1 h of it the call; Tuesday off; Wednesday a full day.
    assert supply.capacity(monday_end, "bob") == pytest.approx(7 * H * 0.5 * 0.8)
    assert supply.capacity(epoch("2026-12-08T23:59"), "bob") == pytest.approx(7 * H * 0.5 * 0.8)
    assert supply.capacity(epoch("2026-12-09T16:00"), "bob") == pytest.approx(15 * H * 0.5 * 0.8)
    assert not supply.working("bob", epoch("2026-12-08T10:00"))
    assert supply.working("bob", epoch("2026-12-09T10:00"))
    # alice has no calendar of her own: the business calendar (here 24x7), all of it hers.
    assert supply.capacity(monday_end, "alice") == pytest.approx(8 * H * 0.8)
    assert supply.horizon >= clock.now() + 59 * 86400


def test_a_calendar_that_does_not_parse_or_a_bad_share_is_refused(db):
    with db.tx() as tx:
        for bad in ({"timezone": "Mars/Base", "hours": WEEKDAYS},
                    {"timezone": "UTC", "hours": {"mon": ["9-5"]}},
                    {"timezone": "UTC", "hours": "always"}, {"timezone": "UTC", "hours": {}}):
            with pytest.raises(Invalid):
                rosters.set_calendar(tx, "bob", actor="cli:test", **bad)
        for share in (0, -1, 1.01, float("nan"), True):
            with pytest.raises(Invalid):
                rosters.set_calendar(tx, "bob", timezone="UTC", hours=WEEKDAYS, share=share,
                                     actor="cli:test")
        with pytest.raises(rosters.NotFound):
            rosters.set_calendar(tx, "mallory", timezone="UTC", hours=WEEKDAYS, actor="cli:test")
        assert tx.one("SELECT COUNT(*) AS n FROM engineer_calendars")["n"] == 0


def test_efforts_are_the_estimate_inflated_by_the_estimators_overrun_minus_time_spent(db):
    with db.tx() as tx:
        # alice's last three tasks each took twice her estimate.
        for _ in range(3):
            task_id = "ob-" + secrets.token_hex(8)
            tasks.record_effort(tx, task_id, "tk-old", "next", spent=2 * H, estimate=H,
                                estimated_by="engineer:alice", done_at=clock.now())
    ticket_id, task = asked(db)
    _, other = asked(db)
    with db.tx() as tx:
        tasks.set_estimate(tx, task, H, "engineer:alice")
        tasks.set_estimate(tx, other, H, "engineer:bob")
        tasks.record_effort(tx, task, ticket_id, "first", spent=600)
        found = {t.id: t for t in tasks.open_tasks(tx, clock.now())}
    factor = estimates.overrun([(H, 2 * H)] * 3)
    assert factor > 1
    assert found[task].effort == pytest.approx(H * factor - 600)
    assert found[other].effort == pytest.approx(H)  # bob has no history: his estimate as it is
    with db.tx() as tx:
        for bad in (0, 59, 31 * 86400, float("inf"), True):
            with pytest.raises(Invalid):
                tasks.set_estimate(tx, task, bad, "engineer:alice")
        with pytest.raises(tasks.NotFound):
            tasks.set_estimate(tx, "ob-" + "0" * 16, H, "engineer:alice")


def test_admission_refuses_what_the_calendars_cannot_carry_and_records_it(db):
    ticket_id, task = asked(db)
    now = clock.now()
    with db.tx() as tx:
        tasks.set_estimate(tx, task, 3 * H, "engineer:alice")
        fine = admission.check(tx, ticket_id, task, now + 4 * H)
        assert fine.ok
        # One person writes the reply: 3 h of work cannot be done in 2 h, whoever helps.
        refused = admission.check(tx, ticket_id, task, now + 2 * H)
        assert not refused.ok and refused.earliest_feasible_at == pytest.approx(now + 3 * H, abs=120)
        refusal = admission.record_refusal(tx, ticket_id, "engineer:alice", refused)
        row = tx.one("SELECT * FROM admission_refusals WHERE id = ?", (refusal,))
    assert row["ticket_id"] == ticket_id and row["wanted_at"] == now + 2 * H
    assert row["earliest_feasible_at"] == refused.earliest_feasible_at and "reason" in row["detail"]


def test_the_loop_ends_a_slice_and_counts_its_time(db):
    _, task = asked(db)
    start = clock.now()
    with db.tx() as tx:
        hold = queue.take(tx, "alice", task, start)
    clock.set_now(start + 1800 + 1)
    with db.tx() as tx:
        assert queue.sweep(tx, clock.now()) == 1
        row = tx.one("SELECT released_at, released_why FROM queue_holds WHERE id = ?", (hold["id"],))
        assert row == {"released_at": start + 1800, "released_why": "slice"}
        assert tasks.effort_of(tx, task)["spent"] == 1800
        assert queue.sweep(tx, clock.now()) == 0  # once
        assert queue.take(tx, "bob", task, clock.now())["engineer"] == "bob"


def test_an_upload_wait_ends_when_a_bundle_arrives(db):
    ticket_id, task = asked(db)
    with db.tx() as tx:
        queue.take(tx, "alice", task, clock.now())
        assert queue.wait(tx, "alice", task, "upload", "please run mydiag collect", clock.now())["released"]
        assert queue.next_for(tx, "alice", clock.now()) is None
    clock.set_now(clock.now() + 600)
    with db.tx() as tx:
        tx.run("INSERT INTO bundles (id, ticket_id, sha256, size, filename, status, received) "
               "VALUES (?, ?, ?, 1, 'mydiag-db1.tar.zst.age', 'accepted', ?)",
               ("bd-" + secrets.token_hex(5), ticket_id, secrets.token_hex(32), clock.now()))
        assert queue.next_for(tx, "alice", clock.now())["task_id"] == task
        assert queue.sweep(tx, clock.now()) == 1
        assert tx.one("SELECT ended FROM task_waits WHERE task_id = ?", (task,))["ended"] == clock.now()


def test_each_slack_alarm_is_written_once_and_only_when_the_slack_is_short(db):
    _, easy = asked(db)
    _, tight = asked(db)
    with db.tx() as tx:
        tasks.set_estimate(tx, easy, 600, "engineer:alice")
        tasks.set_estimate(tx, tight, 3.5 * H, "engineer:alice")  # due in 4 h: 30 min of slack
        assert queue.alarms(tx, clock.now()) == 1
        assert queue.alarms(tx, clock.now()) == 0
        rows = tx.all("SELECT id, recipient, kind FROM notifications")
    assert rows == [{"id": f"{tight}:slack:low", "recipient": "alice", "kind": "slack_low"}]
    clock.set_now(clock.now() + H)  # an hour later, nothing done: no slack left
    with db.tx() as tx:
        assert queue.alarms(tx, clock.now()) == 1
        assert {r["id"] for r in tx.all("SELECT id FROM notifications")} == {f"{tight}:slack:low",
                                                                           f"{tight}:slack:none"}
        assert [a["kind"] for a in queue.alarms_for(tx, "alice")] == ["slack_none", "slack_low"]
