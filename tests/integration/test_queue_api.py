"""The time-shared queue on real server processes, SQLite and PostgreSQL: the next task is the
earliest deadline first; a take holds it for one slice and only one engineer ever holds it
(concurrent takes); the slice's end releases the engineer; a wait releases at once and the
customer's answer brings the task back; a large task keeps its dedicated owner however many
small ones are due sooner; slack alarms fire once per level; hostile input answers 4xx."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

import pytest

from tests.serverkit import make_server

pytestmark = pytest.mark.server

SLICE = 3.0  # seconds: short enough to watch a slice end


def call(srv, method: str, path: str, token: Optional[str], body: Any = None,
         raw: Optional[bytes] = None) -> Tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(srv.url + path, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def srv(tmp_path_factory, backend):
    server = make_server(tmp_path_factory.mktemp("queue"), backend)
    config = json.loads((server.data / "config.json").read_text())
    config["support"] = {
        "calendars": {"business": {"always": True}},
        "policies": [{"name": "urgent", "severity": "urgent", "first_reply": "1h", "next_reply": "1h",
                      "calendar": "business"},
                     {"name": "default", "first_reply": "4h", "next_reply": "4h", "calendar": "business"}],
        # 1000 slices of 3 s: a task over 50 minutes is long and gets a dedicated owner.
        "capacity": {"slice": SLICE, "long_slices": 1000, "alarm_slack": "1h", "reserve": 0.0},
    }
    (server.data / "config.json").write_text(json.dumps(config))
    server.tokens = {}
    for name in ("alice", "bob", "carol", "dave", "erin", "frank"):
        server.tokens[name] = json.loads(server.cli("engineer", "add", name, "--json").stdout)["token"]
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tickets(srv):
    """Tickets made by a test; every one is answered afterwards, so the next test's queue is empty."""
    made: List[Dict] = []
    yield made
    for ticket in made:
        call(srv, "POST", f"/api/v1/tickets/{ticket['id']}/messages", srv.admin_token,
             {"body": "answered", "kind": "reply"})
    assert call(srv, "GET", "/api/v1/queue/next", srv.admin_token)[0] == 204


def question(srv, tickets: List[Dict], *, urgent: bool = False, estimate: Optional[str] = "5m",
             customer: str = "acme") -> Dict:
    """A ticket whose customer asked something: {"ticket", "task"} (the task is its obligation)."""
    ticket = srv.ticket(customer=customer)
    tickets.append(ticket)
    if urgent:
        srv.cli("customer", "ticket-terms", ticket["id"], "--severity", "urgent")
    status, asked = call(srv, "POST", f"/api/v1/tickets/{ticket['id']}/messages", ticket["upload_token"],
                         {"body": "the replica lags", "kind": "needs_reply"})
    assert status == 201, asked
    task = state_row(srv, "SELECT id FROM obligations WHERE ticket_id = ?", ticket["id"])["id"]
    if estimate:
        status, set_ = call(srv, "PUT", f"/api/v1/queue/tasks/{task}/estimate", srv.admin_token,
                            {"estimate": estimate})
        assert status == 200, set_
    return {"ticket": ticket, "task": task}


def state_rows(srv, sql: str, *params: Any) -> List[Dict]:
    from server.storage.state import State

    state = State.open(srv.data, srv.database)
    try:
        with state.db.tx(write=False) as tx:
            return tx.all(sql, params)
    finally:
        state.close()


def state_row(srv, sql: str, *params: Any) -> Dict:
    rows = state_rows(srv, sql, *params)
    assert rows, sql
    return rows[0]


def step(srv, who: str, task: str, action: str, body: Any = None) -> Tuple[int, Any]:
    return call(srv, "POST", f"/api/v1/queue/tasks/{task}/{action}", srv.tokens[who], body)


def next_for(srv, who: str) -> Tuple[int, Any]:
    return call(srv, "GET", "/api/v1/queue/next", srv.tokens[who])


def test_the_queue_offers_the_earliest_deadline_first_and_204_when_there_is_nothing(srv, tickets):
    assert next_for(srv, "alice") == (204, None)
    later = question(srv, tickets)
    sooner = question(srv, tickets, urgent=True)
    status, found = next_for(srv, "alice")
    assert status == 200 and found["task_id"] == sooner["task"]
    assert found["ticket_id"] == sooner["ticket"]["id"]
    assert found["kind"] == "first" and found["due_at"].endswith("Z") and found["effort_seconds"] == 300
    assert found["slack_seconds"] > 0 and found["why"]
    status, whole = call(srv, "GET", "/api/v1/queue", srv.tokens["alice"])
    assert status == 200 and [t["task_id"] for t in whole["tasks"]] == [sooner["task"], later["task"]]
    assert whole["tasks"][0]["due_at"] < whole["tasks"][1]["due_at"]
    assert whole["next"]["task_id"] == sooner["task"] and whole["holds"] == [] and whole["waiting"] == []
    # Taken by alice, the urgent one is not offered to bob; alice's next is the other one.
    assert step(srv, "alice", sooner["task"], "take")[0] == 200
    assert next_for(srv, "bob")[1]["task_id"] == later["task"]
    assert next_for(srv, "alice")[1]["task_id"] == later["task"]


def test_two_engineers_never_hold_one_task_however_many_take_it_at_once(srv, tickets):
    asked = question(srv, tickets)
    names = ["alice", "bob", "carol", "dave", "erin", "frank"]
    results: Dict[str, Tuple[int, Any]] = {}
    go = threading.Barrier(len(names))

    def take(name: str) -> None:
        go.wait()
        results[name] = step(srv, name, asked["task"], "take")

    threads = [threading.Thread(target=take, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [n for n, (status, _) in results.items() if status == 200]
    assert len(winners) == 1, results
    losers = [results[n] for n in names if n != winners[0]]
    assert all(status == 409 and winners[0] in body["error"] for status, body in losers), losers
    held = state_rows(srv, "SELECT engineer FROM queue_holds WHERE task_id = ? AND released_at IS NULL",
                      asked["task"])
    assert held == [{"engineer": winners[0]}]
    # Taking it again is the same hold, not a second one.
    again = step(srv, winners[0], asked["task"], "take")
    assert again[0] == 200 and again[1]["id"] == results[winners[0]][1]["id"]


def test_a_slice_ending_releases_the_engineer_and_counts_the_time_spent(srv, tickets):
    asked = question(srv, tickets)
    status, hold = step(srv, "alice", asked["task"], "take")
    assert status == 200 and hold["engineer"] == "alice" and hold["released_at"] is None
    status, refused = step(srv, "bob", asked["task"], "take")
    assert status == 409 and "alice holds" in refused["error"]
    time.sleep(SLICE + 0.5)
    # Past its slice the hold has ended, whether or not the loop has written it yet.
    _, whole = call(srv, "GET", "/api/v1/queue", srv.tokens["alice"])
    assert whole["holds"] == [] and whole["tasks"][0]["held_by"] is None
    assert next_for(srv, "bob")[1]["task_id"] == asked["task"]
    status, taken = step(srv, "bob", asked["task"], "take")
    assert status == 200 and taken["engineer"] == "bob"
    ended = state_row(srv, "SELECT released_why, released_at, slice_ends FROM queue_holds WHERE id = ?",
                      hold["id"])
    assert ended["released_why"] == "slice" and ended["released_at"] == ended["slice_ends"]
    spent = state_row(srv, "SELECT spent FROM task_efforts WHERE task_id = ?", asked["task"])["spent"]
    assert spent == pytest.approx(SLICE, abs=0.01)
    assert step(srv, "alice", asked["task"], "release")[0] == 409  # alice holds nothing any more
    status, released = step(srv, "bob", asked["task"], "release", {"done": True})
    assert status == 200 and released["released_why"] == "done" and released["done"] is True
    effort = state_row(srv, "SELECT spent, done_at FROM task_efforts WHERE task_id = ?", asked["task"])
    assert effort["done_at"] is not None and effort["spent"] > SLICE
    assert next_for(srv, "bob")[0] == 204  # done: not offered again
    status, resumed = step(srv, "bob", asked["task"], "resume")
    assert status == 200 and resumed["reopened"] is True
    assert next_for(srv, "bob")[1]["task_id"] == asked["task"]


def test_a_wait_releases_at_once_and_the_customers_answer_brings_the_task_back(srv, tickets):
    asked = question(srv, tickets)
    assert step(srv, "alice", asked["task"], "take")[0] == 200
    markup = "<script>alert(1)</script> asked for SHOW ENGINE INNODB STATUS"
    status, waited = step(srv, "alice", asked["task"], "wait", {"on": "customer", "note": markup})
    assert status == 200 and waited["released"] is True and waited["waiting_on"] == "customer"
    _, whole = call(srv, "GET", "/api/v1/queue", srv.tokens["alice"])
    assert whole["holds"] == [] and [t["task_id"] for t in whole["tasks"]] == []
    assert whole["waiting"][0]["task_id"] == asked["task"] and whole["waiting"][0]["note"] == markup
    assert state_row(srv, "SELECT released_why FROM queue_holds WHERE task_id = ?", asked["task"]) == {
        "released_why": "waiting"}
    assert next_for(srv, "alice")[0] == 204 and next_for(srv, "bob")[0] == 204
    assert step(srv, "bob", asked["task"], "take")[0] == 409
    assert step(srv, "alice", asked["task"], "wait", {"on": "vendor"})[0] == 409  # already waiting
    status, _ = call(srv, "POST", f"/api/v1/tickets/{asked['ticket']['id']}/messages",
                     asked["ticket"]["upload_token"], {"body": "here it is", "kind": "needs_reply"})
    assert status == 201
    assert next_for(srv, "bob")[1]["task_id"] == asked["task"]
    # A vendor wait ends only when an engineer resumes it.
    assert step(srv, "bob", asked["task"], "wait", {"on": "vendor", "note": "MDEV filed"})[0] == 200
    assert next_for(srv, "bob")[0] == 204
    assert step(srv, "carol", asked["task"], "resume")[0] == 200
    assert next_for(srv, "bob")[1]["task_id"] == asked["task"]
    assert step(srv, "carol", asked["task"], "resume")[0] == 409  # nothing to resume


def test_a_ticket_waiting_on_the_customer_is_not_in_the_queue(srv, tickets):
    asked = question(srv, tickets)
    call(srv, "POST", f"/api/v1/tickets/{asked['ticket']['id']}/messages", srv.admin_token,
         {"body": "which version?", "kind": "reply", "waiting_on_customer": True})
    assert next_for(srv, "alice")[0] == 204
    status, refused = step(srv, "alice", asked["task"], "take")
    assert status == 409 and "waits on the customer" in refused["error"]
    call(srv, "POST", f"/api/v1/tickets/{asked['ticket']['id']}/messages", asked["ticket"]["upload_token"],
         {"body": "10.11", "kind": "needs_reply"})
    assert next_for(srv, "alice")[1]["task_id"] == asked["task"]


def test_a_large_task_keeps_its_dedicated_owner_however_many_small_ones_are_due_sooner(srv, tickets):
    large = question(srv, tickets, estimate="3h")
    status, taken = step(srv, "alice", large["task"], "take")
    assert status == 200
    owner = state_row(srv, "SELECT owner FROM task_efforts WHERE task_id = ?", large["task"])["owner"]
    assert owner == "alice"
    small = [question(srv, tickets, urgent=True, estimate="5m") for _ in range(8)]
    step(srv, "alice", large["task"], "release")
    offered = next_for(srv, "alice")[1]
    assert offered["task_id"] == large["task"] and offered["why"] == "dedicated owner"
    # The others get the small ones, earliest due first, and never the large one.
    status, refused = step(srv, "bob", large["task"], "take")
    assert status == 409 and "dedicated to alice" in refused["error"]
    served = []
    for name in ("bob", "carol", "dave", "erin", "frank", "bob", "carol", "dave"):
        found = next_for(srv, name)[1]
        assert found["task_id"] != large["task"]
        assert step(srv, name, found["task_id"], "take")[0] == 200
        served.append(found["task_id"])
    assert served == [s["task"] for s in small]
    # Each time alice's slice ends she comes back to the large task, not to a small one.
    step(srv, "alice", large["task"], "take")
    time.sleep(SLICE + 0.5)
    assert next_for(srv, "alice")[1]["task_id"] == large["task"]
    _, whole = call(srv, "GET", "/api/v1/queue", srv.tokens["bob"])
    row = next(t for t in whole["tasks"] if t["task_id"] == large["task"])
    assert row["owner"] == "alice" and row["effort_seconds"] < 3 * 3600


def test_slack_alarms_reach_the_engineer_on_the_task_once_per_level_before_the_breach(srv, tickets):
    # Due in 4 h, taken by carol, then estimated at 3 h 50 min: 10 minutes of slack.
    tight = question(srv, tickets, estimate=None)
    assert step(srv, "carol", tight["task"], "take")[0] == 200
    assert call(srv, "PUT", f"/api/v1/queue/tasks/{tight['task']}/estimate", srv.tokens["carol"],
                {"estimate": "230m"})[0] == 200
    hopeless = question(srv, tickets, urgent=True, estimate="2h")  # due in 1 h: more work than time
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = state_rows(srv, "SELECT id, recipient, kind FROM notifications WHERE kind LIKE ?", "slack_%")
        mine = [r for r in rows if r["id"].split(":")[0] in (tight["task"], hopeless["task"])]
        if len(mine) >= 3:
            break
        time.sleep(0.5)
    time.sleep(6)  # another round of the loop writes nothing new
    rows = state_rows(srv, "SELECT id, recipient, kind FROM notifications WHERE kind LIKE ?", "slack_%")
    mine = sorted((r["id"], r["recipient"], r["kind"]) for r in rows
                  if r["id"].split(":")[0] in (tight["task"], hopeless["task"]))
    assert mine == sorted([(f"{tight['task']}:slack:low", "carol", "slack_low"),
                           (f"{hopeless['task']}:slack:low", "admin", "slack_low"),
                           (f"{hopeless['task']}:slack:none", "admin", "slack_none")])
    breaches = state_rows(srv, "SELECT kind FROM clock_events WHERE obligation_id = ? AND kind = 'breach'",
                          tight["task"])
    assert breaches == []  # before the breach, not after


BAD_IDS = ["ob-0000000000000000", "wi-ffffffffffffffff", "ob-xyz", "..%2F..%2Fetc", "x" * 300,
           "call-0123456789abcdef"]


@pytest.mark.parametrize("task_id", BAD_IDS)
def test_an_id_that_is_no_task_answers_404_for_every_step(srv, task_id):
    for action, body in (("take", None), ("release", None), ("wait", {"on": "vendor"}), ("resume", None)):
        status, answer = step(srv, "alice", task_id, action, body)
        # (a path that decodes to another path is no route at all: 404 all the same)
        assert status == 404 and answer, (action, status, answer)
    status, answer = call(srv, "PUT", f"/api/v1/queue/tasks/{task_id}/estimate", srv.tokens["alice"],
                          {"estimate": "1h"})
    assert status == 404, answer


def test_customers_and_strangers_cannot_use_the_queue_and_met_tasks_are_gone(srv, tickets):
    asked = question(srv, tickets)
    other = question(srv, tickets, customer="globex")
    customer = asked["ticket"]["upload_token"]
    assert call(srv, "GET", "/api/v1/queue/next", customer)[0] == 403
    assert call(srv, "GET", "/api/v1/queue", customer)[0] == 403
    for task in (asked["task"], other["task"]):
        assert call(srv, "POST", f"/api/v1/queue/tasks/{task}/take", customer)[0] == 403
        path = f"/api/v1/queue/tasks/{task}/estimate"
        assert call(srv, "PUT", path, customer, {"estimate": "1h"})[0] == 403
    assert call(srv, "GET", "/api/v1/queue/next", None)[0] == 401
    assert call(srv, "GET", "/api/v1/queue/next", "mdt_" + "x" * 40)[0] == 401
    call(srv, "POST", f"/api/v1/tickets/{asked['ticket']['id']}/messages", srv.admin_token,
         {"body": "done", "kind": "reply"})
    status, answer = step(srv, "alice", asked["task"], "take")
    assert status == 404 and "met" in answer["error"]


@pytest.mark.parametrize("estimate, status", [("-5m", 400), ("abc", 400), (0, 400), ("30s", 400),
                                              ("99999d", 400), ("4h; DROP TABLE", 400), (None, 422),
                                              ([1], 422)])
def test_bad_estimates_are_refused_and_change_nothing(srv, tickets, estimate, status):
    asked = question(srv, tickets, estimate="20m")
    code, answer = call(srv, "PUT", f"/api/v1/queue/tasks/{asked['task']}/estimate", srv.tokens["alice"],
                        {"estimate": estimate})
    assert code == status and answer["error"], answer
    kept = state_row(srv, "SELECT estimate FROM task_efforts WHERE task_id = ?", asked["task"])["estimate"]
    assert kept == 1200


@pytest.mark.parametrize("body, status", [({"on": "boss"}, 422), ({}, 422),
                                          ({"on": "vendor", "note": "a\x07b"}, 400),
                                          ({"on": "vendor", "note": "x" * 501}, 400),
                                          ({"on": "vendor", "note": "rtl\u202etxt"}, 400)])
def test_bad_waits_are_refused_and_the_hold_stays(srv, tickets, body, status):
    asked = question(srv, tickets)
    assert step(srv, "alice", asked["task"], "take")[0] == 200
    code, answer = step(srv, "alice", asked["task"], "wait", body)
    assert code == status and answer["error"], answer
    _, whole = call(srv, "GET", "/api/v1/queue", srv.tokens["alice"])
    assert [h["task_id"] for h in whole["holds"]] == [asked["task"]] and whole["waiting"] == []


def test_a_release_body_that_is_not_json_is_400(srv, tickets):
    asked = question(srv, tickets)
    assert step(srv, "alice", asked["task"], "take")[0] == 200
    status, answer = call(srv, "POST", f"/api/v1/queue/tasks/{asked['task']}/release", srv.tokens["alice"],
                          raw=b'{"done": tru')
    assert status == 400 and "JSON" in answer["error"]
    assert step(srv, "bob", asked["task"], "release")[0] == 409  # bob holds nothing; alice's hold stays
    assert step(srv, "alice", asked["task"], "release")[0] == 200


def test_work_items_of_one_reply_are_in_their_owners_queues_and_nobody_elses(srv, tickets):
    asked = question(srv, tickets, estimate="10m")
    items = {}
    for owner, hours in (("bob", 1), ("carol", 2)):
        due = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + hours * 3600))
        path = f"/api/v1/tickets/{asked['ticket']['id']}/work-items"
        status, item = call(srv, "POST", path, srv.admin_token,
                            {"title": f"check the {owner} part", "owner": owner, "estimate_seconds": 600,
                             "due_at": due})
        assert status == 201, item
        items[owner] = item["id"]
    assert next_for(srv, "bob")[1]["task_id"] == items["bob"]
    assert next_for(srv, "carol")[1]["task_id"] == items["carol"]
    found = next_for(srv, "alice")[1]
    assert found["task_id"] == asked["task"] and found["kind"] == "first"
    status, refused = step(srv, "alice", items["bob"], "take")
    assert status == 409 and "work item of bob" in refused["error"]
    # bob and carol work on the one ticket at once, each on their own item.
    assert step(srv, "bob", items["bob"], "take")[0] == 200
    assert step(srv, "carol", items["carol"], "take")[0] == 200
    _, whole = call(srv, "GET", "/api/v1/queue", srv.tokens["dave"])
    shown = {t["task_id"]: t for t in whole["tasks"]}
    assert shown[items["bob"]]["engineer"] == "bob" and shown[items["bob"]]["held_by"] == "bob"
    assert shown[items["carol"]]["kind"] == "work_item" and shown[items["carol"]]["held_by"] == "carol"
    assert whole["tasks"][0]["task_id"] == items["bob"]  # the soonest due
