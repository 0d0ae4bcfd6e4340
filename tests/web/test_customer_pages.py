"""The customers' pages (issue 14): a person asks for a sign-in link by e-mail (read here from
the outbox table, which is what the MAIL sender delivers), opens it in Chromium and signs in
once; the same answer for an unknown address; a used, expired or forged link is refused; a
person sees only their organization's tickets (another's is 404, the same as none); their
follow-up gets its due time; internal notes never show; markup executes nothing; every form
without its token is 403."""

from __future__ import annotations

import json
import re
import secrets

import pytest

from tests.web.conftest import (
    XSS,
    Web,
    add_person,
    ask_link,
    axe_check,
    customer_client,
    form_token,
    outbox_links,
    spend_link,
)


def no_script_ran(tab) -> None:
    assert tab.evaluate("typeof window.__xss") == "undefined"
    assert tab.dialogs == []


def organization(web: Web, title: str = "slow queries"):
    customer = f"org-{secrets.token_hex(4)}"
    email = f"ops-{secrets.token_hex(3)}@{customer}.example"
    add_person(web, customer, email)
    ticket = json.loads(web.server.api("POST", "/api/v1/tickets", {"customer": customer, "title": title}))
    return customer, email, ticket


def set_link_expiry(web: Web, path: str, expires: float) -> None:
    from server.web.websessions import _digest

    state = web.state()
    try:
        with state.db.tx() as tx:
            tx.run("UPDATE customer_signin_links SET expires = ? WHERE digest = ?",
                   (expires, _digest(path.rsplit("/", 1)[1])))
    finally:
        state.close()


def test_a_person_signs_in_by_link_and_follows_up_in_the_browser(web: Web, page, screenshot) -> None:
    _, email, ticket = organization(web, XSS)
    _, _, other = organization(web, "another customer's secret")
    web.server.api("POST", f"/api/v1/tickets/{ticket['id']}/messages",
                   {"body": "Please send a bundle. " + XSS, "kind": "reply"})
    web.server.api("POST", f"/api/v1/tickets/{ticket['id']}/messages",
                   {"body": "internal: this customer is on 10.3", "kind": "internal"})

    page.goto(f"{web.url}/customer/signin")
    axe_check(page)
    page.fill("#email", email.upper())
    page.click("button[type=submit]")
    assert "a sign-in link is on its way" in page.locator("#signin-sent").inner_text()
    axe_check(page)
    (link,) = outbox_links(web, email)
    page.goto(f"{web.url}{link}")
    axe_check(page)
    page.click("button[type=submit]")
    page.wait_for_url(f"{web.url}/customer")
    listed = page.locator("main").inner_text()
    assert XSS in listed and "another customer's secret" not in listed
    no_script_ran(page)
    axe_check(page)
    screenshot(page, "customer-list")

    page.click(f"a[href='/customer/tickets/{ticket['id']}']")
    page.wait_for_url(f"{web.url}/customer/tickets/{ticket['id']}")
    shown = page.locator("ol.conversation").inner_text()
    assert "Please send a bundle. " + XSS in shown and "internal" not in shown
    assert "No message from you yet." in page.locator("#deadline").inner_text()
    page.fill("#body", "Here it comes. " + XSS)
    page.click("form.reply button[type=submit]")
    page.wait_for_url(f"{web.url}/customer/tickets/{ticket['id']}#conversation")
    clock = page.locator("#deadline").inner_text()
    assert re.search(r"We reply to your latest message by \d{4}-\d\d-\d\d \d\d:\d\d UTC \(.+ left\)",
                     clock), clock
    assert "Here it comes. " + XSS in page.locator("ol.conversation").inner_text()
    assert "Reply due" in page.locator("ol.conversation").inner_text()
    no_script_ran(page)
    axe_check(page)
    screenshot(page, "customer-ticket")

    page.fill("#body", "Thanks, all good now. " + XSS)
    page.check("input[name=no_reply]")
    page.click("form.reply button[type=submit]")
    page.wait_for_url(f"{web.url}/customer/tickets/{ticket['id']}#conversation")
    assert "no reply needed" in page.locator("ol.conversation").inner_text()

    page.goto(f"{web.url}/customer/tickets/{other['id']}")
    assert page.locator("h1").inner_text() == "No such ticket"
    page.goto(f"{web.url}/")
    assert page.url.startswith(f"{web.url}/signin"), "a customer session is no engineer session"
    no_script_ran(page)


def test_the_customer_pages_break_no_csp_rule(web: Web, strict_page) -> None:
    _, email, ticket = organization(web)
    tab = strict_page
    tab.goto(f"{web.url}/customer/signin")
    tab.fill("#email", email)
    tab.click("button[type=submit]")
    tab.goto(f"{web.url}{outbox_links(web, email)[-1]}")
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{web.url}/customer")
    tab.goto(f"{web.url}/customer/tickets/{ticket['id']}")
    tab.fill("#zone", "Europe/Berlin")
    tab.click("form.zone button[type=submit]")
    tab.wait_for_url(f"{web.url}/customer/tickets/{ticket['id']}")
    assert tab.locator("#zone").input_value() == "Europe/Berlin"
    assert tab.csp_errors == [], tab.csp_errors
    tab.click("header.site button[type=submit]")
    tab.wait_for_url(f"{web.url}/customer/signin")
    tab.goto(f"{web.url}/customer")
    assert tab.url == f"{web.url}/customer/signin", "signed out"


def test_an_unknown_address_gets_the_same_answer_and_no_mail(web: Web) -> None:
    _, email, _ = organization(web)
    known = ask_link(web.client("127.0.0.2"), email)
    unknown_email = f"nobody-{secrets.token_hex(3)}@example.org"
    unknown = ask_link(web.client("127.0.0.2"), unknown_email)
    garbage = ask_link(web.client("127.0.0.2"), "<script>alert(1)</script>")
    assert known.status == unknown.status == garbage.status == 200

    def sent(body: str) -> str:
        return re.search(r'<p class="sent".*?</p>', body, re.S).group(0)

    assert sent(known.body) == sent(unknown.body) == sent(garbage.body)
    assert len(outbox_links(web, email)) == 1 and outbox_links(web, unknown_email) == []


def test_a_link_signs_in_once_and_never_after_it_expired_or_when_forged(web: Web) -> None:
    _, email, ticket = organization(web)
    client = web.client()
    ask_link(client, email)
    (link,) = outbox_links(web, email)
    assert spend_link(client, link).status == 303
    assert client.get(f"/customer/tickets/{ticket['id']}").status == 200
    again = spend_link(web.client(), link)
    assert again.status == 403 and "not valid" in again.body

    ask_link(web.client(), email)
    stale = outbox_links(web, email)[-1]
    set_link_expiry(web, stale, 1.0)
    assert spend_link(web.client(), stale).status == 403
    ask_link(web.client(), email)
    fresh = outbox_links(web, email)[-1]
    tampered = fresh[:-1] + ("A" if fresh[-1] != "A" else "B")
    for forged in (tampered, "/customer/signin/" + secrets.token_urlsafe(32), "/customer/signin/x",
                   "/customer/signin/" + "A" * 90):
        assert spend_link(web.client(), forged).status == 403, forged
    # Opening the link (a mail scanner's GET) does not spend it; pressing its button does.
    scanner = web.client()
    assert scanner.get(fresh).status == 200 and scanner.get(fresh).status == 200
    assert spend_link(web.client(), fresh).status == 303


def test_a_link_needs_its_own_form_token_and_is_not_spent_without_it(web: Web) -> None:
    _, email, _ = organization(web)
    ask_link(web.client(), email)
    (link,) = outbox_links(web, email)
    assert web.client().post(link, {"csrf": secrets.token_urlsafe(32)}).status == 403
    assert web.client().get(link).status == 200, "the refused post did not spend the link"
    bare = web.client()
    assert bare.post("/customer/signin", {"email": email}).status == 403
    assert len(outbox_links(web, email)) == 1


def test_links_are_limited_per_address_and_per_client_without_throttling_engineers(web: Web) -> None:
    _, email, _ = organization(web)
    for _ in range(8):
        assert ask_link(web.client("127.0.0.3"), email).status == 200
    assert len(outbox_links(web, email)) == 5
    _, late, _ = organization(web)
    for n in range(13):
        ask_link(web.client("127.0.0.3"), f"nobody{n}@example.org")
    assert ask_link(web.client("127.0.0.3"), late).status == 200
    assert outbox_links(web, late) == [], "the 21st request from one client address mails nothing"
    assert ask_link(web.client("127.0.0.4"), late).status == 200 and len(outbox_links(web, late)) == 1
    signed = web.client("127.0.0.3").sign_in(web.engineer, web.password)
    assert signed.status == 303, "link requests are not failed engineer sign-ins"


def test_another_organizations_ticket_is_the_same_404_as_none(web: Web) -> None:
    _, email, _ = organization(web)
    _, _, other = organization(web, "theirs")
    client = customer_client(web, email)
    theirs = client.get(f"/customer/tickets/{other['id']}")
    nothing = client.get("/customer/tickets/tk-doesnotexist")
    assert theirs.status == nothing.status == 404 and theirs.body == nothing.body
    csrf = form_token(client.get("/customer").body)
    posted = client.post(f"/customer/tickets/{other['id']}/messages", {"csrf": csrf, "body": "mine now"})
    assert posted.status == 404
    messages = json.loads(web.server.api("GET", f"/api/v1/tickets/{other['id']}/messages"))
    assert messages == []


@pytest.mark.parametrize("token", ["", "wrong"])
def test_every_customer_form_without_its_token_is_refused(web: Web, token: str) -> None:
    _, email, ticket = organization(web)
    client = customer_client(web, email)
    extra = {"csrf": token} if token else {}
    assert client.post(f"/customer/tickets/{ticket['id']}/messages", {"body": "hi", **extra}).status == 403
    assert client.post("/timezone", {"zone": "Asia/Tokyo", "next": "/customer", **extra}).status == 403
    assert client.post("/customer/signout", dict(extra)).status == 403
    assert client.get(f"/customer/tickets/{ticket['id']}").status == 200, "still signed in"
    assert json.loads(web.server.api("GET", f"/api/v1/tickets/{ticket['id']}/messages")) == []
    page = client.get("/customer")
    out = client.post("/customer/signout", {"csrf": form_token(page.body)})
    assert out.status == 303 and client.get("/customer").status == 303


def test_an_engineer_cookie_is_no_customer_session(web: Web) -> None:
    engineer = web.signed_in()
    reply = engineer.get("/customer")
    assert reply.status == 303 and reply.header("location") == "/customer/signin"
