"""The conversation on the engineers' ticket page (issue 14), in Chromium and over HTTP: an
engineer reads a customer's message with its due time, replies of a kind, and the customer
reads the reply on their page but never the internal note; "no reply needed" with a reason is
audited; the list puts the ticket due soonest on top; the times follow the chosen time zone;
markup in every message field executes nothing; every form without its CSRF token is 403."""

from __future__ import annotations

import json
import re
import secrets

import pytest

from server.storage import audit
from server.web import ticketpages
from tests.web.conftest import XSS, Web, add_person, axe_check, customer_client, form_token


def no_script_ran(tab) -> None:
    assert tab.evaluate("typeof window.__xss") == "undefined"
    assert tab.dialogs == []


def sign_in(tab, web: Web, path: str) -> None:
    tab.goto(f"{web.url}{path}")
    tab.fill("#name", web.engineer)
    tab.fill("#password", web.password)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{web.url}{path}")


def new_customer(web: Web, title: str = "lag on db1"):
    """A customer organization with one person and one ticket: (customer, email, ticket)."""
    customer = f"org-{secrets.token_hex(4)}"
    email = f"dba-{secrets.token_hex(3)}@{customer}.example"
    add_person(web, customer, email)
    ticket = json.loads(web.server.api("POST", "/api/v1/tickets", {"customer": customer, "title": title}))
    return customer, email, ticket


def customer_says(client, ticket_id: str, body: str, no_reply: bool = False):
    page = client.get(f"/customer/tickets/{ticket_id}")
    assert page.status == 200, page.body
    form = {"csrf": form_token(page.body), "body": body}
    if no_reply:
        form["no_reply"] = "1"
    return client.post(f"/customer/tickets/{ticket_id}/messages", form)


def test_an_engineer_replies_on_the_page_and_the_customer_sees_it_but_not_the_note(web: Web, page,
                                                                                  screenshot) -> None:
    _, email, ticket = new_customer(web, XSS)
    customer = customer_client(web, email)
    assert customer_says(customer, ticket["id"], "the replica lags " + XSS).status == 303

    sign_in(page, web, f"/tickets/{ticket['id']}")
    section = page.locator("#conversation-section")
    assert XSS in section.inner_text(), "the customer's markup is shown as text"
    clock_text = page.locator("#deadline").inner_text()
    assert re.search(r"Next reply \(first\) due \d{4}-\d\d-\d\d \d\d:\d\d UTC: \d+ (d|h|min)\b.* left",
                     clock_text), clock_text
    assert "Reply due" in section.inner_text()
    no_script_ran(page)
    axe_check(page)

    page.fill("#body", "Raise the IO threads. " + XSS)
    page.check("input[name=kind][value=reply]")
    page.click("form.reply button[type=submit]")
    page.wait_for_url(f"{web.url}/tickets/{ticket['id']}#conversation")
    page.fill("#body", "note to self: ask about " + XSS)
    page.check("input[name=kind][value=internal]")
    page.click("form.reply button[type=submit]")
    page.wait_for_url(f"{web.url}/tickets/{ticket['id']}#conversation")
    shown = page.locator("ol.conversation").inner_text()
    assert "Raise the IO threads. " + XSS in shown and "note to self" in shown
    assert "internal note" in shown and "deadline met" in shown
    assert "No reply is owed." in page.locator("#deadline").inner_text()
    no_script_ran(page)
    axe_check(page)
    screenshot(page, "conversation")

    seen = customer.get(f"/customer/tickets/{ticket['id']}")
    assert "Raise the IO threads." in seen.body
    assert "note to self" not in seen.body and "internal" not in seen.body
    assert "<script>window.__xss" not in seen.body and "&lt;script&gt;" in seen.body

    page.goto(f"{web.url}/")
    row = page.locator(f"tr:has(a[href='/tickets/{ticket['id']}'])")
    assert XSS in row.inner_text()
    no_script_ran(page)
    axe_check(page)


def test_a_reply_waiting_on_the_customer_pauses_the_clock_until_they_answer(web: Web, strict_page) -> None:
    _, email, ticket = new_customer(web)
    customer = customer_client(web, email)
    customer_says(customer, ticket["id"], "it is slow")
    tab = strict_page
    sign_in(tab, web, f"/tickets/{ticket['id']}")
    tab.fill("#body", "Which version do you run?")
    tab.check("input[name=kind][value=reply]")
    tab.check("input[name=waiting]")
    tab.click("form.reply button[type=submit]")
    tab.wait_for_url(f"{web.url}/tickets/{ticket['id']}#conversation")
    assert "paused: waiting on the customer since" in tab.locator("#deadline").inner_text()
    assert "waiting on the customer" in tab.locator("ol.conversation").inner_text()
    customer_says(customer, ticket["id"], "10.11.6")
    tab.reload()
    assert re.search(r"due .* left", tab.locator("#deadline").inner_text())
    assert tab.csp_errors == [], tab.csp_errors
    assert tab.evaluate("getComputedStyle(document.querySelector('ol.conversation .body')).whiteSpace") == \
        "pre-wrap", "the stylesheet loads under the real CSP"


def test_no_reply_needed_with_a_reason_stops_the_clock_and_is_audited(web: Web, page) -> None:
    _, email, ticket = new_customer(web)
    customer = customer_client(web, email)
    customer_says(customer, ticket["id"], "FYI: we upgraded to 10.11.6")
    sign_in(page, web, f"/tickets/{ticket['id']}")
    page.fill("form.noreply input[name=reason]", "an announcement " + XSS)
    page.click("form.noreply button[type=submit]")
    page.wait_for_url(f"{web.url}/tickets/{ticket['id']}#conversation")
    shown = page.locator("ol.conversation").inner_text()
    assert re.search(rf"No reply needed \((admin|engineer):{web.engineer}\): an announcement ", shown), shown
    assert f"an announcement {XSS}" in shown
    assert "No reply is owed." in page.locator("#deadline").inner_text()
    assert page.locator("form.noreply").count() == 0
    no_script_ran(page)
    state = web.state()
    try:
        with state.db.tx(write=False) as tx:
            actions = [e["action"] for e in audit.entries(tx, ticket["id"], 100)]
    finally:
        state.close()
    assert "message.no_reply" in actions


def test_the_list_puts_the_ticket_due_soonest_on_top(web: Web) -> None:
    _, email, first = new_customer(web, "first asked")
    _, email2, second = new_customer(web, "second asked")
    _, _, quiet = new_customer(web, "nothing asked")
    customer_says(customer_client(web, email), first["id"], "help, please")
    customer_says(customer_client(web, email2), second["id"], "help too")
    listed = web.signed_in().get("/").body
    rows = [(re.search(r'href="/tickets/([^"]+)"', row).group(1), " left" in row or "overdue by" in row)
            for row in listed.split("<tr>")[2:]]
    order = [ticket_id for ticket_id, _ in rows]
    assert order.index(first["id"]) < order.index(second["id"]) < order.index(quiet["id"])
    owing = [due for _, due in rows]
    assert owing == sorted(owing, reverse=True), "every ticket owing a reply comes before the others"
    assert "those owing a reply first" in listed
    assert re.search(r"\d+ (d|h|min)\b[^<]* left", listed)


def test_the_list_query_walks_the_indexes(web: Web) -> None:
    state = web.state()
    try:
        with state.db.tx(write=False) as tx:
            if tx.dialect == "sqlite":
                plan = " ".join(r["detail"] for r in tx.all("EXPLAIN QUERY PLAN " + ticketpages.LIST_SQL,
                                                            (50, 50, 50, 0)))
                assert "obligations_due" in plan and "tickets_created" in plan, plan
            else:
                plan = " ".join(r["QUERY PLAN"] for r in tx.all("EXPLAIN " + ticketpages.LIST_SQL,
                                                                (50, 50, 50, 0)))
                assert "Limit" in plan, plan
    finally:
        state.close()


def test_times_follow_the_chosen_time_zone(web: Web) -> None:
    _, email, ticket = new_customer(web)
    customer_says(customer_client(web, email), ticket["id"], "when?")
    client = web.signed_in()
    page = client.get(f"/tickets/{ticket['id']}")
    assert " UTC" in page.body
    done = client.post("/timezone", {"csrf": form_token(page.body), "zone": "Asia/Tokyo",
                                     "next": f"/tickets/{ticket['id']}"})
    assert done.status == 303 and done.header("location") == f"/tickets/{ticket['id']}"
    shown = client.get(f"/tickets/{ticket['id']}").body
    assert " JST" in shown and 'value="Asia/Tokyo"' in shown
    bad = client.post("/timezone", {"csrf": form_token(shown), "zone": "Mars/Olympus", "next": "/"})
    assert bad.status == 400
    off_site = client.post("/timezone", {"csrf": form_token(shown), "zone": "UTC", "next": "//evil.example/"})
    assert off_site.header("location") == "/"


@pytest.mark.parametrize("token", ["", "wrong"])
def test_every_engineer_form_without_its_csrf_token_is_refused(web: Web, token: str) -> None:
    _, email, ticket = new_customer(web)
    customer_says(customer_client(web, email), ticket["id"], "needs an answer")
    client = web.signed_in()
    page = client.get(f"/tickets/{ticket['id']}").body
    message_id = re.search(r'/messages/(msg-[0-9a-f]+)/no-reply', page).group(1)
    for path, form in [(f"/tickets/{ticket['id']}/messages", {"body": "hello", "kind": "reply"}),
                       (f"/tickets/{ticket['id']}/messages/{message_id}/no-reply", {"reason": "none"}),
                       ("/timezone", {"zone": "Asia/Tokyo", "next": "/"})]:
        if token:
            form["csrf"] = token
        refused = client.post(path, form)
        assert refused.status == 403 and "valid security token" in refused.body
    after = client.get(f"/tickets/{ticket['id']}").body
    assert "hello" not in after and "No reply needed (" not in after and " JST" not in after


def test_bad_forms_answer_400_and_unknown_tickets_404(web: Web) -> None:
    _, _, ticket = new_customer(web)
    client = web.signed_in()
    csrf = form_token(client.get(f"/tickets/{ticket['id']}").body)
    assert client.post(f"/tickets/{ticket['id']}/messages", {"csrf": csrf, "body": "x",
                                                             "kind": "needs_reply"}).status == 400
    assert client.post(f"/tickets/{ticket['id']}/messages", {"csrf": csrf, "body": "  ",
                                                             "kind": "reply"}).status == 400
    assert client.post("/tickets/tk-nope/messages", {"csrf": csrf, "body": "x",
                                                     "kind": "reply"}).status == 404
    assert client.post(f"/tickets/{ticket['id']}/messages/msg-0000/no-reply",
                       {"csrf": csrf, "reason": "r"}).status == 404


@pytest.mark.parametrize("wanted, shown", [
    ("Europe/Berlin", "Europe/Berlin"), ("UTC", "UTC"), ("America/Argentina/Buenos_Aires",
                                                         "America/Argentina/Buenos_Aires"),
    ("", "UTC"), (None, "UTC"), ("Mars/Olympus", "UTC"), ("../../etc/passwd", "UTC"),
    ("/etc/localtime", "UTC"),
    ("Europe/Berlin\n", "UTC"), ("A" * 65, "UTC"), ("<script>", "UTC")])
def test_a_zone_is_a_known_iana_name_or_utc(wanted, shown) -> None:
    from server.web import clockview

    assert clockview.zone_name(wanted) == shown


def test_deadlines_read_as_time_left_or_overdue_in_the_zone() -> None:
    from server.web import clockview

    due = 1_796_000_000.0  # 2026-11-30 00:53:20 UTC
    assert clockview.deadline(due, due - 3 * 3600 - 20 * 60, "UTC") == {
        "due": "2026-11-30 00:53 UTC", "left": "3 h 20 min left", "overdue": False}
    assert clockview.deadline(due, due + 2 * 86400 + 3600, "Asia/Tokyo") == {
        "due": "2026-11-30 09:53 JST", "left": "overdue by 2 d 1 h", "overdue": True}
    assert clockview.deadline(due, due - 30, "UTC")["left"] == "under a minute left"
    assert clockview.deadline(due, due, "UTC")["overdue"] is True
    assert clockview.deadline(None, due, "UTC") is None
    assert clockview.local("2026-02-30T00:00:00Z", "UTC") == "2026-02-30T00:00:00Z"
    assert clockview.local("not a time", "Europe/Berlin") == "not a time"
    assert clockview.local("2026-07-01T12:00:00Z", "Europe/Berlin") == "2026-07-01 14:00 CEST"
