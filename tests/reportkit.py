"""Synthetic bundles for the report's unit tests: a rule's trigger and its guards, in memory.

`make_bundle(variables=…, status=[…], files={…})` builds a `report.model.Bundle` whose
status samples are `interval` seconds apart (or at the given `ts`). Each status sample is a
dict of counters and gauges; `Uptime` is filled in (and grows) unless a sample sets it, so a
restart is a sample whose Uptime goes down.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import report.catalog  # noqa: F401 - declares the rules that outcome() and status() look up
from report import engine, registry
from report.finding import Finding, Outcome
from report.model import Bundle
from report.registry import Rule

START = datetime(2026, 12, 2, 10, 0, 0, tzinfo=timezone.utc)

#: A MariaDB 10.11 with its stock settings on a host with 16 GiB (only what rules read).
STOCK_VARIABLES: Dict[str, Any] = {
    "version": "10.11.6-MariaDB", "innodb_buffer_pool_size": 128 << 20,
    "innodb_log_file_size": 96 << 20, "innodb_log_buffer_size": 16 << 20,
    "innodb_io_capacity": 200, "innodb_io_capacity_max": 2000, "innodb_flush_log_at_trx_commit": 1,
    "innodb_flush_method": "O_DIRECT", "innodb_file_per_table": "ON",
    "max_connections": 151, "thread_cache_size": 151, "table_open_cache": 2000,
    "table_definition_cache": 400, "open_files_limit": 32184, "key_buffer_size": 128 << 20,
    "query_cache_type": "OFF", "query_cache_size": 1 << 20, "tmp_table_size": 16 << 20,
    "max_heap_table_size": 16 << 20, "sort_buffer_size": 2 << 20, "join_buffer_size": 256 << 10,
    "read_buffer_size": 128 << 10, "read_rnd_buffer_size": 256 << 10, "thread_stack": 299008,
    "binlog_cache_size": 32768, "net_buffer_length": 16384, "max_allowed_packet": 16 << 20,
    "log_bin": "OFF", "sync_binlog": 0, "binlog_format": "MIXED", "performance_schema": "OFF",
    "aria_pagecache_buffer_size": 128 << 20, "innodb_log_files_in_group": 1,
}


#: Values a hostile member may hold where a number belongs.
HOSTILE_VALUES = ["NaN", "1e999", "-5", "", "abc", [1, 2], {"a": 1}, None, 10 ** 30, True]


def stamp(index: int, interval: float = 10.0) -> str:
    """The `ts` of sample `index` (the same instants make_bundle gives its samples)."""
    return (START + timedelta(seconds=interval * index)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def make_bundle(variables: Optional[Dict[str, Any]] = None, status: Sequence[Dict[str, Any]] = (),
                files: Optional[Dict[str, Any]] = None, flavor: str = "mariadb",
                version: str = "10.11.6", interval: float = 10.0, stock: bool = True,
                jsonl: Optional[Dict[str, Sequence[Dict[str, Any]]]] = None,
                text: Optional[Dict[str, str]] = None, collectors: Sequence[Dict[str, Any]] = ()) -> Bundle:
    """A bundle in memory. `files` are JSON members, `jsonl` JSON Lines members (rows get
    `ts`/`sample` like status samples unless they have them), `text` raw text members."""
    merged = dict(STOCK_VARIABLES) if stock else {}
    merged["version"] = f"{version}-MariaDB" if flavor == "mariadb" else version
    merged.update(variables or {})
    members: Dict[str, bytes] = {
        "mysql/global_variables.json": json.dumps({k: str(v) for k, v in merged.items()}).encode(),
    }
    if status:
        members["mysql/global_status.jsonl"] = _lines(_timed(_with_uptime(status), interval), "status")
    for path, rows in (jsonl or {}).items():
        members[path] = _lines(_timed(rows, interval), None)
    for path, data in (files or {}).items():
        members[path] = json.dumps(data).encode()
    for path, body in (text or {}).items():
        members[path] = body.encode()
    manifest = {
        "format_version": 1, "tool": "mydiag", "tool_version": "test", "host": "db1",
        "profile": "standard", "started": START.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mysql": {"flavor": flavor, "version": version, "label": f"{flavor} {version}"},
        "collectors": list(collectors),
    }
    members["manifest.json"] = json.dumps(manifest).encode()
    return Bundle(members, manifest, "test bundle")


def counters(start: Dict[str, float], per_second: Dict[str, float], samples: int = 6,
             interval: float = 10.0, gauges: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    """Status samples whose counters start at `start` and grow at `per_second`."""
    rows = []
    for index in range(samples):
        row = {name: value + per_second.get(name, 0) * interval * index for name, value in start.items()}
        for name, rate in per_second.items():
            row.setdefault(name, rate * interval * index)
        row.update(gauges or {})
        rows.append(row)
    return rows


def outcome(bundle: Bundle, rule_id: str) -> Union[Finding, Outcome]:
    """One rule evaluated on `bundle`: its finding, or the outcome that says why there is none."""
    report = engine.evaluate(bundle, [registry.get(rule_id)])
    return report.findings[0] if report.findings else report.outcomes[0]


def status(bundle: Bundle, rule_id: str) -> str:
    """"finding", or the outcome's status (passed, insufficient, not_applicable, error)."""
    result = outcome(bundle, rule_id)
    return "finding" if isinstance(result, Finding) else result.status


def rule_errors(bundle: Bundle, rules: Sequence[Rule]) -> List[Tuple[str, str]]:
    """The (rule, reason) of every rule of `rules` that failed with an error on `bundle`,
    after checking that every one of them ran."""
    report = engine.evaluate(bundle, rules)
    assert report.rules_run == len(rules)
    return [(o.rule, o.reason) for o in report.outcomes if o.status == "error"]


def undocumented(rules: Sequence[Rule]) -> List[Tuple[str, str]]:
    """What each rule's page lacks: a docstring section, or its advice, risk or verify text."""
    missing = [(r.id, section) for r in rules
               for section in ("**Why it matters**", "**Example**", "**Fix**") if section not in r.doc]
    return missing + [(r.id, what) for r in rules for what in ("advice", "risk", "verify")
                      if not getattr(r, what)]


def _with_uptime(status: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    rows = []
    for index, row in enumerate(status):
        rows.append({"Uptime": 86400 + 10 * index, **row})
    return rows


def _timed(rows: Sequence[Dict[str, Any]], interval: float) -> List[Dict[str, Any]]:
    out = []
    for index, row in enumerate(rows):
        moment = START + timedelta(seconds=interval * index)
        out.append({"ts": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", "sample": index, **row}
                   if "ts" not in row else dict(row))
    return out


def _lines(rows: Sequence[Dict[str, Any]], key: Optional[str]) -> bytes:
    out = []
    for row in rows:
        if key:
            body = {k: v for k, v in row.items() if k not in ("ts", "sample")}
            row = {"ts": row["ts"], "sample": row["sample"], key: {k: str(v) for k, v in body.items()}}
        out.append(json.dumps(row))
    return ("\n".join(out) + "\n").encode()
