"""The conversation API on real server processes, SQLite and PostgreSQL: post, list, the
timeline, who may post which kind, tenant isolation, internal notes, hostile bodies."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Dict, Optional, Tuple

import pytest

pytestmark = pytest.mark.server


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


def say(support, ticket: Dict, token: str, kind: str, body: str = "help", **extra: Any) -> Tuple[int, Any]:
    return call(support, "POST", f"/api/v1/tickets/{ticket['id']}/messages", token,
                {"body": body, "kind": kind, **extra})


def test_a_customer_message_gets_its_due_at_and_a_reply_is_listed_after_it(support):
    ticket = support.ticket()
    status, asked = say(support, ticket, ticket["upload_token"], "needs_reply", "replica lags 2 h")
    assert status == 201
    assert asked["author_kind"] == "customer" and asked["kind"] == "needs_reply"
    assert asked["due_at"] and asked["due_at"].endswith("Z") and asked["due_at"] > asked["at"]
    status, replied = say(support, ticket, support.admin_token, "reply", "check sync_binlog")
    assert status == 201 and replied["delivery"] == "delivered" and replied["due_at"] is None
    status, listed = call(support, "GET", f"/api/v1/tickets/{ticket['id']}/messages", ticket["upload_token"])
    assert status == 200 and [m["id"] for m in listed] == [asked["id"], replied["id"]]
    assert listed[0]["due_at"] is None  # met by the delivered reply


def test_customers_post_customer_kinds_only_and_engineers_engineer_kinds_only(support):
    ticket = support.ticket()
    for kind in ("reply", "acknowledgement", "internal"):
        assert say(support, ticket, ticket["upload_token"], kind)[0] == 403
    for kind in ("needs_reply", "no_reply_needed"):
        assert say(support, ticket, support.admin_token, kind)[0] == 403
    assert say(support, ticket, support.admin_token, "shout")[0] == 422
    assert say(support, ticket, ticket["upload_token"], "needs_reply", waiting_on_customer=True)[0] == 400


def test_internal_notes_and_clock_warnings_are_hidden_from_the_customer(support):
    ticket = support.ticket()
    say(support, ticket, ticket["upload_token"], "needs_reply", "disk full?")
    say(support, ticket, support.admin_token, "internal", "customer runs 10.3, EOL")
    say(support, ticket, support.admin_token, "acknowledgement", "looking into it")
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    _, seen = call(support, "GET", path, ticket["upload_token"])
    assert [m["kind"] for m in seen] == ["needs_reply", "acknowledgement"]
    assert "EOL" not in json.dumps(seen)
    _, timeline = call(support, "GET", f"/api/v1/tickets/{ticket['id']}/timeline", ticket["upload_token"])
    assert "EOL" not in json.dumps(timeline)
    _, everything = call(support, "GET", path, support.admin_token)
    assert [m["kind"] for m in everything] == ["needs_reply", "internal", "acknowledgement"]


def test_a_second_customers_token_sees_nothing_of_the_firsts_messages(support):
    first, second = support.ticket("acme"), support.ticket("globex")
    say(support, first, first["upload_token"], "needs_reply", "acme's secret question")
    for path in ("messages", "timeline"):
        status, answer = call(support, "GET", f"/api/v1/tickets/{first['id']}/{path}", second["upload_token"])
        assert status == 404 and "secret" not in json.dumps(answer)
    assert say(support, first, second["upload_token"], "needs_reply")[0] == 404
    _, own = call(support, "GET", f"/api/v1/tickets/{second['id']}/messages", second["upload_token"])
    assert own == []
    _, mine = call(support, "GET", f"/api/v1/tickets/{first['id']}/messages", first["upload_token"])
    assert call(support, "POST", f"/api/v1/tickets/{second['id']}/messages/{mine[0]['id']}/no-reply",
                support.admin_token, {"reason": "x"})[0] == 404


def test_the_timeline_orders_messages_and_clock_events(support):
    ticket = support.ticket()
    _, asked = say(support, ticket, ticket["upload_token"], "needs_reply", "first")
    say(support, ticket, support.admin_token, "reply", "answer")
    status, timeline = call(support, "GET", f"/api/v1/tickets/{ticket['id']}/timeline", support.admin_token)
    assert status == 200
    kinds = [(e["type"], (e.get("message") or e.get("clock") or {}).get("kind")) for e in timeline]
    assert kinds == [("message", "needs_reply"), ("clock", "due"), ("message", "reply"), ("clock", "met")]
    assert timeline[1]["clock"]["due_at"] == asked["due_at"]
    assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)


def test_an_engineer_marks_a_message_no_reply_needed_with_a_reason(support):
    ticket = support.ticket()
    _, thanks = say(support, ticket, ticket["upload_token"], "needs_reply", "thanks a lot!")
    path = f"/api/v1/tickets/{ticket['id']}/messages/{thanks['id']}/no-reply"
    assert call(support, "POST", path, ticket["upload_token"], {"reason": "thanks"})[0] == 403
    status, marked = call(support, "POST", path, support.admin_token, {"reason": "a thank-you"})
    assert status == 200 and marked["kind"] == "no_reply_needed" and marked["due_at"] is None
    assert marked["no_reply_by"] == "admin:admin"
    _, entries = call(support, "GET", f"/api/v1/audit?ticket={ticket['id']}", support.admin_token)
    assert any(e["action"] == "message.no_reply" for e in entries)
    assert call(support, "POST", path, support.admin_token, {"reason": "again"})[0] == 400


@pytest.mark.parametrize("body", ["", "\x00", "ring\x07", "\x1b]0;owned\x07", "rtl\u202etxt",
                                  "x" * (256 * 1024 + 1)])
def test_hostile_bodies_are_refused_with_400(support, body):
    ticket = support.ticket()
    status, answer = say(support, ticket, ticket["upload_token"], "needs_reply", body)
    assert status == 400 and "body" in answer["error"]


def test_a_lone_surrogate_or_invalid_json_is_400_and_markup_is_kept_as_text(support):
    ticket = support.ticket()
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    lone = b'{"body": "\\ud800", "kind": "needs_reply"}'
    assert call(support, "POST", path, ticket["upload_token"], raw=lone)[0] == 400
    assert call(support, "POST", path, ticket["upload_token"], raw=b'{"body": ')[0] == 400
    markup = "<script>alert(1)</script> & 'quotes'"
    status, stored = say(support, ticket, ticket["upload_token"], "needs_reply", markup)
    assert status == 201 and stored["body"] == markup


def test_the_routes_are_in_the_openapi_document(support):
    status, doc = call(support, "GET", "/api/v1/openapi.json", support.admin_token)
    assert status == 200
    paths = doc["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/tickets/{ticket_id}/messages"])
    assert "get" in paths["/api/v1/tickets/{ticket_id}/timeline"]
    assert "post" in paths["/api/v1/tickets/{ticket_id}/messages/{message_id}/no-reply"]
