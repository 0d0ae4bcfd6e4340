"""The redo and flushing rules (REDO-*): each fires on the server it describes and stays quiet
on a healthy one; the ratio and window rules say "insufficient" on a restart, a zero or tiny
denominator, or one sample; malformed members never make a rule fail."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

import report.catalog  # noqa: F401 - declares the rules
from report import engine, registry
from report.finding import Finding
from report.model import Bundle
from tests.reportkit import HOSTILE_VALUES, counters, make_bundle, outcome, rule_errors, stamp, status

GIB = 1 << 30
MIB = 1 << 20
REDO_RULES = [r for r in registry.all_rules() if r.group == "redo"]


def restarted(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    first, second = dict(rows[0]), {k: v / 100 for k, v in rows[-1].items()}
    first["Uptime"], second["Uptime"] = 86400, 5
    return [first, second]


# -- REDO-01: checkpoint age --------------------------------------------------------------

def ages(shares: List[float], maximum: float = 80 * MIB) -> List[Dict[str, Any]]:
    return [{"Innodb_checkpoint_age": s * maximum, "Innodb_checkpoint_max_age": maximum} for s in shares]


def test_checkpoint_age_near_the_maximum_fires():
    finding = outcome(make_bundle({}, ages([0.5, 0.8, 0.7])), "REDO-01")
    assert isinstance(finding, Finding) and finding.window and finding.severity == "warning"
    assert finding.evidence[0].values["share"] == 0.8


def test_checkpoint_age_at_the_maximum_is_an_error():
    assert outcome(make_bundle({}, ages([0.95, 0.97])), "REDO-01").severity == "error"


def test_low_checkpoint_age_passes():
    assert status(make_bundle({}, ages([0.1, 0.2, 0.3])), "REDO-01") == "passed"


def lsn_monitor(lsn: int, checkpoint: int) -> str:
    return f"---\nLOG\n---\nLog sequence number {lsn}\nLog flushed up to   {lsn}\n" \
           f"Last checkpoint at  {checkpoint}\n"


def test_checkpoint_age_from_the_monitor_against_the_log_capacity():
    text = {"mysql/innodb_status.txt": lsn_monitor(10 * GIB, 10 * GIB - 50 * MIB),
            "mysql/innodb_status_end.txt": lsn_monitor(11 * GIB, 11 * GIB - 90 * MIB)}
    finding = outcome(make_bundle({"innodb_log_file_size": 96 * MIB}, text=text, flavor="mysql",
                                  version="8.0.20"), "REDO-01")
    assert isinstance(finding, Finding) and finding.evidence[0].values["limit_bytes"] == 96 * MIB


@pytest.mark.parametrize("case", ["zero", "tiny", "one-end"])
def test_checkpoint_age_guards(case):
    if case == "one-end":
        bundle = make_bundle({}, text={"mysql/innodb_status.txt": lsn_monitor(900, 10)})
    else:
        maximum = 0 if case == "zero" else 1000
        bundle = make_bundle({"innodb_log_file_size": maximum}, ages([0.9, 0.9], maximum=maximum))
    assert status(bundle, "REDO-01") == "insufficient"


# -- REDO-02: log waits -------------------------------------------------------------------

def test_log_waits_fire_with_a_buffer_sized_from_the_redo_rate():
    rows = counters({}, {"Innodb_log_waits": 2, "Innodb_os_log_written": 50 * MIB})
    finding = outcome(make_bundle({"innodb_log_buffer_size": 8 * MIB}, rows), "REDO-02")
    assert isinstance(finding, Finding) and finding.window
    assert "100.0 MiB" in finding.advice


def test_no_log_waits_pass():
    rows = counters({"Innodb_log_waits": 3}, {"Innodb_os_log_written": 50 * MIB})
    assert status(make_bundle({}, rows), "REDO-02") == "passed"


@pytest.mark.parametrize("rows", [restarted(counters({}, {"Innodb_log_waits": 2})),
                                  counters({}, {"Innodb_log_waits": 2}, samples=1)],
                         ids=["restart", "one-sample"])
def test_log_waits_guards(rows):
    assert status(make_bundle({}, rows), "REDO-02") == "insufficient"


# -- REDO-03: hours of redo ---------------------------------------------------------------

def test_a_log_that_holds_minutes_of_writes_fires_sized_from_the_rate():
    rows = counters({"Innodb_lsn_current": 10 * GIB}, {"Innodb_lsn_current": 2 * MIB})
    finding = outcome(make_bundle({"innodb_log_file_size": 96 * MIB}, rows), "REDO-03")
    assert isinstance(finding, Finding) and finding.window and finding.severity == "warning"
    assert "holds 48 seconds of it" in finding.summary
    assert "innodb_log_file_size=8589934592" in finding.advice and "buffer pool" in finding.advice


def test_a_log_that_holds_half_an_hour_is_a_notice_and_mysql_uses_the_redo_capacity():
    rows = counters({"Innodb_os_log_written": 0}, {"Innodb_os_log_written": MIB})
    variables = {"innodb_redo_log_capacity": 2 * GIB}
    finding = outcome(make_bundle(variables, rows, flavor="mysql", version="8.0.36"), "REDO-03")
    assert finding.severity == "notice" and "innodb_redo_log_capacity" in finding.advice


def test_a_log_that_holds_hours_passes():
    rows = counters({"Innodb_lsn_current": 0}, {"Innodb_lsn_current": MIB})
    assert status(make_bundle({"innodb_log_file_size": 8 * GIB}, rows), "REDO-03") == "passed"


def test_an_idle_server_passes():
    rows = counters({"Innodb_lsn_current": 5000}, {"Innodb_lsn_current": 1})
    assert status(make_bundle({}, rows), "REDO-03") == "passed"


@pytest.mark.parametrize("rows", [
    restarted(counters({}, {"Innodb_lsn_current": 2 * MIB})),
    counters({}, {"Innodb_lsn_current": 2 * MIB}, samples=1),
    counters({}, {"Innodb_lsn_current": 2 * MIB}, samples=2, interval=2),
], ids=["restart", "one-sample", "short-window"])
def test_redo_hours_guards(rows):
    assert status(make_bundle({}, rows, interval=2 if len(rows) == 2 else 10), "REDO-03") == "insufficient"


def test_redo_hours_with_no_log_size_is_insufficient():
    rows = counters({}, {"Innodb_lsn_current": 2 * MIB})
    assert status(make_bundle({"innodb_log_file_size": 0}, rows), "REDO-03") == "insufficient"


# -- REDO-04: flushing vs io_capacity -----------------------------------------------------

def test_flushing_above_io_capacity_max_is_a_warning_with_the_measured_rate():
    rows = counters({}, {"Innodb_buffer_pool_pages_flushed": 2400})
    finding = outcome(make_bundle({}, rows), "REDO-04")
    assert isinstance(finding, Finding) and finding.severity == "warning"
    assert "about 2400" in finding.advice


def test_flushing_above_io_capacity_is_a_notice():
    rows = counters({}, {"Innodb_buffer_pool_pages_flushed": 500})
    assert outcome(make_bundle({}, rows), "REDO-04").severity == "notice"


def test_flushing_within_io_capacity_passes():
    rows = counters({}, {"Innodb_buffer_pool_pages_flushed": 150})
    assert status(make_bundle({}, rows), "REDO-04") == "passed"


@pytest.mark.parametrize("rows", [restarted(counters({}, {"Innodb_buffer_pool_pages_flushed": 2400})),
                                  counters({}, {"Innodb_buffer_pool_pages_flushed": 2400}, samples=1)],
                         ids=["restart", "one-sample"])
def test_flush_rate_guards(rows):
    assert status(make_bundle({}, rows), "REDO-04") == "insufficient"


def test_flush_rate_without_io_capacity_is_insufficient():
    rows = counters({}, {"Innodb_buffer_pool_pages_flushed": 2400})
    assert status(make_bundle({"innodb_io_capacity": 0}, rows), "REDO-04") == "insufficient"


# -- REDO-05..07: durability settings -----------------------------------------------------

@pytest.mark.parametrize("value,severity", [(0, "notice"), (2, "info")])
def test_flush_at_commit_other_than_one_fires(value, severity):
    finding = outcome(make_bundle({"innodb_flush_log_at_trx_commit": value}), "REDO-05")
    assert isinstance(finding, Finding) and finding.severity == severity


def test_flush_at_commit_one_passes():
    assert status(make_bundle({}), "REDO-05") == "passed"


def test_flush_method_fsync_on_linux_fires():
    linux = {"os/host.json": {"kernel": {"name": "Linux"}}}
    bundle = make_bundle({"innodb_flush_method": "fsync"}, files=linux)
    assert status(bundle, "REDO-06") == "finding"


def test_flush_method_o_direct_passes_and_other_systems_do_not_apply():
    linux = {"os/host.json": {"kernel": {"name": "Linux"}}}
    direct = make_bundle({"innodb_flush_method": "O_DIRECT_NO_FSYNC"}, files=linux)
    assert status(direct, "REDO-06") == "passed"
    assert status(make_bundle({"innodb_flush_method": "unbuffered", "version_compile_os": "Win64"}),
                  "REDO-06") == "not_applicable"
    assert status(make_bundle({"innodb_flush_method": "fsync"}), "REDO-06") == "insufficient"


@pytest.mark.parametrize("value", ["OFF", "0", "DETECT_ONLY"])
def test_doublewrite_off_fires(value):
    assert status(make_bundle({"innodb_doublewrite": value}), "REDO-07") == "finding"


@pytest.mark.parametrize("value", ["ON", "fast", "DETECT_AND_RECOVER"])
def test_doublewrite_on_passes(value):
    assert status(make_bundle({"innodb_doublewrite": value}), "REDO-07") == "passed"


# -- malformed members ---------------------------------------------------------------------

STATUS_NAMES = ("Innodb_checkpoint_age", "Innodb_checkpoint_max_age", "Innodb_log_waits",
                "Innodb_os_log_written", "Innodb_lsn_current", "Innodb_buffer_pool_pages_flushed", "Uptime")


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=repr)
def test_malformed_members_never_make_a_redo_rule_fail(value):
    variables = {name: value for name in ("innodb_log_file_size", "innodb_log_files_in_group",
                                          "innodb_redo_log_capacity", "innodb_io_capacity",
                                          "innodb_io_capacity_max", "innodb_flush_log_at_trx_commit",
                                          "innodb_flush_method", "innodb_doublewrite",
                                          "innodb_log_buffer_size")}
    jsonl = {"mysql/global_status.jsonl": [{"ts": stamp(i), "status": {n: value for n in STATUS_NAMES}}
                                           for i in range(4)]}
    text = {"mysql/innodb_status.txt": f"Log sequence number {value}\nLast checkpoint at {value}\n",
            "mysql/innodb_status_end.txt": "Log sequence number 99999999999999999999\nLast checkpoint at 1\n"}
    files = {"os/host.json": {"kernel": value}}
    bundle = make_bundle(variables, files=files, jsonl=jsonl, text=text)
    assert rule_errors(bundle, REDO_RULES) == []


def test_members_of_the_wrong_type_never_make_a_redo_rule_fail():
    members = {"os/host.json": b"[1]", "mysql/innodb_status.txt": b"\x00\xff",
               "mysql/global_variables.json": b'"innodb_doublewrite"',
               "mysql/global_status.jsonl": b'{"ts": "2026-12-02T10:00:00Z", "status": [1]}\n[]\n'}
    bundle = Bundle(members, {"mysql": {"flavor": "mysql", "version": "8.0.36"}})
    report = engine.evaluate(bundle, REDO_RULES)
    assert not [o for o in report.outcomes if o.status == "error"], report.outcomes
    assert not report.findings
