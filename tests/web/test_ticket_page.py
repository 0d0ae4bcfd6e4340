"""A ticket's page, in Chromium and over raw HTTP: an engineer signs in, opens the list,
opens a ticket full of customer markup that must execute nothing, and signs out; axe-core
finds no serious or critical violation on any page; every page carries the strict headers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from server.web.render import CSP
from tests.web.conftest import XSS, Web, axe_check, seed_ticket

TEMPLATES = Path(__file__).resolve().parents[2] / "server" / "web" / "templates"


@pytest.fixture(scope="module")
def seeded(web: Web) -> dict:
    return seed_ticket(web)


def no_script_ran(tab) -> None:
    assert tab.evaluate("typeof window.__xss") == "undefined"
    assert tab.dialogs == []


def test_an_engineer_reads_a_ticket_in_the_browser_and_nothing_runs(web: Web, seeded: dict, page,
                                                                    screenshot) -> None:
    ticket = seeded["ticket"]
    page.goto(f"{web.url}/tickets/{ticket['id']}")
    assert page.url.startswith(f"{web.url}/signin?next=")
    axe_check(page)
    screenshot(page, "signin")
    page.fill("#name", web.engineer)
    page.fill("#password", web.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{web.url}/tickets/{ticket['id']}")
    page.click("text=Tickets >> nth=0")
    page.wait_for_url(f"{web.url}/")
    assert page.locator("h1").inner_text() == "Tickets"
    no_script_ran(page)
    axe_check(page)
    screenshot(page, "ticket-list")

    page.click(f"a[href='/tickets/{ticket['id']}']")
    page.wait_for_url(f"{web.url}/tickets/{ticket['id']}")
    heading = page.locator("h1").inner_text()
    assert XSS in heading, "the title is shown as the text the customer typed"
    assert XSS in page.locator("section[aria-labelledby=hosts]").inner_text()
    assert XSS in page.locator("section[aria-labelledby=sessions]").inner_text()
    assert XSS in page.locator("section[aria-labelledby=bundles]").inner_text()
    assert page.locator("img").count() == 0 and page.locator("main script, main svg").count() == 0
    no_script_ran(page)
    axe_check(page)
    screenshot(page, "ticket")

    page.click("text=Sign out")
    page.wait_for_url(f"{web.url}/signin")
    page.goto(f"{web.url}/")
    assert page.url.startswith(f"{web.url}/signin")


def test_under_the_real_csp_the_pages_break_no_rule_and_the_stylesheet_loads(web: Web, seeded: dict,
                                                                            strict_page) -> None:
    tab = strict_page
    tab.goto(f"{web.url}/signin")
    tab.fill("#name", web.engineer)
    tab.fill("#password", web.password)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{web.url}/")
    tab.goto(f"{web.url}/tickets/{seeded['ticket']['id']}")
    assert tab.evaluate("getComputedStyle(document.querySelector('header.site')).display") == "flex"
    no_script_ran(tab)
    assert tab.csp_errors == [], tab.csp_errors
    # The policy is really enforced: an inline script the page did not ask for is refused.
    with pytest.raises(Exception, match="Content Security Policy"):
        tab.add_script_tag(content="window.__xss = 'injected'")
    assert tab.evaluate("typeof window.__xss") == "undefined"
    axe_check(tab)  # the one axe helper works under the enforced policy too


def test_the_not_found_page_is_accessible(web: Web, page, screenshot) -> None:
    page.goto(f"{web.url}/signin")
    page.fill("#name", web.engineer)
    page.fill("#password", web.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{web.url}/")
    reply = page.goto(f"{web.url}/tickets/tk-zzzzzzzzzz")
    assert reply is not None and reply.status == 404
    assert page.locator("h1").inner_text() == "No such ticket"
    axe_check(page)
    screenshot(page, "not-found")


def test_a_wrong_password_page_is_accessible(web: Web, page) -> None:
    page.goto(f"{web.url}/signin")
    page.fill("#name", web.engineer)
    page.fill("#password", "certainly not the password")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "Wrong engineer name or password."
    axe_check(page)


def test_every_page_carries_the_strict_headers(web: Web, seeded: dict) -> None:
    client = web.signed_in()
    ticket = seeded["ticket"]["id"]
    for path, status in [("/", 200), (f"/tickets/{ticket}", 200), ("/tickets/tk-zzzzzzzzzz", 404),
                         ("/tickets/not-an-id", 404), ("/signin", 303), ("/static/site.css", 200),
                         ("/static/nope.css", 404)]:
        reply = client.get(path)
        assert reply.status == status, path
        assert reply.header("content-security-policy") == CSP, path
        assert reply.header("x-content-type-options") == "nosniff", path
        assert reply.header("referrer-policy") == "no-referrer", path
        if path != "/static/site.css":
            assert reply.header("cache-control") == "no-store", path
    assert CSP == ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                   "frame-ancestors 'none'; base-uri 'none'")
    assert client.get("/static/site.css").header("content-type").startswith("text/css")
    anonymous = web.client().get("/signin")
    assert anonymous.header("content-security-policy") == CSP
    assert anonymous.header("cache-control") == "no-store"


def test_customer_markup_reaches_the_page_only_escaped(web: Web, seeded: dict) -> None:
    body = web.signed_in().get(f"/tickets/{seeded['ticket']['id']}").body
    assert "<script" not in body and "<img" not in body and "<svg" not in body
    assert "onerror=" not in body.replace("onerror=&#34;", "")
    escaped = "&lt;script&gt;window.__xss=1;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror="
    # title, host (hosts, bundles, sessions), quarantine reason, purpose, audit detail
    assert body.count(escaped) >= 6, body.count(escaped)
    assert 'href="javascript' not in body


def test_the_ticket_page_shows_bundles_hosts_sessions_and_the_timeline(web: Web, seeded: dict) -> None:
    ticket, session = seeded["ticket"]["id"], seeded["session"]
    first, quarantined, third = seeded["bundles"]
    body = web.signed_in().get(f"/tickets/{ticket}").body
    for bundle in seeded["bundles"]:
        assert f'href="/tickets/{ticket}/bundles/{bundle}/report"' in body
    # Only the two accepted bundles of one host get "compare with previous", newer against older.
    assert body.count("Compare with previous") == 1
    assert f'href="/tickets/{ticket}/diff?a={first}&amp;b={third}"' in body
    assert f'href="/tickets/{ticket}/sessions/{session["id"]}/replay"' in body
    rows = [body.index(f">{b}</td>") for b in (third, quarantined, first)]
    assert rows == sorted(rows), "newest bundle first"
    assert "quarantined" in body and "1.4 MiB" in body
    assert web.engineer in body and "live" in body and "diag" in body
    timeline = body[body.index('id="timeline"'):]
    for action in ("ticket.create", "host.enroll", "session.grant", "bundle.receive"):
        assert action in timeline


def test_the_web_pages_are_not_in_the_openapi_document(web: Web) -> None:
    paths = json.loads(web.server.api("GET", "/api/v1/openapi.json"))["paths"]
    assert paths and all(p.startswith("/api/v1/") for p in paths), sorted(paths)


def test_no_template_marks_anything_safe() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"\|\s*safe\b|autoescape\s+false|\bMarkup\(", text), template
        assert "<script" not in text and " style=" not in text and "<style" not in text, template


@pytest.mark.parametrize("value, minutes, seconds", [
    ("2026-12-01T10:02:05Z", "2026-12-01 10:02 UTC", "2026-12-01 10:02:05 UTC"),
    (1764583325.5, "2025-12-01 10:02 UTC", "2025-12-01 10:02:05 UTC"),
    (0, "1970-01-01 00:00 UTC", "1970-01-01 00:00:00 UTC"),
    ("2026-02-30T10:02:05Z", "2026-02-30T10:02:05Z", "2026-02-30T10:02:05Z"),  # no such day: as is
    ("2026-12-01T25:02:05Z", "2026-12-01T25:02:05Z", "2026-12-01T25:02:05Z"),
    ("2026-12-01T10:02:05+01:00", "2026-12-01T10:02:05+01:00", "2026-12-01T10:02:05+01:00"),
    ("yesterday", "yesterday", "yesterday"), (None, "–", "–"), ("", "–", "–"),
])
def test_times_are_shown_in_utc_and_other_text_as_it_is(value, minutes: str, seconds: str) -> None:
    from server.web.render import _when

    assert _when(value) == minutes and _when(value, seconds=True) == seconds
