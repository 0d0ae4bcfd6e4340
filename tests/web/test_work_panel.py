"""Work items and calls on the ticket pages (issue 15), in Chromium and over HTTP: an engineer splits
a reply between two engineers, marks the items done and posts the reply drafted from them; a call
without an agenda is refused (and shown refused), one with an agenda is scheduled, invited and
minuted; the customer asks for a call and calls it off on their page; markup in every field runs
nothing, axe finds nothing serious, every form without its CSRF token is 403, a bad one 400, a
refusal 422, another ticket's or customer's id 404."""

from __future__ import annotations

import email as email_lib
import json
import re
import secrets
from email import policy
from typing import Dict, List

import pytest

from tests.web.conftest import (
    XSS,
    Web,
    add_person,
    axe_check,
    customer_client,
    form_token,
    new_engineer,
    outbox_links,
)

pytestmark = pytest.mark.server
#: Markup that fits a name field (at most 100 characters).
SHORT_XSS = '<img src=x onerror="window.__xss=3;alert(3)">'


def no_script_ran(tab) -> None:
    assert tab.evaluate("typeof window.__xss") == "undefined"
    assert tab.dialogs == []


def sign_in(tab, web: Web, path: str) -> None:
    tab.goto(f"{web.url}{path}")
    tab.fill("#name", web.engineer)
    tab.fill("#password", web.password)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{web.url}{path}")


def organization(web: Web, title: str = "lag on db1"):
    """A customer with one person and a ticket whose customer asked something: (customer, email, ticket)."""
    customer = f"org-{secrets.token_hex(4)}"
    address = f"dba-{secrets.token_hex(3)}@{customer}.example"
    add_person(web, customer, address)
    ticket = json.loads(web.server.api("POST", "/api/v1/tickets", {"customer": customer, "title": title}))
    return customer, address, ticket


def customer_asks(web: Web, ticket: Dict) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"{web.url}/api/v1/tickets/{ticket['id']}/messages", method="POST",
        data=json.dumps({"body": "the replica lags " + XSS, "kind": "needs_reply"}).encode(),
        headers={"Authorization": f"Bearer {ticket['upload_token']}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 201


def invitations(web: Web, address: str) -> List[str]:
    """The iCalendar texts mailed to `address` (the outbox rows; no smart host in these servers)."""
    state = web.state()
    try:
        with state.db.tx(write=False) as tx:
            rows = tx.all("SELECT raw FROM outbox WHERE to_addr = ? ORDER BY created, id", (address,))
    finally:
        state.close()
    found = []
    for row in rows:
        for part in email_lib.message_from_string(row["raw"], policy=policy.default).walk():
            if part.get_content_type() == "text/calendar":
                found.append(part.get_payload(decode=True).decode("utf-8"))
    return found


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # PostgreSQL: API tests
def test_an_engineer_splits_the_reply_marks_it_done_and_posts_the_draft(web: Web, page, screenshot) -> None:
    helper, _ = new_engineer(web.server, f"bob-{secrets.token_hex(2)}")
    _, _, ticket = organization(web, XSS)
    customer_asks(web, ticket)
    sign_in(page, web, f"/tickets/{ticket['id']}")
    assert "No work items" in page.locator("#work-section").inner_text()
    axe_check(page)

    for title, owner in (("Read the relay log " + XSS, web.engineer), ("Check disk latency", helper)):
        page.fill("#wi-title", title)
        page.select_option("#wi-owner", owner)
        page.fill("#wi-estimate", "45")
        page.click("#work-section form[aria-labelledby=split-heading] button[type=submit]")
        page.wait_for_url(f"{web.url}/tickets/{ticket['id']}#work")
    table = page.locator("table.work-items")
    shown = table.inner_text()
    assert "Read the relay log " + XSS in shown and helper in shown and "45 min" in shown
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", shown)
    no_script_ran(page)
    axe_check(page)

    rows = table.locator("tbody tr")
    rows.nth(1).locator("textarea[name=result]").fill("p99 write latency 40 ms")
    rows.nth(1).locator("button", has_text="Mark done").click()
    page.wait_for_url(f"{web.url}/tickets/{ticket['id']}#work")
    page.locator("table.work-items tbody tr").nth(0).locator("textarea[name=result]").fill(
        "No gaps in the relay log. " + XSS)
    page.locator("table.work-items tbody tr").nth(0).locator("button", has_text="Mark done").click()
    page.wait_for_url(f"{web.url}/tickets/{ticket['id']}#work")
    draft = page.locator("#draft-body").input_value()
    assert draft == ("Read the relay log " + XSS + ":\nNo gaps in the relay log. " + XSS
                     + "\n\nCheck disk latency:\np99 write latency 40 ms")
    no_script_ran(page)
    axe_check(page)
    screenshot(page, "work-items")

    page.click("form[aria-labelledby=draft-heading] button[type=submit]")
    page.wait_for_url(f"{web.url}/tickets/{ticket['id']}#conversation")
    assert "No reply is owed." in page.locator("#deadline").inner_text()
    assert "No gaps in the relay log." in page.locator("ol.conversation").inner_text()
    no_script_ran(page)


def test_a_call_without_an_agenda_is_refused_and_one_with_an_agenda_is_invited_and_minuted(
        web: Web, page, screenshot) -> None:
    _, address, ticket = organization(web)
    customer_asks(web, ticket)
    sign_in(page, web, f"/tickets/{ticket['id']}")
    page.click("form[aria-labelledby=call-heading] button[type=submit]")
    assert "no agenda, no call" in page.locator("main").inner_text()
    page.goto(f"{web.url}/tickets/{ticket['id']}")
    assert "refused" in page.locator("table.calls").inner_text()

    page.fill("#call-agenda", "Why the replica lags " + XSS + "\n\nIs sync_binlog=0 safe?")
    page.fill("#call-limit", "45")
    page.fill("#att-name-1", SHORT_XSS + "Carol")
    page.fill("#att-email-1", "carol@example.com")
    page.fill("#att-role-1", "account manager")
    page.click("form[aria-labelledby=call-heading] button[type=submit]")
    page.wait_for_url(f"{web.url}/tickets/{ticket['id']}#calls")
    row = page.locator("table.calls tbody tr").first
    shown = row.inner_text()
    assert "scheduled" in shown and "45 minutes" in shown and "Why the replica lags " + XSS in shown
    assert SHORT_XSS + "Carol (account manager)" in shown
    no_script_ran(page)
    axe_check(page)
    for to in ("carol@example.com", address):
        (invite,) = invitations(web, to)
        assert "METHOD:REQUEST\r\n" in invite and "<script>" in invite.replace("\r\n ", "")
    row.locator("textarea[name=minutes]").fill("The backup throttles the SQL thread. " + XSS)
    row.locator("button", has_text="Record the minutes").click()
    page.wait_for_url(f"{web.url}/tickets/{ticket['id']}#calls")
    first = page.locator("table.calls tbody tr").first.inner_text()
    assert "held" in first and "The backup throttles the SQL thread. " + XSS in first
    no_script_ran(page)
    axe_check(page)
    screenshot(page, "calls")


def test_the_customer_asks_for_a_call_and_calls_it_off_on_their_page(web: Web, page) -> None:
    _, address, ticket = organization(web, XSS)
    _, other_address, other = organization(web, "another customer's ticket")
    page.goto(f"{web.url}/customer/signin")
    page.fill("#email", address)
    page.click("button[type=submit]")
    (link,) = outbox_links(web, address)
    page.goto(f"{web.url}{link}")
    page.click("button[type=submit]")
    page.wait_for_url(f"{web.url}/customer")
    page.goto(f"{web.url}/customer/tickets/{ticket['id']}")
    main = page.locator("main").inner_text()
    assert "Calls" in main and "Who is doing what" not in main
    axe_check(page)
    page.fill("#call-agenda", "The upgrade plan to 11.4 " + XSS)
    page.click("form[aria-labelledby=call-heading] button[type=submit]")
    page.wait_for_url(f"{web.url}/customer/tickets/{ticket['id']}#calls")
    row = page.locator("table.calls tbody tr").first
    assert "scheduled" in row.inner_text() and "The upgrade plan to 11.4 " + XSS in row.inner_text()
    no_script_ran(page)
    axe_check(page)
    row.locator("input[name=reason]").fill("solved it ourselves " + XSS)
    row.locator("button", has_text="Cancel the call").click()
    page.wait_for_url(f"{web.url}/customer/tickets/{ticket['id']}#calls")
    assert "cancelled" in page.locator("table.calls tbody tr").first.inner_text()
    no_script_ran(page)
    (invite, cancel) = invitations(web, address)
    assert "METHOD:REQUEST" in invite and "METHOD:CANCEL" in cancel and "SEQUENCE:1\r\n" in cancel

    token = form_token(page.content())
    other_page = page.request.post(f"{web.url}/customer/tickets/{other['id']}/calls",
                                   form={"csrf": token, "agenda": "spy"})
    assert other_page.status == 404 and "another customer" not in other_page.text()
    assert other_address not in page.content()


def test_work_and_call_forms_answer_400_409_404_and_403_with_the_reason(web: Web) -> None:
    _, address, ticket = organization(web)
    customer = customer_client(web, address)  # before any invitation reaches this address
    customer_asks(web, ticket)
    client = web.signed_in()
    page = client.get(f"/tickets/{ticket['id']}")
    token = form_token(page.body)
    due = re.search(r'id="wi-due"[^>]*value="([^"]+)"', page.body).group(1)
    base = f"/tickets/{ticket['id']}"
    good = {"csrf": token, "title": "look", "owner": web.engineer, "estimate_minutes": "30", "due": due}
    for change, words in (({"due": "2031-01-01T10:00"}, "inside the promise"),
                          ({"due": "soon"}, "date and time"),
                          ({"estimate_minutes": "abc"}, "number of minutes"),
                          ({"estimate_minutes": "inf"}, "number of minutes"),
                          ({"owner": "mallory"}, "engineer account"), ({"title": "a\r\nb"}, "title")):
        reply = client.post(f"{base}/work-items", {**good, **change})
        assert reply.status == 400 and words in reply.body, (change, reply.body[:2000])
    assert client.post(f"{base}/work-items", {**good, "csrf": "forged"}).status == 403
    assert client.post(f"{base}/work-items", good).status == 303
    client.jar["mydiag_tz"] = "Europe/Berlin"
    reply = client.post(f"{base}/work-items", {**good, "due": "2026-03-29T02:30"})
    assert reply.status == 400 and "does not exist" in reply.body
    reply = client.post(f"{base}/work-items", {**good, "due": "2026-10-25T02:30"})
    assert reply.status == 400 and "happens twice" in reply.body
    del client.jar["mydiag_tz"]

    state = web.state()
    try:
        with state.db.tx(write=False) as tx:
            item_id = tx.one("SELECT id FROM work_items WHERE ticket_id = ?", (ticket["id"],))["id"]
    finally:
        state.close()
    done = {"csrf": token, "state": "done", "result": "fine"}
    assert client.post(f"{base}/work-items/{item_id}", {**done, "state": "open"}).status == 400
    assert client.post(f"{base}/work-items/{item_id}", {**done, "result": ""}).status == 400
    assert client.post(f"{base}/work-items/{item_id}", done).status == 303
    again = client.post(f"{base}/work-items/{item_id}", done)
    assert again.status == 409 and "already done" in again.body
    _, _, other = organization(web)
    assert client.post(f"/tickets/{other['id']}/work-items/{item_id}", done).status == 404
    assert client.post("/tickets/tk-nosuchtick/work-items/wi-x", done).status == 404

    call = {"csrf": token, "agenda": "one thing"}
    for change, status, words in (
            ({"agenda": ""}, 422, "no agenda, no call"), ({"limit_minutes": "121"}, 422, "at most 120"),
            ({"limit_minutes": "0"}, 400, "time limit"), ({"limit_minutes": "1e9"}, 400, "time limit"),
            ({"agenda": "\n".join(f"item {n}" for n in range(21))}, 400, "at most 20"),
            ({"agenda": "bell\x07"}, 400, "agenda item"),
            ({"attendee_name1": "Eve", "attendee_email1": "eve@example.com\r\nBcc: all@example.com"}, 400,
             "e-mail"),
            ({"attendee_email1": "eve@example.com"}, 400, "name"),
            ({"earliest": "2026-02-30T10:00"}, 400, "date and time")):
        reply = client.post(f"{base}/calls", {**call, **change})
        assert reply.status == status and words in reply.body, (change, reply.body[:2000])
    assert client.post(f"{base}/calls", {**call, "csrf": ""}).status == 403
    assert client.post(f"{base}/calls", call).status == 303
    missing = client.post(f"{base}/calls/call-0000000000000000/minutes", {"csrf": token, "minutes": "x"})
    assert missing.status == 404
    theirs = client.post(f"/tickets/{other['id']}/calls/call-x/cancel", {"csrf": token, "reason": "x"})
    assert theirs.status == 404

    mine = customer.get(f"/customer/tickets/{ticket['id']}")
    ctoken = form_token(mine.body)
    path = f"/customer/tickets/{ticket['id']}/calls"
    assert customer.post(path, {"csrf": "x", "agenda": "a"}).status == 403
    assert customer.post(f"/customer/tickets/{other['id']}/calls", {"csrf": ctoken, "agenda": "a"}).status \
        == 404
    refused = customer.post(f"/customer/tickets/{ticket['id']}/calls", {"csrf": ctoken, "agenda": " \n "})
    assert refused.status == 422 and "no agenda, no call" in refused.body
    as_engineer = customer.post(f"/tickets/{ticket['id']}/calls", {"csrf": ctoken, "agenda": "a"})
    assert as_engineer.status == 303 and as_engineer.header("location").startswith("/signin")


def test_a_call_held_as_a_remote_session_takes_its_purpose_as_the_agenda(web: Web, page) -> None:
    from tests.web.conftest import seed_ticket

    seeded = seed_ticket(web, title="session call", host="db1", purpose="walk through the lag " + SHORT_XSS)
    ticket = seeded["ticket"]
    sign_in(page, web, f"/tickets/{ticket['id']}")
    page.select_option("#call-session", seeded["session"]["id"])
    page.click("form[aria-labelledby=call-heading] button[type=submit]")
    page.wait_for_url(f"{web.url}/tickets/{ticket['id']}#calls")
    row = page.locator("table.calls tbody tr").first.inner_text()
    assert "scheduled" in row and "walk through the lag " + SHORT_XSS in row
    no_script_ran(page)
    axe_check(page)
