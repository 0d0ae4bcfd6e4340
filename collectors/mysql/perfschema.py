"""performance_schema, when it is enabled: digests, waits, file and table I/O and the
statements by event name at the window's start and end (so the window's own delta can be
computed, not only totals since start-up), memory and what is instrumented at the start.

A row of an end reading that is missing from the start reading was either new during the
window (its `first_seen_utc` says so) or outside the start's top N.

Each moment is one statement where the server has JSON_ARRAYAGG (`sql.ps_reading`): the
readings come back as JSON arrays and are decoded to the rows the separate statements
give (same names, numbers and order); older servers, or a folded reading that fails, get
the separate statements.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, Optional, Tuple

from collectors.mysql import window
from collectors.mysql.common import optional
from collectors.mysql.session import MissingPrivilege, NotAvailable, StatementTimeout
from collectors.mysql.sql import (
    PS_CONSUMERS,
    PS_DIGESTS,
    PS_FILE_IO,
    PS_INSTRUMENTS,
    PS_MEMORY,
    PS_PARTS,
    PS_STATEMENTS_BY_EVENT,
    PS_TABLE_IO,
    PS_WAITS,
    Statement,
    ps_folds,
    ps_reading,
)
from collectors.mysql.status import SAMPLES
from collectors.registry import Artifact, Context, Need, Skip, collector
from privacy.fingerprint import fingerprint

#: Read at the start and at the end of the window.
_TWICE = (
    (PS_DIGESTS, "statement_digests"),
    (PS_STATEMENTS_BY_EVENT, "statements_by_event"),
    (PS_WAITS, "waits"),
    (PS_FILE_IO, "file_io"),
    (PS_TABLE_IO, "table_io"),
)
_AT_START = (PS_MEMORY, PS_CONSUMERS, PS_INSTRUMENTS)
PS_READING_START = ps_reading("ps_reading_start", tuple(s for s, _ in _TWICE) + _AT_START)
PS_READING_END = ps_reading("ps_reading_end", tuple(s for s, _ in _TWICE))
#: Prepared statements above this share of Questions make MariaDB's digest table misleading.
_PREPARED_SHARE = 0.5


@collector("mysql.performance_schema", needs=[Need.MYSQL], timeout=10, sampled=True)
def performance_schema(ctx: Context) -> Iterator[Artifact]:
    """Top statement digests (digest text only), statements by event, waits, file and
    table I/O at the window's start and end; memory and the instrument/consumer state."""
    if str(ctx.session.identity.get("performance_schema", "0")) not in ("1", "ON"):
        raise Skip(
            "performance_schema is OFF",
            "set performance_schema=ON in the server's option file (takes effect at restart)",
        )
    limit = 200 if ctx.full else 50
    readable = {stmt.name for stmt, _ in _TWICE}
    for moment, _taken in window.start_and_end(ctx):
        start = moment == "start"
        suffix = "" if start else "_end"
        folded = _folded(ctx, PS_READING_START if start else PS_READING_END, limit)
        for stmt, name in _TWICE:
            if stmt.name not in readable:
                continue
            rows = _rows(ctx, stmt, limit, folded)
            if rows is None:
                readable.discard(stmt.name)
                continue
            yield Artifact.json(f"mysql/performance_schema/{name}{suffix}.json", rows)
        if start:
            yield from _instrumentation(ctx, limit, folded)
    _prepared_note(ctx)


def _folded(ctx: Context, stmt: Statement, limit: int) -> Dict[str, List[Dict[str, Any]]]:
    """The readings of one folded statement by statement name; empty where the server
    cannot fold or the statement fails (the separate statements then say why)."""
    if not ps_folds(ctx.session.flavor):
        return {}
    try:
        rows = ctx.session.query(stmt, {"limit": limit})
    except (MissingPrivilege, StatementTimeout, NotAvailable):
        return {}
    found: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        text = row.get("rows_json")
        if isinstance(text, (bytes, bytearray)):
            text = text.decode("utf-8", "replace")
        try:
            decoded = json.loads(text) if text is not None else []
        except ValueError:  # cut short (group_concat_max_len): read this one separately
            continue
        if isinstance(decoded, list):
            found[str(row.get("part"))] = _typed(str(row.get("part")), decoded)
    return found


def _typed(name: str, rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Decoded JSON rows as the separate statement gives them: its column order, its
    seconds as floats, ordered by its sort column (JSON_ARRAYAGG keeps no order)."""
    part = PS_PARTS[name]
    floats = {alias for alias, expr in part.columns if expr.endswith("/1e12")}
    typed = []
    for row in rows:
        typed.append({alias: (float(row[alias]) if alias in floats and row.get(alias) is not None
                              else row.get(alias)) for alias, _ in part.columns})
    if part.order:
        typed.sort(key=lambda r: _descending(r.get(part.order)))
    return typed


def _descending(value: Any) -> Tuple[int, float]:
    """A sort key for ORDER BY … DESC: largest first, NULL last."""
    try:
        return (0, -float(value))
    except (TypeError, ValueError):
        return (1, 0.0)


def _rows(ctx: Context, stmt: Statement, limit: int,
          folded: Dict[str, List[Dict[str, Any]]]) -> Optional[List[Dict[str, Any]]]:
    rows = folded[stmt.name] if stmt.name in folded else optional(ctx, stmt, {"limit": limit})
    if rows is not None and stmt is PS_DIGESTS:
        for row in rows:
            if row.get("digest_text"):
                row["digest_text"] = fingerprint(str(row["digest_text"]))
    return rows


def _instrumentation(ctx: Context, limit: int,
                     folded: Dict[str, List[Dict[str, Any]]]) -> Iterator[Artifact]:
    memory = _rows(ctx, PS_MEMORY, limit, folded)
    if memory is not None:
        if all(str(r.get("event", "")).startswith("memory/performance_schema/") for r in memory):
            ctx.notes.add(
                ("memory.json holds only performance_schema's own memory" if memory else
                 "memory.json is empty") + ": the other memory "
                "instruments are off (enable with performance-schema-instrument='memory/%=ON' "
                "at start-up)"
            )
        yield Artifact.json("mysql/performance_schema/memory.json", memory)
    consumers = _rows(ctx, PS_CONSUMERS, limit, folded)
    instruments = _rows(ctx, PS_INSTRUMENTS, limit, folded)
    if consumers is not None or instruments is not None:
        yield Artifact.json("mysql/performance_schema/setup.json", {
            "consumers": consumers,
            "instruments_by_class": [
                {"class": r["class"], "instruments": int(r["instruments"] or 0),
                 "enabled": int(r["enabled"] or 0), "timed": int(r["timed"] or 0)}
                for r in instruments or []
            ] if instruments is not None else None,
        })


def _prepared_note(ctx: Context) -> None:
    """Say so when binary-protocol prepared statements dominate on MariaDB: its digest
    table does not hold them (they show as statement/com/Execute by event name only)."""
    if not ctx.session.flavor.is_mariadb:
        return
    samples = list(ctx.shared.get(SAMPLES) or [])
    if not samples:
        return
    first, last = samples[0]["status"], samples[-1]["status"]

    def count(status: Dict[str, Any], name: str) -> int:
        try:
            return int(status.get(name) or 0)
        except ValueError:
            return 0

    executes, questions = count(last, "Com_stmt_execute"), count(last, "Questions")
    span = "since start-up"
    if len(samples) > 1:
        executes -= count(first, "Com_stmt_execute")
        questions -= count(first, "Questions")
        span = "during the window"
    if questions > 0 and executes > _PREPARED_SHARE * questions:
        ctx.notes.add(
            f"prepared statements dominate {span} (Com_stmt_execute is "
            f"{100 * executes // questions}% of Questions): MariaDB does not record them in "
            "events_statements_summary_by_digest, so statement_digests.json misses most of "
            "the workload; statements_by_event.json counts them as statement/com/Execute"
        )
