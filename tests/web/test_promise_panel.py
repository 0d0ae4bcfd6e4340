"""The promise on both ticket pages (issue 15), in Chromium and over HTTP: an engineer proposes
the next-reply time in their own time zone with an acknowledgement; the customer sees it in
theirs, counters; the engineer accepts; both sides see the promise in force, its clock and
every version. Admission control's refusal shows the earliest feasible time as one click and
the commitments that would have to move. Markup in reasons executes nothing; a malformed date,
a local time the clocks skip, a form without its token and another customer's proposal are
each refused with a clear page, never a 500."""

from __future__ import annotations

import datetime
import json
import re
import secrets
import zoneinfo

import pytest

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
    customer = f"org-{secrets.token_hex(4)}"
    email = f"dba-{secrets.token_hex(3)}@{customer}.example"
    add_person(web, customer, email)
    ticket = json.loads(web.server.api("POST", "/api/v1/tickets", {"customer": customer, "title": title}))
    return customer, email, ticket


def customer_asks(client, ticket_id: str, body: str = "the replica lags") -> None:
    page = client.get(f"/customer/tickets/{ticket_id}")
    assert page.status == 200, page.body
    sent = client.post(f"/customer/tickets/{ticket_id}/messages",
                       {"csrf": form_token(page.body), "body": body})
    assert sent.status == 303, sent.body


def later(days: float, hour: int = 15) -> datetime.datetime:
    """A UTC time `days` from now at `hour`:00, on a weekday (inside business hours)."""
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    while moment.weekday() >= 5:
        moment += datetime.timedelta(days=1)
    return moment.replace(hour=hour, minute=0, second=0, microsecond=0)


def promises_of(web: Web, ticket_id: str):
    return json.loads(web.server.api("GET", f"/api/v1/tickets/{ticket_id}/promises"))


def _versions(listed):
    return listed["promises"] if isinstance(listed, dict) else listed


def engineer_propose(client, ticket_id: str, due: str, zone: str = "UTC", reason: str = "a reproduction run",
                     body: str = "", csrf: str = ""):
    page = client.get(f"/tickets/{ticket_id}")
    assert page.status == 200, page.body
    form = {"csrf": csrf or form_token(page.body), "kind": "acknowledgement", "body": body,
            "propose_due": due, "propose_zone": zone, "propose_reason": reason}
    return client.post(f"/tickets/{ticket_id}/messages", form)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # PostgreSQL: API tests
def test_a_promise_is_proposed_countered_and_accepted_on_both_pages(web: Web, page, browser,
                                                                    screenshot) -> None:
    _, email, ticket = new_customer(web, XSS)
    customer = customer_client(web, email)
    customer_asks(customer, ticket["id"], "the replica lags " + XSS)
    tid = ticket["id"]

    sign_in(page, web, f"/tickets/{tid}")
    page.fill("#zone", "Europe/Berlin")
    page.click("form.zone button[type=submit]")
    page.wait_for_url(f"{web.url}/tickets/{tid}")
    panel = page.locator("#promise")
    assert "No promise agreed" in panel.inner_text()
    axe_check(page)
    due = later(4)
    berlin = due.astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
    page.fill("#propose-due", berlin.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#propose-reason", "needs a reproduction run " + XSS)
    page.fill("#propose-body", "Looking into it. " + XSS)
    page.click("form.propose button[type=submit]")
    page.wait_for_url(re.compile(rf"{re.escape(web.url)}/tickets/{tid}#conversation"))
    shown = page.locator("#promise-open").inner_text()
    assert f"{berlin:%Y-%m-%d %H:%M} {berlin.tzname()}" in shown
    assert "needs a reproduction run " + XSS in shown
    assert "Waiting for the customer" in shown
    assert "Looking into it. " + XSS in page.locator("ol.conversation").inner_text()
    no_script_ran(page)
    axe_check(page)
    (first,) = _versions(promises_of(web, tid))
    assert first["due_at"] == due.strftime("%Y-%m-%dT%H:%M:%SZ") and first["state"] == "proposed"

    other = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    tab = other.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
    try:
        other.add_cookies([{"name": k, "value": v, "url": web.url} for k, v in customer.jar.items()])
        tab.goto(f"{web.url}/customer/tickets/{tid}")
        offer = tab.locator("#promise-open").inner_text()
        assert f"{due:%Y-%m-%d %H:%M} UTC" in offer and "Support proposes" in offer
        axe_check(tab)
        screenshot(tab, "customer-proposal")
        counter = later(6)
        tab.fill("#counter-due", counter.strftime("%Y-%m-%dT%H:%M"))
        tab.fill("#counter-reason", "our change window " + XSS)
        tab.click("form.counter button[type=submit]")
        tab.wait_for_url(re.compile(rf"{re.escape(web.url)}/customer/tickets/{tid}#promise"))
        assert "Waiting for the support team" in tab.locator("#promise-open").inner_text()
        no_script_ran(tab)

        page.reload()
        assert "The customer proposes" in page.locator("#promise-open").inner_text()
        page.click("form.accept button[type=submit]")
        page.wait_for_url(re.compile(rf"{re.escape(web.url)}/tickets/{tid}#promise"))
        force = page.locator("#promise-in-force").inner_text()
        assert "Agreed" in force and "left" in force and "our change window " + XSS in force
        history = page.locator("table.promise-history").inner_text()
        assert history.count("our change window") == 1 and "needs a reproduction run" in history
        assert "answered with another time" in history and "accepted" in history
        no_script_ran(page)
        axe_check(page)
        screenshot(page, "engineer-promise")

        tab.reload()
        assert f"{counter:%Y-%m-%d %H:%M} UTC" in tab.locator("#promise-in-force").inner_text()
        assert "needs a reproduction run " + XSS in tab.locator("table.promise-history").inner_text()
        assert tab.locator("#promise form").count() == 0, "nothing open to answer"
        no_script_ran(tab)
        axe_check(tab)
    finally:
        other.close()
    versions = _versions(promises_of(web, tid))
    assert [p["state"] for p in versions][-1] == "accepted"
    assert versions[-1]["due_at"] == counter.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert versions[-1]["proposed_side"] == "customer" and versions[-1]["answered_by"].endswith(web.engineer)


def test_an_infeasible_time_is_refused_with_the_earliest_feasible_as_one_click(web: Web, page) -> None:
    _, email, ticket = new_customer(web)
    customer_asks(customer_client(web, email), ticket["id"])
    tid = ticket["id"]
    sign_in(page, web, f"/tickets/{tid}")
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=3)
    page.fill("#propose-due", soon.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#propose-reason", "as soon as possible " + XSS)
    page.fill("#propose-body", "On it.")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("form.propose button[type=submit]")
    assert posted.value.status == 409
    assert "cannot carry" in page.locator("#refusal").inner_text()
    earliest = page.locator("#earliest strong").inner_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", earliest), earliest
    no_script_ran(page)
    axe_check(page)
    assert _versions(promises_of(web, tid)) == [], "a refused proposal is not a version"
    assert "On it." not in json.dumps(json.loads(web.server.api("GET", f"/api/v1/tickets/{tid}/messages")))
    page.click("form.one-click button[type=submit]")
    page.wait_for_url(re.compile(rf"{re.escape(web.url)}/tickets/{tid}#conversation"))
    (made,) = _versions(promises_of(web, tid))
    assert made["state"] == "proposed"
    assert made["due_at"][:16].replace("T", " ") + " UTC" == earliest
    assert "On it." in page.locator("ol.conversation").inner_text(), "the one click sent the message too"


def test_a_counter_the_calendars_cannot_carry_shows_the_earliest_time_on_both_pages(web: Web, page) -> None:
    _, email, ticket = new_customer(web)
    customer = customer_client(web, email)
    customer_asks(customer, ticket["id"])
    tid = ticket["id"]
    engineer = web.signed_in()
    assert engineer_propose(engineer, tid, later(5).strftime("%Y-%m-%dT%H:%M")).status == 303
    (proposal,) = _versions(promises_of(web, tid))
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=3)
    mine = customer.get(f"/customer/tickets/{tid}")
    countered = customer.post(f"/customer/tickets/{tid}/promises/{proposal['id']}/counter",
                              {"csrf": form_token(mine.body), "due": soon.strftime("%Y-%m-%dT%H:%M"),
                               "zone": "UTC", "reason": "we need it now " + XSS})
    assert countered.status == 303, countered.body
    theirs = customer.get(f"/customer/tickets/{tid}").body
    check = re.search(r'<p class="error" id="counter-check">(.*?)</p>', theirs, re.S).group(1)
    assert "cannot carry this time" in check and "the earliest we can promise is" in check
    assert "ob-" not in check and "wi-" not in check, "no other customer's task ids"
    counter = [p for p in _versions(promises_of(web, tid)) if p["state"] == "proposed"][0]
    sign_in(page, web, f"/tickets/{tid}")
    assert "earliest feasible time" in page.locator("#counter-check").inner_text()
    axe_check(page)
    no_script_ran(page)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("form.accept button[type=submit]")
    assert posted.value.status == 409
    earliest = page.locator("#earliest strong").inner_text()
    axe_check(page)
    page.click("form.one-click button[type=submit]")
    page.wait_for_url(re.compile(rf"{re.escape(web.url)}/tickets/{tid}#promise"))
    listed = _versions(promises_of(web, tid))
    assert {p["id"]: p["state"] for p in listed}[counter["id"]] == "countered"
    assert listed[-1]["state"] == "proposed" and listed[-1]["proposed_side"] == "engineer"
    assert listed[-1]["due_at"][:16].replace("T", " ") + " UTC" == earliest


def test_every_promise_form_without_its_token_is_refused(web: Web) -> None:
    _, email, ticket = new_customer(web)
    customer = customer_client(web, email)
    customer_asks(customer, ticket["id"])
    tid = ticket["id"]
    engineer = web.signed_in()
    due = later(5).strftime("%Y-%m-%dT%H:%M")
    assert engineer_propose(engineer, tid, due, csrf="x" * 43).status == 403
    assert _versions(promises_of(web, tid)) == []
    assert engineer_propose(engineer, tid, due).status == 303
    (proposal,) = _versions(promises_of(web, tid))
    for client, path in ((customer, f"/customer/tickets/{tid}/promises/{proposal['id']}/accept"),
                         (customer, f"/customer/tickets/{tid}/promises/{proposal['id']}/counter"),
                         (engineer, f"/tickets/{tid}/promises/{proposal['id']}/accept"),
                         (engineer, f"/tickets/{tid}/promises/{proposal['id']}/counter")):
        assert client.post(path, {"due": due, "zone": "UTC", "reason": "r"}).status == 403, path
    assert [p["state"] for p in _versions(promises_of(web, tid))] == ["proposed"]
    anonymous = web.client().post(f"/tickets/{tid}/promises/{proposal['id']}/accept", {})
    assert anonymous.status == 303 and "/signin" in anonymous.header("location")


@pytest.mark.parametrize("due,zone,why", [
    ("2027-03-28T02:30", "Europe/Berlin", "does not exist"),
    ("2027-10-31T02:30", "Europe/Berlin", "happens twice"),
    ("2026-02-30T10:00", "UTC", "not a date"),
    ("next friday", "UTC", "YYYY-MM-DD"),
    ("2020-01-01T10:00", "UTC", "has passed"),
    ("2030-01-01T10:00", "Mars/Base", "time zone"),
    ("<script>alert(1)</script>", "UTC", "YYYY-MM-DD"),
])
def test_malformed_dates_and_dst_gaps_are_a_400_with_the_reason(web: Web, due, zone, why) -> None:
    _, email, ticket = new_customer(web)
    customer_asks(customer_client(web, email), ticket["id"])
    refused = engineer_propose(web.signed_in(), ticket["id"], due, zone)
    assert refused.status == 400 and why in refused.body, refused.body
    assert "<script>alert(1)</script>" not in refused.body
    assert _versions(promises_of(web, ticket["id"])) == []


def test_a_plain_reply_cannot_carry_a_proposal(web: Web) -> None:
    _, email, ticket = new_customer(web)
    customer_asks(customer_client(web, email), ticket["id"])
    engineer = web.signed_in()
    page = engineer.get(f"/tickets/{ticket['id']}")
    refused = engineer.post(f"/tickets/{ticket['id']}/messages", {
        "csrf": form_token(page.body), "kind": "reply", "body": "the answer",
        "propose_due": later(5).strftime("%Y-%m-%dT%H:%M"), "propose_zone": "UTC", "propose_reason": "r"})
    assert refused.status == 400 and "acknowledgement" in refused.body
    assert _versions(promises_of(web, ticket["id"])) == []


def test_another_customers_proposal_is_the_same_404_as_none(web: Web) -> None:
    _, email, ticket = new_customer(web)
    _, other_email, other = new_customer(web, "theirs")
    customer = customer_client(web, email)
    customer_asks(customer, ticket["id"])
    customer_asks(customer_client(web, other_email), other["id"])
    engineer = web.signed_in()
    assert engineer_propose(engineer, other["id"], later(5).strftime("%Y-%m-%dT%H:%M")).status == 303
    (theirs,) = _versions(promises_of(web, other["id"]))
    token = form_token(customer.get(f"/customer/tickets/{ticket['id']}").body)
    for path in (f"/customer/tickets/{ticket['id']}/promises/{theirs['id']}/accept",
                 f"/customer/tickets/{other['id']}/promises/{theirs['id']}/accept",
                 f"/customer/tickets/{ticket['id']}/promises/pr-{'0' * 16}/accept",
                 f"/customer/tickets/{ticket['id']}/promises/{XSS[:20]}/accept"):
        answer = customer.post(path, {"csrf": token})
        assert answer.status == 404, (path, answer.status)
        assert "<script>" not in answer.body
    assert [p["state"] for p in _versions(promises_of(web, other["id"]))] == ["proposed"]
    mine_token = form_token(engineer.get(f"/tickets/{ticket['id']}").body)
    wrong_ticket = engineer.post(f"/tickets/{ticket['id']}/promises/{theirs['id']}/accept",
                                 {"csrf": mine_token})
    assert wrong_ticket.status == 404


def test_answering_twice_is_a_conflict_not_a_second_answer(web: Web) -> None:
    _, email, ticket = new_customer(web)
    customer = customer_client(web, email)
    customer_asks(customer, ticket["id"])
    tid = ticket["id"]
    assert engineer_propose(web.signed_in(), tid, later(5).strftime("%Y-%m-%dT%H:%M")).status == 303
    (proposal,) = _versions(promises_of(web, tid))
    token = form_token(customer.get(f"/customer/tickets/{tid}").body)
    accepted = customer.post(f"/customer/tickets/{tid}/promises/{proposal['id']}/accept", {"csrf": token})
    assert accepted.status == 303, accepted.body
    again = customer.post(f"/customer/tickets/{tid}/promises/{proposal['id']}/counter",
                          {"csrf": token, "due": later(7).strftime("%Y-%m-%dT%H:%M"), "zone": "UTC"})
    assert again.status == 409, again.body
    assert [p["state"] for p in _versions(promises_of(web, tid))] == ["accepted"]
