"""Negotiated promises under a simulated clock, on a real (SQLite) database: proposals, counters,
versions, the obligation's deadline and warnings moved, pauses, renegotiated vs kept vs missed,
admission refusals with the earliest feasible time, and every kind of answer that is refused.

One engineer on the default business calendar (Mon-Fri 09:00-17:00 UTC), no reserve; a first
reply needs an hour of work by default. Monday 2026-01-05 09:00: a customer asks (due 13:00)."""

from __future__ import annotations

import datetime as dt

import pytest

from server.storage.db import open_database
from server.support import (
    breaches,
    capacity,
    clock,
    messages,
    obligations,
    ontime,
    policies,
    promises,
    tickets,
)
from server.support.tickets import Invalid

pytestmark = pytest.mark.server

ENG = "engineer:eve"
CUST = "upload:tk"


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


def z(text: str) -> str:
    return text + ":00Z"


@pytest.fixture
def db(tmp_path):
    policies.configure(None)
    capacity.configure({"reserve": 0})
    clock.set_now(epoch("2026-01-05T09:00"))
    database = open_database(f"sqlite:///{tmp_path / 'server.db'}")
    with database.tx() as tx:
        tickets.add_engineer(tx, "eve", "test")
    yield database
    database.close()
    clock.reset()
    capacity.configure(None)


def asked(db, customer: str = "acme") -> str:
    with db.tx() as tx:
        ticket_id = tickets.create_ticket(tx, customer, "replication lag", [], ENG, 30)["id"]
        messages.add_message(tx, ticket_id, author="ann@example.com", author_kind="customer",
                             kind="needs_reply", body="the replica is 2 h behind", source="api")
    return ticket_id


def at(when: str) -> None:
    clock.set_now(epoch(when))


def propose(db, t: str, due: str, reason: str = "we need to reproduce it", **extra):
    with db.tx() as tx:
        return promises.propose(tx, t, due_at=epoch(due), reason=reason, actor=ENG, side="engineer", **extra)


def accept(db, t: str, p: dict, side: str = "customer"):
    with db.tx() as tx:
        return promises.accept(tx, t, p["id"], actor=CUST if side == "customer" else ENG, side=side)


def counter(db, t: str, p: dict, due: str, side: str = "customer", reason=None):
    with db.tx() as tx:
        return promises.counter(tx, t, p["id"], due_at=epoch(due), reason=reason,
                                actor=CUST if side == "customer" else ENG, side=side)


def reply(db, t: str, when: str, waiting: bool = False, delivery=None) -> dict:
    at(when)
    with db.tx() as tx:
        return messages.add_message(tx, t, author="eve", author_kind="engineer", kind="reply", body="answer",
                                    source="api", waiting_on_customer=waiting, delivery=delivery)


def running(db, t: str) -> dict:
    with db.tx() as tx:
        return obligations.running(tx, t)


def versions(db, t: str) -> list:
    with db.tx() as tx:
        return promises.of_ticket(tx, t)


def test_an_accepted_promise_moves_the_deadline_and_the_warnings_and_keeps_the_policy_due(db):
    t = asked(db)
    assert running(db, t)["due_at"] == epoch("2026-01-05T13:00")
    offer = propose(db, t, "2026-01-05T15:00", estimate=7200)
    assert offer["state"] == "proposed" and offer["version"] == 1 and offer["replaces"] is None
    assert offer["policy_due_at"] == z("2026-01-05T13:00") and offer["estimate_seconds"] == 7200
    assert running(db, t)["due_at"] == epoch("2026-01-05T13:00")  # a proposal changes nothing yet
    done = accept(db, t, offer)
    assert done["state"] == "accepted" and done["answered_by"] == CUST and not done["renegotiated"]
    ob = running(db, t)
    assert ob["due_at"] == epoch("2026-01-05T15:00")
    assert [ob["warn50"], ob["warn80"], ob["warn95"]] == [
        epoch("2026-01-05T12:00"), epoch("2026-01-05T13:48"), epoch("2026-01-05T14:42")]
    assert ob["next_check"] == ob["warn50"]
    with db.tx() as tx:
        assert promises.in_force(tx, t)["id"] == offer["id"] and promises.open_proposal(tx, t) is None
        assert messages.messages_of(tx, t)[0]["due_at"] == z("2026-01-05T15:00")
        actions = [e["action"] for e in
                   tx.all("SELECT action FROM audit WHERE ticket_id = ? ORDER BY seq", (t,))]
    assert actions[-2:] == ["promise.propose", "promise.accept"]
    # The sweeper follows the promise: nothing at the policy's 13:00, the breach at 15:00.
    at("2026-01-05T13:30")
    breaches.sweep(db)
    with db.tx() as tx:
        kinds = [e["kind"] for e in breaches.events_of(tx, t)]
    assert kinds == ["warning_50"]


def test_a_counter_is_a_new_version_and_an_engineer_accepts_it_through_admission(db):
    t = asked(db)
    first = propose(db, t, "2026-01-06T12:00", estimate=3600)
    second = counter(db, t, first, "2026-01-05T11:00", reason="the board meets at noon")
    assert second["version"] == 2 and second["replaces"] == first["id"]
    assert second["proposed_side"] == "customer"
    assert second["estimate_seconds"] == 3600
    done = accept(db, t, second, side="engineer")
    assert done["state"] == "accepted" and done["answered_by"] == ENG
    assert [(v["version"], v["state"]) for v in versions(db, t)] == [(1, "countered"), (2, "accepted")]
    assert running(db, t)["due_at"] == epoch("2026-01-05T11:00")


def test_a_change_agreed_before_the_time_passed_is_renegotiated_and_the_new_one_kept(db):
    t = asked(db)
    accept(db, t, propose(db, t, "2026-01-05T15:00"))
    at("2026-01-05T14:00")
    second = accept(db, t, propose(db, t, "2026-01-05T16:30", reason="the vendor answers at 16:00"))
    assert second["renegotiated"] and second["replaces"] == versions(db, t)[0]["id"]
    reply(db, t, "2026-01-05T16:10")
    shown = versions(db, t)
    assert [(v["state"], v["outcome"]) for v in shown] == [("superseded", None), ("accepted", "kept")]
    with db.tx() as tx:
        counted = ontime.report(tx, epoch("2026-01-01T00:00"), epoch("2026-02-01T00:00"))["promises"]
    assert counted == {"promised": 2, "kept": 1, "missed": 0, "renegotiated": 1, "pending": 0, "refused": 0}


def test_a_promise_is_missed_only_by_a_late_reply_and_its_breach_recorded_at_its_time(db):
    t = asked(db)
    accept(db, t, propose(db, t, "2026-01-05T11:00"))
    at("2026-01-05T11:00:05")
    breaches.sweep(db)
    with db.tx() as tx:
        breach = [e for e in breaches.events_of(tx, t) if e["kind"] == "breach"]
    assert len(breach) == 1 and breach[0]["due"] == epoch("2026-01-05T11:00")
    assert versions(db, t)[0]["outcome"] is None  # past due, but no reply yet: not missed yet
    reply(db, t, "2026-01-05T12:00")
    assert versions(db, t)[0]["outcome"] == "missed"
    with db.tx() as tx:
        counted = ontime.report(tx, epoch("2026-01-01T00:00"), epoch("2026-02-01T00:00"))
    assert counted["promises"]["missed"] == 1 and counted["first_replies"]["late"] == 1


def test_a_promise_replaced_after_its_time_passed_is_missed_not_renegotiated(db):
    t = asked(db)
    accept(db, t, propose(db, t, "2026-01-05T11:00"))
    at("2026-01-05T11:30")
    late = accept(db, t, propose(db, t, "2026-01-05T15:00", reason="sorry: by 15:00"))
    assert not late["renegotiated"]
    reply(db, t, "2026-01-05T14:00")
    assert [v["outcome"] for v in versions(db, t)] == ["missed", "kept"]


def test_an_infeasible_time_is_refused_recorded_and_the_earliest_feasible_one_passes(db):
    t = asked(db)
    with db.tx() as tx, pytest.raises(promises.Infeasible) as refused:
        promises.propose(tx, t, due_at=epoch("2026-01-05T09:30"), reason="quick", actor=ENG,
                         side="engineer")
    verdict = refused.value.verdict
    assert not verdict.ok and verdict.earliest_feasible_at is not None
    assert epoch("2026-01-05T10:00") <= verdict.earliest_feasible_at <= epoch("2026-01-05T10:01")
    assert "2026-01-05T09:30:00Z" in str(refused.value)
    with db.tx() as tx:
        kept = tx.all("SELECT ticket_id, actor, wanted_at, earliest_feasible_at FROM admission_refusals")
        assert promises.open_proposal(tx, t) is None
    assert kept == [{"ticket_id": t, "actor": ENG, "wanted_at": epoch("2026-01-05T09:30"),
                     "earliest_feasible_at": verdict.earliest_feasible_at}]
    with db.tx() as tx:
        fits = promises.propose(tx, t, due_at=verdict.earliest_feasible_at, reason="as early as we can",
                                actor=ENG, side="engineer")
    assert fits["state"] == "proposed"


def test_an_engineer_accepting_a_customer_counter_too_early_is_refused(db):
    t = asked(db)
    offer = propose(db, t, "2026-01-05T16:00")
    wanted = counter(db, t, offer, "2026-01-05T09:20")  # a customer may ask for any time
    with db.tx() as tx, pytest.raises(promises.Infeasible):
        promises.accept(tx, t, wanted["id"], actor=ENG, side="engineer")
    with db.tx() as tx:
        assert promises.open_proposal(tx, t)["id"] == wanted["id"]


def test_a_second_commitment_must_move_for_an_early_date(db):
    other = asked(db, "globex")
    accept(db, other, propose(db, other, "2026-01-05T11:00", estimate=7200))
    t = asked(db)
    with db.tx() as tx, pytest.raises(promises.Infeasible) as refused:
        promises.propose(tx, t, due_at=epoch("2026-01-05T11:00"), reason="x", actor=ENG, side="engineer",
                         estimate=3600)
    assert refused.value.verdict.must_move == (running(db, other)["id"],)
    assert refused.value.verdict.earliest_feasible_at >= epoch("2026-01-05T12:00")


def test_a_pause_moves_the_promise_on_by_the_time_waited(db):
    t = asked(db)
    accept(db, t, propose(db, t, "2026-01-05T15:00"))
    reply(db, t, "2026-01-05T10:00", waiting=True)
    assert running(db, t)["state"] == "paused"
    at("2026-01-05T12:00")
    with db.tx() as tx:
        messages.add_message(tx, t, author="ann@example.com", author_kind="customer", kind="needs_reply",
                             body="10.11.6", source="api")
        assert messages.messages_of(tx, t)[-1]["due_at"] == z("2026-01-05T17:00")
    ob = running(db, t)
    assert ob["state"] == "open" and ob["due_at"] == epoch("2026-01-05T17:00")
    assert ob["warn50"] == epoch("2026-01-05T14:00")


def test_a_bounced_reply_reopens_the_obligation_with_the_promise_in_force(db):
    t = asked(db)
    accept(db, t, propose(db, t, "2026-01-05T15:00"))
    sent = reply(db, t, "2026-01-05T11:00", delivery="sent")
    assert running(db, t) is None
    with db.tx() as tx:
        messages.set_delivery(tx, sent["id"], "undelivered", "550 no such user")
    assert running(db, t)["due_at"] == epoch("2026-01-05T15:00")


def test_who_may_answer_what(db):
    t = asked(db)
    offer = propose(db, t, "2026-01-05T15:00")
    with db.tx() as tx:
        with pytest.raises(promises.OwnSide):
            promises.accept(tx, t, offer["id"], actor=ENG, side="engineer")
        with pytest.raises(promises.OwnSide):
            promises.propose(tx, t, due_at=epoch("2026-01-05T15:00"), reason="x", actor=CUST, side="customer")
    answered = counter(db, t, offer, "2026-01-05T14:00")
    with db.tx() as tx:
        with pytest.raises(promises.Conflict, match="version 1 is countered"):
            promises.accept(tx, t, offer["id"], actor=CUST, side="customer")
        with pytest.raises(promises.OwnSide):
            promises.counter(tx, t, answered["id"], due_at=epoch("2026-01-05T16:00"), actor=CUST,
                             side="customer")
    again = propose(db, t, "2026-01-05T16:00")  # an engineer's new proposal answers the customer's
    assert [v["state"] for v in versions(db, t)] == ["countered", "countered", "proposed"]
    assert again["replaces"] == answered["id"]
    newer = propose(db, t, "2026-01-05T16:30")
    assert versions(db, t)[2]["state"] == "withdrawn" and newer["version"] == 4


def test_unknown_or_foreign_promises_are_not_found(db):
    t, other = asked(db), asked(db, "globex")
    theirs = propose(db, other, "2026-01-05T15:00")
    with db.tx() as tx:
        for promise_id in (theirs["id"], "pr-0000000000000000", "ob-1", "", "pr-" + "x" * 100):
            with pytest.raises(promises.NotFound):
                promises.accept(tx, t, promise_id, actor=CUST, side="customer")


@pytest.mark.parametrize("due, reason, message", [
    ("2026-01-05T08:59", "ok", "in the future"),
    ("2027-02-01T09:00", "ok", "at most a year"),
    ("2026-01-05T15:00", "", "required"),
    ("2026-01-05T15:00", "   ", "required"),
    ("2026-01-05T15:00", "x" * 501, "at most 500"),
    ("2026-01-05T15:00", "ring\x07", "printable"),
    ("2026-01-05T15:00", "two\nlines", "printable"),
    ("2026-01-05T15:00", "rtl\u202eevil", "printable"),
])
def test_bad_times_and_reasons_are_refused_in_one_line(db, due, reason, message):
    t = asked(db)
    with pytest.raises(Invalid, match=message) as refused:
        propose(db, t, due, reason=reason)
    assert "\n" not in str(refused.value)
    assert versions(db, t) == []


def test_no_promise_without_a_reply_owed_and_bad_estimates_refused(db):
    t = asked(db)
    reply(db, t, "2026-01-05T10:00")
    with pytest.raises(Invalid, match="no reply is owed"):
        propose(db, t, "2026-01-05T15:00")
    t = asked(db)
    for bad in (0, -5, float("nan"), 1e12, True):
        with pytest.raises(Invalid, match="estimate_seconds"):
            propose(db, t, "2026-01-05T15:00", estimate=bad)


@pytest.mark.parametrize("text", ["tomorrow", "2026-01-05 15:00", "2026-01-05T15:00:00",
                                  "2026-13-05T15:00:00Z", "", "2026-01-05T15:00:00Z\x00", 12345, None,
                                  "9" * 500])
def test_unreadable_times_are_invalid(text):
    with pytest.raises(Invalid, match="due_at"):
        promises.parse_time(text)


def test_times_with_an_offset_are_read_as_utc():
    assert promises.parse_time("2026-01-05T16:00:00+01:00") == epoch("2026-01-05T15:00")
    assert promises.parse_time("2026-01-05T15:00:00Z") == epoch("2026-01-05T15:00")


def test_the_timeline_shows_each_version_and_the_agreement_without_estimates_for_customers(db):
    t = asked(db)
    offer = propose(db, t, "2026-01-06T12:00", estimate=3600)
    at("2026-01-05T09:10")
    wanted = counter(db, t, offer, "2026-01-05T14:00")
    at("2026-01-05T09:20")
    accept(db, t, wanted, side="engineer")
    with db.tx() as tx:
        entries = promises.timeline_entries(tx, t, engineer=False)
    assert [(e["promise"]["version"], e["promise"]["event"]) for _, e in entries] == [
        (1, "proposed"), (2, "proposed"), (2, "accepted")]
    assert entries[-1][1]["at"] == z("2026-01-05T09:20")
    assert all(e["promise"]["estimate_seconds"] is None for _, e in entries)
