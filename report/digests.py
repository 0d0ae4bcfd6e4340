"""The window's statement digests: performance_schema's digest table at the window's start
(`statement_digests.json`) and end (`statement_digests_end.json`), end minus start per
digest. One place for every rule that names the statements behind a finding."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Sequence, Tuple

from report.facts import rows
from report.finding import Insufficient
from report.model import Bundle, to_number
from report.window import parse_ts

PS = "mysql/performance_schema/"
DIGESTS, DIGESTS_END = PS + "statement_digests.json", PS + "statement_digests_end.json"
#: The per-digest counters whose growth during the window `window_digests` gives.
COUNTERS = ("calls", "total_seconds", "lock_seconds", "rows_examined", "rows_sent", "tmp_disk_tables",
            "full_joins", "no_index_used")
#: A digest text is customer text even as a fingerprint: cut before it goes into evidence.
TEXT_LIMIT = 500
#: How many digests a finding's evidence names.
TOP = 5
#: Statements on the server's own catalog, SHOW and SET: no index of the application's can
#: help them, and mydiag's own reads during the window look like that.
_CATALOG = re.compile(r"information_schema|performance_schema|`mysql` \.|^\s*\(?\s*(show|set)\b"
                      r"|^\s*select @@|^\s*select \? as `part`", re.I)


def _count(value: Any) -> float:
    number = to_number(value)
    return number if number is not None and 0 <= number < 1e18 else 0.0


def _key(row: Dict[str, Any]) -> Tuple[str, str]:
    digest = row.get("digest")
    ident = str(digest) if digest not in (None, "") else "text:" + str(row.get("digest_text") or "")
    return str(row.get("schema_name") or ""), ident[:600]


def catalog(text: Any) -> bool:
    return bool(text) and bool(_CATALOG.search(str(text)))


def window_digests(bundle: Bundle) -> List[Dict[str, Any]]:
    """The statement digests active during the window, most total time first.

    Each dict: `digest`, `digest_text` (cut to 500 characters), `schema_name`, the window's
    growth of every counter in `COUNTERS`, `new` (only in the end reading: it first ran during
    the window, or was below the start's top N — then `upper_bound` is True and its counts are
    totals since it was first seen), `reset` (the digest table was truncated during the
    window: the end reading's values) and `catalog` (see `catalog`). Raises `Insufficient`
    without an end reading or when the server restarted inside the window.
    """
    if not bundle.has(DIGESTS_END):
        raise Insufficient("no end reading of the statement digests (one-sample window, or "
                           f"{bundle.why_missing(DIGESTS_END)})")
    if bundle.window.restarted:
        raise Insufficient("the server restarted inside the window: the start reading no longer counts")
    start: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for row in rows(bundle.json(DIGESTS)):
        start.setdefault(_key(row), row)
    opened = bundle.window.start
    if opened is None:
        opened = parse_ts(bundle.manifest.get("started"))
    seen = set()
    out: List[Dict[str, Any]] = []
    for row in rows(bundle.json(DIGESTS_END)):
        key = _key(row)
        if key in seen:
            continue
        seen.add(key)
        before = start.get(key)
        reset = before is not None and _count(row.get("calls")) < _count(before.get("calls"))
        base = before if before is not None and not reset else {}
        delta = {name: max(0.0, _count(row.get(name)) - _count(base.get(name))) for name in COUNTERS}
        if delta["calls"] <= 0 and delta["total_seconds"] <= 0:
            continue
        first_seen = parse_ts(row.get("first_seen_utc"))
        upper = before is None and first_seen is not None and opened is not None and first_seen < opened - 1
        text = str(row.get("digest_text") or "")[:TEXT_LIMIT]
        out.append({
            "digest": None if row.get("digest") is None else str(row.get("digest"))[:64],
            "digest_text": text,
            "schema_name": None if row.get("schema_name") is None else str(row.get("schema_name"))[:64],
            **{name: (round(v, 6) if name in ("total_seconds", "lock_seconds") else int(v))
               for name, v in delta.items()},
            "new": before is None, "upper_bound": upper, "reset": reset, "catalog": catalog(text),
        })
    out.sort(key=lambda d: -d["total_seconds"])
    return out


def top_digests(bundle: Bundle, counters: Sequence[str]) -> List[Dict[str, Any]]:
    """Evidence rows for the application's digests (not `catalog`, and with counts that are
    the window's own: not `upper_bound`, not `reset`) whose first counter of `counters`
    grew most during the window (ties by the next): digest, schema_name, digest_text, calls,
    total_seconds, `counter` (the one ranked by) and each counter's growth. Empty when the
    bundle cannot say."""
    try:
        digests = window_digests(bundle)
    except Insufficient:
        return []
    grew = [d for d in digests if not (d["catalog"] or d["upper_bound"] or d["reset"])
            and any(d[c] > 0 for c in counters)]
    grew.sort(key=lambda d: tuple(-d[c] for c in counters) + (-d["total_seconds"],))
    rows = []
    for d in grew[:TOP]:
        row = {"digest": d["digest"], "schema_name": d["schema_name"], "digest_text": d["digest_text"],
               "calls": d["calls"], "total_seconds": round(d["total_seconds"], 3), "counter": counters[0]}
        for name in counters:
            row[name] = d[name]
        rows.append(row)
    return rows
