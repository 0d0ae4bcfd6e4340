"""The engineer's queue page (issue 15), in Chromium and over HTTP, on SQLite and PostgreSQL: the
next task with a Take button, the held task with its slice's end and Release / Done / Waiting-on,
a wait that empties the engineer's hands at once and a Resume that brings the task back, the
ranked queue with local due times and slack; markup in ticket titles and notes executes nothing;
every form without its CSRF token is 403, a forged id 404, another's held task 409, a bad form
400; axe finds nothing serious."""

from __future__ import annotations

import json
import re
from typing import Dict

import pytest

from tests.serverkit import make_server
from tests.web.conftest import XSS, Client, Web, axe_check, form_token, new_engineer

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def qweb(tmp_path_factory, backend):
    """A server whose calendars are 24x7 (the queue's numbers do not depend on the hour the tests
    run), with two engineers who have passwords."""
    server = make_server(tmp_path_factory.mktemp("queueweb"), backend)
    config = json.loads((server.data / "config.json").read_text())
    config["support"] = {"calendars": {"business": {"always": True}},
                         "policies": [{"name": "default", "first_reply": "4h", "next_reply": "4h",
                                       "calendar": "business"}],
                         "capacity": {"slice": "30m", "reserve": 0.0}}
    (server.data / "config.json").write_text(json.dumps(config))
    name, password = new_engineer(server, "alice")
    server.bob = new_engineer(server, "bob")
    server.start()
    yield Web(server, name, password)
    server.stop()


@pytest.fixture
def asked(qweb):
    """A ticket with a markup title whose customer asked something; answered afterwards so the
    next test starts with an empty queue. Yields {"ticket", "task"}."""
    ticket = json.loads(qweb.server.api("POST", "/api/v1/tickets", {"customer": "acme", "title": XSS}))
    _customer_asks(qweb, ticket, "the replica lags " + XSS)
    state = qweb.state()
    try:
        with state.db.tx(write=False) as tx:
            task = tx.one("SELECT id FROM obligations WHERE ticket_id = ?", (ticket["id"],))["id"]
    finally:
        state.close()
    yield {"ticket": ticket, "task": task}
    qweb.server.api("POST", f"/api/v1/tickets/{ticket['id']}/messages", {"body": "answered", "kind": "reply"})


def _customer_asks(qweb: Web, ticket: Dict, body: str) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"{qweb.url}/api/v1/tickets/{ticket['id']}/messages", method="POST",
        data=json.dumps({"body": body, "kind": "needs_reply"}).encode(),
        headers={"Authorization": f"Bearer {ticket['upload_token']}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 201


def no_script_ran(tab) -> None:
    assert tab.evaluate("typeof window.__xss") == "undefined"
    assert tab.dialogs == []


def sign_in(tab, web: Web) -> None:
    tab.goto(f"{web.url}/queue")
    tab.fill("#name", web.engineer)
    tab.fill("#password", web.password)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{web.url}/queue")


def test_an_engineer_takes_the_next_task_waits_on_the_customer_and_resumes_it(qweb, asked, page, screenshot):
    sign_in(page, qweb)
    nxt = page.locator("#next")
    assert asked["ticket"]["id"] in nxt.inner_text() and XSS in nxt.inner_text()
    assert re.search(r"due \d{4}-\d\d-\d\d \d\d:\d\d UTC \(\d+ h \d+ min left\)", nxt.inner_text()), \
        nxt.inner_text()
    row = page.locator("#queue tbody tr").first
    assert asked["task"] in row.inner_text() and "first reply" in row.inner_text()
    no_script_ran(page)
    axe_check(page)

    page.click("form.take button")
    page.wait_for_url(f"{qweb.url}/queue")
    holds = page.locator("#holds").inner_text()
    assert asked["task"] in holds and re.search(r"\d\d:\d\d UTC\s+(29|30) min left", holds), holds
    assert "Nothing for you to take now." in page.locator("#next").inner_text()
    assert page.locator("#queue tbody tr").first.locator("td").nth(6).inner_text() == qweb.engineer
    axe_check(page)
    screenshot(page, "queue-holding")

    page.select_option("#holds select[name=on]", "customer")
    page.fill("#holds input[name=note]", "asked for the error log " + XSS)
    page.click("form.wait button")
    page.wait_for_url(f"{qweb.url}/queue")
    assert "You hold no task." in page.locator("#holds").inner_text()
    waiting = page.locator("#waiting").inner_text()
    assert asked["task"] in waiting and "the customer" in waiting
    assert "asked for the error log " + XSS in waiting
    assert page.locator("#queue tbody tr").count() == 0
    no_script_ran(page)
    axe_check(page)

    page.click("#waiting form button")
    page.wait_for_url(f"{qweb.url}/queue")
    assert "No task is waiting." in page.locator("#waiting").inner_text()
    assert asked["task"] in page.locator("#next").inner_text()


def test_the_customers_answer_ends_a_wait_and_done_takes_the_task_off_the_queue(qweb, asked):
    client = qweb.signed_in()
    token = form_token(client.get("/queue").body)
    assert client.post(f"/queue/tasks/{asked['task']}/take", {"csrf": token}).status == 303
    assert client.post(f"/queue/tasks/{asked['task']}/wait", {"csrf": token, "on": "customer", "note": ""}
                       ).status == 303
    assert "Nothing for you to take now." in client.get("/queue").body
    _customer_asks(qweb, asked["ticket"], "here is the log")
    shown = client.get("/queue").body
    assert "No task is waiting." in shown and f"/queue/tasks/{asked['task']}/take" in shown
    assert client.post(f"/queue/tasks/{asked['task']}/take", {"csrf": token}).status == 303
    assert client.post(f"/queue/tasks/{asked['task']}/done", {"csrf": token}).status == 303
    shown = client.get("/queue").body
    assert "You hold no task." in shown and asked["task"] not in shown


def test_times_follow_the_chosen_zone_and_slack_is_shown(qweb, asked):
    client = qweb.signed_in()
    token = form_token(client.get("/queue").body)
    chosen = client.post("/timezone", {"csrf": token, "zone": "America/New_York", "next": "/queue"})
    assert chosen.status == 303
    shown = client.get("/queue").body
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d EST", shown)
    assert "3 h 59 min" in shown or "4 h 0 min" in shown  # the due, four hours on
    client.post("/timezone", {"csrf": token, "zone": "UTC", "next": "/queue"})


def test_every_step_checks_its_form_and_answers_a_clear_status(qweb, asked):
    stranger = Client(qweb.server.port)
    reply = stranger.get("/queue")
    assert reply.status == 303 and reply.header("location").startswith("/signin")
    client = qweb.signed_in()
    token = form_token(client.get("/queue").body)
    task = asked["task"]
    assert client.post(f"/queue/tasks/{task}/take", {}).status == 403
    assert client.post(f"/queue/tasks/{task}/take", {"csrf": "forged"}).status == 403
    assert client.post("/queue/tasks/ob-0000000000000000/take", {"csrf": token}).status == 404
    assert client.post("/queue/tasks/%3Cscript%3E/take", {"csrf": token}).status == 404
    assert client.post(f"/queue/tasks/{task}/explode", {"csrf": token}).status == 404
    assert client.post(f"/queue/tasks/{task}/release", {"csrf": token}).status == 409  # not held
    assert client.post(f"/queue/tasks/{task}/take", {"csrf": token}).status == 303
    bad = client.post(f"/queue/tasks/{task}/wait", {"csrf": token, "on": "boss"})
    assert bad.status == 400 and "Choose what the task waits on" in bad.body
    bad = client.post(f"/queue/tasks/{task}/wait", {"csrf": token, "on": "vendor", "note": "bell\x07"})
    assert bad.status == 400 and "note" in bad.body
    bob = Client(qweb.server.port)
    assert bob.sign_in(*qweb.server.bob).status == 303
    bob_token = form_token(bob.get("/queue").body)
    refused = bob.post(f"/queue/tasks/{task}/take", {"csrf": bob_token})
    assert refused.status == 409 and f"{qweb.engineer} holds {task}" in refused.body
    assert "Nothing for you to take now." in bob.get("/queue").body
    assert client.post(f"/queue/tasks/{task}/release", {"csrf": token}).status == 303
    assert bob.post(f"/queue/tasks/{task}/take", {"csrf": bob_token}).status == 303


def test_the_page_under_the_real_csp_has_no_violation(qweb, asked, strict_page):
    sign_in(strict_page, qweb)
    strict_page.click("form.take button")
    strict_page.wait_for_url(f"{qweb.url}/queue")
    assert asked["task"] in strict_page.locator("#holds").inner_text()
    assert strict_page.csp_errors == []
    axe_check(strict_page)
    strict_page.click("#holds form.inline button >> nth=0")  # Release
    strict_page.wait_for_url(f"{qweb.url}/queue")
