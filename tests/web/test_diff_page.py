"""The diff page: two bundles of one host collected by `mydiag collect` from a private MariaDB
(a setting changed between them, to markup), uploaded by `mydiag upload`, compared in
Chromium; bundles of two hosts get a clear 400 page; a bundle of another ticket is 404."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator

import pytest

from tests.serverkit import make_bundle
from tests.web.conftest import axe_check
from tests.web.test_report_page import (
    PAYLOADS,
    collect,
    new_ticket,
    nothing_ran,
    sign_in,
    sign_out,
    start_mariadb,
    styled_by_report_css,
    upload,
)

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Iterator[Dict[str, Path]]:
    base = tmp_path_factory.mktemp("diff-page")
    instance = start_mariadb(base / "db")
    try:
        quick = ("--profile", "quick", "--samples", "2", "--interval", "0.3")
        before = collect(instance, base / "before", *quick)
        quoted = PAYLOADS[1].replace("'", "''")
        instance.sql("SET GLOBAL max_connections = 77", f"SET GLOBAL init_connect = '{quoted}'")
        after = collect(instance, base / "after", *quick)
        yield {"before": before, "after": after,
               "other_host": make_bundle(base / "other", host="other-host.example", payload=256)}
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def uploaded(web, collected, tmp_path_factory) -> Dict[str, Dict]:
    home = tmp_path_factory.mktemp("agent-home")
    ticket = new_ticket(web)
    return {"ticket": ticket, **{name: upload(web, ticket, path, home) for name, path in collected.items()}}


def test_engineer_opens_the_diff_from_the_ticket_and_sees_what_changed(web, uploaded, page,
                                                                       screenshot):
    ticket, before, after = uploaded["ticket"], uploaded["before"], uploaded["after"]
    assert before["host"] == after["host"]
    sign_in(page, web, f"/tickets/{ticket['id']}")
    page.click(f"a[href='/tickets/{ticket['id']}/diff?a={before['id']}&b={after['id']}']")
    page.wait_for_load_state()
    assert "/diff?" in page.url
    text = page.inner_text("main")
    assert "max_connections" in text and "77" in text
    assert "init_connect" in text and PAYLOADS[1] in text, "the changed setting is shown as text"
    assert page.locator("main script").count() == 0 and page.locator("img[src=x]").count() == 0
    styled_by_report_css(page)
    assert page.locator("h1").count() == 1, "the diff's own heading is the page's one h1"
    nothing_ran(page)
    axe_check(page)
    screenshot(page, "diff")
    sign_out(page)


def test_bundles_of_two_hosts_are_not_compared(web, uploaded, page, screenshot):
    ticket, before, other = uploaded["ticket"], uploaded["before"], uploaded["other_host"]
    path = f"/tickets/{ticket['id']}/diff?a={before['id']}&b={other['id']}"
    reply = web.signed_in().get(path)
    assert reply.status == 400 and "different hosts" in reply.body
    assert "other-host.example" in reply.body
    sign_in(page, web, path)
    assert "Bundles of different hosts" in page.inner_text("main")
    nothing_ran(page)
    axe_check(page)
    screenshot(page, "diff-two-hosts")


def test_the_diff_needs_two_bundles_of_this_ticket_and_a_signed_in_engineer(web, uploaded):
    ticket, before, after = uploaded["ticket"], uploaded["before"], uploaded["after"]
    path = f"/tickets/{ticket['id']}/diff?a={before['id']}&b={after['id']}"
    anonymous = web.client().get(path)
    assert anonymous.status == 303 and anonymous.header("location").startswith("/signin?next=")
    client = web.signed_in()
    assert client.get(path).status == 200
    other = new_ticket(web)
    assert client.get(f"/tickets/{other['id']}/diff?a={before['id']}&b={after['id']}").status == 404
    assert client.get(f"/tickets/{ticket['id']}/diff?a={before['id']}&b=bd-0000000000000000").status == 404
    assert client.get(f"/tickets/{ticket['id']}/diff?a={before['id']}").status == 400
    assert client.get(f"/tickets/{ticket['id']}/diff?a={before['id']}&b={before['id']}").status == 400
    # The other order is a diff too (after → before).
    assert client.get(f"/tickets/{ticket['id']}/diff?a={after['id']}&b={before['id']}").status == 200


def test_the_report_page_links_the_diff_with_the_same_host_s_other_bundles(web, uploaded):
    ticket, before, after, other = (uploaded["ticket"], uploaded["before"], uploaded["after"],
                                    uploaded["other_host"])
    body = web.signed_in().get(f"/tickets/{ticket['id']}/bundles/{after['id']}/report").body
    assert f"/tickets/{ticket['id']}/diff?a={before['id']}&amp;b={after['id']}" in body
    assert other["id"] not in body

