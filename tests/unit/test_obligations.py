"""The reply clock under a simulated clock, on a real (SQLite) database: deadlines in business
time, pauses, several messages, no-reply-needed, acknowledgements, bounces, warnings, breaches."""

from __future__ import annotations

import datetime as dt

import pytest

from server.storage import audit
from server.storage.db import open_database
from server.support import breaches, clock, messages, obligations, ontime, people, policies, tickets
from server.support.tickets import Invalid

pytestmark = pytest.mark.server

H = 3600.0
SETTINGS = {
    "calendars": {"office": {"timezone": "UTC", "hours": {d: ["09:00-17:00"] for d in
                                                           ("mon", "tue", "wed", "thu", "fri")}},
                  "berlin": {"timezone": "Europe/Berlin", "holidays": "DE",
                             "hours": {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}}},
    "policies": [
        {"name": "urgent", "severity": "urgent", "first_reply": "1h", "next_reply": "2h", "calendar": "24x7"},
        {"name": "german", "plan": "de", "first_reply": "4h", "next_reply": "8h", "calendar": "berlin"},
        {"name": "default", "first_reply": "4h", "next_reply": "8h", "calendar": "office"},
    ],
}


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


def iso(text: str) -> str:
    return text + ":00Z" if len(text) == 16 else text


@pytest.fixture
def db(tmp_path):
    policies.configure(SETTINGS)
    clock.set_now(epoch("2026-01-05T09:00"))  # a Monday
    database = open_database(f"sqlite:///{tmp_path / 'server.db'}")
    yield database
    database.close()
    clock.reset()
    policies.configure(None)


def ticket(db, customer: str = "acme", severity: str = "") -> str:
    with db.tx() as tx:
        found = tickets.create_ticket(tx, customer, "replication lag", [], "engineer:eve", 30)
        if severity:
            obligations.set_terms(tx, found["id"], severity=severity)
    return found["id"]


def customer_says(db, ticket_id: str, when: str, kind: str = "needs_reply", body: str = "help") -> dict:
    clock.set_now(epoch(when))
    with db.tx() as tx:
        return messages.add_message(tx, ticket_id, author="ann@example.com", author_kind="customer",
                                    kind=kind, body=body, source="web")


def engineer_says(db, ticket_id: str, when: str, kind: str = "reply", delivery=None, waiting=False) -> dict:
    clock.set_now(epoch(when))
    with db.tx() as tx:
        return messages.add_message(tx, ticket_id, author="eve", author_kind="engineer", kind=kind,
                                    body="looking", source="web", delivery=delivery,
                                    waiting_on_customer=waiting)


def sweep_at(db, when: str) -> int:
    clock.set_now(epoch(when))
    return breaches.sweep(db)


def events(db, ticket_id: str) -> dict:
    with db.tx() as tx:
        return {e["kind"]: e for e in breaches.events_of(tx, ticket_id)}


def state_of(db, ticket_id: str) -> list:
    with db.tx() as tx:
        return [(o["kind"], o["state"]) for o in obligations.of_ticket(tx, ticket_id)]


def test_a_message_in_business_hours_is_due_after_the_target_in_business_time(db):
    t = ticket(db)
    assert customer_says(db, t, "2026-01-05T16:00")["due_at"] == "2026-01-06T12:00:00Z"


def test_a_message_on_friday_evening_is_due_on_monday(db):
    t = ticket(db)
    assert customer_says(db, t, "2026-01-09T18:30")["due_at"] == "2026-01-12T13:00:00Z"


def test_holidays_of_the_customers_calendar_are_skipped(db):
    with db.tx() as tx:
        people.set_plan(tx, "kunde", "de", "cli")
    t = ticket(db, "kunde")
    # 2026-12-24 16:00 Berlin (15:00 UTC): 1 h that day, 25/26 are holidays, 27 Sunday, then 3 h Monday.
    assert customer_says(db, t, "2026-12-24T15:00")["due_at"] == "2026-12-28T11:00:00Z"


def test_the_deadline_follows_the_local_hours_across_a_dst_change(db):
    with db.tx() as tx:
        people.set_plan(tx, "kunde", "de", "cli")
    t = ticket(db, "kunde")
    # Friday 2026-03-27 15:00 CET (14:00 UTC): 2 h that day, 2 h from 09:00 CEST (07:00 UTC) on Monday.
    assert customer_says(db, t, "2026-03-27T14:00")["due_at"] == "2026-03-30T09:00:00Z"


def test_urgent_tickets_run_24x7(db):
    t = ticket(db, severity="urgent")
    assert customer_says(db, t, "2026-01-10T23:30")["due_at"] == "2026-01-11T00:30:00Z"


def test_several_unanswered_messages_are_one_obligation_counted_from_the_oldest(db):
    t = ticket(db)
    first = customer_says(db, t, "2026-01-05T09:00")
    second = customer_says(db, t, "2026-01-05T11:00", body="also this")
    third = customer_says(db, t, "2026-01-05T12:30", body="and this")
    assert first["due_at"] == second["due_at"] == third["due_at"] == "2026-01-05T13:00:00Z"
    assert len({first["obligation_id"], second["obligation_id"], third["obligation_id"]}) == 1
    assert state_of(db, t) == [("first", "open")]


def test_a_delivered_reply_meets_it_and_the_next_message_gets_the_next_reply_target(db):
    t = ticket(db)
    customer_says(db, t, "2026-01-05T09:00")
    engineer_says(db, t, "2026-01-05T10:00")
    assert state_of(db, t) == [("first", "met")]
    follow_up = customer_says(db, t, "2026-01-05T11:00")
    assert follow_up["due_at"] == "2026-01-06T11:00:00Z"  # 8 h: 6 on Monday, 2 on Tuesday
    assert state_of(db, t) == [("first", "met"), ("next", "open")]
    sweep_at(db, "2026-01-05T16:00")
    assert sorted(events(db, t)) == ["warning_50"]  # 4 of the follow-up's 8 h at 15:00; no breach


def test_an_acknowledgement_does_not_count_and_the_breach_is_recorded_when_seen(db):
    t = ticket(db)
    customer_says(db, t, "2026-01-05T09:00")
    engineer_says(db, t, "2026-01-05T09:05", kind="acknowledgement")
    engineer_says(db, t, "2026-01-05T09:10", kind="internal")
    assert state_of(db, t) == [("first", "open")]
    sweep_at(db, "2026-01-05T13:00:02")
    breach = events(db, t)["breach"]
    assert breach["due"] == epoch("2026-01-05T13:00")
    assert breach["recorded_at"] == epoch("2026-01-05T13:00:02")


def test_warnings_at_50_80_95_percent_then_the_breach_each_recorded_once_with_a_notification(db):
    t = ticket(db)
    customer_says(db, t, "2026-01-05T09:00")
    assert sweep_at(db, "2026-01-05T10:59") == 0
    assert sweep_at(db, "2026-01-05T11:00") == 1  # 50% of 4 h
    assert sweep_at(db, "2026-01-05T12:50") == 2  # 80% (12:12) and 95% (12:48)
    assert sweep_at(db, "2026-01-05T13:00") == 1
    for _ in range(3):
        assert sweep_at(db, "2026-01-06T09:00") == 0
    found = events(db, t)
    assert sorted(found) == ["breach", "warning_50", "warning_80", "warning_95"]
    assert found["warning_80"]["due"] == epoch("2026-01-05T12:12")
    assert found["warning_80"]["recorded_at"] == epoch("2026-01-05T12:50")
    with db.tx() as tx:
        notes = breaches.notifications_for(tx, "engineer:eve")
    assert sorted(n["kind"] for n in notes) == ["breach", "warning_50", "warning_80", "warning_95"]


def test_the_clock_pauses_while_the_ticket_waits_on_the_customer(db):
    t = ticket(db)
    customer_says(db, t, "2026-01-05T09:00")  # due 13:00
    asked = engineer_says(db, t, "2026-01-05T10:00", waiting=True)  # 1 h used
    assert asked["waiting_on_customer"]
    assert state_of(db, t) == [("first", "paused")]
    with db.tx() as tx:
        assert obligations.terms(tx, t)["waiting_since"] == epoch("2026-01-05T10:00")
    assert sweep_at(db, "2026-01-06T16:00") == 0  # paused: nothing falls due, however long
    answer = customer_says(db, t, "2026-01-07T09:00", body="version 10.11")
    assert answer["due_at"] == "2026-01-07T12:00:00Z"  # the 3 h left, from the answer on
    with db.tx() as tx:
        assert obligations.terms(tx, t)["waiting_since"] is None
    # 50, 80 and 95% of the 4 h fall 1 h, 2.2 h and 2.8 h after the answer (1 h was used before).
    assert sweep_at(db, "2026-01-07T11:59") == 3
    assert events(db, t)["warning_80"]["due"] == epoch("2026-01-07T11:12")
    assert "breach" not in events(db, t)
    sweep_at(db, "2026-01-07T12:00:01")
    breach = events(db, t)["breach"]
    assert breach["due"] == epoch("2026-01-07T12:00")
    assert breach["recorded_at"] == epoch("2026-01-07T12:00:01")


def test_a_no_reply_needed_answer_still_resumes_a_paused_clock(db):
    t = ticket(db)
    customer_says(db, t, "2026-01-05T09:00")
    engineer_says(db, t, "2026-01-05T10:00", waiting=True)
    thanks = customer_says(db, t, "2026-01-05T11:00", kind="no_reply_needed", body="done, thanks")
    assert thanks["due_at"] is None
    assert state_of(db, t) == [("first", "open")]
    with db.tx() as tx:
        assert obligations.running(tx, t)["due_at"] == epoch("2026-01-05T14:00")


def test_a_thanks_marked_no_reply_needed_opens_nothing(db):
    t = ticket(db)
    customer_says(db, t, "2026-01-05T09:00")
    engineer_says(db, t, "2026-01-05T10:00")
    thanks = customer_says(db, t, "2026-01-05T10:30", kind="no_reply_needed", body="thanks!")
    assert thanks["due_at"] is None and thanks["obligation_id"] is None
    assert state_of(db, t) == [("first", "met")]


def test_an_engineer_marks_a_thanks_no_reply_needed_with_a_reason_and_it_is_audited(db):
    t = ticket(db)
    customer_says(db, t, "2026-01-05T09:00")
    engineer_says(db, t, "2026-01-05T10:00")
    thanks = customer_says(db, t, "2026-01-05T10:30", body="thanks!")
    assert thanks["due_at"] is not None
    with db.tx() as tx:
        marked = messages.mark_no_reply(tx, thanks["id"], "engineer:eve", "a thank-you")
        entry = audit.entries(tx, t)[0]
    assert marked["kind"] == "no_reply_needed" and marked["due_at"] is None
    assert marked["no_reply_by"] == "engineer:eve" and marked["no_reply_reason"] == "a thank-you"
    assert (entry["action"], entry["actor"], entry["detail"]["reason"]) == \
        ("message.no_reply", "engineer:eve", "a thank-you")
    assert state_of(db, t) == [("first", "met"), ("next", "cancelled")]
    assert sweep_at(db, "2026-01-09T00:00") == 0
    with db.tx() as tx, pytest.raises(Invalid):
        messages.mark_no_reply(tx, thanks["id"], "engineer:eve", "again")


def test_marking_the_oldest_message_counts_from_the_next_oldest(db):
    t = ticket(db)
    thanks = customer_says(db, t, "2026-01-05T09:00", body="thanks for the call")
    question = customer_says(db, t, "2026-01-05T11:00", body="one more question")
    with db.tx() as tx:
        messages.mark_no_reply(tx, thanks["id"], "engineer:eve", "a thank-you")
        assert messages.message(tx, question["id"])["due_at"] == "2026-01-05T15:00:00Z"


def test_an_undelivered_reply_does_not_count_and_reopens_without_back_dating(db):
    t = ticket(db)
    customer_says(db, t, "2026-01-05T09:00")  # due 13:00
    reply = engineer_says(db, t, "2026-01-05T10:00", delivery="pending")
    assert state_of(db, t) == [("first", "open")]  # pending: not yet with the customer
    clock.set_now(epoch("2026-01-05T10:01"))
    with db.tx() as tx:
        messages.set_delivery(tx, reply["id"], "sent")
    assert state_of(db, t) == [("first", "met")]
    assert sweep_at(db, "2026-01-05T14:00") == 0
    clock.set_now(epoch("2026-01-05T15:00"))
    with db.tx() as tx:
        messages.set_delivery(tx, reply["id"], "undelivered", "550 no such user")
        assert obligations.running(tx, t)["due_at"] == epoch("2026-01-05T13:00")  # unchanged
    assert state_of(db, t) == [("first", "open")]
    sweep_at(db, "2026-01-05T15:00:01")
    found = events(db, t)
    assert found["breach"]["due"] == epoch("2026-01-05T13:00")
    assert found["breach"]["recorded_at"] == epoch("2026-01-05T15:00:01")  # when seen, not 13:00


def test_a_bounced_question_undoes_its_pause(db):
    t = ticket(db)
    customer_says(db, t, "2026-01-05T09:00")
    asked = engineer_says(db, t, "2026-01-05T10:00", waiting=True)
    clock.set_now(epoch("2026-01-05T10:30"))
    with db.tx() as tx:
        messages.set_delivery(tx, asked["id"], "undelivered", "bounced")
        assert obligations.running(tx, t)["due_at"] == epoch("2026-01-05T13:00")
        assert obligations.terms(tx, t)["waiting_since"] is None
    assert state_of(db, t) == [("first", "open")]


def test_a_message_during_a_bounced_replys_reopening_joins_the_older_obligation(db):
    t = ticket(db)
    customer_says(db, t, "2026-01-05T09:00")
    reply = engineer_says(db, t, "2026-01-05T10:00")
    later = customer_says(db, t, "2026-01-05T11:00")
    clock.set_now(epoch("2026-01-05T11:30"))
    with db.tx() as tx:
        messages.set_delivery(tx, reply["id"], "undelivered")
        assert messages.message(tx, later["id"])["due_at"] == "2026-01-05T13:00:00Z"
    assert state_of(db, t) == [("first", "open"), ("next", "merged")]


def test_a_late_reply_records_the_breach_it_ends_when_no_sweeper_saw_it(db):
    t = ticket(db)
    customer_says(db, t, "2026-01-05T09:00")
    engineer_says(db, t, "2026-01-05T14:00")
    breach = events(db, t)["breach"]
    assert (breach["due"], breach["recorded_at"]) == (epoch("2026-01-05T13:00"), epoch("2026-01-05T14:00"))
    assert sweep_at(db, "2026-01-05T15:00") == 0


def test_kinds_are_checked_against_the_author(db):
    t = ticket(db)
    with db.tx() as tx:
        for author_kind, kind in (("customer", "reply"), ("engineer", "needs_reply"), ("robot", "reply")):
            with pytest.raises(Invalid):
                messages.add_message(tx, t, author="x", author_kind=author_kind, kind=kind, body="b",
                                     source="web")
        with pytest.raises(Invalid):
            messages.add_message(tx, t, author="x", author_kind="engineer", kind="acknowledgement",
                                 body="b", source="web", waiting_on_customer=True)


@pytest.mark.parametrize("body", ["", "   \n ", "a\x00b", "bell\x07", "\x1b[31mred", "x\u202ey",
                                  "\ud800", "a" * (256 * 1024 + 1)])
def test_hostile_bodies_are_refused(db, body):
    t = ticket(db)
    with db.tx() as tx, pytest.raises(Invalid):
        messages.add_message(tx, t, author="ann", author_kind="customer", kind="needs_reply", body=body,
                             source="api")


def test_bodies_keep_tabs_newlines_and_unicode_and_lose_carriage_returns(db):
    t = ticket(db)
    said = customer_says(db, t, "2026-01-05T09:00", body="über\r\n\tZeile 2 🙂")
    assert said["body"] == "über\n\tZeile 2 🙂"


def test_the_ontime_report_counts_per_message_first_and_follow_ups_apart(db):
    on_time, late, open_late = ticket(db), ticket(db), ticket(db)
    customer_says(db, on_time, "2026-01-05T09:00")
    customer_says(db, on_time, "2026-01-05T09:30")
    engineer_says(db, on_time, "2026-01-05T10:00")
    customer_says(db, on_time, "2026-01-05T11:00")
    engineer_says(db, on_time, "2026-01-05T20:00")  # the follow-up, due Tue 11:00: in time
    customer_says(db, on_time, "2026-01-05T21:00", kind="no_reply_needed", body="thanks")
    customer_says(db, late, "2026-01-05T09:00")
    engineer_says(db, late, "2026-01-05T15:00")  # 2 h late
    thanks = customer_says(db, late, "2026-01-05T15:30", body="thanks")
    with db.tx() as tx:
        messages.mark_no_reply(tx, thanks["id"], "engineer:eve", "thanks")
    customer_says(db, open_late, "2026-01-05T09:00")  # never answered
    with db.tx() as tx:
        found = ontime.report(tx, epoch("2026-01-05T00:00"), epoch("2026-01-06T00:00"),
                              now=epoch("2026-01-05T23:00"))
    assert found["first_replies"] == {"messages": 4, "on_time": 2, "late": 1, "open_late": 1, "pending": 0,
                                      "rate": 0.5}
    assert found["follow_ups"]["messages"] == 1 and found["follow_ups"]["rate"] == 1.0
    assert found["lateness"]["count"] == 2
    assert found["lateness"]["buckets"] == {"under 1h": 0, "1h-4h": 1, "4h-24h": 1, "over 24h": 0}
    assert found["no_reply_needed"] == {"total": 2, "by": {"customer": 1, "engineer:eve": 1}}
