"""Breaches with two server processes on one PostgreSQL: each recorded exactly once, soon after
its time, never back-dated, also after a pause while the ticket waited on the customer."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any, Dict

import pytest

from server.storage.db import open_database
from tests.serverkit import _database, make_server
from tests.servers import free_port

pytestmark = pytest.mark.server

TARGET = 4.0  # seconds, 24x7: short enough to watch the breaches happen


@pytest.fixture(params=["postgresql"])
def pg_backend(request):
    yield from _database(request.param)


def post(url: str, path: str, token: str, body: Dict[str, Any]) -> Dict[str, Any]:
    request = urllib.request.Request(url + path, method="POST", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def test_two_processes_record_every_breach_exactly_once_and_never_back_dated(tmp_path, pg_backend):
    srv = make_server(tmp_path, pg_backend)
    config = json.loads((srv.data / "config.json").read_text())
    config["support"] = {"policies": [{"name": "fast", "first_reply": TARGET, "next_reply": TARGET,
                                       "calendar": "24x7"}]}
    (srv.data / "config.json").write_text(json.dumps(config))
    srv.start()
    second_port = free_port()
    srv.start(second_port)
    second_url = f"http://127.0.0.1:{second_port}"
    try:
        urls = [srv.url, second_url]
        tickets = [srv.ticket(customer=f"c{i}") for i in range(12)]
        for i, t in enumerate(tickets):
            post(urls[i % 2], f"/api/v1/tickets/{t['id']}/messages", t["upload_token"],
                 {"body": f"question {i}", "kind": "needs_reply"})
        # One more ticket asks back: paused for 6 s (longer than the target), then resumed.
        paused = srv.ticket(customer="pause")
        path = f"/api/v1/tickets/{paused['id']}/messages"
        post(urls[0], path, paused["upload_token"], {"body": "why slow?", "kind": "needs_reply"})
        time.sleep(1.0)
        post(urls[1], path, srv.admin_token, {"body": "which version?", "kind": "reply",
                                              "waiting_on_customer": True})
        time.sleep(6.0)
        answered_at = time.time()
        resumed = post(urls[0], path, paused["upload_token"], {"body": "10.11", "kind": "needs_reply"})
        time.sleep(TARGET + 3.0)
        db = open_database(pg_backend)
        try:
            with db.tx(write=False) as tx:
                events = tx.all("SELECT obligation_id, kind, ticket_id, due, recorded_at, recorded_by "
                                "FROM clock_events WHERE kind = 'breach'")
                obligations = tx.all("SELECT id, ticket_id, due_at FROM obligations")
                notes = tx.all("SELECT id FROM notifications")
        finally:
            db.close()
        by_ticket = {}
        for e in events:
            by_ticket.setdefault(e["ticket_id"], []).append(e)
        assert sorted(by_ticket) == sorted([t["id"] for t in tickets] + [paused["id"]])
        assert all(len(v) == 1 for v in by_ticket.values())
        due = {o["id"]: o["due_at"] for o in obligations}
        for e in events:
            assert e["due"] == due[e["obligation_id"]]
            assert 0 <= e["recorded_at"] - e["due"] < 5.0, e
        assert len(notes) == len({n["id"] for n in notes})
        # The paused clock: 1 s used before the question, the rest counted from the answer.
        late = by_ticket[paused["id"]][0]
        assert late["due"] >= answered_at + TARGET - 1.0 - 0.5
        assert late["recorded_at"] >= answered_at + TARGET - 1.5
        assert resumed["due_at"] is not None
    finally:
        srv.stop()
    assert " 500" not in srv.logs() and "Traceback" not in srv.logs()
