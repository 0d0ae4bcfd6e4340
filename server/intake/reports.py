"""Reports: every accepted bundle read into a report once, on arrival, and kept.

The background verifier calls `render_quietly` right after a bundle is accepted (never the
request path of an upload). The report engine's findings go to the `reports` row as JSON,
the headline findings beside them (for the API and the ticket page), and the web page's
HTML fragment to the blob store under its sha256 (`html_key`). A bundle the engine cannot
read gets a `failed` row with one line saying why: that never touches the bundle's
acceptance. A bundle accepted before reports existed is rendered on first view (`ensure`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from typing import Any, Dict, List, Optional

from bundle import age
from report import html
from report.engine import Report, evaluate
from report.model import Bundle
from server.intake.checks import one_line
from server.storage import jobs
from server.storage.db import Tx
from server.storage.state import State

log = logging.getLogger("mydiag.server")

RENDERED = "rendered"
FAILED = "failed"
#: How many findings the headline keeps (the engine's own cut: warning or worse).
HEADLINE_COUNT = 5


#: A stored report row, as `get` reads it and `_render` writes it.
_ROW = ("bundle_id", "state", "headline", "report_json", "html_key", "error", "rendered")


def get(tx: Tx, bundle_id: str) -> Optional[Dict[str, Any]]:
    """The stored report row of a bundle, or None when none was rendered yet."""
    return tx.one(f"SELECT {', '.join(_ROW)} FROM reports WHERE bundle_id = ?", (bundle_id,))


def headline(row: Optional[Dict[str, Any]]) -> Optional[List[Dict[str, Any]]]:
    """The headline findings of a stored report row (None when there is no rendered report)."""
    if row is None or row.get("state") != RENDERED or not row.get("headline"):
        return None
    try:
        found = json.loads(row["headline"])
    except ValueError:
        return None
    return found if isinstance(found, list) else None


def summaries(tx: Tx, bundle_ids: List[str]) -> Dict[str, Dict[str, Any]]:
    """`{"report": state, "headline": findings or None}` by bundle id, for those of
    `bundle_ids` that have a report row."""
    found: Dict[str, Dict[str, Any]] = {}
    for start in range(0, len(bundle_ids), 500):
        chunk = bundle_ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in tx.all(f"SELECT bundle_id, state, headline FROM reports WHERE bundle_id IN ({marks})",
                          chunk):
            found[row["bundle_id"]] = {"report": row["state"], "headline": headline(row)}
    return found


def headline_of(report: Report) -> List[Dict[str, Any]]:
    return [{"rule": f.rule, "severity": f.severity, "title": f.title, "summary": f.summary}
            for f in report.headline(HEADLINE_COUNT)]


def read_bundle(state: State, sha256: str, filename: str) -> Bundle:
    """The stored (sealed) bundle, opened with the server's identity, within its limits."""
    identities = age.read_identities(state.data.identity_path)
    limits = state.config.limits.bundle_limits()
    with state.store.open(sha256) as raw:
        head = raw.read(64)
        packed = raw.seek(0, 2)  # the stored size bounds the compression ratio
        raw.seek(0)
        if age.is_age_file(head):
            return Bundle.read(age.AgeReader(raw, identities), filename, limits, packed_bytes=packed)
        return Bundle.read(raw, filename, limits, packed_bytes=packed)


def render_html(bundle: Bundle, report: Report) -> str:
    """The report's HTML fragment for the web page (the page's layout wraps it)."""
    return html.render_report(bundle, report, standalone=False)


def render(state: State, bundle_id: str, only_missing: bool = False,
           wait: bool = True) -> Optional[Dict[str, Any]]:
    """Read, evaluate and render one accepted bundle, store the outcome; the stored row.

    Once across processes (server/storage/jobs.py): `only_missing` renders only when no row
    exists once the job is held (else that row); a process that finds another one rendering
    waits for its row (`wait`), or returns None at once (the verifier, the sweeper).
    Raises nothing about the bundle itself (that is a `failed` row); only the database
    being unusable can raise.
    """
    job = f"report:{bundle_id}"
    while True:
        with jobs.lease(state.db, job, state.owner) as mine:
            if mine:
                return _render(state, bundle_id, only_missing)
        if not wait:
            return None
        jobs.wait(state.db, job, state.owner)
        with state.db.tx(write=False) as tx:
            row = get(tx, bundle_id)
        if row is not None:
            return row


def _render(state: State, bundle_id: str, only_missing: bool = False) -> Dict[str, Any]:
    """Render and store; with `only_missing`, a report already stored is returned instead.
    The bundle and whether it has a report are one read, the stored row is one commit."""
    with state.db.tx(write=False) as tx:
        bundle_row = tx.one("SELECT b.id, b.sha256, b.filename, b.status, r.state AS report_state"
                            " FROM bundles b LEFT JOIN reports r ON r.bundle_id = b.id WHERE b.id = ?",
                            (bundle_id,))
        if bundle_row is not None and only_missing and bundle_row["report_state"] is not None:
            row = get(tx, bundle_id)
            if row is not None:
                return row
    if bundle_row is None:
        raise LookupError(f"no bundle {bundle_id!r}")
    started = time.monotonic()
    try:
        bundle = read_bundle(state, bundle_row["sha256"], bundle_row["filename"])
        report = evaluate(bundle)
        fragment = render_html(bundle, report)
        html_key = _put_text(state, fragment)
        values = (RENDERED, json.dumps(headline_of(report)), json.dumps(report.to_dict(), default=str),
                  html_key, None)
    except Exception as exc:  # noqa: BLE001 - any failure is the report's, never the bundle's
        error = one_line(f"{type(exc).__name__}: {exc}", 300)
        log.warning("rendering the report of %s failed: %s", bundle_id, error)
        values = (FAILED, None, None, None, error)
    rendered = time.time()
    with state.db.tx() as tx:
        tx.put(f"INSERT INTO reports ({', '.join(_ROW)})"
               " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (bundle_id) DO UPDATE SET state = excluded.state,"
               " headline = excluded.headline, report_json = excluded.report_json,"
               " html_key = excluded.html_key, error = excluded.error, rendered = excluded.rendered",
               (bundle_id, *values, rendered))
    log.info("report of %s: %s in %.2f s", bundle_id, values[0], time.monotonic() - started)
    return dict(zip(_ROW, (bundle_id, *values, rendered)))


def render_quietly(state: State, bundle_id: str) -> None:
    """`render`, for the verifier: whatever happens, the bundle's verdict stands."""
    try:
        render(state, bundle_id, only_missing=True, wait=False)
    except Exception as exc:  # noqa: BLE001 - e.g. the database went away: rendered on first view
        log.warning("rendering the report of %s: %s: %s", bundle_id, type(exc).__name__, one_line(str(exc)))


def sweep(state: State, within: float = 3600.0, limit: int = 20) -> None:
    """The background renderer: accepted bundles of the last `within` seconds without a
    report (a process died between the verdict and the report), each rendered once."""
    with state.db.tx(write=False) as tx:
        rows = tx.all("SELECT b.id FROM bundles b LEFT JOIN reports r ON r.bundle_id = b.id"
                      " WHERE b.status = 'accepted' AND r.bundle_id IS NULL AND b.verified > ?"
                      " ORDER BY b.verified LIMIT ?", (time.time() - within, limit))
    for row in rows:
        render_quietly(state, row["id"])


def ensure(state: State, bundle_id: str) -> Optional[Dict[str, Any]]:
    """The bundle's stored report row; an accepted bundle without one is rendered now
    (bundles accepted before reports existed). None for a bundle that is not accepted."""
    with state.db.tx(write=False) as tx:
        row = get(tx, bundle_id)
        status = tx.one("SELECT status FROM bundles WHERE id = ?", (bundle_id,))
    if row is not None:
        return row
    if status is None or status["status"] != "accepted":
        return None
    return render(state, bundle_id, only_missing=True)  # the verifier may be rendering it now


def fragment(state: State, row: Dict[str, Any]) -> Optional[str]:
    """The stored HTML fragment of a rendered report (None when it is gone or not rendered)."""
    key = row.get("html_key")
    if row.get("state") != RENDERED or not key or not state.store.exists(key):
        return None
    with state.store.open(key) as handle:
        return handle.read().decode("utf-8", "replace")


def _put_text(state: State, text: str) -> str:
    """Keep `text` in the blob store under its sha256; the key."""
    data = text.encode("utf-8")
    key = hashlib.sha256(data).hexdigest()
    if state.store.exists(key):
        return key
    state.data.tmp.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=state.data.tmp)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        state.store.put_file(state.data.tmp / os.path.basename(name), key)
    finally:
        if os.path.exists(name):
            os.unlink(name)
    return key
