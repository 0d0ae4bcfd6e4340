"""Reports on arrival (server/intake/reports.py): a real data directory (`mydiag-server init`),
real sealed bundles through the server's own intake (`import_file`, which verifies like the
background sweeper), SQLite: an accepted bundle gets its report once, kept; a bundle whose
report cannot be made stays accepted with a `failed` report; a bundle accepted before reports
existed is rendered on first view; the API's bundle JSON carries the headline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.serverkit import make_bundle, make_server, seal

pytestmark = pytest.mark.server


@pytest.fixture()
def state(tmp_path):
    from server.storage.state import State

    server = make_server(tmp_path, None)
    opened = State.open(server.data)
    opened.recipient = server.recipient
    yield opened
    opened.close()


def _ticket(state) -> str:
    from server.support import tickets

    with state.db.tx() as tx:
        return tickets.create_ticket(tx, "acme", "slow", [state.recipient], "cli:test", 1)["id"]


def _accepted(state, tmp_path: Path, host: str = "db1") -> dict:
    from server.intake import bundles

    sealed = seal(make_bundle(tmp_path / host, host=host, payload=1024), state.recipient)
    found = bundles.import_file(state, _ticket(state), sealed, "cli:test")
    assert found["status"] == "accepted", found
    return found


def _row(state, bundle_id: str):
    from server.intake import reports

    with state.db.tx(write=False) as tx:
        return reports.get(tx, bundle_id)


def test_an_accepted_bundle_is_rendered_once_on_arrival_and_kept(state, tmp_path):
    from server.intake import reports

    found = _accepted(state, tmp_path)
    row = _row(state, found["id"])
    assert row is not None and row["state"] == "rendered", row
    assert row["error"] is None and row["rendered"] > 0
    kept = json.loads(row["report_json"])
    assert kept["host"] == "db1" and kept["rules_run"] > 0
    # A bundle of one status document and random bytes: every rule lacks data, none errs.
    assert {o["status"] for o in kept["outcomes"]} <= {"insufficient", "not_applicable", "passed"}
    assert json.loads(row["headline"]) == []
    html = reports.fragment(state, row)
    assert html and "db1" in html and "<html" not in html.lower(), "a body fragment, not a document"
    assert state.store.exists(row["html_key"])
    # On view it is read, not rendered again.
    again = reports.ensure(state, found["id"])
    assert again["rendered"] == row["rendered"] and again["html_key"] == row["html_key"]


def test_a_report_that_cannot_be_made_fails_alone_and_the_bundle_stays_accepted(state, tmp_path):
    from server.intake import bundles, reports

    found = _accepted(state, tmp_path)
    # The stored blob is gone (a lost disk, an operator's mistake): the report fails, one line.
    blob = state.data.blobs / "sha256" / found["sha256"][:2] / found["sha256"]
    blob.unlink()
    row = reports.render(state, found["id"])
    assert row["state"] == "failed" and row["html_key"] is None and row["headline"] is None
    assert "\n" not in row["error"] and "FileNotFoundError" in row["error"]
    with state.db.tx(write=False) as tx:
        assert bundles.get_bundle(tx, found["id"])["status"] == "accepted"
    assert reports.fragment(state, row) is None
    reports.render_quietly(state, "bd-doesnotexist")  # raises nothing


def test_a_bundle_accepted_before_reports_existed_is_rendered_on_first_view(state, tmp_path):
    from server.intake import reports

    found = _accepted(state, tmp_path)
    with state.db.tx() as tx:
        tx.run("DELETE FROM reports WHERE bundle_id = ?", (found["id"],))
    assert _row(state, found["id"]) is None
    row = reports.ensure(state, found["id"])
    assert row is not None and row["state"] == "rendered"
    assert _row(state, found["id"])["html_key"] == row["html_key"]


def test_a_quarantined_bundle_gets_no_report(state, tmp_path):
    from server.intake import bundles, reports

    plain = make_bundle(tmp_path / "plain", payload=64)
    found = bundles.import_file(state, _ticket(state), plain, "cli:test")  # not sealed: quarantined
    assert found["status"] == "quarantined"
    assert _row(state, found["id"]) is None
    assert reports.ensure(state, found["id"]) is None


def test_headline_holds_rule_severity_title_summary_and_only_for_rendered_rows(state):
    from server.intake import reports

    top = [{"rule": "CONN-01", "severity": "warning", "title": "t", "summary": "s"}]
    assert reports.headline({"state": "rendered", "headline": json.dumps(top)}) == top
    assert reports.headline({"state": "failed", "headline": json.dumps(top)}) is None
    assert reports.headline({"state": "rendered", "headline": "{not json"}) is None
    assert reports.headline({"state": "rendered", "headline": json.dumps({"a": 1})}) is None
    assert reports.headline(None) is None


def test_the_bundle_api_adds_the_report_state_and_headline(state, tmp_path):
    from server.api import bundles as bundles_api
    from server.api.app import create_app

    found = _accepted(state, tmp_path)
    with state.db.tx(write=False) as tx:
        [listed] = bundles_api._listed(tx, found["ticket"])
        one = bundles_api._one(tx, found["id"])
    assert listed["report"] == "rendered" and listed["headline"] == []
    assert one["report"] == "rendered" and one["manifest"]["host"] == "db1"
    schema = create_app(state, sweep=False).openapi()
    fields = schema["components"]["schemas"]["BundleOut"]["properties"]
    assert "headline" in fields and "report" in fields
    assert set(schema["components"]["schemas"]["HeadlineOut"]["required"]) == {"rule", "severity", "title",
                                                                               "summary"}
