"""The ticket list: newest first, 50 a page, bundle counts and last bundle time, escaped,
and one query over indexes with 10,000 tickets and 50,000 bundles (its speed is measured by
bench/pages_bench.py)."""

from __future__ import annotations

import json
import re
import time
from typing import Iterator

import pytest

from server.support import tickets
from tests.serverkit import _database, make_server
from tests.web.conftest import XSS, Web, new_engineer


def rows(html: str) -> list:
    return re.findall(r'<td[^>]*><a href="/tickets/(tk-[a-z0-9]{10})">', html)


def bulk(web: Web, tickets: int, bundles_per_ticket: int, start: float) -> None:
    """Rows straight into the server's database (executemany: the API would take minutes)."""
    state = web.state()
    try:
        with state.db.tx() as tx:
            cursor = tx._cursor
            cursor.executemany(
                tx._sql("INSERT INTO tickets (id, customer, title, recipients, created, created_by) "
                        "VALUES (?, ?, ?, ?, ?, ?)"),
                [(f"tk-{n:010d}", f"cust{n % 97}", f"ticket {n}", "[]", start + n, "test")
                 for n in range(tickets)])
            cursor.executemany(
                tx._sql("INSERT INTO bundles (id, ticket_id, sha256, size, filename, status, host, "
                        "received) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                [(f"bd-{n:06d}-{k}", f"tk-{n:010d}", f"{n:058d}{k:06d}", 1000, "b.tar.zst.age", "accepted",
                  "db1", start + n + k) for n in range(tickets) for k in range(bundles_per_ticket)])
    finally:
        state.close()


def test_the_list_is_newest_first_with_bundle_counts(web: Web) -> None:
    first = web.server.ticket("acme", "the older one")
    second = web.server.ticket("globex", "the newer one")
    client = web.signed_in()
    page = client.get("/")
    assert page.status == 200
    listed = rows(page.body)
    assert listed.index(second["id"]) < listed.index(first["id"])
    assert "the newer one" in page.body and "globex" in page.body
    assert page.header("cache-control") == "no-store"


def test_markup_in_a_title_is_shown_as_text(web: Web) -> None:
    web.server.ticket("acme", XSS)
    body = web.signed_in().get("/").body
    assert "<script>window.__xss" not in body and "<img src=x" not in body and "<svg onload" not in body
    assert "&lt;script&gt;window.__xss=1;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x" in body


def test_a_page_past_the_end_or_a_bad_page_number_is_harmless(web: Web) -> None:
    client = web.signed_in()
    assert client.get("/?page=99999").status == 200
    assert "No tickets on this page." in client.get("/?page=99999").body
    for bad in ("abc", "-1", "0", "1e9", "%00"):
        assert client.get(f"/?page={bad}").status == 200


def test_an_unauthenticated_list_redirects_to_signin(web: Web) -> None:
    reply = web.client().get("/?page=2")
    assert reply.status == 303 and reply.header("location") == "/signin?next=%2F%3Fpage%3D2"


@pytest.fixture(scope="module")
def big(tmp_path_factory, backend) -> Iterator[Web]:
    """A second server with 10,000 tickets and 50,000 bundles, on a database of its own."""
    databases = _database("postgresql" if backend else "sqlite")
    server = make_server(tmp_path_factory.mktemp("big"), next(databases))
    try:
        name, password = new_engineer(server, "bob")
        made = Web(server, name, password)
        bulk(made, 10_000, 5, time.time() - 100_000)
        server.start()
        yield made
    finally:
        server.stop()
        databases.close()


def test_pages_of_fifty_newest_first_and_the_counts_add_up(big: Web) -> None:
    client = big.signed_in()
    first = client.get("/")
    assert "10000 tickets, newest first; page 1 of 200." in first.body
    assert rows(first.body) == [f"tk-{n:010d}" for n in range(9999, 9949, -1)]
    assert 'href="/?page=2" rel="next"' in first.body and 'rel="prev"' not in first.body
    last = client.get("/?page=200")
    assert rows(last.body) == [f"tk-{n:010d}" for n in range(49, -1, -1)]
    assert 'rel="next"' not in last.body and 'href="/?page=199" rel="prev"' in last.body
    # Each row: 5 bundles, the last received 4 s after the ticket was created.
    cells = re.findall(r'<td class="num">(\d+)</td>', first.body)
    assert cells == ["5"] * 50


def _subplans_below(node: dict, under_limit: bool = False) -> int:
    """How many subplans of a PostgreSQL JSON plan run below a Limit node."""
    here = under_limit and node.get("Parent Relationship") == "SubPlan"
    below = under_limit or node.get("Node Type") == "Limit"
    return int(here) + sum(_subplans_below(child, below) for child in node.get("Plans", []))


def test_the_list_query_uses_the_indexes(big: Web) -> None:
    """The list's own query (support/tickets.TICKET_PAGE_SQL) on its last page: the tickets
    through tickets_created, each row's bundles through bundles_ticket, no sort, and the
    bundle subqueries only for the page's rows (not for the 9,950 that OFFSET skips). How
    fast that is, is measured by bench/pages_bench.py, not here."""
    state = big.state()
    try:
        with state.db.tx(write=False) as tx:
            if big.server.database:
                tx.run("ANALYZE")
                text = "\n".join(r["QUERY PLAN"] for r in tx.all("EXPLAIN " + tickets.TICKET_PAGE_SQL,
                                                                 (50, 9950)))
                tree = tx.one("EXPLAIN (FORMAT JSON) " + tickets.TICKET_PAGE_SQL, (50, 9950))
            else:
                text = "\n".join(r["detail"] for r in tx.all("EXPLAIN QUERY PLAN " + tickets.TICKET_PAGE_SQL,
                                                              (50, 9950)))
    finally:
        state.close()
    assert "tickets_created" in text and "bundles_ticket" in text, text
    if big.server.database:
        assert "Seq Scan on bundles" not in text and "Sort" not in text, text
        plan = next(iter(tree.values()))
        plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
        assert _subplans_below(plan) == 0, text
    else:
        assert "TEMP B-TREE" not in text, text
        assert "CO-ROUTINE t" in text or "MATERIALIZE t" in text, text
