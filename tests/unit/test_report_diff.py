"""The diff of two bundles: the host check, settings that changed, rates and OS figures over
each window ("insufficient" where a window cannot give one), findings that moved."""

from __future__ import annotations

import json
from typing import Any, Dict, List

from report.diff import diff
from report.engine import Report, evaluate
from report.finding import Finding, Outcome
from report.model import Bundle
from tests.reportkit import counters, make_bundle


def finding(rule: str, severity: str = "warning") -> Finding:
    return Finding(rule, "g", f"title {rule}", severity, "high", f"summary {rule}", [], "a", "r", "v", False)


def reported(bundle: Bundle, findings: List[Finding] = (), outcomes: List[Outcome] = ()) -> Report:
    report = evaluate(bundle, [])
    report.findings.extend(findings)
    report.outcomes.extend(outcomes)
    return report


def os_rows(busy: float, swap_out: float, await_ms: float) -> Dict[str, List[Dict[str, Any]]]:
    return {
        "os/proc_stat.jsonl": [{"window_seconds": None if i == 0 else 10,
                                "total": {"busy": 99 if i == 0 else busy, "iowait": 2, "steal": 0}}
                               for i in range(4)],
        "os/vmstat.jsonl": [{"window_seconds": None if i == 0 else 10,
                             "rates": {"pswpin_per_s": 0, "pswpout_per_s": 500 if i == 0 else swap_out}}
                            for i in range(4)],
        "os/diskstats.jsonl": [{"window_seconds": None if i == 0 else 10,
                                "disks": {"vda": {"reads_per_s": 5, "writes_per_s": 5, "await_ms": await_ms},
                                          "loop0": {"reads_per_s": 0, "writes_per_s": 0, "await_ms": 900}}}
                               for i in range(4)],
    }


def pair(**changes: Any) -> Dict[str, Any]:
    a = make_bundle(variables={"max_connections": 151, "gtid_binlog_pos": "0-1-5", "sort_buffer_size": 1},
                    status=counters({"Questions": 0, "Com_select": 0}, {"Questions": 100, "Com_select": 80},
                                    gauges={"Threads_running": 2}),
                    jsonl=os_rows(20, 0, 1.0),
                    files={"os/meminfo.json": {"summary": {"available_bytes": 8 << 30}},
                           "config/effective_diff.json": {"differences": [
                               {"variable": "max_connections", "configured": "500", "running": "151",
                                "set_in": "/etc/my.cnf"}]},
                           "config/option_files.json": {"files_read": ["/etc/my.cnf"],
                                                        "copied_as": {"/etc/my.cnf": "config/files/my.cnf"}}},
                    text={"config/files/my.cnf": "[mysqld]\nmax_connections=500\n"})
    b = make_bundle(variables={"max_connections": 500, "gtid_binlog_pos": "0-1-900", "thread_pool_size": 8},
                    status=counters({"Questions": 0, "Com_select": 0}, {"Questions": 300, "Com_select": 80},
                                    gauges={"Threads_running": 6}),
                    jsonl=os_rows(60, 40, 9.0),
                    files={"os/meminfo.json": {"meminfo": {"MemAvailable": 1 << 30}},
                           "config/effective_diff.json": {"differences": [
                               {"variable": "innodb_io_capacity", "configured": "2000", "running": "200",
                                "set_in": "/etc/my.cnf.d/x.cnf"}]},
                           "config/option_files.json": {"files_read": ["/etc/my.cnf", "/etc/my.cnf.d/x.cnf"],
                                                        "copied_as": {"/etc/my.cnf": "config/files/my.cnf"}}},
                    text={"config/files/my.cnf": "[mysqld]\nmax_connections=500\nskip-name-resolve\n"})
    for key, value in changes.items():
        setattr(b, key, value)
    report_a = reported(a, [finding("GONE-01"), finding("SAME-01"), finding("SEV-01", "notice")])
    report_b = reported(b, [finding("NEW-01", "error"), finding("SAME-01"), finding("SEV-01", "critical")],
                        [Outcome("GONE-01", "insufficient", "one sample")])
    return diff(a, b, report_a, report_b)


def row(rows: List[Dict[str, Any]], name: str) -> Dict[str, Any]:
    return next(r for r in rows if r["name"] == name)


def test_diff_of_one_host_lists_what_changed() -> None:
    result = pair()
    assert result["same_host"] and result["warnings"] == []
    assert result["variables"] == [
        {"name": "max_connections", "before": "151", "after": "500"},
        {"name": "sort_buffer_size", "before": "1", "after": str(2 << 20)},
        {"name": "thread_pool_size", "before": None, "after": "8"},
    ]  # gtid_binlog_pos moves on its own: not a change of settings
    files = result["config"]["option_files"]
    assert files["added"] == ["/etc/my.cnf.d/x.cnf"] and files["removed"] == []
    assert files["changed"] == ["/etc/my.cnf"]
    states = {e["variable"]: e["state"] for e in result["config"]["effective"]}
    assert states == {"max_connections": "went away", "innodb_io_capacity": "appeared"}
    json.dumps(result)  # the CLI prints it as JSON


def test_status_rates_and_os_figures_side_by_side() -> None:
    result = pair()
    questions = row(result["status"], "Questions")
    assert (questions["before"], questions["after"], questions["change"]) == (100.0, 300.0, 2.0)
    assert row(result["status"], "Com_select")["change"] == 0.0
    assert row(result["status"], "Threads_running")["after"] == 6.0
    assert not any(r["name"] == "Innodb_log_waits" for r in result["status"])  # counted by neither side
    busy = row(result["os"], "CPU busy")
    assert (busy["before"], busy["after"]) == (20.0, 60.0)  # the since-boot first row left out
    assert row(result["os"], "Swap out")["before"] == 0.0 and row(result["os"], "Swap out")["after"] == 40.0
    assert row(result["os"], "Disk await")["after"] == 9.0  # idle disks do not count
    assert row(result["os"], "MemAvailable")["before"] == float(8 << 30)
    assert row(result["os"], "MemAvailable")["after"] == float(1 << 30)


def test_findings_that_appeared_went_away_or_changed_severity() -> None:
    moved = pair()["findings"]
    assert [f["rule"] for f in moved["appeared"]] == ["NEW-01"]
    assert [(f["rule"], f["now"], f["reason"]) for f in moved["gone"]] == \
        [("GONE-01", "insufficient", "one sample")]
    assert [(f["rule"], f["before_severity"], f["after_severity"], f["direction"])
            for f in moved["changed"]] == [("SEV-01", "notice", "critical", "worse")]
    assert [f["rule"] for f in moved["unchanged"]] == ["SAME-01"]


def test_another_host_is_warned_about() -> None:
    a, b = make_bundle(), make_bundle()
    b.manifest["host"] = "db2"
    result = diff(a, b, reported(a), reported(b))
    assert not result["same_host"]
    assert "different hosts (db1 and db2)" in result["warnings"][0]


def test_a_window_that_cannot_give_a_figure_says_insufficient() -> None:
    a = make_bundle(status=[{"Questions": 5, "Threads_running": 1}])  # one sample
    restart = [{"Questions": 100, "Uptime": 500}, {"Questions": 5, "Uptime": 3}]  # cut by a restart
    b = make_bundle(status=restart)
    result = diff(a, b, reported(a), reported(b))
    questions = row(result["status"], "Questions")
    assert questions["before"] == "insufficient" and questions["after"] == "insufficient"
    assert questions["change"] is None
    running = row(result["status"], "Threads_running")
    assert (running["unit"], running["before"], running["after"]) == ("average", 1.0, "insufficient")
    assert {r["before"] for r in result["os"]} == {"insufficient"}
    assert any("restarted during the after window" in w for w in result["warnings"])


def test_malformed_members_do_not_break_the_diff() -> None:
    junk = make_bundle(status=[{"Questions": "x"}, {"Questions": "1e999"}, {"Questions": 5}],
                       jsonl={"os/proc_stat.jsonl": [{"total": "x"}], "os/vmstat.jsonl": [{"rates": None}],
                              "os/diskstats.jsonl": [{"disks": [1]}]},
                       files={"config/effective_diff.json": {"differences": "x"},
                              "config/option_files.json": {"files_read": "x", "copied_as": []},
                              "os/meminfo.json": ["x"], "mysql/global_variables.json": ["not", "a", "dict"]})
    result = diff(junk, make_bundle(), reported(junk), reported(make_bundle()))
    assert row(result["status"], "Questions")["before"] == "insufficient"
    assert result["config"]["effective"] == []
    json.dumps(result)
