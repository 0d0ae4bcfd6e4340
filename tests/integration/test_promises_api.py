"""The promise routes on real server processes, SQLite and PostgreSQL: propose, counter, accept
and the version history on both sides; the reply clock following the promise; admission control
refusing a time with the earliest feasible one (engineers see what would have to move, a
customer only how many); renegotiated vs kept vs missed across a restart on a later clock;
hostile bodies, forged ids and another customer's token.

The servers run on a test clock (MYDIAG_FAKE_NOW with MYDIAG_TEST_CLOCK=1) started on Monday
2026-01-05 at 08:00 UTC: the engineers' default hours open at 09:00, a first reply is due at
13:00, and a reply needs an hour of work unless estimated otherwise; no reserve is kept."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

from tests.serverkit import Server, make_server

pytestmark = pytest.mark.server

MONDAY_8 = 1767600000.0  # 2026-01-05T08:00:00Z
HOUR = 3600.0


@contextmanager
def fake_clock(at: float) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("MYDIAG_TEST_CLOCK", "MYDIAG_FAKE_NOW")}
    os.environ.update(MYDIAG_TEST_CLOCK="1", MYDIAG_FAKE_NOW=str(at))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def server(base, backend, engineers: int) -> Server:
    srv = make_server(base, backend)
    config = json.loads((srv.data / "config.json").read_text())
    config["support"] = {**config.get("support", {}), "capacity": {"reserve": 0}}
    (srv.data / "config.json").write_text(json.dumps(config))
    for i in range(engineers):
        srv.cli("engineer", "add", f"eng{i}")
    return srv


@pytest.fixture(scope="module")
def support(tmp_path_factory, backend) -> Iterator[Server]:
    """Shared by the tests that do not count on the load: eight engineers' worth of hours."""
    srv = server(tmp_path_factory.mktemp("promises"), backend, engineers=7)
    with fake_clock(MONDAY_8):
        srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def alone(tmp_path, own_backend) -> Iterator[Server]:
    """The admin as the only engineer: the load is the test's own."""
    srv = server(tmp_path, own_backend, engineers=0)
    with fake_clock(MONDAY_8):
        srv.start()
    yield srv
    srv.stop()


def call(srv, method: str, path: str, token: str, body: Any = None,
         raw: Optional[bytes] = None) -> Tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(srv.url + path, method=method, data=data, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def asked(srv, customer: str = "acme") -> Dict:
    ticket = srv.ticket(customer)
    status, _ = call(srv, "POST", f"/api/v1/tickets/{ticket['id']}/messages", ticket["upload_token"],
                     {"body": "the replica is 2 h behind", "kind": "needs_reply"})
    assert status == 201
    return ticket


def path(ticket: Dict, *rest: str) -> str:
    return "/".join([f"/api/v1/tickets/{ticket['id']}/promises", *rest])


def propose(srv, ticket: Dict, due: str, reason: str = "we need to reproduce it", **extra: Any):
    return call(srv, "POST", path(ticket), srv.admin_token, {"due_at": due, "reason": reason, **extra})


def answer(srv, ticket: Dict, promise: Dict, action: str, token: Optional[str] = None, **body: Any):
    return call(srv, "POST", path(ticket, promise["id"], action), token or ticket["upload_token"],
                body if action == "counter" else None)


def reply(srv, ticket: Dict, body: str = "the relay log was corrupt: resync it") -> None:
    status, _ = call(srv, "POST", f"/api/v1/tickets/{ticket['id']}/messages", srv.admin_token,
                     {"body": body, "kind": "reply"})
    assert status == 201


def test_propose_counter_accept_and_the_history_on_both_sides(support):
    ticket = asked(support)
    status, offer = propose(support, ticket, "2026-01-05T15:00:00Z", estimate_seconds=7200)
    assert status == 201 and offer["state"] == "proposed" and offer["version"] == 1
    assert offer["policy_due_at"] == "2026-01-05T13:00:00Z" and offer["proposed_side"] == "engineer"
    status, wanted = answer(support, ticket, offer, "counter", due_at="2026-01-05T14:00:00Z",
                            reason="the board meets at 14:30")
    assert status == 201 and wanted["replaces"] == offer["id"] and wanted["proposed_side"] == "customer"
    status, done = answer(support, ticket, wanted, "accept", support.admin_token)
    assert status == 200 and done["state"] == "accepted" and done["answered_by"] == "admin:admin"
    status, history = call(support, "GET", path(ticket), ticket["upload_token"])
    assert status == 200
    assert [(v["version"], v["state"], v["due_at"]) for v in history] == [
        (1, "countered", "2026-01-05T15:00:00Z"), (2, "accepted", "2026-01-05T14:00:00Z")]
    assert all(v["estimate_seconds"] is None for v in history)  # the engineers' estimate stays theirs
    _, seen = call(support, "GET", path(ticket), support.admin_token)
    assert seen[0]["estimate_seconds"] == 7200
    # The customer's view of the ticket shows the promise in force and its history.
    _, said = call(support, "GET", f"/api/v1/tickets/{ticket['id']}/messages", ticket["upload_token"])
    assert said[0]["due_at"] == "2026-01-05T14:00:00Z"
    _, timeline = call(support, "GET", f"/api/v1/tickets/{ticket['id']}/timeline", ticket["upload_token"])
    steps = [(e["promise"]["version"], e["promise"]["event"]) for e in timeline if e["type"] == "promise"]
    assert steps == [(1, "proposed"), (2, "proposed"), (2, "accepted")]
    _, entries = call(support, "GET", f"/api/v1/audit?ticket={ticket['id']}", support.admin_token)
    actions = [e["action"] for e in entries]
    assert {"promise.propose", "promise.counter", "promise.accept"} <= set(actions)


def test_a_time_the_calendars_cannot_carry_is_refused_with_the_earliest_feasible_one(support):
    ticket = asked(support)
    status, refused = propose(support, ticket, "2026-01-05T09:10:00Z", estimate_seconds=HOUR)
    assert status == 409, refused
    assert set(refused) == {"error", "earliest_feasible_at", "must_move"}
    assert "2026-01-05T09:10:00Z" in refused["error"] and "\n" not in refused["error"]
    assert "2026-01-05T10:00:00Z" <= refused["earliest_feasible_at"] <= "2026-01-05T10:01:00Z"
    assert refused["must_move"] == []  # no other commitment stands in the way: an hour is an hour
    _, entries = call(support, "GET", f"/api/v1/audit?ticket={ticket['id']}", support.admin_token)
    assert [e["action"] for e in entries].count("admission.refuse") == 1
    status, offer = propose(support, ticket, refused["earliest_feasible_at"], estimate_seconds=HOUR)
    assert status == 201 and offer["due_at"] == refused["earliest_feasible_at"]


def test_engineers_see_what_must_move_and_a_customer_only_how_many(alone):
    early = asked(alone, "initech")  # offered 11:30 first, accepted last
    status, early_offer = propose(alone, early, "2026-01-05T11:30:00Z", estimate_seconds=HOUR)
    assert status == 201
    other = asked(alone, "globex")
    status, offer = propose(alone, other, "2026-01-05T11:00:00Z", estimate_seconds=2 * HOUR)
    assert status == 201 and answer(alone, other, offer, "accept")[0] == 200
    _, listed = call(alone, "GET", f"/api/v1/tickets/{other['id']}/promises", alone.admin_token)
    other_ob = listed[0]["obligation_id"]
    # An engineer wanting 11:00 for another hour of work: globex's two hours stand in the way.
    ticket = asked(alone)
    status, refused = propose(alone, ticket, "2026-01-05T11:00:00Z", estimate_seconds=HOUR)
    assert status == 409
    assert refused["must_move"] == [{"task_id": other_ob, "ticket_id": other["id"],
                                     "due_at": "2026-01-05T11:00:00Z"}]
    assert refused["earliest_feasible_at"] >= "2026-01-05T12:00:00Z"
    # The first offer no longer fits when its customer accepts it: refused, and they learn no names.
    status, refused = answer(alone, early, early_offer, "accept")
    assert status == 409 and refused["must_move"] == 1
    assert other["id"] not in json.dumps(refused) and "globex" not in json.dumps(refused)
    assert refused["earliest_feasible_at"] >= "2026-01-05T12:00:00Z"
    status, still = call(alone, "GET", path(early), early["upload_token"])
    assert [v["state"] for v in still] == ["proposed"]
    # A customer may ask for any time; the engineer accepting it runs admission control.
    status, wanted = answer(alone, early, early_offer, "counter", due_at="2026-01-05T10:00:00Z")
    assert status == 201
    status, refused = answer(alone, early, wanted, "accept", alone.admin_token)
    assert status == 409 and refused["must_move"][0]["ticket_id"] == other["id"]
    refusals = [e for e in call(alone, "GET", "/api/v1/audit", alone.admin_token)[1]
                if e["action"] == "admission.refuse"]
    assert len(refusals) == 3


def test_renegotiated_kept_and_missed_across_a_later_clock(tmp_path, own_backend):
    srv = server(tmp_path, own_backend, engineers=3)
    with fake_clock(MONDAY_8):
        srv.start()
    try:
        kept, missed, moved = asked(srv, "kept"), asked(srv, "missed"), asked(srv, "moved")
        for ticket in (kept, missed, moved):
            status, offer = propose(srv, ticket, "2026-01-05T10:00:00Z")
            assert status == 201 and answer(srv, ticket, offer, "accept")[0] == 200
        status, later = propose(srv, moved, "2026-01-05T11:00:00Z", reason="the vendor answers at 10:45")
        assert status == 201
        status, again = answer(srv, moved, later, "accept")
        assert status == 200 and again["renegotiated"]
        reply(srv, kept)
        srv.stop()
        with fake_clock(MONDAY_8 + 2.5 * HOUR):  # 10:30: the first promise of `missed` has passed
            srv.start()
        reply(srv, missed)
        reply(srv, moved)
        outcome = {}
        for ticket in (kept, missed, moved):
            _, history = call(srv, "GET", path(ticket), ticket["upload_token"])
            outcome[ticket["id"]] = [(v["state"], v["renegotiated"], v["outcome"]) for v in history]
        assert outcome[kept["id"]] == [("accepted", False, "kept")]
        assert outcome[missed["id"]] == [("accepted", False, "missed")]
        assert outcome[moved["id"]] == [("superseded", False, None), ("accepted", True, "kept")]
        _, timeline = call(srv, "GET", f"/api/v1/tickets/{missed['id']}/timeline", missed["upload_token"])
        breach = [e["clock"] for e in timeline if e["type"] == "clock" and e["clock"]["kind"] == "breach"]
        assert [b["due_at"] for b in breach] == ["2026-01-05T10:00:00Z"]  # the sweeper saw the promise
        report = json.loads(srv.cli("report", "ontime", "--since", "2026-01-01", "--until", "2026-02-01",
                                    "--json").stdout)
        assert report["promises"] == {"promised": 4, "kept": 2, "missed": 1, "renegotiated": 1, "pending": 0,
                                      "refused": 0}
    finally:
        srv.stop()


@pytest.mark.parametrize("body, status", [
    ({"due_at": "tomorrow", "reason": "x"}, 400),
    ({"due_at": "2026-01-05 15:00", "reason": "x"}, 400),
    ({"due_at": "2026-01-05T15:00:00", "reason": "x"}, 400),  # no zone: ambiguous
    ({"due_at": "2026-02-30T15:00:00Z", "reason": "x"}, 400),
    ({"due_at": "2026-01-05T07:00:00Z", "reason": "x"}, 400),  # the past
    ({"due_at": "2027-03-01T00:00:00Z", "reason": "x"}, 400),  # over a year ahead
    ({"due_at": "2" * 65, "reason": "x"}, 422),
    ({"due_at": 1767625200, "reason": "x"}, 422),
    ({"due_at": "2026-01-05T15:00:00Z", "reason": ""}, 400),
    ({"due_at": "2026-01-05T15:00:00Z", "reason": "ring\x07"}, 400),
    ({"due_at": "2026-01-05T15:00:00Z", "reason": "\x1b]0;owned\x07"}, 400),
    ({"due_at": "2026-01-05T15:00:00Z", "reason": "rtl\u202etxt"}, 400),
    ({"due_at": "2026-01-05T15:00:00Z", "reason": "two\nlines"}, 400),
    ({"due_at": "2026-01-05T15:00:00Z", "reason": "x" * 501}, 400),
    ({"due_at": "2026-01-05T15:00:00Z", "reason": "x" * 5000}, 422),
    ({"due_at": "2026-01-05T15:00:00Z", "reason": "x", "estimate_seconds": -1}, 400),
    ({"due_at": "2026-01-05T15:00:00Z", "reason": "x", "estimate_seconds": 1e300}, 400),
    ({"due_at": "2026-01-05T15:00:00Z"}, 422),
])
def test_hostile_proposals_are_refused_in_one_line(support, body, status):
    ticket = asked(support)
    got, answered = call(support, "POST", path(ticket), support.admin_token, body)
    assert got == status, answered
    assert set(answered) == {"error"} and "\n" not in answered["error"] and answered["error"]
    assert call(support, "GET", path(ticket), support.admin_token)[1] == []


def test_bad_json_and_markup(support):
    ticket = asked(support)
    assert call(support, "POST", path(ticket), support.admin_token, raw=b'{"due_at": ')[0] == 400
    assert call(support, "POST", path(ticket), support.admin_token,
                raw=b'{"due_at": "2026-01-05T15:00:00Z", "reason": "\\ud800"}')[0] == 400
    markup = "<script>alert(1)</script> & 'quotes'"
    status, offer = propose(support, ticket, "2026-01-05T15:00:00Z", reason=markup)
    assert status == 201 and offer["reason"] == markup
    status, answered = answer(support, ticket, offer, "counter", due_at="yesterday")
    assert status == 400 and "due_at" in answered["error"]


def test_who_may_answer_what_and_forged_ids(support):
    ticket, other = asked(support), asked(support, "globex")
    status, offer = propose(support, ticket, "2026-01-05T15:00:00Z")
    assert status == 201
    _, theirs = propose(support, other, "2026-01-05T15:00:00Z")
    token = ticket["upload_token"]
    # Customers do not propose; nobody answers their own side's proposal.
    later = {"due_at": "2026-01-05T16:00:00Z", "reason": "x"}
    assert call(support, "POST", path(ticket), token, later)[0] == 403
    assert answer(support, ticket, offer, "accept", support.admin_token)[0] == 403
    # Another ticket's promise, an unknown one, a malformed id: 404.
    for forged in (theirs, {"id": "pr-0000000000000000"}, {"id": "ob-1"}, {"id": "pr-" + "x" * 300}):
        assert answer(support, ticket, forged, "accept")[0] == 404
    # Another customer's token sees and answers nothing of this ticket.
    for method, where, body in (("GET", path(ticket), None),
                                ("POST", path(ticket, offer["id"], "accept"), None),
                                ("POST", path(ticket, offer["id"], "counter"), later)):
        status, answered = call(support, method, where, other["upload_token"], body)
        assert status == 404 and "reproduce" not in json.dumps(answered)
    # A version that is not the open proposal any more: 409.
    status, wanted = answer(support, ticket, offer, "counter", due_at="2026-01-05T14:00:00Z")
    assert status == 201
    status, answered = answer(support, ticket, offer, "accept")
    assert status == 409 and "version 1 is countered" in answered["error"]
    # An engineer's counter needs a reason.
    assert answer(support, ticket, wanted, "counter", support.admin_token,
                  due_at="2026-01-05T16:00:00Z")[0] == 400
    # No reply owed: nothing to promise.
    reply(support, other)
    status, answered = propose(support, other, "2026-01-05T16:00:00Z")
    assert status == 400 and "no reply is owed" in answered["error"]
    status, answered = answer(support, other, theirs, "accept")
    assert status == 409 and "no longer owed" in answered["error"]


def test_the_routes_and_the_refusal_are_in_the_openapi_document(support):
    status, doc = call(support, "GET", "/api/v1/openapi.json", support.admin_token)
    assert status == 200
    paths = doc["paths"]
    base = "/api/v1/tickets/{ticket_id}/promises"
    assert {"get", "post"} <= set(paths[base])
    assert "post" in paths[base + "/{promise_id}/accept"] and "post" in paths[base + "/{promise_id}/counter"]
    refused = paths[base]["post"]["responses"]["409"]["content"]["application/json"]["schema"]
    assert refused["$ref"].endswith("/RefusedOut")
    fields = doc["components"]["schemas"]["RefusedOut"]["properties"]
    assert {"earliest_feasible_at", "must_move"} <= set(fields)
