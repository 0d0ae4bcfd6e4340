"""Two bundles of one host side by side: what changed in the settings, the workload's rates
over each window, the OS figures, and which findings appeared, went away or changed severity.

Every figure is measured over its own bundle's window (rates with the reset guard); when a
window cannot give a figure (one sample, a counter absent, every interval cut by a restart)
the figure is the string "insufficient", never a guess. The result is a plain dict (JSON-able)
that `report.html.render_diff` renders and `mydiag report --diff` can print.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from report.charts import measured_rows, os_series
from report.engine import Report
from report.finding import Insufficient, severity_rank
from report.model import Bundle, to_number

INSUFFICIENT = "insufficient"

#: Status counters compared as rates per second over each window.
KEY_COUNTERS = (
    "Questions", "Com_select", "Com_insert", "Com_update", "Com_delete", "Com_commit", "Connections",
    "Threads_created", "Aborted_connects", "Aborted_clients", "Slow_queries", "Created_tmp_tables",
    "Created_tmp_disk_tables", "Select_full_join", "Select_scan", "Sort_merge_passes", "Opened_tables",
    "Table_locks_waited", "Innodb_rows_read", "Innodb_rows_inserted", "Innodb_rows_updated",
    "Innodb_rows_deleted", "Innodb_buffer_pool_read_requests", "Innodb_buffer_pool_reads",
    "Innodb_buffer_pool_wait_free", "Innodb_data_reads", "Innodb_data_writes", "Innodb_os_log_written",
    "Innodb_log_waits", "Innodb_row_lock_waits", "Innodb_deadlocks", "Bytes_received", "Bytes_sent",
)
#: Status gauges compared by their average over each window.
KEY_GAUGES = ("Threads_running", "Threads_connected", "Innodb_checkpoint_age",
              "Innodb_buffer_pool_pages_dirty")

#: Variables that change on their own (positions, seeds, session state): not a change of settings.
VOLATILE_VARIABLES = frozenset((
    "timestamp", "rand_seed1", "rand_seed2", "pseudo_thread_id", "last_insert_id", "insert_id", "identity",
    "error_count", "warning_count", "in_transaction", "last_gtid", "gtid_binlog_pos", "gtid_binlog_state",
    "gtid_current_pos", "gtid_slave_pos", "gtid_executed", "gtid_purged", "gtid_io_pos",
    "innodb_lsn_current", "innodb_lsn_flushed", "innodb_lsn_last_checkpoint", "server_uuid",
))


def diff(a: Bundle, b: Bundle, report_a: Report, report_b: Report) -> Dict[str, Any]:
    """Bundle `a` (before) against bundle `b` (after)."""
    warnings: List[str] = []
    same_host = bool(a.host) and a.host == b.host
    if not same_host:
        warnings.append(f"the bundles come from different hosts ({a.host or 'unknown'} and "
                        f"{b.host or 'unknown'}): differences are not changes of one server")
    for label, report in (("before", report_a), ("after", report_b)):
        if (report.window or {}).get("restarted"):
            warnings.append(f"the server restarted during the {label} window: its rates leave "
                            "the cut intervals out")
    return {
        "before": _side(a, report_a),
        "after": _side(b, report_b),
        "same_host": same_host,
        "warnings": warnings,
        "variables": variable_changes(a, b),
        "config": config_changes(a, b),
        "status": status_side_by_side(a, b),
        "os": os_side_by_side(a, b),
        "findings": finding_changes(report_a, report_b),
    }


def _side(bundle: Bundle, report: Report) -> Dict[str, Any]:
    window = report.window or {}
    return {"label": bundle.label, "host": bundle.host, "server": report.server,
            "started": bundle.manifest.get("started"), "window_start": window.get("start"),
            "window_seconds": window.get("seconds"), "samples": window.get("samples"),
            "restarted": bool(window.get("restarted")), "findings": len(report.findings)}


# -- settings -------------------------------------------------------------------------------
def variable_changes(a: Bundle, b: Bundle) -> List[Dict[str, Optional[str]]]:
    """Variables whose value differs (None: absent on that side), volatile ones left out."""
    before, after = a.variables, b.variables
    changes = []
    for name in sorted(set(before) | set(after)):
        if name in VOLATILE_VARIABLES:
            continue
        if before.get(name) != after.get(name):
            changes.append({"name": name, "before": before.get(name), "after": after.get(name)})
    return changes


def _differences(bundle: Bundle) -> Dict[str, Dict[str, Any]]:
    data = bundle.json("config/effective_diff.json", {})
    found: Dict[str, Dict[str, Any]] = {}
    rows = data.get("differences") if isinstance(data, dict) else None
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("variable"):
            found[str(row["variable"])] = row
    return found


def _file_list(bundle: Bundle) -> Tuple[List[str], Dict[str, str]]:
    data = bundle.json("config/option_files.json", {})
    if not isinstance(data, dict):
        return [], {}
    files = data.get("files_read")
    copies = data.get("copied_as")
    return ([str(f) for f in files] if isinstance(files, list) else [],
            {str(k): str(v) for k, v in copies.items()} if isinstance(copies, dict) else {})


def config_changes(a: Bundle, b: Bundle) -> Dict[str, Any]:
    """Option files read (added, removed, changed text) and the configured-versus-running
    differences (config/effective_diff.json) that appeared, went away or changed."""
    files_a, copies_a = _file_list(a)
    files_b, copies_b = _file_list(b)
    changed_files = []
    for path in sorted(set(copies_a) & set(copies_b)):
        text_a, text_b = a.text(copies_a[path]), b.text(copies_b[path])
        if text_a is not None and text_b is not None and text_a != text_b:
            changed_files.append(path)
    diff_a, diff_b = _differences(a), _differences(b)
    effective = []
    for name in sorted(set(diff_a) | set(diff_b)):
        row_a, row_b = diff_a.get(name), diff_b.get(name)
        pair_a = (row_a.get("configured"), row_a.get("running")) if row_a else None
        pair_b = (row_b.get("configured"), row_b.get("running")) if row_b else None
        if pair_a == pair_b:
            continue
        state = "appeared" if row_a is None else "went away" if row_b is None else "changed"
        effective.append({
            "variable": name, "state": state,
            "before": None if pair_a is None else {"configured": _str(pair_a[0]), "running": _str(pair_a[1]),
                                                  "set_in": _str(row_a.get("set_in"))},  # type: ignore[union-attr]
            "after": None if pair_b is None else {"configured": _str(pair_b[0]), "running": _str(pair_b[1]),
                                                 "set_in": _str(row_b.get("set_in"))},  # type: ignore[union-attr]
        })
    return {
        "option_files": {"before": files_a, "after": files_b,
                         "added": [f for f in files_b if f not in files_a],
                         "removed": [f for f in files_a if f not in files_b],
                         "changed": changed_files},
        "effective": effective,
        "measured": {"before": a.has("config/effective_diff.json"),
                     "after": b.has("config/effective_diff.json")},
    }


def _str(value: Any) -> Optional[str]:
    return None if value is None else str(value)


# -- figures --------------------------------------------------------------------------------
def _figure(compute: Any, *args: Any) -> Any:
    try:
        value = compute(*args)
    except (Insufficient, ArithmeticError, TypeError, ValueError):
        return INSUFFICIENT
    number = to_number(value)
    return INSUFFICIENT if number is None else round(number, 3)


def _change(before: Any, after: Any) -> Optional[float]:
    """after / before − 1, or None when either is insufficient or `before` is ~0."""
    if isinstance(before, str) or isinstance(after, str) or before is None or after is None:
        return None
    if abs(before) < 1e-9:
        return None
    return round(after / before - 1, 4)


def _row(name: str, unit: str, before: Any, after: Any) -> Dict[str, Any]:
    return {"name": name, "unit": unit, "before": before, "after": after, "change": _change(before, after)}


def status_side_by_side(a: Bundle, b: Bundle) -> List[Dict[str, Any]]:
    rows = []
    for name in KEY_COUNTERS:
        if not (a.window.has(name) or b.window.has(name)):
            continue  # counted by neither server (another flavor or version)
        rows.append(_row(name, "per second", _figure(a.window.rate, name), _figure(b.window.rate, name)))
    for name in KEY_GAUGES:
        if not (a.window.has(name) or b.window.has(name)):
            continue
        rows.append(_row(name, "average", _figure(_gauge_avg, a, name), _figure(_gauge_avg, b, name)))
    return rows


def _gauge_avg(bundle: Bundle, name: str) -> float:
    return bundle.window.gauge(name).avg


def _average(points: List[Tuple[float, Optional[float]]]) -> float:
    values = [v for _t, v in points if v is not None]
    if not values:
        raise Insufficient("no measured interval")
    return sum(values) / len(values)


def _cpu(bundle: Bundle, key: str) -> float:
    return _average(os_series(measured_rows(bundle.jsonl("os/proc_stat.jsonl")), "total", key))


def _swap(bundle: Bundle, key: str) -> float:
    return _average(os_series(measured_rows(bundle.jsonl("os/vmstat.jsonl")), "rates", f"{key}_per_s"))


def _await(bundle: Bundle) -> float:
    """The average await over the disks that did I/O during the window."""
    rows = measured_rows(bundle.jsonl("os/diskstats.jsonl"))
    values = []
    for row in rows:
        disks = row.get("disks")
        for stats in disks.values() if isinstance(disks, dict) else []:
            if not isinstance(stats, dict):
                continue
            busy = (to_number(stats.get("reads_per_s")) or 0) + (to_number(stats.get("writes_per_s")) or 0)
            wait = to_number(stats.get("await_ms"))
            if busy > 0 and wait is not None:
                values.append(wait)
    if not values:
        raise Insufficient("no disk did I/O in the window")
    return sum(values) / len(values)


def _available(bundle: Bundle) -> Optional[float]:
    data = bundle.json("os/meminfo.json", {})
    if not isinstance(data, dict):
        return None
    summary = data.get("summary")
    if isinstance(summary, dict) and to_number(summary.get("available_bytes")) is not None:
        return to_number(summary.get("available_bytes"))
    meminfo = data.get("meminfo")
    return to_number(meminfo.get("MemAvailable")) if isinstance(meminfo, dict) else None


def os_side_by_side(a: Bundle, b: Bundle) -> List[Dict[str, Any]]:
    figures = (
        ("CPU busy", "percent, average", lambda x: _cpu(x, "busy")),
        ("CPU iowait", "percent, average", lambda x: _cpu(x, "iowait")),
        ("CPU steal", "percent, average", lambda x: _cpu(x, "steal")),
        ("Swap in", "pages per second", lambda x: _swap(x, "pswpin")),
        ("Swap out", "pages per second", lambda x: _swap(x, "pswpout")),
        ("Disk await", "ms, average over active disks", _await),
        ("MemAvailable", "bytes", _available),
    )
    return [_row(name, unit, _figure(compute, a), _figure(compute, b))
            for name, unit, compute in figures]


# -- findings -------------------------------------------------------------------------------
def _brief(finding: Any) -> Dict[str, Any]:
    return {"rule": finding.rule, "title": finding.title, "severity": finding.severity,
            "summary": finding.summary}


def finding_changes(report_a: Report, report_b: Report) -> Dict[str, Any]:
    before = {f.rule: f for f in report_a.findings}
    after = {f.rule: f for f in report_b.findings}
    outcomes_b = {o.rule: o for o in report_b.outcomes}
    appeared = [_brief(after[r]) for r in after if r not in before]
    gone = []
    for rule in (r for r in before if r not in after):
        outcome = outcomes_b.get(rule)
        item = _brief(before[rule])
        item["now"] = outcome.status if outcome else "not run"
        item["reason"] = outcome.reason if outcome else ""
        gone.append(item)
    changed, same = [], []
    for rule in (r for r in before if r in after):
        old, new = before[rule], after[rule]
        if old.severity != new.severity:
            item = _brief(new)
            item.update(before_severity=old.severity, after_severity=new.severity,
                        direction="worse" if _rank(new.severity) > _rank(old.severity) else "better")
            changed.append(item)
        else:
            same.append(_brief(new))
    return {"appeared": appeared, "gone": gone, "changed": changed, "unchanged": same}


def _rank(severity: str) -> int:
    try:
        return severity_rank(severity)
    except ValueError:
        return -1
