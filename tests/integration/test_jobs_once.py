"""Background jobs with three `mydiag-server run` processes on one PostgreSQL database: each
report rendered once (while engineers open the bundle's page on all three processes as it is
accepted), each clock warning and breach recorded and notified once, each reply mailed once
through the smart host (every process runs the mail worker)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from tests.serverkit import ROOT, Server, _database, make_bundle, make_server, seal
from tests.servers import free_port
from tests.web.conftest import Client, new_engineer

pytestmark = pytest.mark.server

TARGET = 3.0  # seconds, 24x7: short enough to watch every warning and the breach happen
PROCESSES = 3


class Collector:
    """The smart host's mailbox: every message it accepted."""

    def __init__(self) -> None:
        self.mails: List[bytes] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        with self.lock:
            self.mails.append(envelope.original_content or envelope.content)
        return "250 OK"


@pytest.fixture(scope="module")
def smarthost() -> Iterator[tuple]:
    from aiosmtpd.controller import Controller

    collector = Collector()
    port = free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, collector
    controller.stop()


@pytest.fixture(scope="module")
def three(tmp_path_factory, smarthost) -> Iterator[tuple]:
    """One data directory on a private PostgreSQL database, served by three processes."""
    gen = _database("postgresql")
    database = next(gen)
    srv = make_server(tmp_path_factory.mktemp("three"), database)
    config = json.loads((srv.data / "config.json").read_text())
    config["support"] = {"policies": [{"name": "fast", "first_reply": TARGET, "next_reply": TARGET,
                                       "calendar": "24x7"}]}
    config["mail"] = {"domain": "support.example.test", "smarthost": "127.0.0.1",
                      "smarthost_port": smarthost[0], "starttls": False, "retry_seconds": 0.5}
    (srv.data / "config.json").write_text(json.dumps(config))
    name, password = new_engineer(srv, "alice")
    ports = [free_port() for _ in range(PROCESSES)]
    for port in ports:
        srv.start(port)
    try:
        yield srv, ports, (name, password)
    finally:
        srv.stop()
        next(gen, None)


def _urls(ports: List[int]) -> List[str]:
    return [f"http://127.0.0.1:{p}" for p in ports]


def _post(srv: Server, url: str, path: str, token: str, body: Dict) -> Dict:
    import urllib.request

    request = urllib.request.Request(url + path, method="POST", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def _rows(database: str, sql: str, params=()) -> list:
    import psycopg

    with psycopg.connect(database) as conn:
        return conn.execute(sql, params).fetchall()


def test_each_report_is_rendered_once_while_pages_are_opened_on_every_process(three, tmp_path):
    srv, ports, (name, password) = three
    client = Client(ports[0])
    assert client.sign_in(name, password).status == 303
    clients = [client] + [Client(p, jar=client.jar) for p in ports[1:]]  # the session is in the database
    ticket = srv.ticket(customer="render")
    token = tmp_path / "token"
    token.write_text(ticket["upload_token"])
    uploads = []
    for i in range(4):
        sealed = seal(make_bundle(tmp_path / f"b{i}", host=f"r{i}", payload=150_000), srv.recipient)
        uploads.append(subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "upload", str(sealed), "--server",
             _urls(ports)[i % PROCESSES], "--ticket", ticket["id"], "--token-file", str(token), "--json"],
            cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={"MYDIAG_HOME": str(tmp_path / f"home{i}"), "PATH": "/usr/bin:/bin"}))
    # As each bundle is accepted, its report page is opened on all three processes at once.
    opened: Dict[str, List[int]] = {}
    deadline = time.monotonic() + 120
    while len(opened) < 4 and time.monotonic() < deadline:
        for bundle in srv.bundles(ticket["id"]):
            if bundle["status"] == "accepted" and bundle["id"] not in opened:
                statuses: List[int] = []
                path = f"/tickets/{ticket['id']}/bundles/{bundle['id']}/report"
                threads = [threading.Thread(target=lambda c=c, p=path, s=statuses: s.append(c.get(p).status))
                           for c in clients]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                opened[bundle["id"]] = statuses
        time.sleep(0.01)
    for process in uploads:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert len(opened) == 4 and all(s == [200] * PROCESSES for s in opened.values()), opened
    rendered = Counter(re.findall(r"report of (\S+): (?:rendered|failed) in", srv.logs()))
    assert {b: rendered[b] for b in opened} == {b: 1 for b in opened}, rendered
    rows = _rows(srv.database, "SELECT state FROM reports WHERE bundle_id = ANY(%s)", (list(opened),))
    assert sorted(r[0] for r in rows) == ["rendered"] * 4
    assert _rows(srv.database, "SELECT COUNT(*) FROM job_leases")[0][0] == 0, "every lease let go"


def test_each_warning_and_breach_is_recorded_and_notified_once(three):
    srv, ports, _ = three
    urls = _urls(ports)
    tickets = [srv.ticket(customer=f"clock{i}") for i in range(9)]
    for i, t in enumerate(tickets):
        _post(srv, urls[i % PROCESSES], f"/api/v1/tickets/{t['id']}/messages", t["upload_token"],
              {"body": f"question {i}", "kind": "needs_reply"})
    ids = [t["id"] for t in tickets]
    deadline = time.monotonic() + TARGET + 10
    while time.monotonic() < deadline:
        events = _rows(srv.database, "SELECT ticket_id, kind FROM clock_events WHERE ticket_id = ANY(%s)",
                       (ids,))
        if len(events) >= 4 * len(ids):
            break
        time.sleep(0.2)
    time.sleep(1.5)  # every process has had another round since
    events = _rows(srv.database, "SELECT ticket_id, kind, recorded_by FROM clock_events"
                                 " WHERE ticket_id = ANY(%s)", (ids,))
    assert Counter((t, k) for t, k, _ in events) == {(t, k): 1 for t in ids
                                                     for k in ("warning_50", "warning_80", "warning_95",
                                                               "breach")}
    notes = _rows(srv.database, "SELECT ticket_id, kind FROM notifications WHERE ticket_id = ANY(%s)"
                                " AND kind IN ('warning_50', 'warning_80', 'warning_95', 'breach')", (ids,))
    assert sorted(notes) == sorted((t, k) for t, k, _ in events)  # one notification per event


def test_each_reply_is_mailed_once_with_every_process_running_the_mail_worker(three, smarthost):
    srv, ports, _ = three
    _, collector = smarthost
    urls = _urls(ports)
    already = len(collector.mails)
    replies = []
    for i in range(6):
        ticket = srv.ticket(customer=f"mail{i}")
        srv.cli("customer", "add-person", f"mail{i}", f"person{i}@customer.example")
        reply = _post(srv, urls[i % PROCESSES], f"/api/v1/tickets/{ticket['id']}/messages", srv.admin_token,
                      {"body": f"answer {i}", "kind": "reply"})
        replies.append(reply["id"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(collector.mails) - already < len(replies):
        time.sleep(0.1)
    time.sleep(2.5)  # more rounds of every worker: nothing is sent again
    mails = collector.mails[already:]
    ids = [re.search(rb"(?im)^Message-ID:\s*(\S+)", m).group(1) for m in mails]  # type: ignore[union-attr]
    assert len(mails) == len(replies) and len(set(ids)) == len(ids), (len(mails), ids)
    rows = _rows(srv.database, "SELECT state, attempts FROM outbox WHERE message_id = ANY(%s)", (replies,))
    assert sorted(rows) == [("sent", 1)] * len(replies)
    assert Path(srv.data / "mail.key").stat().st_mode & 0o077 == 0
