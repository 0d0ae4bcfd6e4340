"""The work routes on real server processes, SQLite and PostgreSQL: a reply fanned out to two
engineers and composed from their results, calls refused without an agenda (and the refusal
recorded), scheduled in the engineer's hours, invited by mail, minuted, cancelled; hostile bodies,
forged ids and another customer's token.

The server runs on a test clock (MYDIAG_FAKE_NOW with MYDIAG_TEST_CLOCK=1) started on Monday
2026-01-05 at 08:00 UTC: the default business hours open at 09:00, a first reply is due at 13:00."""

from __future__ import annotations

import email
import email.policy
import json
import os
import secrets
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

from server.storage.state import State
from tests.serverkit import Server, make_server

pytestmark = pytest.mark.server

MONDAY_8 = 1767600000.0  # 2026-01-05T08:00:00Z


@pytest.fixture(scope="module")
def support(tmp_path_factory, backend) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("work"), backend)
    saved = {k: os.environ.get(k) for k in ("MYDIAG_TEST_CLOCK", "MYDIAG_FAKE_NOW")}
    os.environ.update(MYDIAG_TEST_CLOCK="1", MYDIAG_FAKE_NOW=str(MONDAY_8))
    try:
        srv.start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield srv
    srv.stop()


def call(support, method: str, path: str, token: str, body: Any = None,
         raw: Optional[bytes] = None) -> Tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(support.url + path, method=method, data=data, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def engineer(support) -> str:
    name = f"eng-{secrets.token_hex(3)}"
    support.cli("engineer", "add", name)
    return name


def asked(support, customer: str = "acme") -> Dict:
    ticket = support.ticket(customer)
    status, _ = call(support, "POST", f"/api/v1/tickets/{ticket['id']}/messages", ticket["upload_token"],
                     {"body": "the replica is 2 h behind", "kind": "needs_reply"})
    assert status == 201
    return ticket


def items(ticket: Dict) -> str:
    return f"/api/v1/tickets/{ticket['id']}/work-items"


def calls_path(ticket: Dict) -> str:
    return f"/api/v1/tickets/{ticket['id']}/calls"


def item(owner: str, **extra: Any) -> Dict[str, Any]:
    return {"title": "read the relay log", "owner": owner, "estimate_seconds": 3600,
            "due_at": "2026-01-05T12:00:00Z", **extra}


def outbox(support, ticket_id: str):
    state = State.open(support.data, support.database)
    try:
        with state.db.tx(write=False) as tx:
            return tx.all("SELECT to_addr, raw FROM outbox WHERE ticket_id = ? ORDER BY created, to_addr",
                          (ticket_id,))
    finally:
        state.close()


def test_one_reply_fans_out_to_two_engineers_and_is_composed_from_their_results(support):
    ann, bob = engineer(support), engineer(support)
    ticket = asked(support)
    status, first = call(support, "POST", items(ticket), support.admin_token,
                         item(ann, title="Relay log"))
    assert status == 201, first
    status, second = call(support, "POST", items(ticket), support.admin_token,
                          item(bob, title="Disk latency", estimate_seconds=1800,
                               due_at="2026-01-05T13:00:00Z"))
    assert status == 201 and second["owner"] == bob and second["state"] == "open"
    status, listed = call(support, "GET", items(ticket), support.admin_token)
    assert status == 200 and [i["id"] for i in listed] == [first["id"], second["id"]]
    for it, result in ((second, "p99 write latency 40 ms"), (first, "no gaps, <b>fine</b>")):
        status, done = call(support, "PATCH", f"{items(ticket)}/{it['id']}", support.admin_token,
                            {"state": "done", "result": result})
        assert status == 200 and done["state"] == "done" and done["done_at"]
    status, composed = call(support, "GET", f"{items(ticket)}/compose", support.admin_token)
    assert status == 200
    assert composed["body"] == "Relay log:\nno gaps, <b>fine</b>\n\nDisk latency:\np99 write latency 40 ms"
    assert composed["done"] == [first["id"], second["id"]] and composed["open"] == []
    status, again = call(support, "PATCH", f"{items(ticket)}/{first['id']}", support.admin_token,
                         {"state": "cancelled"})
    assert status == 409 and "already done" in again["error"]
    _, timeline = call(support, "GET", f"/api/v1/tickets/{ticket['id']}/timeline", support.admin_token)
    assert [e["work_item"]["event"] for e in timeline if e["type"] == "work_item"].count("done") == 2
    _, theirs = call(support, "GET", f"/api/v1/tickets/{ticket['id']}/timeline", ticket["upload_token"])
    assert not [e for e in theirs if e["type"] == "work_item"]


def test_work_items_are_the_support_sides_a_customer_token_gets_403(support):
    ticket = asked(support)
    token = ticket["upload_token"]
    assert call(support, "POST", items(ticket), token, item("admin"))[0] == 403
    assert call(support, "GET", items(ticket), token)[0] == 403
    assert call(support, "GET", f"{items(ticket)}/compose", token)[0] == 403
    assert call(support, "PATCH", f"{items(ticket)}/wi-0000000000000000", token, {"state": "done"})[0] == 403


@pytest.mark.parametrize("change, status, words", [
    ({"due_at": "2026-01-05T13:00:01Z"}, 400, "inside the promise"),
    ({"due_at": "2026-01-05T07:00:00Z"}, 400, "inside the promise"),
    ({"due_at": "2026-13-01T00:00:00Z"}, 400, "UTC time"),
    ({"due_at": "tomorrow"}, 400, "UTC time"),
    ({"due_at": "2026-01-05T12:00:00+02:00"}, 400, "UTC time"),
    ({"owner": "mallory"}, 400, "engineer account"),
    ({"estimate_seconds": 0}, 400, "estimate"),
    ({"estimate_seconds": 1e300}, 400, "estimate"),
    ({"title": "<script>x</script>\r\nBcc: all"}, 400, "title"),
    ({"title": "x" * 100_000}, 400, "title"),
    ({"estimate_seconds": "lots"}, 422, "estimate_seconds"),
])
def test_hostile_work_items_are_refused_with_one_line(support, change, status, words):
    ticket = asked(support)
    got, answer = call(support, "POST", items(ticket), support.admin_token, {**item("admin"), **change})
    assert got == status and words in answer["error"] and "\n" not in answer["error"], answer


def test_a_ticket_that_owes_no_reply_has_nothing_to_split(support):
    ticket = support.ticket()
    status, answer = call(support, "POST", items(ticket), support.admin_token, item("admin"))
    assert status == 409 and "no reply is owed" in answer["error"]


def test_another_tickets_ids_and_another_customers_token_answer_404(support):
    mine, theirs = asked(support, "acme"), asked(support, "globex")
    _, their_item = call(support, "POST", items(theirs), support.admin_token, item("admin"))
    _, their_call = call(support, "POST", calls_path(theirs), theirs["upload_token"], {"agenda": ["x"]})
    for forged in (their_item["id"], "wi-../../x", "wi-" + "0" * 5000):
        status, _ = call(support, "PATCH", f"{items(mine)}/{forged}", support.admin_token,
                         {"state": "cancelled"})
        assert status == 404
    for action, body in (("minutes", {"minutes": "x"}), ("cancel", {"reason": "x"})):
        assert call(support, "POST", f"{calls_path(mine)}/{their_call['id']}/{action}", support.admin_token,
                    body)[0] == 404
    token = mine["upload_token"]
    assert call(support, "GET", calls_path(theirs), token)[0] == 404
    assert call(support, "POST", calls_path(theirs), token, {"agenda": ["spy"]})[0] == 404
    assert call(support, "POST", f"{calls_path(theirs)}/{their_call['id']}/cancel", token,
                {"reason": "x"})[0] == 404
    _, own = call(support, "GET", calls_path(mine), token)
    assert own == []


def test_no_agenda_no_call_the_refusal_is_recorded_and_answered_422(support):
    ticket = asked(support)
    for body in ({"agenda": []}, {"agenda": ["", "   "]}, {}):
        status, answer = call(support, "POST", calls_path(ticket), ticket["upload_token"], body)
        assert status == 422 and answer["error"].startswith("no agenda, no call"), answer
    status, too_long = call(support, "POST", calls_path(ticket), support.admin_token,
                            {"agenda": ["all of it"], "limit_minutes": 121})
    assert status == 422 and "at most 120 minutes" in too_long["error"]
    _, listed = call(support, "GET", calls_path(ticket), ticket["upload_token"])
    assert [c["state"] for c in listed] == ["refused"] * 4
    assert listed[0]["refused_reason"].startswith("no agenda") and listed[0]["starts_at"] is None
    _, audit = call(support, "GET", f"/api/v1/audit?ticket={ticket['id']}", support.admin_token)
    assert [e["action"] for e in audit].count("call.refused") == 4
    assert outbox(support, ticket["id"]) == []


def test_a_call_with_an_agenda_is_scheduled_in_the_engineers_hours_invited_and_minuted(support):
    eve = engineer(support)
    ticket = asked(support)
    person = f"dba-{secrets.token_hex(3)}@acme.example"
    support.cli("customer", "add-person", "acme", person)
    status, booked = call(support, "POST", calls_path(ticket), support.admin_token, {
        "agenda": ["why the replica lags", "whether sync_binlog=0 is safe"], "engineer": eve,
        "attendees": [{"name": "Carol", "email": "carol@example.com", "role": "account manager"},
                      {"name": "Dan", "role": "consultant"}]})
    assert status == 201, booked
    assert booked["state"] == "scheduled" and booked["engineer"] == eve and booked["limit_minutes"] == 30
    assert (booked["starts_at"], booked["ends_at"]) == ("2026-01-05T09:00:00Z", "2026-01-05T09:30:00Z")
    _, next_one = call(support, "POST", calls_path(ticket), support.admin_token,
                       {"agenda": ["follow-up"], "engineer": eve, "limit_minutes": 45})
    assert next_one["starts_at"] == "2026-01-05T09:30:00Z"  # not over eve's first call
    mailed = outbox(support, ticket["id"])
    assert {r["to_addr"] for r in mailed} >= {"carol@example.com", person}
    raw = [r["raw"] for r in mailed if r["to_addr"] == "carol@example.com"][0]
    part = [p for p in email.message_from_string(raw, policy=email.policy.default).walk()
            if p.get_content_type() == "text/calendar"][0]
    text = part.get_payload(decode=True).decode()
    assert part.get_param("method") == "REQUEST" and "DTSTART:20260105T090000Z\r\n" in text
    path = f"{calls_path(ticket)}/{booked['id']}/minutes"
    assert call(support, "POST", path, ticket["upload_token"], {"minutes": "x"})[0] == 403
    status, held = call(support, "POST", path, support.admin_token,
                        {"minutes": "The backup throttles the SQL thread.\nNext: move it to 02:00."})
    assert status == 200 and held["state"] == "held" and held["minutes"].startswith("The backup")
    assert call(support, "POST", path, support.admin_token, {"minutes": "again"})[0] == 409
    assert call(support, "POST", path, support.admin_token, {"minutes": "bell\x07"})[0] in (400, 409)
    _, timeline = call(support, "GET", f"/api/v1/tickets/{ticket['id']}/timeline", ticket["upload_token"])
    events = [e["call"]["event"] for e in timeline if e["type"] == "call"]
    assert events.count("requested") == 2 and events.count("held") == 1
    assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)


def test_the_customer_asks_for_a_call_and_calls_it_off(support):
    ticket = asked(support)
    token = ticket["upload_token"]
    status, denied = call(support, "POST", calls_path(ticket), token, {"agenda": ["x"], "engineer": "admin"})
    assert status == 403 and "engineers" in denied["error"]
    status, booked = call(support, "POST", calls_path(ticket), token,
                          {"agenda": ["the upgrade plan"], "limit_minutes": 60,
                           "earliest": "2026-01-06T14:00:00Z"})
    assert status == 201 and booked["engineer"] == "admin" and booked["requested_by"] == "upload:acme"
    assert booked["starts_at"] == "2026-01-06T14:00:00Z"
    status, gone = call(support, "POST", f"{calls_path(ticket)}/{booked['id']}/cancel", token,
                        {"reason": "solved it ourselves"})
    assert status == 200 and gone["state"] == "cancelled" and gone["cancel_reason"] == "solved it ourselves"
    assert call(support, "POST", f"{calls_path(ticket)}/{booked['id']}/cancel", token,
                {"reason": "again"})[0] == 409
    _, audit = call(support, "GET", f"/api/v1/audit?ticket={ticket['id']}", support.admin_token)
    steps = [(e["action"], e["actor"]) for e in audit if e["subject"] == booked["id"]]
    assert steps == [("call.invite", "upload:acme"), ("call.cancel", "upload:acme"),
                     ("call.invite", "upload:acme"), ("call.request", "upload:acme")]  # newest first


@pytest.mark.parametrize("body, status, words", [
    ({"agenda": ["a\r\nATTENDEE:mailto:evil@example.com"]}, 400, "agenda item"),
    ({"agenda": ["\x1b]0;owned\x07"]}, 400, "agenda item"),
    ({"agenda": [f"item {n}" for n in range(21)]}, 400, "at most 20"),
    ({"agenda": ["x"] * 100_000}, 400, "at most 20"),
    ({"agenda": ["x" * 201]}, 400, "agenda item"),
    ({"agenda": ["x"], "limit_minutes": 0}, 400, "time limit"),
    ({"agenda": ["x"], "limit_minutes": -5}, 400, "time limit"),
    ({"agenda": ["x"], "limit_minutes": 1.5}, 422, "limit_minutes"),
    ({"agenda": ["x"], "limit_minutes": 10 ** 30}, 400, "time limit"),
    ({"agenda": ["x"], "attendees": [{"name": "Eve", "email": "eve@example.com\r\nBcc: all@example.com"}]},
     400, "e-mail"),
    ({"agenda": ["x"], "attendees": [{"name": "Eve", "email": "Eve <eve@example.com>"}]}, 400, "e-mail"),
    ({"agenda": ["x"], "attendees": [{"name": "<b>Eve</b>\nX-Evil: 1"}]}, 400, "name"),
    ({"agenda": ["x"], "attendees": [{"name": f"p{n}"} for n in range(21)]}, 400, "at most 20"),
    ({"agenda": ["x"], "earliest": "2026-02-30T10:00:00Z"}, 400, "UTC time"),
    ({"agenda": ["x"], "earliest": "2030-01-01T10:00:00Z"}, 400, "within the next"),
    ({"agenda": ["x"], "session_id": "se-not-this-tickets"}, 404, "session"),
    ({"agenda": "just text"}, 422, "agenda"),
])
def test_hostile_call_requests_get_one_line_and_store_nothing(support, body, status, words):
    ticket = asked(support)
    got, answer = call(support, "POST", calls_path(ticket), support.admin_token, body)
    assert got == status and words in answer["error"] and "\n" not in answer["error"], answer
    _, listed = call(support, "GET", calls_path(ticket), support.admin_token)
    assert listed == []


def test_a_body_that_is_not_json_is_400(support):
    ticket = asked(support)
    status, answer = call(support, "POST", calls_path(ticket), support.admin_token, raw=b'{"agenda": [')
    assert status == 400 and "JSON" in answer["error"]


def test_concurrent_requests_for_one_engineer_never_get_overlapping_slots(support):
    import concurrent.futures

    zoe = engineer(support)
    ticket = asked(support)

    def book(n: int):
        return call(support, "POST", calls_path(ticket), support.admin_token,
                    {"agenda": [f"topic {n}"], "engineer": zoe, "limit_minutes": 20})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(book, range(8)))
    assert [status for status, _ in answers] == [201] * 8, answers
    slots = sorted((c["starts_at"], c["ends_at"]) for _, c in answers)
    assert all(end <= start for (_, end), (start, _) in zip(slots, slots[1:])), slots
    assert slots[0][0] == "2026-01-05T09:00:00Z"


def test_a_fanned_out_reply_is_in_both_owners_queues(support):
    owners = {}
    for _ in range(2):
        made = json.loads(support.cli("engineer", "add", f"q-{secrets.token_hex(3)}", "--json").stdout)
        owners[made["name"]] = made["token"]
    ticket = asked(support)
    ids = {}
    for name in owners:
        status, made = call(support, "POST", items(ticket), support.admin_token,
                            item(name, title=f"part of {name}", due_at="2026-01-05T10:00:00Z",
                                 estimate_seconds=600))
        assert status == 201, made
        ids[name] = made["id"]
    for name, token in owners.items():
        status, queue = call(support, "GET", "/api/v1/queue", token)
        assert status == 200, queue
        pinned = {t["task_id"]: t for t in queue["tasks"] if t["task_id"] in ids.values()}
        assert {t["engineer"] for t in pinned.values()} == set(owners), queue["tasks"]
        mine = pinned[ids[name]]
        assert mine["kind"] == "work_item" and mine["ticket_id"] == ticket["id"]
        assert mine["due_at"] == "2026-01-05T10:00:00Z"
        # This module's server is overloaded on purpose (dozens of replies due at 13:00): the queue
        # may put one of them first, but never the other owner's item.
        other = [i for n, i in ids.items() if n != name][0]
        status, task = call(support, "GET", "/api/v1/queue/next", token)
        assert status == 200 and task["task_id"] != other, task
