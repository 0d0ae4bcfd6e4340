"""The InnoDB rules (IBP-*): each fires on the server it describes and stays quiet on a healthy
one; the ratio and window rules say "insufficient" on a restart, a zero or tiny denominator,
or one sample; malformed members never make a rule fail."""

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
IBP_RULES = [r for r in registry.all_rules() if r.group == "innodb"]


def host(ram: float = 16 * GIB, rss: float = 3 * GIB, limit: Any = None) -> Dict[str, Any]:
    return {"os/meminfo.json": {"meminfo": {"MemTotal": ram}},
            "os/mysqld_process.json": {"pid": 1, "memory": {"VmRSS": rss},
                                       "cgroup": {"memory": {"limit_bytes": limit}}}}


def restarted(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Two samples with the server restarted between them (Uptime and counters went down)."""
    first, second = dict(rows[0]), {k: v / 100 for k, v in rows[-1].items()}
    first["Uptime"], second["Uptime"] = 86400, 5
    return [first, second]


def misses(requests: float = 20000, reads: float = 600, samples: int = 6) -> List[Dict[str, Any]]:
    return counters({}, {"Innodb_buffer_pool_read_requests": requests, "Innodb_buffer_pool_reads": reads},
                     samples=samples)


# -- IBP-01: read misses ------------------------------------------------------------------

def test_miss_rate_fires_with_disk_reads_and_a_pool_bound_from_measured_memory():
    bundle = make_bundle({"innodb_buffer_pool_size": 4 * GIB}, misses(),
                         files=host(ram=16 * GIB, rss=5 * GIB))
    finding = outcome(bundle, "IBP-01")
    assert isinstance(finding, Finding) and finding.window
    assert "600 disk reads per second" in finding.summary
    values = finding.evidence[0].values
    assert values["miss_ratio"] == 0.03
    # 16 GiB × 0.9 − (5 GiB RSS − 4 GiB pool) = 13.4 GiB: the bound, not the data size.
    assert abs(values["pool_ceiling_bytes"] - (0.9 * 16 * GIB - GIB)) < 1
    assert "13.4 GiB" in finding.advice


def test_miss_rate_advice_says_no_room_when_the_cgroup_is_full():
    bundle = make_bundle({"innodb_buffer_pool_size": 6 * GIB}, misses(),
                         files=host(ram=64 * GIB, rss=7 * GIB, limit=8 * GIB))
    finding = outcome(bundle, "IBP-01")
    assert "no room" in finding.advice and "cgroup" in finding.advice


def test_miss_rate_passes_when_the_pool_serves_the_reads():
    assert status(make_bundle({}, misses(reads=20), files=host()), "IBP-01") == "passed"


def test_miss_rate_passes_when_disk_reads_are_few():
    assert status(make_bundle({}, misses(requests=1000, reads=15), files=host()), "IBP-01") == "passed"


@pytest.mark.parametrize("rows", [
    restarted(misses()), misses(requests=0, reads=0), misses(requests=50, reads=5), misses(samples=1),
], ids=["restart", "zero", "tiny", "one-sample"])
def test_miss_rate_guards_say_insufficient(rows):
    assert status(make_bundle({}, rows, files=host()), "IBP-01") == "insufficient"


# -- IBP-02: free-page waits --------------------------------------------------------------

def test_free_page_waits_fire():
    finding = outcome(make_bundle({}, counters({}, {"Innodb_buffer_pool_wait_free": 2})), "IBP-02")
    assert isinstance(finding, Finding) and finding.evidence[0].values["wait_free_delta"] == 100


def test_no_free_page_waits_pass():
    assert status(make_bundle({}, counters({"Innodb_buffer_pool_wait_free": 7}, {})), "IBP-02") == "passed"


@pytest.mark.parametrize("rows", [restarted(counters({}, {"Innodb_buffer_pool_wait_free": 2})),
                                  counters({}, {"Innodb_buffer_pool_wait_free": 2}, samples=1)],
                         ids=["restart", "one-sample"])
def test_free_page_waits_guards(rows):
    assert status(make_bundle({}, rows), "IBP-02") == "insufficient"


# -- IBP-03: dirty pages ------------------------------------------------------------------

def dirty(share: List[float], total: float = 65536) -> List[Dict[str, Any]]:
    return [{"Innodb_buffer_pool_pages_total": total, "Innodb_buffer_pool_pages_dirty": s * total}
            for s in share]


def test_dirty_pages_persistently_high_fire():
    finding = outcome(make_bundle({}, dirty([0.8, 0.85, 0.7, 0.9, 0.8])), "IBP-03")
    assert isinstance(finding, Finding) and finding.evidence[0].values["share_of_samples"] == 1.0


def test_dirty_pages_high_once_pass():
    assert status(make_bundle({}, dirty([0.9, 0.2, 0.1, 0.15, 0.2])), "IBP-03") == "passed"


def test_dirty_threshold_follows_max_dirty_pages_pct():
    assert status(make_bundle({"innodb_max_dirty_pages_pct": 50}, dirty([0.4] * 5)), "IBP-03") == "finding"
    assert status(make_bundle({}, dirty([0.4] * 5)), "IBP-03") == "passed"


@pytest.mark.parametrize("rows", [dirty([0.9] * 5, total=0), dirty([0.9] * 5, total=200), dirty([0.9])],
                         ids=["zero", "tiny", "one-sample"])
def test_dirty_pages_guards(rows):
    assert status(make_bundle({}, rows), "IBP-03") == "insufficient"


# -- IBP-04: pool vs RAM ------------------------------------------------------------------

def test_pool_of_nearly_all_ram_fires_with_a_measured_target():
    bundle = make_bundle({"innodb_buffer_pool_size": 30 * GIB}, files=host(ram=32 * GIB, rss=31 * GIB))
    finding = outcome(bundle, "IBP-04")
    assert isinstance(finding, Finding) and "94%" in finding.summary and "at most" in finding.advice


def test_pool_over_ram_is_an_error_and_a_sane_pool_passes():
    assert outcome(make_bundle({"innodb_buffer_pool_size": 40 * GIB}, files=host(ram=32 * GIB)),
                   "IBP-04").severity == "error"
    assert status(make_bundle({"innodb_buffer_pool_size": 20 * GIB}, files=host(ram=32 * GIB)), "IBP-04") == \
        "passed"


def test_pool_vs_ram_without_meminfo_is_insufficient():
    assert status(make_bundle({}), "IBP-04") == "insufficient"


# -- IBP-05: instances and chunks ---------------------------------------------------------

def test_too_many_chunks_fire():
    bundle = make_bundle({"innodb_buffer_pool_size": 64 * GIB, "innodb_buffer_pool_chunk_size": 32 * MIB})
    finding = outcome(bundle, "IBP-05")
    assert isinstance(finding, Finding) and "2048 chunks" in finding.summary


def test_small_instances_fire_on_mysql_but_not_on_mariadb():
    variables = {"innodb_buffer_pool_size": 2 * GIB, "innodb_buffer_pool_instances": 8,
                 "innodb_buffer_pool_chunk_size": 128 * MIB}
    assert status(make_bundle(variables, flavor="mysql", version="8.0.36"), "IBP-05") == "finding"
    assert status(make_bundle(variables), "IBP-05") == "passed"


def test_one_instance_for_a_big_pool_fires_on_mysql():
    variables = {"innodb_buffer_pool_size": 32 * GIB, "innodb_buffer_pool_instances": 1,
                 "innodb_buffer_pool_chunk_size": 128 * MIB}
    assert status(make_bundle(variables, flavor="mysql", version="8.0.36"), "IBP-05") == "finding"


def test_stock_pool_layout_passes_also_with_mariadbs_automatic_chunk_size():
    assert status(make_bundle({"innodb_buffer_pool_chunk_size": 0}), "IBP-05") == "passed"
    variables = {"innodb_buffer_pool_size": 16 * GIB, "innodb_buffer_pool_instances": 8,
                 "innodb_buffer_pool_chunk_size": 128 * MIB}
    assert status(make_bundle(variables, flavor="mysql", version="8.0.36"), "IBP-05") == "passed"


# -- IBP-06: row lock waits ---------------------------------------------------------------

def test_frequent_row_lock_waits_fire_with_the_average_wait_and_the_blocker():
    rows = counters({}, {"Innodb_row_lock_waits": 4, "Innodb_row_lock_time": 1200},
                    gauges={"Innodb_row_lock_current_waits": 3})
    waits = [{"waits": [{"blocking_thread": 88, "blocking_statement": "UPDATE t SET a = ?", "waiters": 3}]}]
    finding = outcome(make_bundle({}, rows, jsonl={"mysql/lock_waits.jsonl": waits}), "IBP-06")
    assert isinstance(finding, Finding) and finding.severity == "warning"
    values = finding.evidence[0].values
    assert values["average_wait_ms"] == 300 and values["top_blocker"]["blocking_thread"] == 88


def test_frequent_short_waits_are_a_notice():
    rows = counters({}, {"Innodb_row_lock_waits": 4, "Innodb_row_lock_time": 40},
                    gauges={"Innodb_row_lock_current_waits": 0})
    assert outcome(make_bundle({}, rows), "IBP-06").severity == "notice"


def test_threads_waiting_in_most_samples_fire_even_at_a_low_rate():
    rows = counters({}, {"Innodb_row_lock_waits": 0.01}, gauges={"Innodb_row_lock_current_waits": 2})
    assert status(make_bundle({}, rows), "IBP-06") == "finding"


def test_rare_row_lock_waits_pass():
    rows = counters({}, {"Innodb_row_lock_waits": 0.05}, gauges={"Innodb_row_lock_current_waits": 0})
    assert status(make_bundle({}, rows), "IBP-06") == "passed"


@pytest.mark.parametrize("rows", [restarted(counters({}, {"Innodb_row_lock_waits": 4})),
                                  counters({}, {"Innodb_row_lock_waits": 4}, samples=1)],
                         ids=["restart", "one-sample"])
def test_row_lock_wait_guards(rows):
    assert status(make_bundle({}, rows), "IBP-06") == "insufficient"


# -- IBP-07: history list -----------------------------------------------------------------

def history(start: float, end: float) -> List[Dict[str, Any]]:
    return [{"Innodb_history_list_length": start + (end - start) * i / 5} for i in range(6)]


def test_growing_history_list_fires_with_the_oldest_transaction():
    trx = [{"transactions": [{"trx_id": "9", "age_seconds": 7200, "trx_mysql_thread_id": 12}]}]
    finding = outcome(make_bundle({}, history(200_000, 260_000), jsonl={"mysql/innodb_trx.jsonl": trx}),
                      "IBP-07")
    assert isinstance(finding, Finding) and finding.window
    assert finding.evidence[0].values["oldest_transaction"]["trx_mysql_thread_id"] == 12


def test_huge_history_list_is_an_error_even_when_flat():
    assert outcome(make_bundle({}, history(6_000_000, 6_000_000)), "IBP-07").severity == "error"


def test_short_or_shrinking_history_list_passes():
    assert status(make_bundle({}, history(100, 5000)), "IBP-07") == "passed"
    assert status(make_bundle({}, history(300_000, 250_000)), "IBP-07") == "passed"


def monitor(length: int) -> str:
    return f"------------\nTRANSACTIONS\n------------\nTrx id counter 99\nHistory list length {length}\n"


def test_history_list_from_the_innodb_monitor_at_both_ends():
    text = {"mysql/innodb_status.txt": monitor(150_000), "mysql/innodb_status_end.txt": monitor(400_000)}
    finding = outcome(make_bundle({}, text=text), "IBP-07")
    assert isinstance(finding, Finding) and finding.evidence[0].member == "mysql/innodb_status_end.txt"


def test_history_list_with_one_end_only_is_insufficient():
    assert status(make_bundle({}, text={"mysql/innodb_status.txt": monitor(900_000)}), "IBP-07") == \
        "insufficient"


# -- IBP-08: transactions open through the window -----------------------------------------

def trx_samples(ages: List[float], trx_id: str = "4212") -> List[Dict[str, Any]]:
    return [{"transactions": [{"trx_id": trx_id, "age_seconds": age, "trx_mysql_thread_id": 88,
                               "trx_rows_modified": 12000, "trx_state": "RUNNING"}]} for age in ages]


def test_transaction_open_through_the_window_fires():
    rows = trx_samples([600, 610, 620])
    finding = outcome(make_bundle({}, jsonl={"mysql/innodb_trx.jsonl": rows}), "IBP-08")
    assert isinstance(finding, Finding) and finding.window and "thread 88" in finding.summary
    assert finding.evidence[0].values["samples_seen"] == 3


def test_hour_long_writing_transaction_is_an_error():
    rows = trx_samples([3600, 3610, 3620])
    assert outcome(make_bundle({}, jsonl={"mysql/innodb_trx.jsonl": rows}), "IBP-08").severity == "error"


def test_short_or_changing_transactions_pass():
    assert status(make_bundle({}, jsonl={"mysql/innodb_trx.jsonl": trx_samples([1, 11, 21])}), "IBP-08") == \
        "passed"
    rows = trx_samples([900], "1") + trx_samples([900], "2") + trx_samples([900], "3")
    assert status(make_bundle({}, jsonl={"mysql/innodb_trx.jsonl": rows}), "IBP-08") == "passed"


def test_open_transactions_need_two_samples():
    assert status(make_bundle({}, jsonl={"mysql/innodb_trx.jsonl": trx_samples([9000])}), "IBP-08") == \
        "insufficient"


# -- malformed members ---------------------------------------------------------------------

STATUS_NAMES = ("Innodb_buffer_pool_reads", "Innodb_buffer_pool_read_requests",
                "Innodb_buffer_pool_wait_free", "Innodb_buffer_pool_pages_total",
                "Innodb_buffer_pool_pages_dirty", "Innodb_row_lock_waits", "Innodb_row_lock_time",
                "Innodb_row_lock_current_waits", "Innodb_history_list_length", "Uptime")


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=repr)
def test_malformed_members_never_make_an_innodb_rule_fail(value):
    variables = {name: value for name in ("innodb_buffer_pool_size", "innodb_buffer_pool_chunk_size",
                                          "innodb_buffer_pool_instances", "innodb_max_dirty_pages_pct")}
    files = {"os/meminfo.json": {"meminfo": value}, "os/mysqld_process.json": {"memory": {"VmRSS": value}}}
    jsonl = {
        "mysql/global_status.jsonl": [{"ts": stamp(i), "status": {n: value for n in STATUS_NAMES}}
                                      for i in range(4)],
        "mysql/innodb_trx.jsonl": [{"transactions": [{"trx_id": value, "age_seconds": value}, value]},
                                   {"transactions": value}, {"transactions": [{"trx_id": value}]}],
        "mysql/lock_waits.jsonl": [{"waits": value}, {"waits": [value]}],
    }
    text = {"mysql/innodb_status.txt": f"History list length {value}\n",
            "mysql/innodb_status_end.txt": "History list length 99999999999999999999999\n"}
    bundle = make_bundle(variables, files=files, jsonl=jsonl, text=text)
    assert rule_errors(bundle, IBP_RULES) == []


def test_members_of_the_wrong_type_never_make_an_innodb_rule_fail():
    members = {"os/meminfo.json": b"[]", "os/mysqld_process.json": b'"x"',
               "mysql/innodb_trx.jsonl": b"[1]\n7\n",
               "mysql/lock_waits.jsonl": b'{"waits": {"a": 1}}\n', "mysql/innodb_status.txt": b"\xff\xfe",
               "mysql/global_variables.json": b'[["innodb_buffer_pool_size", 1]]',
               "mysql/global_status.jsonl": b'{"ts": "2026-12-02T10:00:00Z", "status": "x"}\n'}
    bundle = Bundle(members, {"mysql": {"flavor": "mysql", "version": "8.0.36"}})
    report = engine.evaluate(bundle, IBP_RULES)
    assert not [o for o in report.outcomes if o.status == "error"], report.outcomes
    assert not report.findings
