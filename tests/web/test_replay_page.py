"""The replay page: a session granted on a ticket, its recording stored the way the gateway
stores one (recording.asciicast.Recorder under DATA/sessions/<id>/<part>.cast, the chain
head in the audit log), read as a transcript in Chromium (escape sequences gone, markup
from the customer's host shown as text, never run), downloaded as an asciicast; a session
of another ticket is 404; a changed recording says TAMPERED."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict

import pytest

from tests.web.conftest import Web, _ssh_public_key, axe_check
from tests.web.test_report_page import (
    PAYLOADS,
    new_ticket,
    nothing_ran,
    sign_in,
    sign_out,
    styled_by_report_css,
)

pytestmark = pytest.mark.server

#: What the engineer typed and what the customer's host answered (colours, a title escape,
#: a carriage-return progress line, markup in a table name).
TYPED = ["SHOW TABLES\r"]
SHOWN = [
    "\x1b]0;mysql diag\x07\x1b[1;32mdiag>\x1b[0m ",
    "SHOW TABLES\r\n",
    "+----------------+\r\n| \x1b[1m" + PAYLOADS[0] + "\x1b[0m |\r\n| " + PAYLOADS[1] + " |\r\n",
    "10%\r50%\r100% done\r\n",
    "| " + PAYLOADS[2] + " |\r\n+----------------+\r\n",
]


def record_session(web: Web, ticket: Dict, engineer: str) -> Dict:
    """A granted session and one recorded part, as the gateway writes them."""
    from recording import asciicast
    from server.gateway import records

    state = web.state()
    try:
        with state.db.tx() as tx:
            if tx.one("SELECT name FROM engineer_keys WHERE name = ?", (engineer,)) is None:
                records.add_engineer_key(tx, engineer, _ssh_public_key(), "cli:test")
            session = records.grant(tx, ticket["id"], "upload:acme", engineer, 3600, "check the tables",
                                    "diag", _ssh_public_key(), "db1")
        header = asciicast.header_line(80, 24, time.time(), f"session {session['id']}", {"TERM": "xterm"},
                                       {"engineer": engineer, "mode": "diag", "purpose": "check the tables"})
        recorder = asciicast.Recorder(state.data.path / "sessions" / session["id"] / "1", header)
        micros = 0
        for text in TYPED:
            micros += 200_000
            recorder.event("i", micros, text.encode())
        for text in SHOWN:
            micros += 1_100_000
            recorder.event("o", micros, text.encode())
        lines, head = recorder.close(micros)
        with state.db.tx() as tx:
            records.event(tx, session["id"], f"engineer:{engineer}", "session.part", part=1, events=lines,
                          chain_head=head, file=recorder.cast_path.name)
        return {**session, "cast": recorder.cast_path}
    finally:
        state.close()


@pytest.fixture(scope="module")
def recorded(web) -> Dict:
    ticket = new_ticket(web)
    return {"ticket": ticket, "session": record_session(web, ticket, web.engineer)}


def test_engineer_opens_the_replay_from_the_ticket_and_reads_the_transcript(web, recorded, page, screenshot):
    ticket, session = recorded["ticket"], recorded["session"]
    sign_in(page, web, f"/tickets/{ticket['id']}")
    page.click(f"a[href='/tickets/{ticket['id']}/sessions/{session['id']}/replay']")
    page.wait_for_load_state()
    assert page.url.endswith("/replay")
    transcript = page.inner_text("main pre")
    for payload in PAYLOADS:
        assert payload in transcript, "output from the host is shown as text"
    assert "\x1b" not in transcript and "[1;32m" not in transcript and "mysql diag" not in transcript
    assert "100% done" in transcript and "10%" not in transcript.replace("100%", "")
    assert "00:00:01  diag>" in transcript, "each line carries the moment it began"
    assert "SHOW TABLES" in page.inner_text("main ol.timeline"), "what was typed"
    assert "verified" in page.inner_text("main")
    assert page.locator("main script").count() == 0 and page.locator("img[src=x]").count() == 0
    styled_by_report_css(page)
    nothing_ran(page)
    axe_check(page)
    screenshot(page, "replay")
    with page.expect_download() as download:
        page.click("a[download]")
    saved = Path(download.value.path())
    assert saved.read_bytes() == session["cast"].read_bytes()
    assert download.value.suggested_filename == f"{session['id']}-1.cast"
    sign_out(page)


def test_the_asciicast_downloads_as_an_attachment(web, recorded):
    ticket, session = recorded["ticket"], recorded["session"]
    client = web.signed_in()
    reply = client.get(f"/tickets/{ticket['id']}/sessions/{session['id']}/recording.cast")
    assert reply.status == 200
    assert reply.header("content-type").startswith("application/x-asciicast")
    assert reply.header("content-disposition").startswith("attachment")
    first = json.loads(reply.body.splitlines()[0])
    assert first["version"] == 2 and first["width"] == 80
    assert client.get(f"/tickets/{ticket['id']}/sessions/{session['id']}/recording.cast?part=1").status == 200
    assert client.get(f"/tickets/{ticket['id']}/sessions/{session['id']}/recording.cast?part=9").status == 404


def test_the_replay_is_for_signed_in_engineers_and_only_under_its_own_ticket(web, recorded):
    ticket, session = recorded["ticket"], recorded["session"]
    for path in (f"/tickets/{ticket['id']}/sessions/{session['id']}/replay",
                 f"/tickets/{ticket['id']}/sessions/{session['id']}/recording.cast"):
        anonymous = web.client().get(path)
        assert anonymous.status == 303 and anonymous.header("location").startswith("/signin?next=")
    client = web.signed_in()
    other = new_ticket(web)
    assert client.get(f"/tickets/{other['id']}/sessions/{session['id']}/replay").status == 404
    assert client.get(f"/tickets/{other['id']}/sessions/{session['id']}/recording.cast").status == 404
    assert client.get(f"/tickets/{ticket['id']}/sessions/ss-2222222222/replay").status == 404
    assert client.get(f"/tickets/{ticket['id']}/sessions/..%2F..%2Fetc/replay").status == 404


def test_a_changed_recording_is_shown_as_tampered(web):
    ticket = new_ticket(web)
    session = record_session(web, ticket, web.engineer)
    cast: Path = session["cast"]
    lines = cast.read_bytes().splitlines(keepends=True)
    changed = [line.replace(b"SHOW", b"DROP") for line in lines[1:]]
    assert changed != lines[1:]
    cast.write_bytes(b"".join([lines[0], *changed]))
    body = web.signed_in().get(f"/tickets/{ticket['id']}/sessions/{session['id']}/replay").body
    assert "TAMPERED" in body


def test_a_session_nobody_joined_has_no_recording(web):
    from server.gateway import records

    ticket = new_ticket(web)
    state = web.state()
    try:
        with state.db.tx() as tx:
            session = records.grant(tx, ticket["id"], "upload:acme", web.engineer, 3600, "later", "diag",
                                    _ssh_public_key(), "db1")
    finally:
        state.close()
    client = web.signed_in()
    reply = client.get(f"/tickets/{ticket['id']}/sessions/{session['id']}/replay")
    assert reply.status == 200 and "no recording" in reply.body
    assert client.get(f"/tickets/{ticket['id']}/sessions/{session['id']}/recording.cast").status == 404


def test_the_transcript_drops_escape_sequences_and_control_characters():
    from server.web.replay import Transcript

    reader = Transcript()
    # An escape split between two reads, OSC with ST, DCS, charset selection, 8-bit CSI, backspace.
    reader.feed(0.5, "a\x1b[3")
    reader.feed(1.0, "1mred\x1b[0m\x1b]2;title\x1b\\ \x1bP1$r\x1b\\\x1b(Bok\x9b2Jx\x08y\r\n")
    reader.feed(2.0, "\x07bell\x00\x01 \tend")
    lines = reader.finish(3.0)
    assert [(line.clock, line.text) for line in lines] == [("00:00:00", "ared oky"),
                                                           ("00:00:02", "bell \tend")]
