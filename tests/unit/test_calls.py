"""Calls under a simulated clock on real databases (SQLite and PostgreSQL): no agenda, no call (and
the refusal recorded), the time limit, the first free slot in the engineer's working hours, minutes,
cancellation, `busy` for the capacity model, hostile agendas and attendees."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from server.storage import audit
from server.storage.db import open_database
from server.support import calls, clock, policies, tickets
from server.support.tickets import Invalid

pytestmark = pytest.mark.server
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


@pytest.fixture
def db(tmp_path, own_backend):
    policies.configure(None)  # the default business calendar: Monday to Friday 09:00-17:00 UTC
    clock.set_now(epoch("2026-01-05T09:00"))  # a Monday
    database = open_database(own_backend or f"sqlite:///{tmp_path / 'server.db'}")
    with database.tx() as tx:
        for name in ("ann", "bob"):
            tickets.add_engineer(tx, name, "test")
    yield database
    database.close()
    clock.reset()


def ticket(db, customer: str = "acme") -> str:
    with db.tx() as tx:
        return tickets.create_ticket(tx, customer, "replication lag", [], "engineer:ann", 30)["id"]


def ask(db, ticket_id: str, **values):
    """calls.request in a transaction that commits a refusal too (as the API does); returns the
    call or the Refused."""
    fields = {"agenda": ["replica lag since Monday", "sync_binlog=0?"], "limit_minutes": 30,
              "attendees": [], "engineer": "ann", "earliest": None, "actor": "engineer:ann", **values}
    with db.tx() as tx:
        try:
            return calls.request(tx, ticket_id, **fields)
        except calls.Refused as refused:
            return refused


def test_no_agenda_no_call_and_the_refusal_is_recorded(db):
    ticket_id = ticket(db)
    for empty in ([], ["", "   ", "\t"], "\n\n"):
        refused = ask(db, ticket_id, agenda=empty)
        assert isinstance(refused, calls.Refused) and str(refused).startswith("no agenda, no call")
        assert refused.call["state"] == "refused" and refused.call["starts_at"] is None
    with db.tx(write=False) as tx:
        rows = tx.all("SELECT state, refused_reason FROM calls WHERE ticket_id = ?", (ticket_id,))
        actions = [e["action"] for e in audit.entries(tx, ticket_id)]
    assert [r["state"] for r in rows] == ["refused"] * 3
    assert all(r["refused_reason"].startswith("no agenda") for r in rows)
    assert actions.count("call.refused") == 3


def test_the_time_limit_defaults_to_30_minutes_and_is_at_most_two_hours(db):
    ticket_id = ticket(db)
    fields = {"agenda": ["one thing"], "attendees": [], "engineer": "ann", "earliest": None, "actor": "t"}
    with db.tx() as tx:
        call = calls.request(tx, ticket_id, **fields)
    assert call["limit_minutes"] == calls.DEFAULT_MINUTES == 30
    refused = ask(db, ticket_id, limit_minutes=121)
    assert isinstance(refused, calls.Refused) and "at most 120 minutes" in str(refused)
    assert ask(db, ticket_id, limit_minutes=120)["limit_minutes"] == 120
    for bad in (0, -30, 1.5, True, "30", float("nan"), 10 ** 12):
        with pytest.raises(Invalid, match="time limit"):
            ask(db, ticket_id, limit_minutes=bad)


def test_calls_go_to_the_first_free_slots_of_the_engineers_working_hours(db):
    ticket_id = ticket(db)
    first = ask(db, ticket_id)  # 09:00 + 30 min lead time
    second = ask(db, ticket_id, limit_minutes=60)
    assert (first["starts_at"], first["ends_at"]) == ("2026-01-05T09:30:00Z", "2026-01-05T10:00:00Z")
    assert (second["starts_at"], second["ends_at"]) == ("2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z")
    other = ask(db, ticket_id, engineer="bob")  # bob's calendar is free: not blocked by ann's calls
    assert other["starts_at"] == "2026-01-05T09:30:00Z"
    later = ask(db, ticket_id, limit_minutes=45, earliest=epoch("2026-01-05T13:07"))
    assert (later["starts_at"], later["ends_at"]) == ("2026-01-05T13:10:00Z", "2026-01-05T13:55:00Z")
    between = ask(db, ticket_id, limit_minutes=120, earliest=epoch("2026-01-05T10:30"))
    assert between["starts_at"] == "2026-01-05T11:00:00Z"  # after ann's 10:00-11:00, before 13:10
    squeezed = ask(db, ticket_id, limit_minutes=60, earliest=epoch("2026-01-05T12:00"))
    assert squeezed["starts_at"] == "2026-01-05T13:55:00Z"  # 13:00-13:10 is too short


def test_a_call_that_does_not_fit_before_closing_time_moves_to_the_next_working_morning(db):
    ticket_id = ticket(db)
    call = ask(db, ticket_id, limit_minutes=120, earliest=epoch("2026-01-05T15:07"))
    assert call["starts_at"] == "2026-01-06T09:00:00Z"  # 15:10-17:10 would run past 17:00
    friday = ask(db, ticket_id, limit_minutes=90, earliest=epoch("2026-01-09T16:00"))
    assert friday["starts_at"] == "2026-01-12T09:00:00Z"  # past the weekend


def test_a_cancelled_call_frees_its_slot_and_a_call_held_early_frees_the_rest(db):
    ticket_id = ticket(db)
    first = ask(db, ticket_id, limit_minutes=60)
    with db.tx() as tx:
        assert calls.busy(tx, "ann", epoch("2026-01-05T00:00"), epoch("2026-01-06T00:00")) == [
            (epoch("2026-01-05T09:30"), epoch("2026-01-05T10:30"))]
        calls.cancel(tx, ticket_id, first["id"], reason="customer fixed it", actor="engineer:ann")
        assert calls.busy(tx, "ann", epoch("2026-01-05T00:00"), epoch("2026-01-06T00:00")) == []
    again = ask(db, ticket_id, limit_minutes=60)
    assert again["starts_at"] == "2026-01-05T09:30:00Z"
    clock.set_now(epoch("2026-01-05T09:50"))
    with db.tx() as tx:
        held = calls.record_minutes(tx, ticket_id, again["id"], minutes="lag was the backup\nnext: throttle",
                                    actor="engineer:ann")
        assert calls.busy(tx, "ann", epoch("2026-01-05T00:00"), epoch("2026-01-06T00:00")) == [
            (epoch("2026-01-05T09:30"), epoch("2026-01-05T09:50"))]
    assert held["state"] == "held" and held["minutes"] == "lag was the backup\nnext: throttle"
    assert held["minuted_by"] == "engineer:ann" and held["minuted_at"] == "2026-01-05T09:50:00Z"


def test_minutes_and_cancellation_only_on_a_scheduled_call(db):
    ticket_id = ticket(db)
    call = ask(db, ticket_id)
    refused = ask(db, ticket_id, agenda=[])
    with db.tx() as tx:
        calls.record_minutes(tx, ticket_id, call["id"], minutes="done", actor="engineer:ann")
    for target in (call["id"], refused.call["id"]):
        with db.tx() as tx:
            with pytest.raises(calls.Conflict, match="only a scheduled call"):
                calls.record_minutes(tx, ticket_id, target, minutes="again", actor="engineer:ann")
            with pytest.raises(calls.Conflict):
                calls.cancel(tx, ticket_id, target, reason="x", actor="engineer:ann")
    fresh = ask(db, ticket_id)
    with db.tx() as tx:
        for bad in ("", "   ", "bell\x07", "x" * (calls.MINUTES_MAX + 1)):
            with pytest.raises(Invalid, match="minutes"):
                calls.record_minutes(tx, ticket_id, fresh["id"], minutes=bad, actor="engineer:ann")


def test_another_tickets_call_is_not_found(db):
    mine, theirs = ticket(db, "acme"), ticket(db, "globex")
    call = ask(db, theirs)
    with db.tx() as tx:
        for forged in (call["id"], "call-0000", "x" * 5000):
            with pytest.raises(calls.NotFound):
                calls.record_minutes(tx, mine, forged, minutes="x", actor="engineer:ann")
            with pytest.raises(calls.NotFound):
                calls.cancel(tx, mine, forged, reason="x", actor="engineer:ann")


@pytest.mark.parametrize("own_backend", ["sqlite"], indirect=True)  # checked before any SQL
@pytest.mark.parametrize("agenda, what", [
    (["line\r\nDTSTART:19700101T000000Z"], "agenda item"), (["bell\x07"], "agenda item"),
    (["rtl\u202eevil"], "agenda item"), (["x" * 201], "agenda item"),
    ([f"item {n}" for n in range(21)], "at most 20"), (["ok"] * 500, "at most 20"),
    ([42], "text"), (42, "list"),
])
def test_hostile_agendas_are_refused_and_nothing_is_stored(db, agenda, what):
    ticket_id = ticket(db)
    with pytest.raises(Invalid, match=what):
        ask(db, ticket_id, agenda=agenda)
    with db.tx(write=False) as tx:
        assert calls.of_ticket(tx, ticket_id) == []


@pytest.mark.parametrize("attendee, what", [
    ({"name": "Eve", "email": "eve@example.com\r\nBcc: all@example.com"}, "e-mail"),
    ({"name": "Eve", "email": "Eve <eve@example.com>"}, "e-mail"),
    ({"name": "Eve", "email": "eve@@example.com"}, "e-mail"),
    ({"name": "Eve", "email": "eve@localhost"}, "e-mail"),
    ({"name": "Eve", "email": "\"eve\"@example.com"}, "e-mail"),
    ({"name": "Eve", "email": "eve@example.com;ROLE=CHAIR"}, "e-mail"),
    ({"name": "Eve", "email": "eve@exa mple.com"}, "e-mail"),
    ({"name": "Eve", "email": "x" * 250 + "@example.com"}, "e-mail"),
    ({"name": "Eve\r\nATTENDEE:mailto:x@example.com"}, "name"),
    ({"name": ""}, "name"), ({"name": "x" * 101}, "name"), ({"email": "a@example.com"}, "name"),
    ({"name": "Eve", "role": "boss\nX"}, "role"), ({"name": "Eve", "role": 7}, "role"),
    ("eve@example.com", "object"),
])
def test_hostile_attendees_are_refused(db, attendee, what):
    ticket_id = ticket(db)
    with pytest.raises(Invalid, match=what):
        ask(db, ticket_id, attendees=[attendee])


def test_attendees_are_kept_with_their_roles_and_each_address_once(db):
    ticket_id = ticket(db)
    call = ask(db, ticket_id, attendees=[
        {"name": "Carol <b>", "email": "Carol@Example.COM", "role": "account manager"},
        {"name": "Carol again", "email": "carol@example.com"},
        {"name": "Dan", "role": "consultant"}])
    assert call["attendees"] == [
        {"name": "Carol <b>", "email": "carol@example.com", "role": "account manager"},
        {"name": "Dan", "email": None, "role": "consultant"}]
    with pytest.raises(Invalid, match="at most 20"):
        ask(db, ticket_id, attendees=[{"name": f"p{n}"} for n in range(21)])


def test_a_call_held_as_a_remote_session_takes_the_sessions_purpose_as_its_agenda(db):
    mine, theirs = ticket(db, "acme"), ticket(db, "globex")
    with db.tx() as tx:
        for sid, tid in (("se-mine", mine), ("se-theirs", theirs)):
            tx.run("INSERT INTO sessions (id, ticket_id, engineer, mode, purpose, host, tunnel_key, "
                   "granted_by, created, expires, state) VALUES (?, ?, 'ann', 'diag', "
                   "'look at the lagging replica', 'db1', 'k', 'upload:acme', ?, ?, 'granted')",
                   (sid, tid, clock.now(), clock.now() + 7200))
    call = ask(db, mine, agenda=[], session_id="se-mine")
    assert call["state"] == "scheduled" and call["agenda"] == ["look at the lagging replica"]
    assert call["session_id"] == "se-mine"
    with pytest.raises(calls.NotFound, match="session"):
        ask(db, mine, session_id="se-theirs")


def test_a_customer_request_goes_to_the_tickets_engineer(db):
    ticket_id = ticket(db)
    call = ask(db, ticket_id, engineer=None, actor="upload:acme")
    assert call["engineer"] == "ann"  # opened the ticket
    with pytest.raises(Invalid, match="engineer account"):
        ask(db, ticket_id, engineer="mallory")


def test_the_timeline_shows_requests_refusals_minutes_and_cancellations_to_both_sides(db):
    ticket_id = ticket(db)
    ask(db, ticket_id, agenda=[])
    held = ask(db, ticket_id)
    gone = ask(db, ticket_id)
    with db.tx() as tx:
        calls.record_minutes(tx, ticket_id, held["id"], minutes="settled", actor="engineer:ann")
        calls.cancel(tx, ticket_id, gone["id"], reason="not needed", actor="upload:acme")
        for engineer in (True, False):
            events = sorted(e["call"]["event"] for _, e in calls.timeline_entries(tx, ticket_id, engineer))
            assert events == ["cancelled", "held", "refused", "requested", "requested"]
        row = tx.one("SELECT agenda, attendees, ical_sequence FROM calls WHERE id = ?", (gone["id"],))
    assert json.loads(row["agenda"]) == gone["agenda"] and row["ical_sequence"] == 1


def test_a_call_keeps_to_the_engineers_own_calendar_and_time_off(db):
    from server.support import rosters

    ticket_id = ticket(db)
    with db.tx() as tx:  # Berlin 10:00-12:00 and 14:00-16:00 on weekdays: 09:00-11:00, 13:00-15:00 UTC
        rosters.set_calendar(tx, "bob", timezone="Europe/Berlin",
                             hours={d: ["10:00-12:00", "14:00-16:00"] for d in WEEKDAYS}, actor="test")
        rosters.add_time_off(tx, "bob", epoch("2026-01-05T09:00"), epoch("2026-01-05T10:20"), "dentist",
                             "test")
    first = ask(db, ticket_id, engineer="bob")
    assert first["starts_at"] == "2026-01-05T10:20:00Z"  # after the time off, before the 11:00 close
    long = ask(db, ticket_id, engineer="bob", limit_minutes=90)
    assert long["starts_at"] == "2026-01-05T13:00:00Z"  # 10:50-11:00 is too short; the afternoon opens
    clock.set_now(epoch("2026-01-05T14:00"))
    late = ask(db, ticket_id, engineer="bob", limit_minutes=60)
    assert late["starts_at"] == "2026-01-06T09:00:00Z"  # 14:30-15:00 is left: tomorrow's first hour
